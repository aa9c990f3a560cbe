// Python bindings of ehrfast._core. Every function here validates shapes and values, then
// releases the GIL around the heavy loop. Python-side wrappers (ehrfast/genomics/bed.py)
// validate first as well, so users see errors that name their files, not this module.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>

#include "prs/bed.hpp"
#include "prs/score.hpp"
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

template <typename T>
std::vector<T> copy_of(const py::array_t<T, py::array::c_style>& a) {
    return std::vector<T>(a.data(), a.data() + a.size());
}

// A writable, C-contiguous 1-D output array of exactly dtype T and length n (a numpy array or
// a slice of a memory-mapped file); no conversion, since a converted copy would drop writes.
template <typename T>
T* output_buffer(py::array& a, py::ssize_t n, const char* name) {
    if (!a.dtype().is(py::dtype::of<T>()) || a.ndim() != 1 || a.shape(0) != n || !(a.flags() & py::array::c_style) || !a.writeable())
        throw std::invalid_argument(std::string(name) + " must be a writable C-contiguous 1-D array of " + std::to_string(n) + " " +
                                    py::str(py::dtype::of<T>()).cast<std::string>());
    return static_cast<T*>(a.mutable_data());
}

// The fitted code table and timeline rules, validated once, applied to many shards.
class TimelineProgram {
  public:
    TimelineProgram(const Int64Array& pre_off, const Int32Array& pre, const Int64Array& post_off, const Int32Array& post,
                    const Int64Array& cut_off, const Float64Array& cuts, const Int64Array& interval_lower,
                    const Int32Array& interval_token, std::int32_t q_first, std::int32_t n_quantiles, std::int32_t timeline_end,
                    bool age_tokens)
        : pre_off_(copy_of(pre_off)), pre_(copy_of(pre)), post_off_(copy_of(post_off)), post_(copy_of(post)),
          cut_off_(copy_of(cut_off)), cuts_(copy_of(cuts)), lower_(copy_of(interval_lower)), token_(copy_of(interval_token)) {
        n_entries_ = pre_off.shape(0) - 1;
        require_csr(pre_off, pre, n_entries_, "pre");
        require_csr(post_off, post, n_entries_, "post");
        require_csr(cut_off, cuts, n_entries_, "cuts");
        require_len(interval_token, interval_lower.shape(0), "interval_token");
        for (std::size_t i = 1; i < lower_.size(); ++i)
            if (lower_[i] <= lower_[i - 1]) throw std::invalid_argument("interval lower edges must be strictly increasing");
        if (!lower_.empty() && lower_[0] <= 0) throw std::invalid_argument("interval lower edges must be positive");
        if (n_quantiles < 1) throw std::invalid_argument("n_quantiles must be >= 1");
        table_ = tokenizer::CodeTable{pre_off_.data(), pre_.data(), post_off_.data(), post_.data(), cut_off_.data(), cuts_.data(), n_entries_};
        rules_ = tokenizer::Rules{lower_.data(), token_.data(), lower_.size(), q_first, n_quantiles, timeline_end, age_tokens};
    }

    // Per kept subject: (n_tokens, n_intervals, static_lengths, births).
    py::tuple measure(const Int64Array& time, const Int32Array& entry, const Float32Array& value, const Int64Array& seg,
                      const UInt8Array& keep) const {
        const tokenizer::Rows rows = checked_rows(time, entry, value, seg, keep);
        const std::vector<std::int64_t> kept = kept_subjects(rows);
        const auto k = static_cast<py::ssize_t>(kept.size());
        Int64Array n_tokens(k), n_intervals(k), births(k);
        Int32Array static_lengths(k);
        std::int64_t* nt = n_tokens.mutable_data();
        std::int64_t* ni = n_intervals.mutable_data();
        std::int64_t* bt = births.mutable_data();
        std::int32_t* sl = static_lengths.mutable_data();
        {
            py::gil_scoped_release release;
#if defined(EHRFAST_OPENMP)
#pragma omp parallel for schedule(dynamic, 256)
#endif
            for (py::ssize_t j = 0; j < k; ++j) {
                const auto sum = tokenizer::measure_subject(rows, table_, rules_, static_cast<std::size_t>(kept[j]));
                nt[j] = sum.n_tokens;
                ni[j] = sum.n_intervals;
                bt[j] = sum.birth;
                sl[j] = sum.static_length;
            }
        }
        return py::make_tuple(n_tokens, n_intervals, static_lengths, births);
    }

    // Writes the kept subjects' tokens at token_offsets (and interval data at interval_offsets,
    // when out_bins/out_shares are non-empty) into caller-owned arrays, e.g. memory-mapped files.
    void write(const Int64Array& time, const Int32Array& entry, const Float32Array& value, const Int64Array& seg,
               const UInt8Array& keep, const Int64Array& token_offsets, const Int64Array& interval_offsets, py::array out_tokens,
               py::array out_times, py::array out_bins, py::array out_shares) const {
        const tokenizer::Rows rows = checked_rows(time, entry, value, seg, keep);
        const std::vector<std::int64_t> kept = kept_subjects(rows);
        const auto k = static_cast<py::ssize_t>(kept.size());
        require_len(token_offsets, k + 1, "token_offsets");
        require_len(interval_offsets, k + 1, "interval_offsets");
        const std::int64_t* to = token_offsets.data();
        const std::int64_t* io = interval_offsets.data();
        std::int32_t* tokens = output_buffer<std::int32_t>(out_tokens, to[k] - to[0], "out_tokens");
        std::int64_t* times = output_buffer<std::int64_t>(out_times, to[k] - to[0], "out_times");
        const bool with_intervals = out_bins.size() > 0 || out_shares.size() > 0;
        std::int32_t* bins = with_intervals ? output_buffer<std::int32_t>(out_bins, io[k] - io[0], "out_bins") : nullptr;
        double* shares = with_intervals ? output_buffer<double>(out_shares, io[k] - io[0], "out_shares") : nullptr;
        for (py::ssize_t j = 0; j < k; ++j)
            if (to[j + 1] < to[j] || io[j + 1] < io[j]) throw std::invalid_argument("offsets must be non-decreasing");
        std::int64_t first_mismatch = -1;
        {
            py::gil_scoped_release release;
#if defined(EHRFAST_OPENMP)
#pragma omp parallel for schedule(dynamic, 256)
#endif
            for (py::ssize_t j = 0; j < k; ++j) {
                tokenizer::Sink sink{tokens + (to[j] - to[0]), times + (to[j] - to[0]), bins ? bins + (io[j] - io[0]) : nullptr,
                                     shares ? shares + (io[j] - io[0]) : nullptr, to[j + 1] - to[j], io[j + 1] - io[j]};
                const auto sum = tokenizer::write_subject(rows, table_, rules_, static_cast<std::size_t>(kept[j]), sink);
                if (sum.n_tokens != sink.capacity || (bins && sum.n_intervals != sink.interval_capacity)) {
#if defined(EHRFAST_OPENMP)
#pragma omp critical
#endif
                    if (first_mismatch < 0 || j < first_mismatch) first_mismatch = j;
                }
            }
        }
        if (first_mismatch >= 0)
            throw std::invalid_argument("offsets do not match the measured token counts (kept subject " + std::to_string(first_mismatch) +
                                        "); call measure() with the same rows first");
    }

  private:
    tokenizer::Rows checked_rows(const Int64Array& time, const Int32Array& entry, const Float32Array& value, const Int64Array& seg,
                                 const UInt8Array& keep) const {
        const py::ssize_t n = time.shape(0);
        require_len(entry, n, "entry");
        require_len(value, n, "value");
        const py::ssize_t n_subjects = seg.shape(0) - 1;
        if (seg.ndim() != 1 || n_subjects < 0 || seg.data()[0] != 0 || seg.data()[n_subjects] != n)
            throw std::invalid_argument("seg must hold subject row boundaries from 0 to the number of rows");
        for (py::ssize_t s = 0; s < n_subjects; ++s)
            if (seg.data()[s + 1] < seg.data()[s]) throw std::invalid_argument("seg must be non-decreasing");
        require_len(keep, n_subjects, "keep");
        tokenizer::Rows rows{time.data(), entry.data(), value.data(), seg.data(), keep.data(), static_cast<std::size_t>(n_subjects)};
        const std::int64_t bad = tokenizer::first_bad_entry(rows, static_cast<std::size_t>(n), n_entries_);
        if (bad >= 0)
            throw std::invalid_argument("row " + std::to_string(bad) + " has entry " + std::to_string(entry.data()[bad]) + " outside the code table");
        return rows;
    }

    static std::vector<std::int64_t> kept_subjects(const tokenizer::Rows& rows) {
        std::vector<std::int64_t> kept;
        for (std::size_t s = 0; s < rows.n_subjects; ++s)
            if (rows.keep[s]) kept.push_back(static_cast<std::int64_t>(s));
        return kept;
    }

    std::vector<std::int64_t> pre_off_;
    std::vector<std::int32_t> pre_;
    std::vector<std::int64_t> post_off_;
    std::vector<std::int32_t> post_;
    std::vector<std::int64_t> cut_off_;
    std::vector<double> cuts_;
    std::vector<std::int64_t> lower_;
    std::vector<std::int32_t> token_;
    std::int64_t n_entries_ = 0;
    tokenizer::CodeTable table_{};
    tokenizer::Rules rules_{};
};

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

prs::PackedGenotypes packed_view(const UInt8Array& packed, std::size_t n_samples) {
    require_2d(packed, "packed");
    if (static_cast<std::size_t>(packed.shape(1)) != bed::bytes_per_variant(n_samples))
        throw std::invalid_argument("packed has " + std::to_string(packed.shape(1)) + " bytes per variant but " +
                                    std::to_string(n_samples) + " samples need " + std::to_string(bed::bytes_per_variant(n_samples)));
    return {packed.data(), static_cast<std::size_t>(packed.shape(0)), static_cast<std::size_t>(packed.shape(1)), n_samples};
}

void check_rows(const Int32Array& rows, std::size_t limit, const char* name) {
    for (py::ssize_t k = 0; k < rows.shape(0); ++k)
        if (rows.data()[k] < 0 || static_cast<std::size_t>(rows.data()[k]) >= limit)
            throw std::invalid_argument(std::string(name) + "[" + std::to_string(k) + "] = " + std::to_string(rows.data()[k]) +
                                        " is out of range (" + std::to_string(limit) + ")");
}

// Number of segments of a CSR offset array `name` over `n_items` items (validated).
py::ssize_t checked_csr(const Int64Array& off, py::ssize_t n_items, const char* name) {
    const py::ssize_t n = off.shape(0) - 1;
    if (n < 0 || off.data()[0] != 0 || off.data()[n] != n_items)
        throw std::invalid_argument(std::string(name) + " must run from 0 to " + std::to_string(n_items));
    for (py::ssize_t t = 0; t < n; ++t)
        if (off.data()[t + 1] < off.data()[t]) throw std::invalid_argument(std::string(name) + " must be non-decreasing");
    return n;
}

// Validated view of one block's value rows: packed_row [n_rows] int32 into `g`, lut [n_rows, 4].
prs::ValueRows value_rows(const prs::PackedGenotypes& g, const Int32Array& packed_row, const Float64Array& lut) {
    if (lut.ndim() != 2 || lut.shape(1) != 4 || lut.shape(0) != packed_row.shape(0))
        throw std::invalid_argument("lut must be [n_rows, 4] with one table per packed_row entry");
    check_rows(packed_row, g.n_variants, "packed_row");
    return {packed_row.data(), lut.data(), static_cast<std::size_t>(packed_row.shape(0))};
}

double* scores_out(py::array& scores, std::size_t n_samples, py::ssize_t n_traits) {
    if (scores.ndim() != 2 || static_cast<std::size_t>(scores.shape(0)) != n_samples || scores.shape(1) != n_traits ||
        !scores.dtype().is(py::dtype::of<double>()) || !(scores.flags() & py::array::c_style) || !scores.writeable())
        throw std::invalid_argument("scores must be a writable C-contiguous float64 array [n_samples, n_traits] = [" +
                                    std::to_string(n_samples) + ", " + std::to_string(n_traits) + "]");
    return static_cast<double*>(scores.mutable_data());
}

// scores [n_samples, n_traits] += values · weight, weight [n_rows, n_traits] dense (see prs/score.hpp).
void score_dense(const UInt8Array& packed, std::size_t n_samples, const Int32Array& packed_row, const Float64Array& lut,
                 const Float64Array& weight, py::array scores) {
    const prs::PackedGenotypes g = packed_view(packed, n_samples);
    const prs::ValueRows rows = value_rows(g, packed_row, lut);
    require_2d(weight, "weight");
    if (weight.shape(0) != packed_row.shape(0)) throw std::invalid_argument("weight must have one row per packed_row entry");
    double* out = scores_out(scores, n_samples, weight.shape(1));
    py::gil_scoped_release release;
    prs::accumulate_dense(g, rows, weight.data(), static_cast<std::size_t>(weight.shape(1)), out);
}

// scores [n_traits, n_samples] += values · weight over each trait's pairs (see prs/score.hpp).
void score_sparse(const UInt8Array& packed, std::size_t n_samples, const Int32Array& packed_row, const Float64Array& lut,
                  const Int64Array& trait_off, const Int32Array& row, const Float64Array& weight, py::array scores) {
    const prs::PackedGenotypes g = packed_view(packed, n_samples);
    const prs::ValueRows rows = value_rows(g, packed_row, lut);
    const py::ssize_t n_traits = checked_csr(trait_off, row.shape(0), "trait_off");
    require_len(weight, row.shape(0), "weight");
    check_rows(row, rows.n_rows, "row");
    if (scores.ndim() != 2 || scores.shape(0) != n_traits || static_cast<std::size_t>(scores.shape(1)) != n_samples ||
        !scores.dtype().is(py::dtype::of<double>()) || !(scores.flags() & py::array::c_style) || !scores.writeable())
        throw std::invalid_argument("scores must be a writable C-contiguous float64 array [n_traits, n_samples]");
    double* out = static_cast<double*>(scores.mutable_data());
    py::gil_scoped_release release;
    prs::accumulate_sparse(g, rows, trait_off.data(), row.data(), weight.data(), static_cast<std::size_t>(n_traits), out);
}

void score_dosages(const Float64Array& dosages, const Float64Array& p_alt, const Int64Array& trait_off, const Int32Array& row,
                   const UInt8Array& effect_is_alt, const Float64Array& weight, int kind, bool mean_impute, bool center,
                   bool variance_standardize, bool plink2_center_quirk, int output, py::array scores) {
    require_2d(dosages, "dosages");
    const auto n_rows = static_cast<std::size_t>(dosages.shape(0));
    const auto n_samples = static_cast<std::size_t>(dosages.shape(1));
    require_len(p_alt, dosages.shape(0), "p_alt");
    const py::ssize_t n_traits = checked_csr(trait_off, row.shape(0), "trait_off");
    require_len(effect_is_alt, row.shape(0), "effect_is_alt");
    require_len(weight, row.shape(0), "weight");
    check_rows(row, n_rows, "row");
    if (kind < 0 || kind > 2 || output < 0 || output > 2) throw std::invalid_argument("kind and output must be 0, 1 or 2");
    if (scores.ndim() != 2 || scores.shape(0) != n_traits || static_cast<std::size_t>(scores.shape(1)) != n_samples ||
        !scores.dtype().is(py::dtype::of<double>()) || !(scores.flags() & py::array::c_style) || !scores.writeable())
        throw std::invalid_argument("scores must be a writable C-contiguous float64 array [n_traits, n_samples]");
    prs::CallModel model{kind, mean_impute, center, variance_standardize, plink2_center_quirk, output};
    double* out = static_cast<double*>(scores.mutable_data());
    py::gil_scoped_release release;
    prs::accumulate_dosages(dosages.data(), n_rows, n_samples, p_alt.data(), trait_off.data(), row.data(), effect_is_alt.data(),
                            weight.data(), static_cast<std::size_t>(n_traits), model, out);
}

// Per variant: (sum of A1 counts, number of called samples) straight from .bed bytes.
py::tuple bed_allele_counts(const UInt8Array& packed, std::size_t n_samples) {
    const prs::PackedGenotypes g = packed_view(packed, n_samples);
    Float64Array alt_sum(static_cast<py::ssize_t>(g.n_variants));
    Float64Array called(static_cast<py::ssize_t>(g.n_variants));
    double* a = alt_sum.mutable_data();
    double* c = called.mutable_data();
    {
        py::gil_scoped_release release;
        prs::allele_counts(g, a, c);
    }
    return py::make_tuple(alt_sum, called);
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
    py::class_<TimelineProgram>(m, "TimelineProgram", "A fitted code table + timeline rules (see ehrfast/tokenize/reference.py).")
        .def(py::init<const Int64Array&, const Int32Array&, const Int64Array&, const Int32Array&, const Int64Array&,
                      const Float64Array&, const Int64Array&, const Int32Array&, std::int32_t, std::int32_t, std::int32_t, bool>(),
             py::arg("pre_off"), py::arg("pre"), py::arg("post_off"), py::arg("post"), py::arg("cut_off"), py::arg("cuts"),
             py::arg("interval_lower"), py::arg("interval_token"), py::arg("q_first"), py::arg("n_quantiles"),
             py::arg("timeline_end"), py::arg("age_tokens"))
        .def("measure", &TimelineProgram::measure, py::arg("time"), py::arg("entry"), py::arg("value"), py::arg("seg"), py::arg("keep"),
             "Per kept subject: (n_tokens, n_intervals, static_lengths, births).")
        .def("write", &TimelineProgram::write, py::arg("time"), py::arg("entry"), py::arg("value"), py::arg("seg"), py::arg("keep"),
             py::arg("token_offsets"), py::arg("interval_offsets"), py::arg("out_tokens"), py::arg("out_times"), py::arg("out_bins"),
             py::arg("out_shares"), "Write kept subjects' tokens into caller-owned arrays.");
    m.def("event_counts", &event_counts, py::arg("time"), py::arg("entry"), py::arg("seg"), py::arg("birth_entry"),
          "Timed rows per subject, birth rows not counted.");
    m.def("code_subject_counts", &code_subject_counts, py::arg("entry"), py::arg("seg"), py::arg("n_entries"));
    m.def("grouped_quantiles", &grouped_quantiles, py::arg("group"), py::arg("values"), py::arg("n_groups"),
          py::arg("probs"), py::arg("min_count"));
    m.def("grouped_mean_median", &grouped_mean_median, py::arg("group"), py::arg("values"), py::arg("n_groups"));
    m.def("score_dense", &score_dense, py::arg("packed"), py::arg("n_samples"), py::arg("packed_row"), py::arg("lut"), py::arg("weight"),
          py::arg("scores"), "scores[s, t] += Σ_r lut[r][code(packed_row[r], s)] · weight[r, t] (in place, float64).");
    m.def("score_sparse", &score_sparse, py::arg("packed"), py::arg("n_samples"), py::arg("packed_row"), py::arg("lut"),
          py::arg("trait_off"), py::arg("row"), py::arg("weight"), py::arg("scores"),
          "scores[t, s] += lut[row[k]][code(packed_row[row[k]], s)] · weight[k] over trait t's pairs k (in place).");
    m.def("score_dosages", &score_dosages, py::arg("dosages"), py::arg("p_alt"), py::arg("trait_off"), py::arg("row"),
          py::arg("effect_is_alt"), py::arg("weight"), py::arg("kind"), py::arg("mean_impute"), py::arg("center"),
          py::arg("variance_standardize"), py::arg("plink2_center_quirk"), py::arg("output"), py::arg("scores"),
          "scores[t, s] += Σ weight · value(effect-allele dosage) over trait t's pairs, fractional dosages (in place).");
    m.def("bed_allele_counts", &bed_allele_counts, py::arg("packed"), py::arg("n_samples"),
          "(A1 count sum, called samples) per variant of SNP-major .bed bytes.");
    m.def("built_with_openmp", &built_with_openmp, "Whether the core was compiled with OpenMP.");
}
