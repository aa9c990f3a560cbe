// Python bindings of ehrfast._cuda: the CUDA kernels, driven with raw device pointers so the
// module needs no libtorch. ehrfast/infer/cuda_sampling.py validates the tensors (device,
// dtype, shape, contiguity) and passes their data_ptr(); nothing here dereferences them.
// Compiled by the C++ compiler: no CUDA headers.
//
// The same bindings, built with EHRFAST_CUDA_HOST, make ehrfast._cuda_host: the kernels' own
// sources compiled for the CPU (common/cuda_host.hpp), taking host pointers — what CI tests
// against the torch reference where there is no GPU.
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

// Checks the scalars (the Python wrapper has checked every tensor), then launches.
void sampling_step(const SamplingStepArgs& a, uintptr_t stream) {
  if (a.n_rows < 0 || a.vocab < 1 || a.row_stride < a.vocab) throw std::invalid_argument("need n_rows >= 0, vocab >= 1, row_stride >= vocab");
  if (a.n_rows > INT32_MAX) throw std::invalid_argument("too many rows for one launch");
  if (!(a.temperature > 0) || !(a.top_p > 0) || a.top_p > 1) throw std::invalid_argument("need temperature > 0 and 0 < top_p <= 1");
  if (a.n_rows > 0 && (!a.logits || !a.subject_keys || !a.sample_index || !a.target_mask || !a.stop_mask || !a.durations_us ||
                       !a.alive || !a.elapsed_us || !a.log_survival || !a.hit || !a.generated || !a.next_token))
    throw std::invalid_argument("every pointer but p_target must be set");
  if (a.event_class) {
    if (a.n_events < 1 || a.n_events > kMaxEvents) throw std::invalid_argument("need 1 <= n_events <= " + std::to_string(kMaxEvents));
    if (a.n_edges < 0 || (a.n_edges > 0 && !a.time_edges_us)) throw std::invalid_argument("need n_edges >= 0 and time_edges_us when n_edges > 0");
    if (a.n_rows > 0 && (!a.mc_event || !a.mc_token || !a.mc_step || !a.mc_elapsed_us || !a.end_reason || !a.end_elapsed_us || !a.cif ||
                         !a.cif_time))
      throw std::invalid_argument("with event_class every event output pointer must be set");
  }
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

// A pointer field of SamplingStepArgs, seen from Python as the integer address (tensor.data_ptr()).
#define EHRFAST_POINTER_FIELD(cls, field)                                                                       \
  def_property(                                                                                                  \
      #field, [](const SamplingStepArgs& a) { return reinterpret_cast<uintptr_t>(a.field); },                    \
      [](SamplingStepArgs& a, uintptr_t address) { a.field = reinterpret_cast<decltype(a.field)>(address); })

void define_module(py::module_& m) {
  // module_local: ehrfast._cuda and ehrfast._cuda_host bind the same C++ types and may be loaded together
  py::enum_<LogitsDtype>(m, "LogitsDtype", "The dtype of the logits the sampling step reads.", py::module_local())
      .value("float32", LogitsDtype::float32)
      .value("bfloat16", LogitsDtype::bfloat16)
      .value("float16", LogitsDtype::float16);
  py::class_<SamplingStepArgs>(m, "SamplingStepArgs", py::module_local(),
                               "Everything one sampling step reads and updates (csrc/sampler/sampling_step.hpp): device pointers as "
                               "integer addresses, shapes and the task's scalars.")
      .def(py::init<>())
      .EHRFAST_POINTER_FIELD(SamplingStepArgs, logits)
      .def_readwrite("dtype", &SamplingStepArgs::dtype)
      .def_readwrite("n_rows", &SamplingStepArgs::n_rows)
      .def_readwrite("vocab", &SamplingStepArgs::vocab)
      .def_readwrite("row_stride", &SamplingStepArgs::row_stride)
      .EHRFAST_POINTER_FIELD(SamplingStepArgs, subject_keys)
      .EHRFAST_POINTER_FIELD(SamplingStepArgs, sample_index)
      .def_readwrite("seed", &SamplingStepArgs::seed)
      .EHRFAST_POINTER_FIELD(SamplingStepArgs, target_mask)
      .EHRFAST_POINTER_FIELD(SamplingStepArgs, stop_mask)
      .EHRFAST_POINTER_FIELD(SamplingStepArgs, durations_us)
      .def_readwrite("horizon_us", &SamplingStepArgs::horizon_us)
      .def_readwrite("temperature", &SamplingStepArgs::temperature)
      .def_readwrite("top_p", &SamplingStepArgs::top_p)
      .def_readwrite("max_new_tokens", &SamplingStepArgs::max_new_tokens)
      .EHRFAST_POINTER_FIELD(SamplingStepArgs, alive)
      .EHRFAST_POINTER_FIELD(SamplingStepArgs, elapsed_us)
      .EHRFAST_POINTER_FIELD(SamplingStepArgs, log_survival)
      .EHRFAST_POINTER_FIELD(SamplingStepArgs, hit)
      .EHRFAST_POINTER_FIELD(SamplingStepArgs, generated)
      .EHRFAST_POINTER_FIELD(SamplingStepArgs, next_token)
      .EHRFAST_POINTER_FIELD(SamplingStepArgs, p_target)
      .EHRFAST_POINTER_FIELD(SamplingStepArgs, event_class)
      .def_readwrite("n_events", &SamplingStepArgs::n_events)
      .EHRFAST_POINTER_FIELD(SamplingStepArgs, time_edges_us)
      .def_readwrite("n_edges", &SamplingStepArgs::n_edges)
      .def_readwrite("survival_epsilon", &SamplingStepArgs::survival_epsilon)
      .def_readwrite("stop_at_event", &SamplingStepArgs::stop_at_event)
      .EHRFAST_POINTER_FIELD(SamplingStepArgs, mc_event)
      .EHRFAST_POINTER_FIELD(SamplingStepArgs, mc_token)
      .EHRFAST_POINTER_FIELD(SamplingStepArgs, mc_step)
      .EHRFAST_POINTER_FIELD(SamplingStepArgs, mc_elapsed_us)
      .EHRFAST_POINTER_FIELD(SamplingStepArgs, end_reason)
      .EHRFAST_POINTER_FIELD(SamplingStepArgs, end_elapsed_us)
      .EHRFAST_POINTER_FIELD(SamplingStepArgs, cif)
      .EHRFAST_POINTER_FIELD(SamplingStepArgs, cif_time);
  m.attr("MAX_EVENTS") = kMaxEvents;
  m.def("sampling_step", &sampling_step, py::arg("args"), py::arg("stream"),
        "One sampling step for every row of ``args`` on ``stream`` (a cudaStream_t as an integer).");
  m.def("max_vocab", &max_vocab, py::arg("device"), "Largest vocabulary the sampling kernel supports on a device (0: no usable device).");
  m.def("philox4x32_10", &philox, py::arg("c0"), py::arg("c1"), py::arg("c2"), py::arg("c3"), py::arg("k0"), py::arg("k1"),
        "Philox4x32-10 on the host, the kernel's code: four 32-bit words.");
  m.def("uniform_pair", &uniforms, py::arg("seed"), py::arg("subject"), py::arg("sample"), py::arg("step"),
        "The kernel's (u_first, u_continue) for one (seed, subject, sample, step), computed on the host.");
}

#if defined(EHRFAST_CUDA_HOST)
#include "common/cuda_host.hpp"

namespace ehrfast::cuda_host_selftest {
std::string run(const std::string& name, unsigned n_blocks, unsigned n_threads, const double* in, double* out, double* out2);
}

PYBIND11_MODULE(_cuda_host, m) {
  m.doc() = "ehrfast's CUDA kernels compiled for the CPU with an emulated execution model (tests; host pointers)";
  define_module(m);
  m.def(
      "set_schedule", [](const std::string& order) {
        if (order != "forward" && order != "reverse") throw std::invalid_argument("schedule must be 'forward' or 'reverse'");
        ehrfast::cuda_host::set_schedule(order == "reverse");
      },
      py::arg("order"), "The order a block's threads run in between synchronization points: 'forward' or 'reverse'.");
  m.def(
      "emulator_selftest", [](const std::string& name, unsigned n_blocks, unsigned n_threads, py::array_t<double, py::array::c_style> in) {
        const size_t n = static_cast<size_t>(n_blocks) * n_threads;
        if (static_cast<size_t>(in.size()) != n) throw std::invalid_argument("in must hold n_blocks * n_threads values");
        py::array_t<double> out(static_cast<py::ssize_t>(n)), out2(static_cast<py::ssize_t>(n));
        std::fill(out.mutable_data(), out.mutable_data() + n, 0.0);
        std::fill(out2.mutable_data(), out2.mutable_data() + n, 0.0);
        const std::string error = ehrfast::cuda_host_selftest::run(name, n_blocks, n_threads, in.data(), out.mutable_data(), out2.mutable_data());
        if (!error.empty()) throw std::runtime_error(error);
        return py::make_tuple(out, out2);
      },
      py::arg("name"), py::arg("n_blocks"), py::arg("n_threads"), py::arg("values"),
      "Runs one of the emulator's self-test kernels; (out, out2), or RuntimeError with the emulation's report.");
}
#else
PYBIND11_MODULE(_cuda, m) {
  m.doc() = "ehrfast CUDA kernels (trajectory sampling step); driven through ehrfast.infer.cuda_sampling";
  define_module(m);
}
#endif
