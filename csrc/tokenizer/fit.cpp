#include "tokenizer/fit.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace ehrfast::tokenizer {
namespace {

// Values bucketed by group (counting sort), NaNs skipped: offsets [n_groups + 1], values.
void bucket(const std::int32_t* group, const double* values, std::size_t n, std::int64_t n_groups,
            std::vector<std::int64_t>& offsets, std::vector<double>& sorted) {
    offsets.assign(static_cast<std::size_t>(n_groups) + 1, 0);
    for (std::size_t i = 0; i < n; ++i)
        if (group[i] >= 0 && group[i] < n_groups && !std::isnan(values[i])) ++offsets[group[i] + 1];
    std::partial_sum(offsets.begin(), offsets.end(), offsets.begin());
    sorted.resize(static_cast<std::size_t>(offsets.back()));
    std::vector<std::int64_t> fill(offsets.begin(), offsets.end() - 1);
    for (std::size_t i = 0; i < n; ++i)
        if (group[i] >= 0 && group[i] < n_groups && !std::isnan(values[i])) sorted[fill[group[i]]++] = values[i];
}

}  // namespace

std::vector<std::int64_t> event_counts(const std::int64_t* time, const std::int32_t* entry, const std::int64_t* seg,
                                       std::size_t n_subjects, std::int64_t static_time, std::int32_t birth_entry) {
    std::vector<std::int64_t> counts(n_subjects, 0);
    for (std::size_t s = 0; s < n_subjects; ++s)
        for (std::int64_t r = seg[s]; r < seg[s + 1]; ++r) counts[s] += time[r] != static_time && entry[r] != birth_entry;
    return counts;
}

std::vector<std::int64_t> code_subject_counts(const std::int32_t* entry, const std::int64_t* seg, std::size_t n_subjects,
                                              std::int64_t n_entries) {
    std::vector<std::int64_t> counts(static_cast<std::size_t>(n_entries), 0);
    std::vector<std::int64_t> last_subject(static_cast<std::size_t>(n_entries), -1);
    for (std::size_t s = 0; s < n_subjects; ++s) {
        for (std::int64_t r = seg[s]; r < seg[s + 1]; ++r) {
            const std::int32_t e = entry[r];
            if (e < 0 || e >= n_entries || last_subject[e] == static_cast<std::int64_t>(s)) continue;
            last_subject[e] = static_cast<std::int64_t>(s);
            ++counts[e];
        }
    }
    return counts;
}

GroupedQuantiles grouped_quantiles(const std::int32_t* group, const double* values, std::size_t n, std::int64_t n_groups,
                                   const std::vector<double>& probs, std::int64_t min_count) {
    std::vector<std::int64_t> offsets;
    std::vector<double> sorted;
    bucket(group, values, n, n_groups, offsets, sorted);
    std::vector<std::vector<double>> per_group(static_cast<std::size_t>(n_groups));
#if defined(EHRFAST_OPENMP)
#pragma omp parallel for schedule(dynamic, 1)
#endif
    for (std::int64_t g = 0; g < n_groups; ++g) {
        double* begin = sorted.data() + offsets[g];
        const std::int64_t m = offsets[g + 1] - offsets[g];
        if (m < std::max<std::int64_t>(min_count, 1)) continue;
        // numpy "nearest": order statistic at (m - 1)·p rounded half to even. Selecting the
        // order statistics in ascending order (each nth_element on what is left) is O(m·q)
        // instead of a full sort.
        std::vector<std::int64_t> ranks;
        for (double p : probs)
            ranks.push_back(std::clamp<std::int64_t>(static_cast<std::int64_t>(std::nearbyint(static_cast<double>(m - 1) * p)), 0, m - 1));
        std::sort(ranks.begin(), ranks.end());
        std::int64_t lo = 0;
        std::vector<double>& cuts = per_group[g];
        for (std::int64_t k : ranks) {
            if (k >= lo) {
                std::nth_element(begin + lo, begin + k, begin + m);
                lo = k + 1;
            }
            if (cuts.empty() || cuts.back() != begin[k]) cuts.push_back(begin[k]);
        }
    }
    GroupedQuantiles out;
    out.offsets.assign(static_cast<std::size_t>(n_groups) + 1, 0);
    out.counts.assign(static_cast<std::size_t>(n_groups), 0);
    for (std::int64_t g = 0; g < n_groups; ++g) {
        out.counts[g] = offsets[g + 1] - offsets[g];
        out.cuts.insert(out.cuts.end(), per_group[g].begin(), per_group[g].end());
        out.offsets[g + 1] = static_cast<std::int64_t>(out.cuts.size());
    }
    return out;
}

GroupedMoments grouped_mean_median(const std::int32_t* group, const double* values, std::size_t n, std::int64_t n_groups) {
    std::vector<std::int64_t> offsets;
    std::vector<double> sorted;
    bucket(group, values, n, n_groups, offsets, sorted);
    GroupedMoments out;
    out.count.assign(static_cast<std::size_t>(n_groups), 0);
    out.mean.assign(static_cast<std::size_t>(n_groups), std::nan(""));
    out.median.assign(static_cast<std::size_t>(n_groups), std::nan(""));
#if defined(EHRFAST_OPENMP)
#pragma omp parallel for schedule(dynamic, 1)
#endif
    for (std::int64_t g = 0; g < n_groups; ++g) {
        double* begin = sorted.data() + offsets[g];
        const std::int64_t m = offsets[g + 1] - offsets[g];
        out.count[g] = m;
        if (m == 0) continue;
        out.mean[g] = std::accumulate(begin, begin + m, 0.0) / static_cast<double>(m);
        std::nth_element(begin, begin + m / 2, begin + m);
        const double hi = begin[m / 2];
        if (m % 2) {
            out.median[g] = hi;
        } else {
            const double lo = *std::max_element(begin, begin + m / 2);
            out.median[g] = (lo + hi) / 2.0;  // numpy: mean of the two middle values
        }
    }
    return out;
}

}  // namespace ehrfast::tokenizer
