// One trajectory-sampling step for every row of a decode batch, one thread block per row.
//
// Per row (the torch reference is ehrfast.infer.sampler.sampling_step; same semantics):
//   1. weights w_i = exp(logit_i / T − max) in double, cached in shared memory;
//   2. nucleus: keep tokens whose strictly more likely tokens hold < top_p of the mass
//      (ties at the boundary all kept), found by bisection on the bit pattern of a threshold;
//   3. Philox uniforms (seed; subject, sample, the row's step = tokens it generated): u_first draws from the nucleus (did the
//      path hit the target set?), u_continue draws the next token from the nucleus with the
//      target set removed, so the path goes on and its probability stays exact;
//   4. state: log_survival += log(1 − p_target), elapsed += duration(token), hit, generated,
//      and the row finishes at the horizon, a stop token, K tokens, or when all mass is on T.
//   With competing events (event_class set; reference ehrfast.infer.sampling_step.event_step):
//   the mass of each event class, the path estimate cif[e] += S_prev · p_e (and per time bin),
//   the first event the draw u_first meets (class, token, step, elapsed time before it), and the
//   end reason; a row stops at elapsed > the time limit, K tokens, all mass on events, or once
//   it has met an event and its survival is below epsilon (at once in pure Monte Carlo).
//
// The same file runs on the CPU in the tests: compiled by the host compiler, common/cuda_compat.hpp
// gives it the emulated execution model of common/cuda_host.hpp (module ehrfast._cuda_host).
#include "common/cuda_compat.hpp"
#include "sampler/philox.cuh"
#include "sampler/sampling_step.hpp"

#include <climits>
#include <cmath>

namespace ehrfast::sampler {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr unsigned kFullMask = 0xffffffffu;

__device__ inline double to_double(float x) { return x; }
__device__ inline double to_double(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ inline double to_double(__half x) { return __half2float(x); }

// Block-wide reductions: every thread gets the result; the warp partials are combined in the
// same order in every thread, so all threads hold bit-identical values.
__device__ double block_sum(double v, double* scratch) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(kFullMask, v, offset);
  __syncthreads();  // the previous reduction's readers are done with scratch
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  double total = 0;
  for (int w = 0; w < kWarps; ++w) total += scratch[w];
  return total;
}

__device__ double block_max(double v, double* scratch) {
  for (int offset = 16; offset > 0; offset >>= 1) v = fmax(v, __shfl_down_sync(kFullMask, v, offset));
  __syncthreads();
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  double best = scratch[0];
  for (int w = 1; w < kWarps; ++w) best = fmax(best, scratch[w]);
  return best;
}

// Exclusive prefix sum of one value per thread, in thread order; `total` gets the sum of all.
__device__ double block_exclusive_scan(double v, double* scratch, double& total) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  double inclusive = v;
  for (int offset = 1; offset < 32; offset <<= 1) {
    const double other = __shfl_up_sync(kFullMask, inclusive, offset);
    if (lane >= offset) inclusive += other;
  }
  double exclusive = __shfl_up_sync(kFullMask, inclusive, 1);
  if (lane == 0) exclusive = 0;
  __syncthreads();
  if (lane == 31) scratch[warp] = inclusive;
  __syncthreads();
  double before = 0;
  total = 0;
  for (int w = 0; w < kWarps; ++w) {
    if (w < warp) before += scratch[w];
    total += scratch[w];
  }
  return before + exclusive;
}

// Each thread owns a contiguous chunk of the vocabulary, so chunk order = index order.
struct Chunk {
  int64_t begin, end;
  __device__ explicit Chunk(int64_t vocab) {
    const int64_t size = (vocab + kThreads - 1) / kThreads;
    begin = min(vocab, int64_t(threadIdx.x) * size);
    end = min(vocab, begin + size);
  }
};

// Index of the first token whose cumulative weight (index order) exceeds u · Σ weight.
template <class Weight>
__device__ int64_t inverse_cdf(const Weight& weight, int64_t vocab, double u, double* scratch, unsigned long long* chosen) {
  const Chunk chunk(vocab);
  double mine = 0;
  int64_t last_positive = -1;
  for (int64_t i = chunk.begin; i < chunk.end; ++i) {
    const double wi = weight(i);
    mine += wi;
    if (wi > 0) last_positive = i;
  }
  double total;
  const double before = block_exclusive_scan(mine, scratch, total);
  const double threshold = u * total;
  if (threadIdx.x == 0) *chosen = ULLONG_MAX;
  __syncthreads();
  if (mine > 0 && before <= threshold && threshold < before + mine) {
    double running = before;
    int64_t pick = last_positive;  // rounding left the threshold past this chunk's end
    for (int64_t i = chunk.begin; i < chunk.end; ++i) {
      running += weight(i);
      if (running > threshold) {
        pick = i;
        break;
      }
    }
    atomicMin(chosen, static_cast<unsigned long long>(pick));
  }
  __syncthreads();
  if (*chosen != ULLONG_MAX) return static_cast<int64_t>(*chosen);
  // threshold ≥ the block total by rounding: the last token with weight
  return static_cast<int64_t>(block_max(static_cast<double>(last_positive), scratch));
}

template <typename T>
__global__ void __launch_bounds__(kThreads) sampling_step_kernel(SamplingStepArgs a) {
  EHRFAST_DYNAMIC_SHARED(double, w);  // [vocab]
  __shared__ double scratch[kWarps];
  __shared__ unsigned long long chosen;
  const int64_t row = blockIdx.x;
  if (!a.alive[row]) {  // the whole block leaves together
    if (threadIdx.x == 0) {
      a.next_token[row] = 0;
      if (a.p_target) a.p_target[row] = 0;
    }
    return;
  }
  const int64_t vocab = a.vocab;
  const T* logits = static_cast<const T*>(a.logits) + row * a.row_stride;

  // 1. weights (coalesced load into shared memory, then per-chunk work)
  double top = -INFINITY;
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
    w[i] = to_double(logits[i]) / a.temperature;
    top = fmax(top, w[i]);
  }
  top = block_max(top, scratch);  // its internal barrier also publishes w
  const Chunk chunk(vocab);
  double z = 0;
  for (int64_t i = chunk.begin; i < chunk.end; ++i) {
    w[i] = exp(w[i] - top);
    z += w[i];
  }
  z = block_sum(z, scratch);

  // 2. nucleus: smallest threshold x (as a bit pattern) with Σ_{w > x} w < top_p · z; keep w ≥ x
  double keep_from = 0.0;
  if (a.top_p < 1.0) {
    const double limit = a.top_p * z;
    long long lo = 0, hi = __double_as_longlong(1.0);  // Σ_{w > 0} = z ≥ limit; Σ_{w > 1} = 0 < limit
    while (hi - lo > 1) {
      const long long mid = lo + (hi - lo) / 2;
      const double x = __longlong_as_double(mid);
      double above = 0;
      for (int64_t i = chunk.begin; i < chunk.end; ++i)
        if (w[i] > x) above += w[i];
      if (block_sum(above, scratch) < limit) hi = mid;
      else lo = mid;
    }
    keep_from = __longlong_as_double(hi);
  }
  double on = 0, off = 0;
  for (int64_t i = chunk.begin; i < chunk.end; ++i) {
    if (w[i] < keep_from) continue;
    if (a.target_mask[i]) on += w[i];
    else off += w[i];
  }
  on = block_sum(on, scratch);
  off = block_sum(off, scratch);
  // each event class's mass (every thread holds the same sums)
  double on_class[kMaxEvents];
  for (int e = 0; e < a.n_events; ++e) {
    double mine = 0;
    for (int64_t i = chunk.begin; i < chunk.end; ++i)
      if (w[i] >= keep_from && a.event_class[i] == e) mine += w[i];
    on_class[e] = block_sum(mine, scratch);
  }

  // 3. the two draws
  const int64_t step = a.generated[row];  // each row counts its own steps (slots are refilled mid-run)
  double u_first, u_continue;
  uniform_pair(a.seed, a.subject_keys[row], a.sample_index[row], step, u_first, u_continue);
  const uint8_t* target = a.target_mask;
  const int64_t first = inverse_cdf([&](int64_t i) { return w[i] >= keep_from ? w[i] : 0.0; }, vocab, u_first, scratch, &chosen);
  const bool target_only = off <= 0;
  int64_t next;
  if (target_only) {  // nothing to continue with: the path ends here (the reference draws uniformly)
    next = min(static_cast<int64_t>(u_continue * static_cast<double>(vocab)), vocab - 1);
  } else {
    next = inverse_cdf([&](int64_t i) { return w[i] >= keep_from && !target[i] ? w[i] : 0.0; }, vocab, u_continue, scratch, &chosen);
  }

  // 4. state
  if (threadIdx.x == 0) {
    const double p_target = on / (on + off);
    const double elapsed_before = a.elapsed_us[row];
    if (a.event_class) {
      const double survival = exp(a.log_survival[row]);
      int bin = 0;
      while (bin < a.n_edges && a.time_edges_us[bin] <= elapsed_before) ++bin;
      for (int e = 0; e < a.n_events; ++e) {
        const double gain = survival * (on_class[e] / (on + off));
        a.cif[row * a.n_events + e] += gain;
        a.cif_time[(row * a.n_events + e) * (a.n_edges + 1) + bin] += gain;
      }
      if (target[first] && a.mc_event[row] < 0) {
        a.mc_event[row] = a.event_class[first];
        a.mc_token[row] = first;
        a.mc_step[row] = static_cast<int32_t>(step);
        a.mc_elapsed_us[row] = elapsed_before;
      }
    }
    a.log_survival[row] += log1p(-fmin(p_target, 1.0));
    a.hit[row] = a.hit[row] | target[first];
    a.generated[row] += 1;
    a.elapsed_us[row] += a.durations_us[next];
    if (a.event_class) {
      // the same precedence as the reference: the last condition that holds names the end
      int8_t reason = 0;
      if (step + 1 >= a.max_new_tokens) reason = 3;
      if (a.elapsed_us[row] > a.horizon_us) reason = 2;
      if (target_only) reason = 4;
      if (a.mc_event[row] >= 0 && (a.stop_at_event || exp(a.log_survival[row]) < a.survival_epsilon)) reason = 1;
      if (reason != 0) {
        a.end_reason[row] = reason;
        a.end_elapsed_us[row] = a.elapsed_us[row];
      }
      a.alive[row] = reason == 0;
    } else {
      a.alive[row] = !target_only && !a.stop_mask[next] && a.elapsed_us[row] < a.horizon_us && step + 1 < a.max_new_tokens;
    }
    a.next_token[row] = next;
    if (a.p_target) a.p_target[row] = p_target;
  }
}

constexpr size_t kStaticShared = 1024;  // scratch + chosen, with room

// The one place the launch configuration is computed.
struct LaunchConfig {
  dim3 grid, block;
  size_t shared_bytes;
};

LaunchConfig launch_config(const SamplingStepArgs& a) {
  return {dim3(static_cast<unsigned>(a.n_rows)), dim3(kThreads), static_cast<size_t>(a.vocab) * sizeof(double)};
}

#define EHRFAST_CUDA_TRY(call)                                                        \
  do {                                                                                \
    const cudaError_t status_ = (call);                                               \
    if (status_ != cudaSuccess) return std::string(#call) + ": " + cudaGetErrorString(status_); \
  } while (0)

template <typename T>
std::string launch(const SamplingStepArgs& a, cudaStream_t stream) {
  const LaunchConfig cfg = launch_config(a);
  EHRFAST_CUDA_TRY(cudaFuncSetAttribute(sampling_step_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(cfg.shared_bytes)));
  EHRFAST_LAUNCH(sampling_step_kernel<T>, cfg.grid, cfg.block, cfg.shared_bytes, stream, a);
  EHRFAST_CUDA_TRY(cudaGetLastError());
  return "";
}

}  // namespace

int64_t max_vocab(int device) {
  int optin = 0;
  if (cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls are not blamed
    return 0;
  }
  return optin > static_cast<int>(kStaticShared) ? (optin - static_cast<int64_t>(kStaticShared)) / static_cast<int64_t>(sizeof(double)) : 0;
}

std::string launch_sampling_step(const SamplingStepArgs& args, uintptr_t stream) {
  if (args.n_rows == 0) return "";
  const auto s = reinterpret_cast<cudaStream_t>(stream);
  switch (args.dtype) {
    case LogitsDtype::float32: return launch<float>(args, s);
    case LogitsDtype::bfloat16: return launch<__nv_bfloat16>(args, s);
    case LogitsDtype::float16: return launch<__half>(args, s);
  }
  return "unknown logits dtype";
}

}  // namespace ehrfast::sampler
