// MEDS rows -> token timelines (the C++ fast path of ehrfast.tokenize).
//
// Input: one shard's rows, sorted by subject then time with static rows first; each row's
// code is an index into the shard's code dictionary, which the Python side maps once to
// "entries" of the fitted code table (so no row's code string is ever hashed). Output: one flat token array, the time of
// every token, and per-subject offsets. The Python reference in
// ehrfast/tokenize/reference.py implements exactly the same rules.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace ehrfast::tokenizer {

constexpr std::int64_t kStaticTime = std::numeric_limits<std::int64_t>::min();  // null time
constexpr std::int32_t kDrop = -1;   // row emits nothing (dropped code)
constexpr std::int32_t kBirth = -2;  // birth row: anchors age, emits nothing
constexpr std::int32_t kAgeHalfUp = 0;  // age in years of 365.25 days; units rounded half up, each digit capped at 9
constexpr std::int32_t kAgeEthos = 1;   // the ETHOS reference: whole days / 365.25, units rounded half to even, carried
constexpr double kMicrosPerYear = 365.25 * 86400.0 * 1e6;
constexpr std::int64_t kMicrosPerDay = 86400LL * 1000000LL;

struct Rows {
    const std::int64_t* time;           // [n] µs, kStaticTime for static rows
    const std::int32_t* code;           // [n] index into the shard's code dictionary
    const std::int32_t* entry_of_code;  // [n_codes] index into CodeTable, or kDrop / kBirth
    const float* value;                 // [n] NaN when absent
    const std::int64_t* seg;            // [n_subjects + 1] row range of each subject
    const std::uint8_t* keep;           // [n_subjects] 0 = filtered out
    std::size_t n_subjects;

    std::int32_t entry(std::int64_t r) const { return entry_of_code[code[r]]; }
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
    std::int32_t age_rounding;  // kAgeHalfUp or kAgeEthos (see emit_age)
};

struct SubjectSummary {
    std::int64_t n_tokens = 0;
    std::int64_t n_intervals = 0;  // interval tokens among them
    std::int32_t static_length = 0;
    std::int64_t birth = kStaticTime;  // kStaticTime when unknown
};

// One block of consecutive subjects' output, appended to subject after subject. The
// buffers are the capacity (reused block after block); the first `size` entries are the block.
struct TokenBlock {
    std::vector<std::int32_t> tokens;
    std::vector<std::int64_t> times;
    std::size_t size = 0;

    void clear() { size = 0; }
    void reserve_more(std::size_t k);  // room for k more tokens
};

// Appends a block's tokens and times to two open files (raw bytes); 0 or the errno. With
// `evict_written`, written pages are written back and dropped from the page cache a window
// behind the end of the file (Linux).
int write_block(const TokenBlock& block, int token_fd, int time_fd, bool evict_written);

// Per interval bin, the share of its gap (gap length / number of interval tokens emitted
// for it, µs) of every interval token emitted.
using GapsByBin = std::vector<std::vector<double>>;

// Appends subject s's tokens to `block` (and, when `gaps` is given, its interval tokens' gap
// shares) and returns its summary.
SubjectSummary append_subject(const Rows& rows, const CodeTable& table, const Rules& rules, std::size_t s, TokenBlock& block,
                              GapsByBin* gaps);

// Index of the first of `n` code indices outside [0, n_codes), or -1.
std::int64_t first_bad_code(const std::int32_t* code, std::size_t n, std::size_t n_codes);

}  // namespace ehrfast::tokenizer
