// The one CUDA include of a kernel source file. Compiled by nvcc it is the real CUDA headers;
// compiled by the host compiler (the ehrfast._cuda_host test module) it is the emulation in
// cuda_host.hpp, which runs every block's threads on the CPU. The kernel files themselves hold
// no #if of their own: the two spellings below are the only things that differ.
//
//   EHRFAST_DYNAMIC_SHARED(type, name)   the block's dynamic shared memory as `type name[]`
//   EHRFAST_LAUNCH(kernel, grid, block, shared_bytes, stream, args...)   kernel<<<...>>>(args...)
#pragma once

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#define EHRFAST_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#define EHRFAST_LAUNCH(kernel, grid, block, shared_bytes, stream, ...) kernel<<<(grid), (block), (shared_bytes), (stream)>>>(__VA_ARGS__)
#else
#include "common/cuda_host.hpp"
#endif
