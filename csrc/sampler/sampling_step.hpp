// One sampling step for every sequence of a decode batch (see sampling_step.cu).
// Host-side declarations only: the bindings include this without CUDA headers.
#pragma once
#include <cstdint>
#include <string>

namespace ehrfast::sampler {

enum class LogitsDtype : int { float32 = 0, bfloat16 = 1, float16 = 2 };

// Raw device pointers; shapes in the comments. Validated in Python before the call.
struct SamplingStepArgs {
  const void* logits = nullptr;  // [n_rows, row_stride] of dtype, the first `vocab` columns used
  LogitsDtype dtype = LogitsDtype::float32;
  int64_t n_rows = 0, vocab = 0, row_stride = 0;
  const int64_t* subject_keys = nullptr;  // [n_rows]: the subject each row samples for (RNG counter)
  const int64_t* sample_index = nullptr;  // [n_rows]: which of the subject's N samples (RNG counter)
  uint64_t seed = 0;
  const uint8_t* target_mask = nullptr;  // [vocab] 1 = target token
  const uint8_t* stop_mask = nullptr;    // [vocab] 1 = ends the trajectory (timeline end, death)
  const double* durations_us = nullptr;  // [vocab] time each token adds
  double horizon_us = 0, temperature = 1, top_p = 1;
  int64_t max_new_tokens = 0;
  // state, updated in place for rows still alive
  uint8_t* alive = nullptr;         // [n_rows]
  double* elapsed_us = nullptr;     // [n_rows]
  double* log_survival = nullptr;   // [n_rows] Σ log(1 − p_target)
  uint8_t* hit = nullptr;           // [n_rows] the first draw landed in the target set
  int32_t* generated = nullptr;     // [n_rows] tokens generated = the row's step number (RNG counter)
  int64_t* next_token = nullptr;    // [n_rows] out: the continuation token (0 for finished rows)
  double* p_target = nullptr;       // [n_rows] out, optional: this step's target mass (0 for finished rows)

  // Competing events (ARES.md S1), when event_class is set: the events are the target set,
  // horizon_us is the time limit (a row stops once elapsed > it), stop_mask is ignored.
  const int16_t* event_class = nullptr;  // [vocab] -1 = not an event, else its class 0 .. n_events-1
  int32_t n_events = 0;                  // 1 .. kMaxEvents
  const double* time_edges_us = nullptr;  // [n_edges] increasing; time bin b = [edge[b-1], edge[b])
  int32_t n_edges = 0;
  double survival_epsilon = 0;            // a row that met an event stops once exp(log_survival) < it
  uint8_t stop_at_event = 0;              // pure Monte Carlo: stop at the first drawn event
  int16_t* mc_event = nullptr;            // [n_rows] in/out: class of the first drawn event (-1: none yet)
  int64_t* mc_token = nullptr;            // [n_rows] in/out
  int32_t* mc_step = nullptr;             // [n_rows] in/out
  double* mc_elapsed_us = nullptr;        // [n_rows] in/out: elapsed time before the event token
  int8_t* end_reason = nullptr;           // [n_rows] in/out: 0 running, 1 event, 2 time limit, 3 token cap, 4 all mass on events
  double* end_elapsed_us = nullptr;       // [n_rows] in/out
  double* cif = nullptr;                  // [n_rows, n_events] in/out: Σ S_prev · p_e
  double* cif_time = nullptr;             // [n_rows, n_events, n_edges + 1] in/out
};

constexpr int32_t kMaxEvents = 16;

// Largest vocabulary the kernel holds in shared memory on `device` (0 when none usable).
int64_t max_vocab(int device);

// Launches the step on `stream` (a cudaStream_t as an integer). Returns "" or the CUDA error.
std::string launch_sampling_step(const SamplingStepArgs& args, uintptr_t stream);

}  // namespace ehrfast::sampler
