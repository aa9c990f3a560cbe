// What a CUDA kernel source needs to compile and run on the CPU, for the ehrfast._cuda_host
// test module: the same .cu file, compiled by the host compiler, tested against the torch
// reference in CI where there is no GPU.
//
// The execution model is emulated faithfully enough that an indexing, synchronization or
// reduction bug shows up as a wrong answer or a reported error, never as a hang:
//
// * A launch runs the grid's blocks one after another. A block's threads are fibers on the
//   launching thread; exactly one runs at a time, in a deterministic order (set_schedule:
//   ascending or descending thread index), until it reaches a synchronization point. So a
//   missing __syncthreads() is a deterministic wrong answer under one schedule or the other.
// * __syncthreads() waits until every thread of the block has reached it. Threads waiting at
//   different __syncthreads() lines, or a thread that returns while others wait, is an error.
// * Warp shuffles exchange values among the lanes named by the mask: a calling lane outside the
//   mask, lanes of one warp at different shuffles, or reading a lane outside the mask is an error.
// * Dynamic shared memory is poisoned (all bits set: NaN for doubles) at the start of each block;
//   static __shared__ variables are shared by the block's threads (blocks never overlap).
// * Atomics, the bf16/fp16 conversions, and the runtime calls a launch makes (errors,
//   attributes) behave as the device's do. Nothing else of CUDA is provided.
#pragma once

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

// Set by the emulator before each fiber runs (one fiber runs at a time on the launching thread).
extern thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;
constexpr int warpSize = 32;

using std::max;
using std::min;

namespace ehrfast::cuda_host {

// An error of the emulated execution (a divergent barrier, a shuffle outside its mask, ...).
struct KernelError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Which lane a shuffle reads: lane + delta, lane - delta, lane ^ delta, or lane `delta` itself.
enum class Shuffle { down, up, xor_lanes, index };

void syncthreads(const char* file, int line);
std::uint64_t shuffle_bits(unsigned mask, std::uint64_t bits, int delta, Shuffle kind, const char* file, int line);
void* dynamic_shared();
void launch(dim3 grid, dim3 block, std::size_t shared_bytes, const std::function<void()>& body);
void set_schedule(bool reverse);
std::size_t max_dynamic_shared();

template <typename T>
T shuffle(unsigned mask, T value, int delta, Shuffle kind, const char* file, int line) {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "shuffles move values of up to 8 bytes");
    std::uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    bits = shuffle_bits(mask, bits, delta, kind, file, line);
    T out;
    std::memcpy(&out, &bits, sizeof(T));
    return out;
}

}  // namespace ehrfast::cuda_host

#define __syncthreads() ::ehrfast::cuda_host::syncthreads(__FILE__, __LINE__)
#define __shfl_down_sync(mask, value, delta) \
    ::ehrfast::cuda_host::shuffle((mask), (value), (delta), ::ehrfast::cuda_host::Shuffle::down, __FILE__, __LINE__)
#define __shfl_up_sync(mask, value, delta) \
    ::ehrfast::cuda_host::shuffle((mask), (value), (delta), ::ehrfast::cuda_host::Shuffle::up, __FILE__, __LINE__)
#define __shfl_xor_sync(mask, value, lane_mask) \
    ::ehrfast::cuda_host::shuffle((mask), (value), (lane_mask), ::ehrfast::cuda_host::Shuffle::xor_lanes, __FILE__, __LINE__)
#define __shfl_sync(mask, value, src_lane) \
    ::ehrfast::cuda_host::shuffle((mask), (value), (src_lane), ::ehrfast::cuda_host::Shuffle::index, __FILE__, __LINE__)

#define EHRFAST_DYNAMIC_SHARED(type, name) type* name = static_cast<type*>(::ehrfast::cuda_host::dynamic_shared())
#define EHRFAST_LAUNCH(kernel, grid, block, shared_bytes, stream, ...) \
    ::ehrfast::cuda_host::launch((grid), (block), (shared_bytes), [&] { kernel(__VA_ARGS__); })

// ---- atomics: one fiber runs at a time, so a plain read-modify-write is atomic ----------------
template <typename T>
T atomicAdd(T* address, T value) {
    const T old = *address;
    *address = old + value;
    return old;
}
template <typename T>
T atomicMin(T* address, T value) {
    const T old = *address;
    *address = std::min(old, value);
    return old;
}
template <typename T>
T atomicMax(T* address, T value) {
    const T old = *address;
    *address = std::max(old, value);
    return old;
}
template <typename T>
T atomicCAS(T* address, T compare, T value) {
    const T old = *address;
    if (old == compare) *address = value;
    return old;
}
template <typename T>
T atomicExch(T* address, T value) {
    const T old = *address;
    *address = value;
    return old;
}

// ---- bit casts and 16-bit floats ------------------------------------------------------------
inline long long __double_as_longlong(double x) {
    long long out;
    std::memcpy(&out, &x, sizeof out);
    return out;
}
inline double __longlong_as_double(long long x) {
    double out;
    std::memcpy(&out, &x, sizeof out);
    return out;
}

struct __nv_bfloat16 {
    std::uint16_t bits;
};
struct __half {
    std::uint16_t bits;
};

inline float __bfloat162float(__nv_bfloat16 h) {
    const std::uint32_t bits = static_cast<std::uint32_t>(h.bits) << 16;
    float out;
    std::memcpy(&out, &bits, sizeof out);
    return out;
}

// Round to nearest even, as __float2bfloat16 does; NaN stays NaN.
inline __nv_bfloat16 __float2bfloat16(float x) {
    std::uint32_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    if (std::isnan(x)) return {static_cast<std::uint16_t>((bits >> 16) | 0x40)};
    bits += 0x7fff + ((bits >> 16) & 1);
    return {static_cast<std::uint16_t>(bits >> 16)};
}

inline float __half2float(__half h) {
    const std::uint32_t sign = static_cast<std::uint32_t>(h.bits & 0x8000) << 16;
    const int exponent = (h.bits >> 10) & 0x1f;
    const std::uint32_t mantissa = h.bits & 0x3ff;
    float magnitude;
    if (exponent == 0) {
        magnitude = std::ldexp(static_cast<float>(mantissa), -24);  // zero and subnormals
    } else if (exponent == 31) {
        magnitude = mantissa ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
    } else {
        magnitude = std::ldexp(static_cast<float>(mantissa | 0x400), exponent - 25);
    }
    std::uint32_t bits;
    std::memcpy(&bits, &magnitude, sizeof bits);
    bits |= sign;
    float out;
    std::memcpy(&out, &bits, sizeof out);
    return out;
}

// ---- the runtime calls a launch makes ------------------------------------------------------
using cudaStream_t = void*;
enum cudaError_t : int { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorInvalidDevice = 101, cudaErrorLaunchFailure = 719 };
enum cudaFuncAttribute : int { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaDeviceAttr : int { cudaDevAttrMaxSharedMemoryPerBlockOptin = 97 };

cudaError_t cudaGetLastError();
const char* cudaGetErrorString(cudaError_t error);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attribute, int device);

template <typename Kernel>
cudaError_t cudaFuncSetAttribute(Kernel, cudaFuncAttribute, int value) {
    return value >= 0 && static_cast<std::size_t>(value) <= ::ehrfast::cuda_host::max_dynamic_shared() ? cudaSuccess : cudaErrorInvalidValue;
}
