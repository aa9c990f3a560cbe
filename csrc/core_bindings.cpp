// Python bindings of ehrfast._core. Every function here validates shapes and values, then
// releases the GIL around the heavy loop. Python-side wrappers (ehrfast/genomics/bed.py)
// validate first as well, so users see errors that name their files, not this module.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>

#include "prs/bed.hpp"
#include "tokenizer/fit.hpp"
#include "tokenizer/timeline.hpp"

#include <vector>

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

using Int32Array = py::array_t<std::int32_t, py::array::c_style>;
using Int64Array = py::array_t<std::int64_t, py::array::c_style>;
using Float32Array = py::array_t<float, py::array::c_style>;
using Float64Array = py::array_t<double, py::array::c_style>;

template <typename T>
py::array_t<T> to_numpy(const std::vector<T>& v) {
    py::array_t<T> out(static_cast<py::ssize_t>(v.size()));
    std::copy(v.begin(), v.end(), out.mutable_data());
    return out;
}

void require_len(const py::array& a, py::ssize_t n, const char* name) {
    if (a.ndim() != 1 || a.shape(0) != n)
        throw std::invalid_argument(std::string(name) + " must be 1-D of length " + std::to_string(n) + ", got " +
                                    std::to_string(a.ndim() == 1 ? a.shape(0) : -1));
}

void require_csr(const Int64Array& off, const py::array& values, py::ssize_t n_entries, const char* name) {
    require_len(off, n_entries + 1, name);
    const std::int64_t* o = off.data();
    if (o[0] != 0 || o[n_entries] != values.shape(0))
        throw std::invalid_argument(std::string(name) + " offsets do not cover their values");
    for (py::ssize_t e = 0; e < n_entries; ++e)
        if (o[e + 1] < o[e]) throw std::invalid_argument(std::string(name) + " offsets must be non-decreasing");
}

// Tokenizes one shard. Returns (tokens, token_times, offsets, static_lengths, births,
// (interval_bin, interval_share) or None).
py::tuple tokenize_rows(const Int64Array& time, const Int32Array& entry, const Float32Array& value, const Int64Array& seg,
                        const UInt8Array& keep, const Int64Array& pre_off, const Int32Array& pre, const Int64Array& post_off,
                        const Int32Array& post, const Int64Array& cut_off, const Float64Array& cuts,
                        const Int64Array& interval_lower, const Int32Array& interval_token, std::int32_t q_first,
                        std::int32_t n_quantiles, std::int32_t timeline_end, bool age_tokens, bool want_share) {
    const py::ssize_t n = time.shape(0);
    require_len(entry, n, "entry");
    require_len(value, n, "value");
    const py::ssize_t n_subjects = seg.shape(0) - 1;
    if (seg.ndim() != 1 || n_subjects < 0 || seg.data()[0] != 0 || seg.data()[n_subjects] != n)
        throw std::invalid_argument("seg must hold subject row boundaries from 0 to the number of rows");
    for (py::ssize_t s = 0; s < n_subjects; ++s)
        if (seg.data()[s + 1] < seg.data()[s]) throw std::invalid_argument("seg must be non-decreasing");
    require_len(keep, n_subjects, "keep");
    const py::ssize_t n_entries = pre_off.shape(0) - 1;
    require_csr(pre_off, pre, n_entries, "pre");
    require_csr(post_off, post, n_entries, "post");
    require_csr(cut_off, cuts, n_entries, "cuts");
    require_len(interval_token, interval_lower.shape(0), "interval_token");
    for (py::ssize_t i = 1; i < interval_lower.shape(0); ++i)
        if (interval_lower.data()[i] <= interval_lower.data()[i - 1])
            throw std::invalid_argument("interval lower edges must be strictly increasing");
    if (interval_lower.shape(0) && interval_lower.data()[0] <= 0)
        throw std::invalid_argument("interval lower edges must be positive");
    if (n_quantiles < 1) throw std::invalid_argument("n_quantiles must be >= 1");

    tokenizer::Rows rows{time.data(), entry.data(), value.data(), seg.data(), keep.data(), static_cast<std::size_t>(n_subjects)};
    const std::int64_t bad = tokenizer::first_bad_entry(rows, static_cast<std::size_t>(n), n_entries);
    if (bad >= 0) throw std::invalid_argument("row " + std::to_string(bad) + " has entry " + std::to_string(entry.data()[bad]) + " outside the code table");
    tokenizer::CodeTable table{pre_off.data(), pre.data(), post_off.data(), post.data(), cut_off.data(), cuts.data(), n_entries};
    tokenizer::Rules rules{interval_lower.data(), interval_token.data(), static_cast<std::size_t>(interval_lower.shape(0)),
                           q_first, n_quantiles, timeline_end, age_tokens};

    std::vector<tokenizer::SubjectSummary> summary(static_cast<std::size_t>(n_subjects));
    {
        py::gil_scoped_release release;
#if defined(EHRFAST_OPENMP)
#pragma omp parallel for schedule(dynamic, 256)
#endif
        for (py::ssize_t s = 0; s < n_subjects; ++s)
            if (rows.keep[s]) summary[s] = tokenizer::measure_subject(rows, table, rules, static_cast<std::size_t>(s));
    }
    std::vector<std::int64_t> kept;
    for (py::ssize_t s = 0; s < n_subjects; ++s)
        if (rows.keep[s]) kept.push_back(s);
    Int64Array offsets(static_cast<py::ssize_t>(kept.size() + 1));
    std::vector<std::int64_t> interval_off(kept.size() + 1, 0);
    Int32Array static_lengths(static_cast<py::ssize_t>(kept.size()));
    Int64Array births(static_cast<py::ssize_t>(kept.size()));
    std::int64_t* off = offsets.mutable_data();
    off[0] = 0;
    for (std::size_t k = 0; k < kept.size(); ++k) {
        off[k + 1] = off[k] + summary[kept[k]].n_tokens;
        interval_off[k + 1] = interval_off[k] + summary[kept[k]].n_intervals;
        static_lengths.mutable_data()[k] = summary[kept[k]].static_length;
        births.mutable_data()[k] = summary[kept[k]].birth;
    }
    const py::ssize_t total = off[kept.size()];
    Int32Array tokens(total);
    Int64Array times(total);
    const py::ssize_t n_shares = want_share ? interval_off.back() : 0;
    Int32Array interval_bin(n_shares);
    Float64Array interval_share(n_shares);
    std::int32_t* tok_out = tokens.mutable_data();
    std::int64_t* time_out = times.mutable_data();
    std::int32_t* bins = want_share ? interval_bin.mutable_data() : nullptr;
    double* shares = want_share ? interval_share.mutable_data() : nullptr;
    {
        py::gil_scoped_release release;
        const auto n_kept = static_cast<std::int64_t>(kept.size());
#if defined(EHRFAST_OPENMP)
#pragma omp parallel for schedule(dynamic, 256)
#endif
        for (std::int64_t k = 0; k < n_kept; ++k) {
            tokenizer::Sink sink{tok_out + off[k], time_out + off[k],
                                 bins ? bins + interval_off[k] : nullptr, shares ? shares + interval_off[k] : nullptr};
            tokenizer::write_subject(rows, table, rules, static_cast<std::size_t>(kept[k]), sink);
        }
    }
    py::object shares_out = want_share ? py::object(py::make_tuple(interval_bin, interval_share)) : py::object(py::none());
    return py::make_tuple(tokens, times, offsets, static_lengths, births, shares_out);
}

py::array_t<std::int64_t> code_subject_counts(const Int32Array& entry, const Int64Array& seg, std::int64_t n_entries) {
    const py::ssize_t n_subjects = seg.shape(0) - 1;
    if (n_subjects < 0 || seg.data()[n_subjects] != entry.shape(0))
        throw std::invalid_argument("seg must end at the number of rows");
    std::vector<std::int64_t> counts;
    {
        py::gil_scoped_release release;
        counts = tokenizer::code_subject_counts(entry.data(), seg.data(), static_cast<std::size_t>(n_subjects), n_entries);
    }
    return to_numpy(counts);
}

py::array_t<std::int64_t> event_counts(const Int64Array& time, const Int32Array& entry, const Int64Array& seg,
                                       std::int32_t birth_entry) {
    require_len(entry, time.shape(0), "entry");
    const py::ssize_t n_subjects = seg.shape(0) - 1;
    if (n_subjects < 0 || seg.data()[n_subjects] != time.shape(0))
        throw std::invalid_argument("seg must end at the number of rows");
    std::vector<std::int64_t> counts;
    {
        py::gil_scoped_release release;
        counts = tokenizer::event_counts(time.data(), entry.data(), seg.data(), static_cast<std::size_t>(n_subjects),
                                         tokenizer::kStaticTime, birth_entry);
    }
    return to_numpy(counts);
}

py::tuple grouped_quantiles(const Int32Array& group, const Float64Array& values, std::int64_t n_groups,
                            const std::vector<double>& probs, std::int64_t min_count) {
    require_len(values, group.shape(0), "values");
    tokenizer::GroupedQuantiles q;
    {
        py::gil_scoped_release release;
        q = tokenizer::grouped_quantiles(group.data(), values.data(), static_cast<std::size_t>(group.shape(0)), n_groups, probs, min_count);
    }
    return py::make_tuple(to_numpy(q.offsets), to_numpy(q.cuts), to_numpy(q.counts));
}

py::tuple grouped_mean_median(const Int32Array& group, const Float64Array& values, std::int64_t n_groups) {
    require_len(values, group.shape(0), "values");
    tokenizer::GroupedMoments m;
    {
        py::gil_scoped_release release;
        m = tokenizer::grouped_mean_median(group.data(), values.data(), static_cast<std::size_t>(group.shape(0)), n_groups);
    }
    return py::make_tuple(to_numpy(m.count), to_numpy(m.mean), to_numpy(m.median));
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
    m.def("tokenize_rows", &tokenize_rows, py::arg("time"), py::arg("entry"), py::arg("value"), py::arg("seg"),
          py::arg("keep"), py::arg("pre_off"), py::arg("pre"), py::arg("post_off"), py::arg("post"), py::arg("cut_off"),
          py::arg("cuts"), py::arg("interval_lower"), py::arg("interval_token"), py::arg("q_first"),
          py::arg("n_quantiles"), py::arg("timeline_end"), py::arg("age_tokens"), py::arg("want_share"),
          "Tokenize one shard's rows; see ehrfast/tokenize/reference.py for the rules.");
    m.def("event_counts", &event_counts, py::arg("time"), py::arg("entry"), py::arg("seg"), py::arg("birth_entry"),
          "Timed rows per subject, birth rows not counted.");
    m.def("code_subject_counts", &code_subject_counts, py::arg("entry"), py::arg("seg"), py::arg("n_entries"));
    m.def("grouped_quantiles", &grouped_quantiles, py::arg("group"), py::arg("values"), py::arg("n_groups"),
          py::arg("probs"), py::arg("min_count"));
    m.def("grouped_mean_median", &grouped_mean_median, py::arg("group"), py::arg("values"), py::arg("n_groups"));
    m.def("built_with_openmp", &built_with_openmp, "Whether the core was compiled with OpenMP.");
}
