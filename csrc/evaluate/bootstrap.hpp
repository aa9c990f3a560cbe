// The bootstrap of binary-classifier metrics: resample counts drawn exactly as numpy's
// Generator.integers draws them, and every metric of every resample in one pass over each
// model's scores in descending order (one sort per model, made once by the caller).
#pragma once

#include <cstddef>
#include <cstdint>

namespace ehrfast::evaluate {

// numpy's bitgen_t (numpy/random/bitgen.h): the C interface of a BitGenerator, reached from
// Python through `Generator.bit_generator.capsule`. The caller holds the generator's lock.
struct BitGen {
    void* state;
    std::uint64_t (*next_uint64)(void* state);
    std::uint32_t (*next_uint32)(void* state);
    double (*next_double)(void* state);
    std::uint64_t (*next_raw)(void* state);
};

// counts[r * k + c] = how often cluster c is drawn in resample r, k draws of 0 … k−1 per
// resample, resamples r in [0, n_resamples): the draws of `Generator.integers(0, k, size=(n, k))`
// (int64; numpy's Lemire rejection on next_uint32 for k ≤ 2^32), in the same order.
void draw_counts(BitGen& gen, std::uint32_t k, std::size_t n_resamples, std::int32_t* counts);

// One model's predictions in descending score order (ties in any fixed order); all [n].
struct RankedModel {
    const std::int32_t* cluster;    // the resampled cluster of the prediction at position j
    const std::uint8_t* positive;   // its label
    const std::uint8_t* predicted;  // score ≥ the model's threshold
    const double* sq_error;         // (score − label)²
    const std::uint8_t* tie_end;    // 1 where the next position has a lower score (or j = n − 1)
};

// The statistics of one resample of one model (Stat indexes out[...]).
enum Stat : std::size_t { kAuroc, kAuprc, kTp, kFp, kFn, kTn, kBrier, kStats };

// out[(r * n_models + m) * kStats + stat] for each resample r of counts [n_resamples, k] and
// each model m: AUROC (ties count ½), average precision (scikit-learn's step sum), the
// weighted confusion counts at the threshold, and the Brier score. AUROC and AP are NaN for a
// resample that holds one class only. O(n) per resample and model; resamples in parallel.
void resampled_metrics(const std::int32_t* counts, std::size_t n_resamples, std::size_t k, const RankedModel* models, std::size_t n_models,
                       std::size_t n, double* out);

}  // namespace ehrfast::evaluate
