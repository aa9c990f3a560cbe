// The emulator's self-test kernels, compiled for the CPU (see cuda_host_selftest.cu).
#include "common/cuda_host_selftest.cu"
