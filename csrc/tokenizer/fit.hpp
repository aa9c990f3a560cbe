// Training-split statistics for the tokenizer: code subject counts, per-code quantile cut
// points, per-interval-bin mean and median durations.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ehrfast::tokenizer {

// Timed rows per subject, not counting rows whose entry is `birth_entry`.
std::vector<std::int64_t> event_counts(const std::int64_t* time, const std::int32_t* entry, const std::int64_t* seg,
                                       std::size_t n_subjects, std::int64_t static_time, std::int32_t birth_entry);

// Number of subjects in which each entry occurs (entries < 0 ignored). seg: [n_subjects + 1].
std::vector<std::int64_t> code_subject_counts(const std::int32_t* entry, const std::int64_t* seg, std::size_t n_subjects,
                                              std::int64_t n_entries);

struct GroupedQuantiles {
    std::vector<std::int64_t> offsets;  // [n_groups + 1] into cuts
    std::vector<double> cuts;           // ascending, duplicates removed, per group
    std::vector<std::int64_t> counts;   // [n_groups] values seen per group
};

// numpy's quantile(method="nearest") of each group's values at `probs`, duplicates removed;
// groups with fewer than `min_count` values get no cut points. NaN values are ignored.
GroupedQuantiles grouped_quantiles(const std::int32_t* group, const double* values, std::size_t n, std::int64_t n_groups,
                                   const std::vector<double>& probs, std::int64_t min_count);

struct GroupedMoments {
    std::vector<std::int64_t> count;
    std::vector<double> mean;
    std::vector<double> median;  // numpy's median: mean of the two middle values for even counts
};

GroupedMoments grouped_mean_median(const std::int32_t* group, const double* values, std::size_t n, std::int64_t n_groups);

}  // namespace ehrfast::tokenizer
