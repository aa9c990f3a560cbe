// Training-split statistics for the tokenizer: code subject counts, per-code quantile cut
// points, per-interval-bin mean and median durations.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace ehrfast::tokenizer {

// Timed rows per subject, not counting rows whose entry (entry_of_code[code]) is `birth_entry`.
std::vector<std::int64_t> event_counts(const std::int64_t* time, const std::int32_t* code, const std::int32_t* entry_of_code,
                                       const std::int64_t* seg, std::size_t n_subjects, std::int64_t static_time,
                                       std::int32_t birth_entry);

struct GroupedQuantiles {
    std::vector<std::int64_t> offsets;  // [n_groups + 1] into cuts
    std::vector<double> cuts;           // ascending, duplicates removed, per group
    std::vector<std::int64_t> counts;   // [n_groups] values seen per group
};

struct GroupedValues {
    std::vector<std::int64_t> offsets;  // [n_groups + 1] into values
    std::vector<float> values;
};

// Training-split statistics accumulated shard by shard, in one pass over each shard's rows:
// per source code (its "raw id"), the number of kept subjects it occurs in, whether it
// occurs on a static row, and its numeric values (for the quantile cut points).
class TrainStatistics {
  public:
    // code: [n] index into the shard's code dictionary; raw_of_code: its raw code ids, in
    // [0, n_codes) (others are skipped, as are rows whose raw id is `birth_code`);
    // keep: [n_subjects] 0 = subject filtered out. n_codes only grows.
    void add(const std::int64_t* time, const std::int32_t* code, const std::int32_t* raw_of_code, const float* value,
             const std::int64_t* seg, const std::uint8_t* keep, std::size_t n_subjects, std::size_t n_codes, std::int32_t birth_code,
             std::int64_t static_time);

    std::size_t n_codes() const { return subject_counts_.size(); }
    const std::vector<std::int64_t>& subject_counts() const { return subject_counts_; }
    const std::vector<std::uint8_t>& on_static_row() const { return on_static_row_; }
    // Per code: numpy's quantile(method="nearest") of its values at `probs`, duplicates
    // removed; codes with fewer than `min_count` values get none. Consumes the values.
    GroupedQuantiles take_quantiles(const std::vector<double>& probs, std::int64_t min_count);
    // Per code, its values so far: offsets [n_codes + 1] into values, each code's values in the
    // order they were added. Consumes them (a partial shipped to the reducer).
    GroupedValues take_values();
    // Adds another accumulation's statistics (a partial of other subjects): its code l is raw
    // id raw_of_other[l] here (in [0, n_codes)); its subject counts add, its static flags OR,
    // its values are appended. other_value_offsets: [n_other + 1] into other_values.
    void merge(const std::int32_t* raw_of_other, std::size_t n_other, const std::int64_t* other_subject_counts,
               const std::uint8_t* other_on_static_row, const std::int64_t* other_value_offsets, const float* other_values,
               std::size_t n_codes);

  private:
    void grow(std::size_t n_codes);
    std::vector<std::int64_t> subject_counts_;
    std::vector<std::uint8_t> on_static_row_;
    std::vector<std::vector<float>> values_;
    std::vector<std::int64_t> last_subject_;  // per code: last subject counted (global numbering)
    std::int64_t subjects_seen_ = 0;
};

struct GroupedMoments {
    std::vector<std::int64_t> count;
    std::vector<double> mean;
    std::vector<double> median;  // numpy's median: mean of the two middle values for even counts
};

// Interval-token gaps on the training split, by bin: each interval token's share of its gap
// (µs), from which its mean and median duration are fitted. Held in parts, one per writer
// thread, so threads add without locking.
class IntervalGaps {
  public:
    explicit IntervalGaps(std::size_t n_bins) : n_bins_(n_bins) {}
    std::size_t n_bins() const { return n_bins_; }
    // Part i: [n_bins] vectors of shares (parts are created on first use; not thread-safe —
    // create them all before threads add to them).
    std::vector<std::vector<double>>& part(std::size_t i);
    // bin: [n] in [0, n_bins) (the caller checks); share: [n] µs. Into part 0.
    void add(const std::int32_t* bin, const double* share, std::size_t n);
    // Count, mean and median (numpy's) per bin; consumes the gaps.
    GroupedMoments take();
    // Every share so far as (bin, share) pairs, part by part, in the order added; consumes them
    // (a partial shipped to the reducer, which adds them to its own IntervalGaps).
    std::pair<std::vector<std::int32_t>, std::vector<double>> take_shares();

  private:
    std::size_t n_bins_;
    std::vector<std::vector<std::vector<double>>> parts_;  // [part][bin] shares
};

}  // namespace ehrfast::tokenizer
