// Python bindings of ehrfast._core. Every function here validates shapes and values, then
// releases the GIL around the heavy loop. Python-side wrappers (ehrfast/genomics/bed.py)
// validate first as well, so users see errors that name their files, not this module.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "prs/bed.hpp"

namespace py = pybind11;
using namespace ehrfast;

namespace {

using Int8Array = py::array_t<std::int8_t, py::array::c_style>;
using UInt8Array = py::array_t<std::uint8_t, py::array::c_style>;

void require_2d(const py::array& a, const char* name) {
    if (a.ndim() != 2)
        throw std::invalid_argument(std::string(name) + " must be 2-D, got " + std::to_string(a.ndim()) + "-D");
}

UInt8Array pack_bed(const Int8Array& genotypes) {
    require_2d(genotypes, "genotypes");
    const auto rows = static_cast<std::size_t>(genotypes.shape(0));
    const auto cols = static_cast<std::size_t>(genotypes.shape(1));
    bed::MatrixView<const std::int8_t> in{genotypes.data(), rows, cols};
    std::int64_t bad;
    {
        py::gil_scoped_release release;
        bad = bed::first_invalid_genotype(in);
    }
    if (bad >= 0) {
        const auto r = static_cast<std::size_t>(bad) / cols, c = static_cast<std::size_t>(bad) % cols;
        throw std::invalid_argument("genotype at [variant " + std::to_string(r) + ", sample " + std::to_string(c) +
                                    "] is " + std::to_string(in.data[bad]) + "; allowed: -1 (missing), 0, 1, 2");
    }
    const std::size_t bpv = bed::bytes_per_variant(cols);
    UInt8Array packed({rows, bpv});
    bed::MatrixView<std::uint8_t> out{packed.mutable_data(), rows, bpv};
    {
        py::gil_scoped_release release;
        bed::pack(in, out);
    }
    return packed;
}

Int8Array unpack_bed(const UInt8Array& packed, std::size_t n_samples) {
    require_2d(packed, "packed");
    const auto rows = static_cast<std::size_t>(packed.shape(0));
    const auto bpv = static_cast<std::size_t>(packed.shape(1));
    if (bpv != bed::bytes_per_variant(n_samples))
        throw std::invalid_argument("packed has " + std::to_string(bpv) + " bytes per variant but " +
                                    std::to_string(n_samples) + " samples need " +
                                    std::to_string(bed::bytes_per_variant(n_samples)));
    Int8Array genotypes({rows, n_samples});
    bed::MatrixView<const std::uint8_t> in{packed.data(), rows, bpv};
    bed::MatrixView<std::int8_t> out{genotypes.mutable_data(), rows, n_samples};
    {
        py::gil_scoped_release release;
        bed::unpack(in, out);
    }
    return genotypes;
}

bool built_with_openmp() {
#if defined(EHRFAST_OPENMP)
    return true;
#else
    return false;
#endif
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "ehrfast C++ core (PLINK .bed codec; tokenizer and PRS scorer land here too)";
    m.def("pack_bed", &pack_bed, py::arg("genotypes"),
          "Pack [n_variants, n_samples] int8 A1 counts (-1 = missing) into SNP-major .bed bytes "
          "[n_variants, ceil(n_samples/4)] uint8.");
    m.def("unpack_bed", &unpack_bed, py::arg("packed"), py::arg("n_samples"),
          "Unpack SNP-major .bed bytes [n_variants, ceil(n_samples/4)] into int8 A1 counts (-1 = missing).");
    m.def("built_with_openmp", &built_with_openmp, "Whether the core was compiled with OpenMP.");
}
