#include "evaluate/bootstrap.hpp"

#include <cmath>
#include <cstring>
#include <limits>

namespace ehrfast::evaluate {
namespace {

// numpy's buffered_bounded_lemire_uint32 (distributions.c): a draw of 0 … rng inclusive.
std::uint32_t bounded_lemire_uint32(BitGen& gen, std::uint32_t rng) {
    const std::uint32_t rng_excl = rng + 1;
    std::uint64_t m = static_cast<std::uint64_t>(gen.next_uint32(gen.state)) * rng_excl;
    auto leftover = static_cast<std::uint32_t>(m);
    if (leftover < rng_excl) {
        const std::uint32_t threshold = (std::numeric_limits<std::uint32_t>::max() - rng) % rng_excl;
        while (leftover < threshold) {
            m = static_cast<std::uint64_t>(gen.next_uint32(gen.state)) * rng_excl;
            leftover = static_cast<std::uint32_t>(m);
        }
    }
    return static_cast<std::uint32_t>(m >> 32);
}

void one_resample(const std::int32_t* count, const RankedModel& model, std::size_t n, double* out) {
    // Over tie groups in descending score: the weighted positives and negatives of the group,
    // and the totals above it. AUROC = 1 − Σ_groups gp · (neg above + ½ gn) / (P · N);
    // AP = Σ_groups gp · precision at the group's score / P.
    double gp = 0, gn = 0, pos = 0, neg = 0, below_sum = 0, ap_sum = 0, sq = 0;
    double cells[4] = {0, 0, 0, 0};  // tp, fp, fn, tn
    for (std::size_t j = 0; j < n; ++j) {
        const double w = count[model.cluster[j]];
        if (w != 0) {
            const bool p = model.positive[j] != 0;
            (p ? gp : gn) += w;
            cells[(model.predicted[j] ? 0 : 2) + (p ? 0 : 1)] += w;
            sq += w * model.sq_error[j];
        }
        if (model.tie_end[j]) {
            if (gp != 0) {
                below_sum += gp * (neg + 0.5 * gn);
                ap_sum += gp * ((pos + gp) / (pos + gp + neg + gn));
            }
            pos += gp;
            neg += gn;
            gp = gn = 0;
        }
    }
    const bool two_classes = pos > 0 && neg > 0;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    out[kAuroc] = two_classes ? (pos * neg - below_sum) / (pos * neg) : nan;
    out[kAuprc] = two_classes ? ap_sum / pos : nan;
    out[kTp] = cells[0];
    out[kFp] = cells[1];
    out[kFn] = cells[2];
    out[kTn] = cells[3];
    out[kBrier] = sq / (pos + neg);
}

}  // namespace

void draw_counts(BitGen& gen, std::uint32_t k, std::size_t n_resamples, std::int32_t* counts) {
    std::memset(counts, 0, sizeof(std::int32_t) * n_resamples * k);
    if (k == 0) return;
    const std::uint32_t rng = k - 1;
    for (std::size_t r = 0; r < n_resamples; ++r) {
        std::int32_t* row = counts + r * k;
        if (rng == 0) {  // numpy draws nothing for a one-value range
            row[0] = static_cast<std::int32_t>(k);
            continue;
        }
        for (std::uint32_t i = 0; i < k; ++i) ++row[bounded_lemire_uint32(gen, rng)];
    }
}

void resampled_metrics(const std::int32_t* counts, std::size_t n_resamples, std::size_t k, const RankedModel* models, std::size_t n_models,
                       std::size_t n, double* out) {
    const auto total = static_cast<std::int64_t>(n_resamples * n_models);
#if defined(EHRFAST_OPENMP)
#pragma omp parallel for schedule(static)
#endif
    for (std::int64_t i = 0; i < total; ++i) {
        const auto r = static_cast<std::size_t>(i) / n_models, m = static_cast<std::size_t>(i) % n_models;
        one_resample(counts + r * k, models[m], n, out + static_cast<std::size_t>(i) * kStats);
    }
}

}  // namespace ehrfast::evaluate
