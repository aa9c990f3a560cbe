// Python bindings of ehrfast._cuda: the CUDA kernels, driven with raw device pointers so the
// module needs no libtorch. ehrfast/infer/cuda_sampling.py validates the tensors (device,
// dtype, shape, contiguity) and passes their data_ptr(); nothing here dereferences them on
// the host. Compiled by the C++ compiler: no CUDA headers.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "sampler/philox.cuh"
#include "sampler/sampling_step.hpp"

namespace py = pybind11;
using namespace ehrfast::sampler;

namespace {

template <typename T>
T* pointer(uintptr_t address) {
  return reinterpret_cast<T*>(address);
}

void sampling_step(uintptr_t logits, int dtype, int64_t n_rows, int64_t vocab, int64_t row_stride, uintptr_t subject_keys,
                   uintptr_t sample_index, uint64_t seed, uintptr_t target_mask, uintptr_t stop_mask,
                   uintptr_t durations_us, double horizon_us, double temperature, double top_p, int64_t max_new_tokens,
                   uintptr_t alive, uintptr_t elapsed_us, uintptr_t log_survival, uintptr_t hit, uintptr_t generated,
                   uintptr_t next_token, uintptr_t p_target, uintptr_t stream) {
  if (dtype < 0 || dtype > 2) throw std::invalid_argument("dtype must be 0 (float32), 1 (bfloat16) or 2 (float16)");
  if (n_rows < 0 || vocab < 1 || row_stride < vocab) throw std::invalid_argument("need n_rows >= 0, vocab >= 1, row_stride >= vocab");
  if (n_rows > INT32_MAX) throw std::invalid_argument("too many rows for one launch");
  if (!(temperature > 0) || !(top_p > 0) || top_p > 1) throw std::invalid_argument("need temperature > 0 and 0 < top_p <= 1");
  SamplingStepArgs a;
  a.logits = pointer<const void>(logits);
  a.dtype = static_cast<LogitsDtype>(dtype);
  a.n_rows = n_rows;
  a.vocab = vocab;
  a.row_stride = row_stride;
  a.subject_keys = pointer<const int64_t>(subject_keys);
  a.sample_index = pointer<const int64_t>(sample_index);
  a.seed = seed;
  a.target_mask = pointer<const uint8_t>(target_mask);
  a.stop_mask = pointer<const uint8_t>(stop_mask);
  a.durations_us = pointer<const double>(durations_us);
  a.horizon_us = horizon_us;
  a.temperature = temperature;
  a.top_p = top_p;
  a.max_new_tokens = max_new_tokens;
  a.alive = pointer<uint8_t>(alive);
  a.elapsed_us = pointer<double>(elapsed_us);
  a.log_survival = pointer<double>(log_survival);
  a.hit = pointer<uint8_t>(hit);
  a.generated = pointer<int32_t>(generated);
  a.next_token = pointer<int64_t>(next_token);
  a.p_target = pointer<double>(p_target);
  std::string error;
  {
    py::gil_scoped_release release;
    error = launch_sampling_step(a, stream);
  }
  if (!error.empty()) throw std::runtime_error("ehrfast._cuda.sampling_step: " + error);
}

// The kernel's Philox on the host (same header), so CPU tests can check it against numpy.
py::tuple philox(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  const PhiloxWords w = philox4x32_10(c0, c1, c2, c3, k0, k1);
  return py::make_tuple(w.x0, w.x1, w.x2, w.x3);
}

py::tuple uniforms(uint64_t seed, int64_t subject, int64_t sample, int64_t step) {
  double u_first, u_continue;
  uniform_pair(seed, subject, sample, step, u_first, u_continue);
  return py::make_tuple(u_first, u_continue);
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "ehrfast CUDA kernels (trajectory sampling step); driven through ehrfast.infer.cuda_sampling";
  m.def("sampling_step", &sampling_step, py::arg("logits"), py::arg("dtype"), py::arg("n_rows"), py::arg("vocab"),
        py::arg("row_stride"), py::arg("subject_keys"), py::arg("sample_index"), py::arg("seed"),
        py::arg("target_mask"), py::arg("stop_mask"), py::arg("durations_us"), py::arg("horizon_us"), py::arg("temperature"),
        py::arg("top_p"), py::arg("max_new_tokens"), py::arg("alive"), py::arg("elapsed_us"), py::arg("log_survival"),
        py::arg("hit"), py::arg("generated"), py::arg("next_token"), py::arg("p_target"), py::arg("stream"),
        "One sampling step for every row (device pointers as integers; see csrc/sampler/sampling_step.hpp).");
  m.def("max_vocab", &max_vocab, py::arg("device"), "Largest vocabulary the sampling kernel supports on a device (0: no usable device).");
  m.def("philox4x32_10", &philox, py::arg("c0"), py::arg("c1"), py::arg("c2"), py::arg("c3"), py::arg("k0"), py::arg("k1"),
        "Philox4x32-10 on the host, the kernel's code: four 32-bit words.");
  m.def("uniform_pair", &uniforms, py::arg("seed"), py::arg("subject"), py::arg("sample"), py::arg("step"),
        "The kernel's (u_first, u_continue) for one (seed, subject, sample, step), computed on the host.");
}
