// MEDS rows -> token timelines (the C++ fast path of ehrfast.tokenize).
//
// Input: one shard's rows, sorted by subject then time with static rows first, already
// mapped to "entries" of the fitted code table (the Python side maps each distinct code
// string once, through the Arrow dictionary). Output: one flat token array, the time of
// every token, and per-subject offsets. The Python reference in
// ehrfast/tokenize/reference.py implements exactly the same rules.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>

namespace ehrfast::tokenizer {

constexpr std::int64_t kStaticTime = std::numeric_limits<std::int64_t>::min();  // null time
constexpr std::int32_t kDrop = -1;   // row emits nothing (dropped code)
constexpr std::int32_t kBirth = -2;  // birth row: anchors age, emits nothing
constexpr double kMicrosPerYear = 365.25 * 86400.0 * 1e6;

struct Rows {
    const std::int64_t* time;   // [n] µs, kStaticTime for static rows
    const std::int32_t* entry;  // [n] index into CodeTable, or kDrop / kBirth
    const float* value;         // [n] NaN when absent
    const std::int64_t* seg;    // [n_subjects + 1] row range of each subject
    const std::uint8_t* keep;   // [n_subjects] 0 = filtered out
    std::size_t n_subjects;
};

// What each entry emits: `pre` tokens, then a quantile token when the row has a value and
// the entry has cut points, then `post` tokens. CSR layout: entry e owns [off[e], off[e+1]).
struct CodeTable {
    const std::int64_t* pre_off;
    const std::int32_t* pre;
    const std::int64_t* post_off;
    const std::int32_t* post;
    const std::int64_t* cut_off;
    const double* cuts;
    std::int64_t n_entries;
};

struct Rules {
    const std::int64_t* interval_lower;  // [n_intervals] lower edges in µs, ascending
    const std::int32_t* interval_token;  // [n_intervals] token ids
    std::size_t n_intervals;
    std::int32_t q_first;       // token id of Q1
    std::int32_t n_quantiles;   // Q1..Qk
    std::int32_t timeline_end;  // token id, or -1 for none
    bool age_tokens;
};

struct SubjectSummary {
    std::int64_t n_tokens = 0;
    std::int64_t n_intervals = 0;  // interval tokens among them
    std::int32_t static_length = 0;
    std::int64_t birth = kStaticTime;  // kStaticTime when unknown
};

// Output buffers. Optional (may be null): for each interval token in order, its bin and
// its share of the gap (gap length / number of interval tokens emitted for it, µs).
// Writes never go past `capacity` / `interval_capacity`; the returned summary says how many
// tokens the subject really has, so a caller can detect offsets that do not match.
struct Sink {
    std::int32_t* tokens = nullptr;
    std::int64_t* times = nullptr;
    std::int32_t* interval_bin = nullptr;
    double* interval_share = nullptr;
    std::int64_t capacity = 0;
    std::int64_t interval_capacity = 0;
};

// Token count (and static length, birth) of subject s without writing anything.
SubjectSummary measure_subject(const Rows& rows, const CodeTable& table, const Rules& rules, std::size_t s);

// Writes subject s's tokens at sink offsets [0, n_tokens) and returns its summary.
SubjectSummary write_subject(const Rows& rows, const CodeTable& table, const Rules& rules, std::size_t s, Sink sink);

// Index of the first row whose entry is out of range, or -1.
std::int64_t first_bad_entry(const Rows& rows, std::size_t n_rows, std::int64_t n_entries);

}  // namespace ehrfast::tokenizer
