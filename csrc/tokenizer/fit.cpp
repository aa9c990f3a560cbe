#include "tokenizer/fit.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace ehrfast::tokenizer {
namespace {

// Puts the order statistics at `ranks` [r0, r1) (ascending, within [lo, hi)) in their sorted
// places of v[lo, hi): select the middle rank, then the ranks on either side of it — about
// m·log2(q) work for q ranks instead of m·q for one nth_element per rank.
template <typename T>
void select_ranks(T* v, std::int64_t lo, std::int64_t hi, const std::int64_t* r0, const std::int64_t* r1) {
    if (r0 == r1) return;
    const std::int64_t* mid = r0 + (r1 - r0) / 2;
    std::nth_element(v + lo, v + *mid, v + hi);
    select_ranks(v, lo, *mid, r0, std::lower_bound(r0, mid, *mid));
    select_ranks(v, *mid + 1, hi, std::upper_bound(mid, r1, *mid), r1);
}

// numpy's quantile(method="nearest") of begin[0, m) at `probs`, duplicates removed, reordering
// the values; no cut points below `min_count` values.
template <typename T>
std::vector<double> quantile_cuts(T* begin, std::int64_t m, const std::vector<double>& probs, std::int64_t min_count) {
    std::vector<double> cuts;
    if (m < std::max<std::int64_t>(min_count, 1)) return cuts;
    // numpy "nearest": the order statistic at (m - 1)·p rounded half to even
    std::vector<std::int64_t> ranks;
    for (double p : probs)
        ranks.push_back(std::clamp<std::int64_t>(static_cast<std::int64_t>(std::nearbyint(static_cast<double>(m - 1) * p)), 0, m - 1));
    std::sort(ranks.begin(), ranks.end());
    select_ranks(begin, 0, m, ranks.data(), ranks.data() + ranks.size());
    for (std::int64_t k : ranks) {
        const auto cut = static_cast<double>(begin[k]);
        if (cuts.empty() || cuts.back() != cut) cuts.push_back(cut);
    }
    return cuts;
}

// Per-group cut points -> CSR (offsets, cuts), with the number of values per group.
GroupedQuantiles concatenate(const std::vector<std::vector<double>>& per_group, const std::vector<std::int64_t>& value_offsets) {
    GroupedQuantiles out;
    const std::size_t n_groups = per_group.size();
    out.offsets.assign(n_groups + 1, 0);
    out.counts.assign(n_groups, 0);
    for (std::size_t g = 0; g < n_groups; ++g) {
        out.counts[g] = value_offsets[g + 1] - value_offsets[g];
        out.cuts.insert(out.cuts.end(), per_group[g].begin(), per_group[g].end());
        out.offsets[g + 1] = static_cast<std::int64_t>(out.cuts.size());
    }
    return out;
}

}  // namespace

std::vector<std::int64_t> event_counts(const std::int64_t* time, const std::int32_t* code, const std::int32_t* entry_of_code,
                                       const std::int64_t* seg, std::size_t n_subjects, std::int64_t static_time,
                                       std::int32_t birth_entry) {
    std::vector<std::int64_t> counts(n_subjects, 0);
    const auto n = static_cast<std::int64_t>(n_subjects);
#if defined(EHRFAST_OPENMP)
#pragma omp parallel for schedule(static)
#endif
    for (std::int64_t s = 0; s < n; ++s)
        for (std::int64_t r = seg[s]; r < seg[s + 1]; ++r)
            counts[s] += time[r] != static_time && entry_of_code[code[r]] != birth_entry;
    return counts;
}

void TrainStatistics::grow(std::size_t n_codes) {
    if (n_codes <= subject_counts_.size()) return;
    subject_counts_.resize(n_codes, 0);
    on_static_row_.resize(n_codes, 0);
    values_.resize(n_codes);
    last_subject_.resize(n_codes, -1);
}

void TrainStatistics::add(const std::int64_t* time, const std::int32_t* code, const std::int32_t* raw_of_code, const float* value,
                          const std::int64_t* seg, const std::uint8_t* keep, std::size_t n_subjects, std::size_t n_codes,
                          std::int32_t birth_code, std::int64_t static_time) {
    grow(n_codes);
    for (std::size_t s = 0; s < n_subjects; ++s, ++subjects_seen_) {
        if (!keep[s]) continue;
        for (std::int64_t r = seg[s]; r < seg[s + 1]; ++r) {
            const std::int32_t c = raw_of_code[code[r]];
            if (c < 0 || static_cast<std::size_t>(c) >= subject_counts_.size() || c == birth_code) continue;
            if (last_subject_[c] != subjects_seen_) {
                last_subject_[c] = subjects_seen_;
                ++subject_counts_[c];
            }
            if (time[r] == static_time) on_static_row_[c] = 1;
            if (!std::isnan(value[r])) values_[c].push_back(value[r] + 0.0f);  // + 0.0f turns -0.0 into 0.0
        }
    }
}

GroupedQuantiles TrainStatistics::take_quantiles(const std::vector<double>& probs, std::int64_t min_count) {
    const auto n_codes = static_cast<std::int64_t>(values_.size());
    std::vector<std::vector<double>> per_code(values_.size());
    std::vector<std::int64_t> offsets(values_.size() + 1, 0);
    for (std::int64_t c = 0; c < n_codes; ++c) offsets[c + 1] = offsets[c] + static_cast<std::int64_t>(values_[c].size());
#if defined(EHRFAST_OPENMP)
#pragma omp parallel for schedule(dynamic, 1)
#endif
    for (std::int64_t c = 0; c < n_codes; ++c) {
        per_code[c] = quantile_cuts(values_[c].data(), static_cast<std::int64_t>(values_[c].size()), probs, min_count);
        std::vector<float>().swap(values_[c]);
    }
    return concatenate(per_code, offsets);
}

GroupedValues TrainStatistics::take_values() {
    GroupedValues out;
    out.offsets.assign(values_.size() + 1, 0);
    for (std::size_t c = 0; c < values_.size(); ++c) out.offsets[c + 1] = out.offsets[c] + static_cast<std::int64_t>(values_[c].size());
    out.values.reserve(static_cast<std::size_t>(out.offsets.back()));
    for (auto& v : values_) {
        out.values.insert(out.values.end(), v.begin(), v.end());
        std::vector<float>().swap(v);
    }
    return out;
}

void TrainStatistics::merge(const std::int32_t* raw_of_other, std::size_t n_other, const std::int64_t* other_subject_counts,
                            const std::uint8_t* other_on_static_row, const std::int64_t* other_value_offsets, const float* other_values,
                            std::size_t n_codes) {
    grow(n_codes);
    for (std::size_t l = 0; l < n_other; ++l) {
        const auto c = static_cast<std::size_t>(raw_of_other[l]);  // checked by the caller
        subject_counts_[c] += other_subject_counts[l];
        on_static_row_[c] |= other_on_static_row[l];
        values_[c].insert(values_[c].end(), other_values + other_value_offsets[l], other_values + other_value_offsets[l + 1]);
    }
}

std::vector<std::vector<double>>& IntervalGaps::part(std::size_t i) {
    while (parts_.size() <= i) parts_.emplace_back(n_bins_);
    return parts_[i];
}

void IntervalGaps::add(const std::int32_t* bin, const double* share, std::size_t n) {
    std::vector<std::vector<double>>& by_bin = part(0);
    for (std::size_t i = 0; i < n; ++i) by_bin[static_cast<std::size_t>(bin[i])].push_back(share[i]);
}

GroupedMoments IntervalGaps::take() {
    const auto n_bins = static_cast<std::int64_t>(n_bins_);
    GroupedMoments out;
    out.count.assign(n_bins_, 0);
    out.mean.assign(n_bins_, std::nan(""));
    out.median.assign(n_bins_, std::nan(""));
#if defined(EHRFAST_OPENMP)
#pragma omp parallel for schedule(dynamic, 1)
#endif
    for (std::int64_t g = 0; g < n_bins; ++g) {
        // the largest part becomes the bin's array; only the others are copied in
        std::size_t base = 0;
        for (std::size_t p = 1; p < parts_.size(); ++p)
            if (parts_[p][g].size() > parts_[base][g].size()) base = p;
        std::vector<double> v = parts_.empty() ? std::vector<double>() : std::move(parts_[base][g]);
        for (std::size_t p = 0; p < parts_.size(); ++p) {
            if (p != base) v.insert(v.end(), parts_[p][g].begin(), parts_[p][g].end());
            std::vector<double>().swap(parts_[p][g]);
        }
        const auto m = static_cast<std::int64_t>(v.size());
        out.count[g] = m;
        if (m == 0) continue;
        out.mean[g] = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(m);
        std::nth_element(v.begin(), v.begin() + m / 2, v.end());
        const double hi = v[static_cast<std::size_t>(m / 2)];
        // numpy: the mean of the two middle values for an even count
        out.median[g] = m % 2 ? hi : (*std::max_element(v.begin(), v.begin() + m / 2) + hi) / 2.0;
    }
    parts_.clear();
    return out;
}

std::pair<std::vector<std::int32_t>, std::vector<double>> IntervalGaps::take_shares() {
    std::pair<std::vector<std::int32_t>, std::vector<double>> out;
    for (auto& by_bin : parts_)
        for (std::size_t g = 0; g < n_bins_; ++g) {
            out.first.insert(out.first.end(), by_bin[g].size(), static_cast<std::int32_t>(g));
            out.second.insert(out.second.end(), by_bin[g].begin(), by_bin[g].end());
        }
    parts_.clear();
    return out;
}

}  // namespace ehrfast::tokenizer
