// ehrfast._cuda_host: the CUDA sampling kernel's own source, compiled by the host compiler. With
// no __CUDACC__, common/cuda_compat.hpp gives it the emulated execution model (cuda_host.hpp).
#include "sampler/sampling_step.cu"
