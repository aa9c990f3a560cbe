// Python bindings of ehrfast._core. Every function here validates shapes and values, then
// releases the GIL around the heavy loop. The Python callers (ehrfast/genomics/, ehrfast/data/,
// ehrfast/tokenize/) validate first as well, so users see errors that name their files, not
// this module. Argument bundles and enums are bound as objects (CallModel, CodeTableArrays,
// TimelineRules), not passed as long lists of positional arrays and integer codes.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#if defined(EHRFAST_OPENMP)
#include <omp.h>
#endif

#include "evaluate/bootstrap.hpp"
#include "prs/bed.hpp"
#include "prs/score.hpp"
#include "prs/tsv.hpp"
#include "tokenizer/fit.hpp"
#include "tokenizer/rows.hpp"
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

// A numpy array that takes over a vector's memory (no copy); the array frees it.
template <typename T>
py::array_t<T> adopt(std::vector<T>&& v) {
    auto owner = std::make_unique<std::vector<T>>(std::move(v));
    const auto size = static_cast<py::ssize_t>(owner->size());
    T* data = owner->data();
    py::capsule free_when_done(owner.get(), [](void* p) { delete static_cast<std::vector<T>*>(p); });
    owner.release();  // the capsule owns it now
    return py::array_t<T>(size, data, free_when_done);
}

std::int64_t max_threads() {
#if defined(EHRFAST_OPENMP)
    return omp_get_max_threads();
#else
    return 1;
#endif
}

std::int64_t thread_index() {
#if defined(EHRFAST_OPENMP)
    return omp_get_thread_num();
#else
    return 0;
#endif
}

void require_len(const py::array& a, py::ssize_t n, const char* name) {
    if (a.ndim() != 1 || a.shape(0) != n)
        throw std::invalid_argument(std::string(name) + " must be 1-D of length " + std::to_string(n) + ", got " +
                                    std::to_string(a.ndim() == 1 ? a.shape(0) : -1));
}

// The number of segments of CSR offsets `off` over `n_values` values, after checking them
// (1-D, from 0 to n_values, non-decreasing) — the one CSR validator of this module.
py::ssize_t csr_segments(const Int64Array& off, py::ssize_t n_values, const char* name) {
    const py::ssize_t n = off.ndim() == 1 ? off.shape(0) - 1 : -1;
    if (n < 0 || off.data()[0] != 0 || off.data()[n] != n_values)
        throw std::invalid_argument(std::string(name) + " offsets do not cover their values (they must run from 0 to " +
                                    std::to_string(n_values) + ")");
    for (py::ssize_t e = 0; e < n; ++e)
        if (off.data()[e + 1] < off.data()[e]) throw std::invalid_argument(std::string(name) + " offsets must be non-decreasing");
    return n;
}

template <typename T>
std::vector<T> copy_of(const py::array_t<T, py::array::c_style>& a) {
    return std::vector<T>(a.data(), a.data() + a.size());
}

// A writable, C-contiguous output array of exactly dtype T and `shape` (a numpy array or a
// slice of a memory-mapped file); no conversion, since a converted copy would drop writes.
// The one output checker of this module.
template <typename T>
T* checked_output(py::array& a, std::initializer_list<py::ssize_t> shape, const char* name, const char* dims = nullptr) {
    bool ok = a.dtype().is(py::dtype::of<T>()) && a.ndim() == static_cast<py::ssize_t>(shape.size()) &&
              (a.flags() & py::array::c_style) && a.writeable();
    std::string want;
    py::ssize_t axis = 0;
    for (const py::ssize_t n : shape) {
        ok = ok && a.shape(axis) == n;
        want += (axis++ ? ", " : "") + std::to_string(n);
    }
    if (!ok)
        throw std::invalid_argument(std::string(name) + " must be a writable C-contiguous " + py::str(py::dtype::of<T>()).cast<std::string>() +
                                    " array " + (dims ? "[" + std::string(dims) + "] = " : "of shape ") + "[" + want + "]");
    return static_cast<T*>(a.mutable_data());
}

// One shard's rows, validated before any loop trusts them: lengths, subject boundaries `seg`
// [n_subjects + 1] from 0 to n, code indices into `lut` (what each dictionary code maps to).
// value and keep are left null; attach them with with_values / with_keep.
tokenizer::Rows shard_rows(const Int64Array& time, const Int32Array& code, const Int32Array& lut, const Int64Array& seg) {
    const py::ssize_t n = time.shape(0);
    require_len(code, n, "code");
    const py::ssize_t n_subjects = seg.shape(0) - 1;
    if (seg.ndim() != 1 || n_subjects < 0 || seg.data()[0] != 0 || seg.data()[n_subjects] != n)
        throw std::invalid_argument("seg must hold subject row boundaries from 0 to the number of rows");
    for (py::ssize_t s = 0; s < n_subjects; ++s)
        if (seg.data()[s + 1] < seg.data()[s]) throw std::invalid_argument("seg must be non-decreasing");
    if (lut.ndim() != 1) throw std::invalid_argument("the code lookup table must be 1-D");
    const std::int64_t bad = tokenizer::first_bad_code(code.data(), static_cast<std::size_t>(n), static_cast<std::size_t>(lut.shape(0)));
    if (bad >= 0)
        throw std::invalid_argument("row " + std::to_string(bad) + " has code index " + std::to_string(code.data()[bad]) +
                                    " outside the dictionary of " + std::to_string(lut.shape(0)) + " codes");
    return tokenizer::Rows{time.data(), code.data(), lut.data(), nullptr, seg.data(), nullptr, static_cast<std::size_t>(n_subjects)};
}

tokenizer::Rows with_values(tokenizer::Rows rows, const Float32Array& value, py::ssize_t n) {
    require_len(value, n, "value");
    rows.value = value.data();
    return rows;
}

tokenizer::Rows with_keep(tokenizer::Rows rows, const UInt8Array& keep) {
    require_len(keep, static_cast<py::ssize_t>(rows.n_subjects), "keep");
    rows.keep = keep.data();
    return rows;
}

// What each code-table entry emits, as CSR arrays (ehrfast.tokenize.tokenizer.CodeTable.csr):
// entry e emits pre[pre_off[e]:pre_off[e+1]], a quantile token from cuts[cut_off[e]:...], then
// post[post_off[e]:...].
struct CodeTableArrays {
    Int64Array pre_off;
    Int32Array pre;
    Int64Array post_off;
    Int32Array post;
    Int64Array cut_off;
    Float64Array cuts;
};

// The timeline rules (ehrfast.tokenize.tokenizer.TimelineRules): interval bins, the quantile
// tokens, TIMELINE_END (-1: none), age tokens.
struct TimelineRules {
    Int64Array interval_lower;
    Int32Array interval_token;
    std::int32_t q_first = 0;
    std::int32_t n_quantiles = 1;
    std::int32_t timeline_end = -1;
    bool age_tokens = true;
    std::int32_t age_rounding = tokenizer::kAgeHalfUp;
};

// The fitted code table and timeline rules, validated once, applied to many shards.
class TimelineProgram {
  public:
    TimelineProgram(const CodeTableArrays& t, const TimelineRules& r)
        : pre_off_(copy_of(t.pre_off)), pre_(copy_of(t.pre)), post_off_(copy_of(t.post_off)), post_(copy_of(t.post)),
          cut_off_(copy_of(t.cut_off)), cuts_(copy_of(t.cuts)), lower_(copy_of(r.interval_lower)), token_(copy_of(r.interval_token)) {
        n_entries_ = csr_segments(t.pre_off, t.pre.shape(0), "pre");
        if (csr_segments(t.post_off, t.post.shape(0), "post") != n_entries_ || csr_segments(t.cut_off, t.cuts.shape(0), "cuts") != n_entries_)
            throw std::invalid_argument("pre, post and cuts must have one segment per code-table entry");
        require_len(r.interval_token, r.interval_lower.shape(0), "interval_token");
        for (std::size_t i = 1; i < lower_.size(); ++i)
            if (lower_[i] <= lower_[i - 1]) throw std::invalid_argument("interval lower edges must be strictly increasing");
        if (!lower_.empty() && lower_[0] <= 0) throw std::invalid_argument("interval lower edges must be positive");
        if (r.n_quantiles < 1) throw std::invalid_argument("n_quantiles must be >= 1");
        if (r.age_rounding != tokenizer::kAgeHalfUp && r.age_rounding != tokenizer::kAgeEthos)
            throw std::invalid_argument("age_rounding must be 0 (half up) or 1 (ethos)");
        table_ = tokenizer::CodeTable{pre_off_.data(), pre_.data(), post_off_.data(), post_.data(), cut_off_.data(), cuts_.data(), n_entries_};
        rules_ = tokenizer::Rules{lower_.data(), token_.data(), lower_.size(), r.q_first, r.n_quantiles, r.timeline_end, r.age_tokens,
                                r.age_rounding};
    }

    // Tokenizes the kept subjects in blocks of consecutive subjects, in parallel, passing the
    // blocks on in subject order: appended to two open files (token_fd, time_fd: raw int32 and
    // int64 bytes; with evict_written, streamed through the page cache) or, when both are -1,
    // gathered into arrays. With `gaps`, every interval token's bin and gap share is added to
    // it. Returns (n_tokens, static_lengths, births) per kept subject, then (tokens, times),
    // both None when written to files.
    py::tuple tokenize(const Int64Array& time, const Int32Array& code, const Int32Array& entry_of_code, const Float32Array& value,
                       const Int64Array& seg, const UInt8Array& keep, tokenizer::IntervalGaps* gaps, int token_fd, int time_fd,
                       bool evict_written) const {
        const tokenizer::Rows rows = checked_rows(time, code, entry_of_code, value, seg, keep);
        if ((token_fd < 0) != (time_fd < 0)) throw std::invalid_argument("give both file descriptors or neither");
        if (gaps && gaps->n_bins() != rules_.n_intervals)
            throw std::invalid_argument("gaps has " + std::to_string(gaps->n_bins()) + " bins, the rules " + std::to_string(rules_.n_intervals));
        const bool to_files = token_fd >= 0;
        const std::vector<std::int64_t> kept = kept_subjects(rows);
        const auto k = static_cast<py::ssize_t>(kept.size());
        const std::vector<std::size_t> starts = block_starts(rows, kept);
        Int64Array n_tokens(k), births(k);
        Int32Array static_lengths(k);
        std::int64_t* nt = n_tokens.mutable_data();
        std::int64_t* bt = births.mutable_data();
        std::int32_t* sl = static_lengths.mutable_data();
        std::vector<std::int32_t> gathered_tokens;
        std::vector<std::int64_t> gathered_times;
        int write_errno = 0;
        {
            py::gil_scoped_release release;
            const auto n_threads = static_cast<std::size_t>(max_threads());
            std::vector<tokenizer::TokenBlock> scratch(n_threads);  // one per thread, reused
            if (gaps) gaps->part(n_threads - 1);  // one part per thread, created before they run
            const auto n_blocks = static_cast<std::int64_t>(starts.size()) - 1;
#if defined(EHRFAST_OPENMP)
#pragma omp parallel for ordered schedule(dynamic, 1)
#endif
            for (std::int64_t b = 0; b < n_blocks; ++b) {
                const auto me = static_cast<std::size_t>(thread_index());
                tokenizer::TokenBlock& block = scratch[me];
                tokenizer::GapsByBin* my_gaps = gaps ? &gaps->part(me) : nullptr;
                block.clear();
                for (std::size_t j = starts[b]; j < starts[b + 1]; ++j) {
                    const auto sum = tokenizer::append_subject(rows, table_, rules_, static_cast<std::size_t>(kept[j]), block, my_gaps);
                    nt[j] = sum.n_tokens;
                    bt[j] = sum.birth;
                    sl[j] = sum.static_length;
                }
#if defined(EHRFAST_OPENMP)
#pragma omp ordered
#endif
                {
                    if (to_files) {
                        if (write_errno == 0) write_errno = tokenizer::write_block(block, token_fd, time_fd, evict_written);
                    } else {
                        gathered_tokens.insert(gathered_tokens.end(), block.tokens.begin(), block.tokens.begin() + static_cast<std::ptrdiff_t>(block.size));
                        gathered_times.insert(gathered_times.end(), block.times.begin(), block.times.begin() + static_cast<std::ptrdiff_t>(block.size));
                    }
                }
            }
        }
        if (write_errno != 0) {
            errno = write_errno;
            PyErr_SetFromErrno(PyExc_OSError);
            throw py::error_already_set();
        }
        if (to_files) return py::make_tuple(n_tokens, static_lengths, births, py::none(), py::none());
        return py::make_tuple(n_tokens, static_lengths, births, adopt(std::move(gathered_tokens)), adopt(std::move(gathered_times)));
    }

  private:
    tokenizer::Rows checked_rows(const Int64Array& time, const Int32Array& code, const Int32Array& entry_of_code, const Float32Array& value,
                                 const Int64Array& seg, const UInt8Array& keep) const {
        const tokenizer::Rows rows = with_keep(with_values(shard_rows(time, code, entry_of_code, seg), value, time.shape(0)), keep);
        for (py::ssize_t k = 0; k < entry_of_code.shape(0); ++k) {
            const std::int32_t e = entry_of_code.data()[k];
            if (e < tokenizer::kBirth || e >= n_entries_)
                throw std::invalid_argument("code " + std::to_string(k) + " maps to entry " + std::to_string(e) + " outside the code table");
        }
        return rows;
    }

    // Block boundaries (indices into `kept`) of about equal row counts: enough blocks to
    // balance the threads, small enough that a thread's reused buffer stays in cache.
    static std::vector<std::size_t> block_starts(const tokenizer::Rows& rows, const std::vector<std::int64_t>& kept) {
        constexpr std::int64_t kMinRows = 1 << 12, kMaxRows = 1 << 15, kBlocksPerThread = 8;
        std::vector<std::size_t> starts{0};
        if (kept.empty()) return starts;
        const std::int64_t total = rows.seg[rows.n_subjects] - rows.seg[0];
        const std::int64_t target = std::clamp(total / (kBlocksPerThread * max_threads()) + 1, kMinRows, kMaxRows);
        std::int64_t in_block = 0;
        for (std::size_t j = 0; j < kept.size(); ++j) {
            in_block += rows.seg[kept[j] + 1] - rows.seg[kept[j]];
            if (in_block >= target && j + 1 < kept.size()) {
                starts.push_back(j + 1);
                in_block = 0;
            }
        }
        starts.push_back(kept.size());
        return starts;
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

py::array_t<std::int64_t> event_counts(const Int64Array& time, const Int32Array& code, const Int32Array& entry_of_code,
                                       const Int64Array& seg, std::int32_t birth_entry) {
    const tokenizer::Rows rows = shard_rows(time, code, entry_of_code, seg);
    std::vector<std::int64_t> counts;
    {
        py::gil_scoped_release release;
        counts = tokenizer::event_counts(rows.time, rows.code, rows.entry_of_code, rows.seg, rows.n_subjects, tokenizer::kStaticTime,
                                         birth_entry);
    }
    return to_numpy(counts);
}

// Arrow validity bitmap of a column chunk: empty when the chunk has no nulls (-> null), else
// checked to cover bits [bit_offset, bit_offset + n).
const std::uint8_t* validity_bits(const UInt8Array& validity, std::int64_t bit_offset, py::ssize_t n) {
    if (validity.size() == 0) return nullptr;
    if (bit_offset < 0 || validity.ndim() != 1 || validity.shape(0) * 8 < bit_offset + n)
        throw std::invalid_argument("validity bitmap does not cover the chunk");
    return validity.data();
}

// out[i] = times[i], or the static-time marker where the validity bit is clear.
void fill_null_times(const Int64Array& values, const UInt8Array& validity, std::int64_t bit_offset, py::array out) {
    const py::ssize_t n = values.shape(0);
    const std::uint8_t* bits = validity_bits(validity, bit_offset, n);
    std::int64_t* o = checked_output<std::int64_t>(out, {n}, "out");
    py::gil_scoped_release release;
    tokenizer::fill_nulls(values.data(), bits, bit_offset, static_cast<std::size_t>(n), tokenizer::kStaticTime, o);
}

// out[i] = float32(values[i]), or NaN where the validity bit is clear; values float32 or float64.
void fill_null_values(const py::array& values, const UInt8Array& validity, std::int64_t bit_offset, py::array out) {
    const py::ssize_t n = values.ndim() == 1 ? values.shape(0) : -1;
    if (n < 0 || !(values.flags() & py::array::c_style)) throw std::invalid_argument("values must be a contiguous 1-D array");
    const std::uint8_t* bits = validity_bits(validity, bit_offset, n);
    float* o = checked_output<float>(out, {n}, "out");
    const float nan = std::numeric_limits<float>::quiet_NaN();
    if (values.dtype().is(py::dtype::of<float>())) {
        const auto* v = static_cast<const float*>(values.data());
        py::gil_scoped_release release;
        tokenizer::fill_nulls(v, bits, bit_offset, static_cast<std::size_t>(n), nan, o);
    } else if (values.dtype().is(py::dtype::of<double>())) {
        const auto* v = static_cast<const double*>(values.data());
        py::gil_scoped_release release;
        tokenizer::fill_nulls(v, bits, bit_offset, static_cast<std::size_t>(n), nan, o);
    } else {
        throw std::invalid_argument("values must be float32 or float64");
    }
}

// (seg, subject_ids, first_bad_row, bad_subject): each subject's rows, and the first row out of
// order; subject_id as a list of consecutive chunks (Arrow's buffers, not copied).
py::tuple subject_segments(const std::vector<Int64Array>& subject_id, const Int64Array& time) {
    std::vector<tokenizer::IdChunk> chunks;
    py::ssize_t n = 0;
    for (const Int64Array& c : subject_id) {
        if (c.ndim() != 1) throw std::invalid_argument("subject_id chunks must be 1-D");
        chunks.push_back({c.data(), static_cast<std::size_t>(c.shape(0))});
        n += c.shape(0);
    }
    require_len(time, n, "time");
    tokenizer::SubjectSegments s;
    {
        py::gil_scoped_release release;
        s = tokenizer::subject_segments(chunks, time.data());
    }
    return py::make_tuple(to_numpy(s.seg), to_numpy(s.subject_ids), s.first_bad_row, s.bad_subject);
}

// Python face of tokenizer::TrainStatistics.
class TrainStatistics {
  public:
    void add(const Int64Array& time, const Int32Array& code, const Int32Array& raw_of_code, const Float32Array& value,
             const Int64Array& seg, const UInt8Array& keep, std::size_t n_codes, std::int32_t birth_code) {
        const tokenizer::Rows rows = with_keep(with_values(shard_rows(time, code, raw_of_code, seg), value, time.shape(0)), keep);
        py::gil_scoped_release release;
        stats_.add(rows.time, rows.code, rows.entry_of_code, rows.value, rows.seg, rows.keep, rows.n_subjects, n_codes, birth_code,
                   tokenizer::kStaticTime);
    }

    py::array_t<std::int64_t> subject_counts() const { return to_numpy(stats_.subject_counts()); }
    py::array_t<std::uint8_t> on_static_row() const { return to_numpy(stats_.on_static_row()); }

    py::tuple take_quantiles(const std::vector<double>& probs, std::int64_t min_count) {
        tokenizer::GroupedQuantiles q;
        {
            py::gil_scoped_release release;
            q = stats_.take_quantiles(probs, min_count);
        }
        return py::make_tuple(to_numpy(q.offsets), to_numpy(q.cuts), to_numpy(q.counts));
    }

    py::tuple take_values() {
        tokenizer::GroupedValues v;
        {
            py::gil_scoped_release release;
            v = stats_.take_values();
        }
        return py::make_tuple(to_numpy(v.offsets), to_numpy(v.values));
    }

    void merge(const Int32Array& raw_of_other, const Int64Array& subject_counts, const UInt8Array& on_static_row,
               const Int64Array& value_offsets, const Float32Array& values, std::size_t n_codes) {
        const py::ssize_t n_other = raw_of_other.shape(0);
        require_len(subject_counts, n_other, "subject_counts");
        require_len(on_static_row, n_other, "on_static_row");
        require_len(value_offsets, n_other + 1, "value_offsets");
        const std::int64_t* off = value_offsets.data();
        if (off[0] != 0 || off[n_other] != values.shape(0))
            throw std::invalid_argument("value_offsets must run from 0 to len(values)");
        for (py::ssize_t l = 0; l < n_other; ++l) {
            if (raw_of_other.data()[l] < 0 || static_cast<std::size_t>(raw_of_other.data()[l]) >= n_codes)
                throw std::invalid_argument("raw_of_other[" + std::to_string(l) + "] = " + std::to_string(raw_of_other.data()[l]) +
                                            " is outside [0, n_codes)");
            if (off[l + 1] < off[l]) throw std::invalid_argument("value_offsets must not decrease");
        }
        py::gil_scoped_release release;
        stats_.merge(raw_of_other.data(), static_cast<std::size_t>(n_other), subject_counts.data(), on_static_row.data(), off,
                     values.data(), n_codes);
    }

  private:
    tokenizer::TrainStatistics stats_;
};

void add_gaps(tokenizer::IntervalGaps& gaps, const Int32Array& bins, const Float64Array& shares) {
    require_len(shares, bins.shape(0), "shares");
    for (py::ssize_t i = 0; i < bins.shape(0); ++i)
        if (bins.data()[i] < 0 || static_cast<std::size_t>(bins.data()[i]) >= gaps.n_bins())
            throw std::invalid_argument("bins[" + std::to_string(i) + "] = " + std::to_string(bins.data()[i]) + " is out of range");
    py::gil_scoped_release release;
    gaps.add(bins.data(), shares.data(), static_cast<std::size_t>(bins.shape(0)));
}

py::tuple take_gaps(tokenizer::IntervalGaps& gaps) {
    tokenizer::GroupedMoments m;
    {
        py::gil_scoped_release release;
        m = gaps.take();
    }
    return py::make_tuple(to_numpy(m.count), to_numpy(m.mean), to_numpy(m.median));
}

py::tuple take_gap_shares(tokenizer::IntervalGaps& gaps) {
    std::pair<std::vector<std::int32_t>, std::vector<double>> shares;
    {
        py::gil_scoped_release release;
        shares = gaps.take_shares();
    }
    return py::make_tuple(to_numpy(shares.first), to_numpy(shares.second));
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

// Validated view of one block's value rows: packed_row [n_rows] int32 into `g`, lut [n_rows, 4].
prs::ValueRows value_rows(const prs::PackedGenotypes& g, const Int32Array& packed_row, const Float64Array& lut) {
    if (lut.ndim() != 2 || lut.shape(1) != 4 || lut.shape(0) != packed_row.shape(0))
        throw std::invalid_argument("lut must be [n_rows, 4] with one table per packed_row entry");
    check_rows(packed_row, g.n_variants, "packed_row");
    return {packed_row.data(), lut.data(), static_cast<std::size_t>(packed_row.shape(0))};
}

// scores [n_samples, n_traits] += values · weight, weight [n_rows, n_traits] dense (see prs/score.hpp).
void score_dense(const UInt8Array& packed, std::size_t n_samples, const Int32Array& packed_row, const Float64Array& lut,
                 const Float64Array& weight, py::array scores) {
    const prs::PackedGenotypes g = packed_view(packed, n_samples);
    const prs::ValueRows rows = value_rows(g, packed_row, lut);
    require_2d(weight, "weight");
    if (weight.shape(0) != packed_row.shape(0)) throw std::invalid_argument("weight must have one row per packed_row entry");
    double* out = checked_output<double>(scores, {static_cast<py::ssize_t>(n_samples), weight.shape(1)}, "scores", "n_samples, n_traits");
    py::gil_scoped_release release;
    prs::accumulate_dense(g, rows, weight.data(), static_cast<std::size_t>(weight.shape(1)), out);
}

// scores [n_traits, n_samples] += values · weight over each trait's pairs (see prs/score.hpp).
void score_sparse(const UInt8Array& packed, std::size_t n_samples, const Int32Array& packed_row, const Float64Array& lut,
                  const Int64Array& trait_off, const Int32Array& row, const Float64Array& weight, py::array scores) {
    const prs::PackedGenotypes g = packed_view(packed, n_samples);
    const prs::ValueRows rows = value_rows(g, packed_row, lut);
    const py::ssize_t n_traits = csr_segments(trait_off, row.shape(0), "trait_off");
    require_len(weight, row.shape(0), "weight");
    check_rows(row, rows.n_rows, "row");
    double* out = checked_output<double>(scores, {n_traits, static_cast<py::ssize_t>(n_samples)}, "scores", "n_traits, n_samples");
    py::gil_scoped_release release;
    prs::accumulate_sparse(g, rows, trait_off.data(), row.data(), weight.data(), static_cast<std::size_t>(n_traits), out);
}

void score_dosages(const Float64Array& dosages, const Float64Array& p_alt, const Int64Array& trait_off, const Int32Array& row,
                   const UInt8Array& effect_is_alt, const Float64Array& weight, const prs::CallModel& model, py::array scores) {
    require_2d(dosages, "dosages");
    const auto n_rows = static_cast<std::size_t>(dosages.shape(0));
    const auto n_samples = static_cast<std::size_t>(dosages.shape(1));
    require_len(p_alt, dosages.shape(0), "p_alt");
    const py::ssize_t n_traits = csr_segments(trait_off, row.shape(0), "trait_off");
    require_len(effect_is_alt, row.shape(0), "effect_is_alt");
    require_len(weight, row.shape(0), "weight");
    check_rows(row, n_rows, "row");
    double* out = checked_output<double>(scores, {n_traits, static_cast<py::ssize_t>(n_samples)}, "scores", "n_traits, n_samples");
    py::gil_scoped_release release;
    prs::accumulate_dosages(dosages.data(), n_rows, n_samples, p_alt.data(), trait_off.data(), row.data(), effect_is_alt.data(),
                            weight.data(), static_cast<std::size_t>(n_traits), model, out);
}

// A score-file body parsed by the fast path (see prs/tsv.hpp): (n_rows, declined_row,
// numbers [n_rows, n_numeric] float64 column-major, [(offsets int32 [n_rows + 1], bytes uint8)]
// per text column). Declined: numbers and the text list are None.
py::tuple parse_score_table(const py::buffer& body, const std::vector<bool>& is_numeric, int n_threads) {
    const py::buffer_info info = body.request();
    if (info.ndim != 1 || info.itemsize != 1) throw std::invalid_argument("body must be a 1-D byte buffer");
    std::vector<std::uint8_t> numeric(is_numeric.begin(), is_numeric.end());
    prs::ParsedTsv parsed;
    {
        py::gil_scoped_release release;
        parsed = prs::parse_tsv(static_cast<const char*>(info.ptr), static_cast<std::size_t>(info.shape[0]), numeric,
                                n_threads > 0 ? n_threads : static_cast<int>(max_threads()));
    }
    if (parsed.declined_row >= 0) return py::make_tuple(parsed.n_rows, parsed.declined_row, py::none(), py::none());
    const auto n_numeric = static_cast<py::ssize_t>(std::count(numeric.begin(), numeric.end(), 1));
    const auto n_rows = static_cast<py::ssize_t>(parsed.n_rows);
    double* data = parsed.numbers.release();
    py::capsule free_numbers(data, [](void* p) { delete[] static_cast<double*>(p); });
    py::array_t<double> numbers({n_rows, n_numeric}, {static_cast<py::ssize_t>(sizeof(double)), static_cast<py::ssize_t>(sizeof(double)) * n_rows},
                                data, free_numbers);
    py::list text;
    for (prs::TextColumn& col : parsed.text) {
        text.append(py::make_tuple(adopt(std::move(col.offsets)), adopt(std::move(col.bytes))));
    }
    return py::make_tuple(parsed.n_rows, -1, numbers, text);
}

// (named, called) [n_traits, n_samples] += plink2's count columns over each trait's pairs (see prs/score.hpp).
void score_counts(const UInt8Array& packed, std::size_t n_samples, const Int32Array& packed_row, const UInt8Array& named_lut,
                  const Int64Array& trait_off, const Int32Array& row, py::array named, py::array called) {
    const prs::PackedGenotypes g = packed_view(packed, n_samples);
    if (named_lut.ndim() != 2 || named_lut.shape(1) != 4 || named_lut.shape(0) != packed_row.shape(0))
        throw std::invalid_argument("named_lut must be [n_rows, 4] with one table per packed_row entry");
    check_rows(packed_row, g.n_variants, "packed_row");
    const std::uint8_t* lut = named_lut.data();
    for (py::ssize_t i = 0; i < named_lut.size(); ++i)
        if (lut[i] > 2) throw std::invalid_argument("named_lut values must be named-allele counts 0, 1 or 2");
    const py::ssize_t n_traits = csr_segments(trait_off, row.shape(0), "trait_off");
    check_rows(row, static_cast<std::size_t>(packed_row.shape(0)), "row");
    const auto n = static_cast<py::ssize_t>(n_samples);
    double* named_out = checked_output<double>(named, {n_traits, n}, "named", "n_traits, n_samples");
    double* called_out = checked_output<double>(called, {n_traits, n}, "called", "n_traits, n_samples");
    py::gil_scoped_release release;
    prs::accumulate_counts(g, packed_row.data(), lut, static_cast<std::size_t>(packed_row.shape(0)), trait_off.data(), row.data(),
                           static_cast<std::size_t>(n_traits), named_out, called_out);
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

// [n_resamples, k] int32 counts of k draws of 0 … k−1 each, drawn from a numpy Generator's
// BitGenerator (its `capsule`; the caller holds its lock) exactly as Generator.integers draws.
Int32Array bootstrap_counts(const py::capsule& bit_generator, std::int64_t k, std::int64_t n_resamples) {
    if (std::string(bit_generator.name() ? bit_generator.name() : "") != "BitGenerator")
        throw std::invalid_argument("bit_generator must be a numpy BitGenerator's capsule");
    if (k < 1 || k > std::numeric_limits<std::int32_t>::max()) throw std::invalid_argument("k must be in [1, 2^31)");
    if (n_resamples < 0) throw std::invalid_argument("n_resamples must not be negative");
    auto* gen = bit_generator.get_pointer<evaluate::BitGen>();
    Int32Array counts({n_resamples, k});
    std::int32_t* out = counts.mutable_data();
    py::gil_scoped_release release;
    evaluate::draw_counts(*gen, static_cast<std::uint32_t>(k), static_cast<std::size_t>(n_resamples), out);
    return counts;
}

// [n_resamples, n_models, 7] metrics (evaluate/bootstrap.hpp) of the resamples `counts`
// [n_resamples, k]; every model array [n_models, n] in that model's descending score order.
Float64Array bootstrap_metrics(const Int32Array& counts, const Int32Array& cluster, const UInt8Array& positive, const UInt8Array& predicted,
                               const Float64Array& sq_error, const UInt8Array& tie_end) {
    require_2d(counts, "counts");
    require_2d(cluster, "cluster");
    const py::ssize_t n_models = cluster.shape(0), n = cluster.shape(1), k = counts.shape(1);
    for (const py::array* a : {static_cast<const py::array*>(&positive), static_cast<const py::array*>(&predicted),
                               static_cast<const py::array*>(&sq_error), static_cast<const py::array*>(&tie_end)})
        if (a->ndim() != 2 || a->shape(0) != n_models || a->shape(1) != n)
            throw std::invalid_argument("positive, predicted, sq_error and tie_end must be [n_models, n] like cluster");
    for (py::ssize_t i = 0; i < n_models * n; ++i)
        if (cluster.data()[i] < 0 || cluster.data()[i] >= k)
            throw std::invalid_argument("cluster[" + std::to_string(i) + "] = " + std::to_string(cluster.data()[i]) + " is out of range (" +
                                        std::to_string(k) + ")");
    std::vector<evaluate::RankedModel> models;
    for (py::ssize_t m = 0; m < n_models; ++m)
        models.push_back({cluster.data() + m * n, positive.data() + m * n, predicted.data() + m * n, sq_error.data() + m * n,
                          tie_end.data() + m * n});
    Float64Array out({counts.shape(0), n_models, static_cast<py::ssize_t>(evaluate::kStats)});
    double* o = out.mutable_data();
    py::gil_scoped_release release;
    evaluate::resampled_metrics(counts.data(), static_cast<std::size_t>(counts.shape(0)), static_cast<std::size_t>(k), models.data(),
                                static_cast<std::size_t>(n_models), static_cast<std::size_t>(n), o);
    return out;
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
    m.doc() = "ehrfast C++ core: PLINK .bed codec, MEDS Arrow-buffer reader, tokenizer, PRS scorer";
    m.def("pack_bed", &pack_bed, py::arg("genotypes"),
          "Pack [n_variants, n_samples] int8 A1 counts (-1 = missing) into SNP-major .bed bytes "
          "[n_variants, ceil(n_samples/4)] uint8.");
    m.def("unpack_bed", &unpack_bed, py::arg("packed"), py::arg("n_samples"),
          "Unpack SNP-major .bed bytes [n_variants, ceil(n_samples/4)] into int8 A1 counts (-1 = missing).");
    py::class_<CodeTableArrays>(m, "CodeTableArrays", "What each code-table entry emits, as CSR arrays.")
        .def(py::init<Int64Array, Int32Array, Int64Array, Int32Array, Int64Array, Float64Array>(), py::arg("pre_off"), py::arg("pre"),
             py::arg("post_off"), py::arg("post"), py::arg("cut_off"), py::arg("cuts"));
    py::class_<TimelineRules>(m, "TimelineRules", "Interval bins, quantile tokens, TIMELINE_END and age tokens of a tokenizer.")
        .def(py::init<Int64Array, Int32Array, std::int32_t, std::int32_t, std::int32_t, bool, std::int32_t>(), py::arg("interval_lower"),
             py::arg("interval_token"), py::arg("q_first"), py::arg("n_quantiles"), py::arg("timeline_end"), py::arg("age_tokens"),
             py::arg("age_rounding") = 0);
    py::class_<TimelineProgram>(m, "TimelineProgram", "A fitted code table + timeline rules (see ehrfast/tokenize/reference.py).")
        .def(py::init<const CodeTableArrays&, const TimelineRules&>(), py::arg("table"), py::arg("rules"))
        .def("tokenize", &TimelineProgram::tokenize, py::arg("time"), py::arg("code"), py::arg("entry_of_code"), py::arg("value"),
             py::arg("seg"),
             py::arg("keep"), py::arg("gaps") = nullptr, py::arg("token_fd") = -1, py::arg("time_fd") = -1,
             py::arg("evict_written") = false,
             "(n_tokens, static_lengths, births) per kept subject, then (tokens, times), or None, None when written to the files.");
    py::class_<tokenizer::IntervalGaps>(m, "IntervalGaps", "Interval-token gap shares on the training split, by bin.")
        .def(py::init<std::size_t>(), py::arg("n_bins"))
        .def_property_readonly("n_bins", &tokenizer::IntervalGaps::n_bins)
        .def("add", &add_gaps, py::arg("bins"), py::arg("shares"))
        .def("take", &take_gaps, "(count, mean, median) per bin; consumes the gaps.")
        .def("take_shares", &take_gap_shares, "(bins, shares): every share so far, in the order added; consumes them.");
    py::class_<TrainStatistics>(m, "TrainStatistics", "Training-split code statistics accumulated shard by shard.")
        .def(py::init<>())
        .def("add", &TrainStatistics::add, py::arg("time"), py::arg("code"), py::arg("raw_of_code"), py::arg("value"), py::arg("seg"),
             py::arg("keep"),
             py::arg("n_codes"), py::arg("birth_code"))
        .def("subject_counts", &TrainStatistics::subject_counts)
        .def("on_static_row", &TrainStatistics::on_static_row)
        .def("take_quantiles", &TrainStatistics::take_quantiles, py::arg("probs"), py::arg("min_count"))
        .def("take_values", &TrainStatistics::take_values, "(offsets [n_codes + 1], values float32) per code; consumes the values.")
        .def("merge", &TrainStatistics::merge, py::arg("raw_of_other"), py::arg("subject_counts"), py::arg("on_static_row"),
             py::arg("value_offsets"), py::arg("values"), py::arg("n_codes"),
             "Adds another accumulation's partial (its code l is raw id raw_of_other[l] here).");
    m.def("fill_null_times", &fill_null_times, py::arg("values"), py::arg("validity"), py::arg("bit_offset"), py::arg("out"),
          "out = times µs, the static-time marker (int64 min) where the Arrow validity bit is clear.");
    m.def("fill_null_values", &fill_null_values, py::arg("values"), py::arg("validity"), py::arg("bit_offset"), py::arg("out"),
          "out = float32 values, NaN where the Arrow validity bit is clear.");
    m.def("subject_segments", &subject_segments, py::arg("subject_id"), py::arg("time"),
          "(seg, subject_ids, first_bad_row or -1, bad_subject) for rows sorted by subject_id then time; subject_id in chunks.");
    m.def("event_counts", &event_counts, py::arg("time"), py::arg("code"), py::arg("entry_of_code"), py::arg("seg"), py::arg("birth_entry"),
          "Timed rows per subject, birth rows not counted.");
    m.def("score_dense", &score_dense, py::arg("packed"), py::arg("n_samples"), py::arg("packed_row"), py::arg("lut"), py::arg("weight"),
          py::arg("scores"), "scores[s, t] += Σ_r lut[r][code(packed_row[r], s)] · weight[r, t] (in place, float64).");
    m.def("score_sparse", &score_sparse, py::arg("packed"), py::arg("n_samples"), py::arg("packed_row"), py::arg("lut"),
          py::arg("trait_off"), py::arg("row"), py::arg("weight"), py::arg("scores"),
          "scores[t, s] += lut[row[k]][code(packed_row[row[k]], s)] · weight[k] over trait t's pairs k (in place).");
    m.def("parse_score_table", &parse_score_table, py::arg("body"), py::arg("is_numeric"), py::arg("n_threads") = 0,
          "A tab-separated score-file body: (n_rows, declined_row, numbers [n_rows, n_numeric] F-order, [(offsets, bytes)] per text column).");
    m.def("score_counts", &score_counts, py::arg("packed"), py::arg("n_samples"), py::arg("packed_row"), py::arg("named_lut"),
          py::arg("trait_off"), py::arg("row"), py::arg("named"), py::arg("called"),
          "named[t, s] += named_lut[row[k]][code], called[t, s] += 1 per non-missing call, over trait t's pairs k (in place, exact).");
    py::enum_<prs::CallKind>(m, "CallKind", "The genotype model of a call.")
        .value("additive", prs::CallKind::additive)
        .value("dominant", prs::CallKind::dominant)
        .value("recessive", prs::CallKind::recessive);
    py::enum_<prs::CallOutput>(m, "CallOutput", "What a call contributes.")
        .value("score", prs::CallOutput::score)
        .value("nonmissing", prs::CallOutput::nonmissing)
        .value("named", prs::CallOutput::named);
    py::class_<prs::CallModel>(m, "CallModel", "How each call counts (ehrfast.genomics.score.ScoreModel) and what it contributes.")
        .def(py::init([](prs::CallKind kind, bool mean_impute, bool center, bool variance_standardize, bool plink2_center_quirk,
                         prs::CallOutput output) {
                 if (center && variance_standardize) throw std::invalid_argument("choose center or variance_standardize, not both");
                 return prs::CallModel{kind, mean_impute, center, variance_standardize, plink2_center_quirk, output};
             }),
             py::arg("kind") = prs::CallKind::additive, py::arg("mean_impute") = true, py::arg("center") = false,
             py::arg("variance_standardize") = false, py::arg("plink2_center_quirk") = false, py::arg("output") = prs::CallOutput::score)
        .def_readonly("kind", &prs::CallModel::kind)
        .def_readonly("mean_impute", &prs::CallModel::mean_impute)
        .def_readonly("center", &prs::CallModel::center)
        .def_readonly("variance_standardize", &prs::CallModel::variance_standardize)
        .def_readonly("plink2_center_quirk", &prs::CallModel::plink2_center_quirk)
        .def_readonly("output", &prs::CallModel::output);
    m.def("score_dosages", &score_dosages, py::arg("dosages"), py::arg("p_alt"), py::arg("trait_off"), py::arg("row"),
          py::arg("effect_is_alt"), py::arg("weight"), py::arg("model"), py::arg("scores"),
          "scores[t, s] += Σ weight · value(effect-allele dosage) over trait t's pairs, fractional dosages (in place).");
    m.def("bed_allele_counts", &bed_allele_counts, py::arg("packed"), py::arg("n_samples"),
          "(A1 count sum, called samples) per variant of SNP-major .bed bytes.");
    m.def("bootstrap_counts", &bootstrap_counts, py::arg("bit_generator"), py::arg("k"), py::arg("n_resamples"),
          "[n_resamples, k] int32 counts of Generator.integers(0, k, (n_resamples, k)) draws, from the BitGenerator capsule.");
    m.def("bootstrap_metrics", &bootstrap_metrics, py::arg("counts"), py::arg("cluster"), py::arg("positive"), py::arg("predicted"),
          py::arg("sq_error"), py::arg("tie_end"),
          "[n_resamples, n_models, 7] AUROC, AP, tp, fp, fn, tn, Brier of each resample (models in descending score order).");
    m.def("built_with_openmp", &built_with_openmp, "Whether the core was compiled with OpenMP.");
    m.def("kernel_isa", &prs::kernel_isa, "The vector unit the dense and sparse PRS kernels run on (avx512f, avx2, avx, sse2, neon, scalar).");
    m.def("kernel_isa_chosen_at_run_time", &prs::kernel_isa_chosen_at_run_time,
          "Whether the PRS kernels were compiled for several vector units and picked one for this CPU when loaded.");
}
