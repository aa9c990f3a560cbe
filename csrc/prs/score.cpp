#include "prs/score.hpp"

#include <algorithm>
#include <array>
#include <cmath>

namespace ehrfast::prs {
namespace {

// acc[s] += table[code(s)] for one packed row; four samples per byte, low bits first.
inline void add_row(const std::uint8_t* bytes, std::size_t n_samples, const double table[4], double* acc) {
    const std::size_t full = n_samples / 4;
    for (std::size_t i = 0; i < full; ++i) {
        const unsigned b = bytes[i];
        double* a = acc + 4 * i;
        a[0] += table[b & 3];
        a[1] += table[(b >> 2) & 3];
        a[2] += table[(b >> 4) & 3];
        a[3] += table[b >> 6];
    }
    for (std::size_t s = 4 * full, k = 0; s < n_samples; ++s, ++k) acc[s] += table[(bytes[full] >> (2 * k)) & 3];
}

}  // namespace

void accumulate_sparse(const PackedGenotypes& g, const double* lut, const SparseTraits& traits, double* out) {
    const auto n_traits = static_cast<std::int64_t>(traits.n_traits);
#if defined(EHRFAST_OPENMP)
#pragma omp parallel for schedule(dynamic, 1)
#endif
    for (std::int64_t t = 0; t < n_traits; ++t) {
        double* acc = out + static_cast<std::size_t>(t) * g.n_samples;
        for (std::int64_t k = traits.trait_off[t]; k < traits.trait_off[t + 1]; ++k) {
            const double w = traits.weight[k];
            const double* l = lut + 4 * static_cast<std::size_t>(traits.lut_row[k]);
            const double table[4] = {w * l[0], w * l[1], w * l[2], w * l[3]};
            add_row(g.bytes + static_cast<std::size_t>(traits.row[k]) * g.bytes_per_variant, g.n_samples, table, acc);
        }
    }
}

void decode_values(const PackedGenotypes& g, const double* lut, const std::int32_t* rows, const std::int32_t* lut_rows,
                   std::size_t n_rows, double* out) {
    const auto n = static_cast<std::int64_t>(n_rows);
#if defined(EHRFAST_OPENMP)
#pragma omp parallel for schedule(static)
#endif
    for (std::int64_t r = 0; r < n; ++r) {
        double* o = out + static_cast<std::size_t>(r) * g.n_samples;
        for (std::size_t s = 0; s < g.n_samples; ++s) o[s] = 0.0;
        add_row(g.bytes + static_cast<std::size_t>(rows[r]) * g.bytes_per_variant, g.n_samples, lut + 4 * static_cast<std::size_t>(lut_rows[r]), o);
    }
}

void allele_counts(const PackedGenotypes& g, double* a1_sum, double* called) {
    // per byte: A1 count and called count of its four samples (padding bits are 00 = two A1,
    // so the tail byte is handled sample by sample)
    static const auto tables = [] {
        std::array<std::array<std::uint8_t, 2>, 256> t{};
        constexpr int kA1[4] = {2, 0, 1, 0}, kCalled[4] = {1, 0, 1, 1};
        for (int b = 0; b < 256; ++b)
            for (int k = 0; k < 4; ++k) {
                t[b][0] = static_cast<std::uint8_t>(t[b][0] + kA1[(b >> (2 * k)) & 3]);
                t[b][1] = static_cast<std::uint8_t>(t[b][1] + kCalled[(b >> (2 * k)) & 3]);
            }
        return t;
    }();
    const auto n = static_cast<std::int64_t>(g.n_variants);
    const std::size_t full = g.n_samples / 4;
#if defined(EHRFAST_OPENMP)
#pragma omp parallel for schedule(static)
#endif
    for (std::int64_t v = 0; v < n; ++v) {
        const std::uint8_t* row = g.bytes + static_cast<std::size_t>(v) * g.bytes_per_variant;
        std::int64_t sum = 0, count = 0;
        for (std::size_t i = 0; i < full; ++i) {
            sum += tables[row[i]][0];
            count += tables[row[i]][1];
        }
        for (std::size_t s = 4 * full, k = 0; s < g.n_samples; ++s, ++k) {
            const unsigned code = (row[full] >> (2 * k)) & 3;
            sum += code == 0 ? 2 : code == 2 ? 1 : 0;
            count += code != 1;
        }
        a1_sum[v] = static_cast<double>(sum);
        called[v] = static_cast<double>(count);
    }
}

double call_value(double d, double p, const CallModel& m) {
    const bool missing = std::isnan(d);
    if (m.output == 1) return missing ? 0.0 : 1.0;
    double t = d, imputed = 2.0 * p;
    if (m.kind == 1) {
        t = std::min(d, 1.0);
        imputed = p;
    } else if (m.kind == 2) {
        t = std::max(d - 1.0, 0.0);
        imputed = p;
    }
    if (m.output == 2) return missing ? 0.0 : t;
    if (m.center || m.variance_standardize) {
        const double scale = m.variance_standardize ? std::sqrt(2.0 * p * (1.0 - p)) : 1.0;
        if (scale > 0) {
            t = (t - 2.0 * p) / scale;
            imputed = (m.plink2_center_quirk ? 2.0 * p : 0.0) / scale;
        } else {
            t = 0.0;
            imputed = 0.0;
        }
    }
    if (!m.mean_impute) imputed = 0.0;
    return missing ? imputed : t;
}

void accumulate_dosages(const double* dosages, std::size_t n_rows, std::size_t n_samples, const double* p_alt,
                        const std::int64_t* trait_off, const std::int32_t* row, const std::uint8_t* effect_is_alt,
                        const double* weight, std::size_t n_traits, const CallModel& model, double* out) {
    (void)n_rows;
    const auto n_t = static_cast<std::int64_t>(n_traits);
#if defined(EHRFAST_OPENMP)
#pragma omp parallel for schedule(dynamic, 1)
#endif
    for (std::int64_t t = 0; t < n_t; ++t) {
        double* acc = out + static_cast<std::size_t>(t) * n_samples;
        for (std::int64_t k = trait_off[t]; k < trait_off[t + 1]; ++k) {
            const double* d = dosages + static_cast<std::size_t>(row[k]) * n_samples;
            const bool alt = effect_is_alt[k] != 0;
            const double p = alt ? p_alt[row[k]] : 1.0 - p_alt[row[k]];
            const double w = weight[k];
            for (std::size_t s = 0; s < n_samples; ++s) {
                const double x = d[s];
                acc[s] += w * call_value(alt || std::isnan(x) ? x : 2.0 - x, p, model);
            }
        }
    }
}

}  // namespace ehrfast::prs
