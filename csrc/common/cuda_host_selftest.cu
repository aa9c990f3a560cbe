// Small kernels that check the CPU emulation itself (ehrfast._cuda_host.emulator_selftest): a
// block reduction and a scan over warp shuffles, and the mistakes the emulation must report.
#include "common/cuda_compat.hpp"

#include <string>

namespace ehrfast::cuda_host_selftest {
namespace {

constexpr unsigned kFull = 0xffffffffu;

// Block sum of in[block * blockDim + t] by warp shuffles and shared memory; out[block].
__global__ void block_sum(const double* in, double* out) {
    __shared__ double partial[32];
    const unsigned t = threadIdx.x, lane = t % 32, warp = t / 32;
    double v = in[blockIdx.x * blockDim.x + t];
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(kFull, v, offset);
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (t == 0) {
        double total = 0;
        for (unsigned w = 0; w < (blockDim.x + 31) / 32; ++w) total += partial[w];
        out[blockIdx.x] = total;
    }
}

// Inclusive scan within each warp by __shfl_up_sync, then a butterfly max by __shfl_xor_sync.
__global__ void warp_scan_and_max(const double* in, double* scan, double* max_out) {
    const unsigned t = blockIdx.x * blockDim.x + threadIdx.x, lane = threadIdx.x % 32;
    double v = in[t];
    for (int offset = 1; offset < 32; offset <<= 1) {
        const double other = __shfl_up_sync(kFull, v, offset);
        if (lane >= static_cast<unsigned>(offset)) v += other;
    }
    scan[t] = v;
    double m = in[t];
    for (int offset = 16; offset > 0; offset >>= 1) m = fmax(m, __shfl_xor_sync(kFull, m, offset));
    max_out[t] = m;
}

__global__ void divergent_barrier(double* out) {
    if (threadIdx.x < 100) __syncthreads();  // a bug: not every thread reaches it
    out[threadIdx.x] = 1;
}

__global__ void two_barriers(double* out) {
    if (threadIdx.x % 2) {
        __syncthreads();  // a bug: odd threads wait here ...
    } else {
        __syncthreads();  // ... even ones here
    }
    out[threadIdx.x] = 1;
}

__global__ void shuffle_outside_mask(double* out) {
    const unsigned lane = threadIdx.x % 32;
    if (lane < 16) out[threadIdx.x] = __shfl_down_sync(0x0000ffffu, 1.0 * lane, 8);  // lane 8 reads lane 16: outside the mask
}

__global__ void excluded_lane(double* out) {
    out[threadIdx.x] = __shfl_down_sync(0x0000ffffu, 1.0, 1);  // lanes 16..31 call with a mask that leaves them out
}

}  // namespace

// Runs kernel `name` over n_blocks × n_threads; "" on success, else the emulation's error.
std::string run(const std::string& name, unsigned n_blocks, unsigned n_threads, const double* in, double* out, double* out2) {
    const dim3 grid(n_blocks), block(n_threads);
    if (name == "block_sum") EHRFAST_LAUNCH(block_sum, grid, block, 0, nullptr, in, out);
    else if (name == "warp_scan_and_max") EHRFAST_LAUNCH(warp_scan_and_max, grid, block, 0, nullptr, in, out, out2);
    else if (name == "divergent_barrier") EHRFAST_LAUNCH(divergent_barrier, grid, block, 0, nullptr, out);
    else if (name == "two_barriers") EHRFAST_LAUNCH(two_barriers, grid, block, 0, nullptr, out);
    else if (name == "shuffle_outside_mask") EHRFAST_LAUNCH(shuffle_outside_mask, grid, block, 0, nullptr, out);
    else if (name == "excluded_lane") EHRFAST_LAUNCH(excluded_lane, grid, block, 0, nullptr, out);
    else return "unknown self-test kernel " + name;
    const cudaError_t status = cudaGetLastError();
    return status == cudaSuccess ? "" : cudaGetErrorString(status);
}

}  // namespace ehrfast::cuda_host_selftest
