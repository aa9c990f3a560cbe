// Philox4x32-10 (Salmon et al., SC'11): the same bits as ehrfast/infer/rng.py, on device and host.
#pragma once
#include <cstdint>

// Host and device under nvcc; plain host code when a C++ compiler includes it (the bindings).
#ifdef __CUDACC__
#define EHRFAST_HOST_DEVICE __host__ __device__
#else
#define EHRFAST_HOST_DEVICE
#endif

namespace ehrfast::sampler {

struct PhiloxWords {
  uint32_t x0, x1, x2, x3;
};

EHRFAST_HOST_DEVICE inline PhiloxWords philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                                                     uint32_t k1) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    if (round) {
      k0 += W0;
      k1 += W1;
    }
    const uint64_t p0 = uint64_t(M0) * c0, p1 = uint64_t(M1) * c2;
    const uint32_t n0 = uint32_t(p1 >> 32) ^ c1 ^ k0, n1 = uint32_t(p1), n2 = uint32_t(p0 >> 32) ^ c3 ^ k1, n3 = uint32_t(p0);
    c0 = n0;
    c1 = n1;
    c2 = n2;
    c3 = n3;
  }
  return {c0, c1, c2, c3};
}

// 53-bit double in [0, 1) from two 32-bit words (hi first).
EHRFAST_HOST_DEVICE inline double unit_double(uint32_t hi, uint32_t lo) {
  return double(((uint64_t(hi) << 32) | lo) >> 11) * (1.0 / 9007199254740992.0);
}

// The two uniforms of one (seed, subject, sample, step): first draw, continuation draw.
EHRFAST_HOST_DEVICE inline void uniform_pair(uint64_t seed, int64_t subject, int64_t sample, int64_t step, double& u_first,
                                             double& u_continue) {
  const uint64_t s = uint64_t(subject);
  const PhiloxWords w = philox4x32_10(uint32_t(s), uint32_t(s >> 32), uint32_t(sample), uint32_t(step), uint32_t(seed),
                                      uint32_t(seed >> 32));
  u_first = unit_double(w.x0, w.x1);
  u_continue = unit_double(w.x2, w.x3);
}

}  // namespace ehrfast::sampler
