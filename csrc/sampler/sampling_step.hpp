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
};

// Largest vocabulary the kernel holds in shared memory on `device` (0 when none usable).
int64_t max_vocab(int device);

// Launches the step on `stream` (a cudaStream_t as an integer). Returns "" or the CUDA error.
std::string launch_sampling_step(const SamplingStepArgs& args, uintptr_t stream);

}  // namespace ehrfast::sampler
