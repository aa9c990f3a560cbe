// Polygenic scores straight from SNP-major .bed bytes.
//
// Every (trait, variant) pair has a 4-entry value table `lut` indexed by the 2-bit genotype
// code (00 = two A1, 01 = missing, 10 = het, 11 = two A2): the Python side folds allele
// orientation, the dominant/recessive/centering transforms and mean imputation into it, so
// this kernel only looks values up and accumulates. Traits are independent, so threads split
// the traits and each accumulates one trait's row over the samples (no races, no atomics).
#pragma once

#include <cstddef>
#include <cstdint>

namespace ehrfast::prs {

struct PackedGenotypes {
    const std::uint8_t* bytes;  // [n_variants, bytes_per_variant]
    std::size_t n_variants;
    std::size_t bytes_per_variant;
    std::size_t n_samples;
};

// Sparse trait layout (CSR over traits): pairs k in [trait_off[t], trait_off[t+1]) of trait t
// read packed row `row[k]` through value table `lut[lut_row[k] * 4 .. + 4]` times `weight[k]`.
struct SparseTraits {
    const std::int64_t* trait_off;
    const std::int32_t* row;
    const std::int32_t* lut_row;
    const double* weight;
    std::size_t n_traits;
};

// out[t * n_samples + s] += Σ_k weight[k] · lut[lut_row[k]][code(row[k], s)]
void accumulate_sparse(const PackedGenotypes& g, const double* lut, const SparseTraits& traits, double* out);

// out[r * n_samples + s] = lut[lut_rows[r]][code(rows[r], s)] for r < n_rows (decode for GEMM)
void decode_values(const PackedGenotypes& g, const double* lut, const std::int32_t* rows, const std::int32_t* lut_rows,
                   std::size_t n_rows, double* out);

// Per variant: sum of A1 counts over called samples, and the number of called samples.
void allele_counts(const PackedGenotypes& g, double* a1_sum, double* called);

// What a call contributes, mirroring ehrfast.genomics.score.transform / named_value.
struct CallModel {
    int kind = 0;  // 0 additive, 1 dominant, 2 recessive
    bool mean_impute = true;
    bool center = false;
    bool variance_standardize = false;
    bool plink2_center_quirk = false;
    int output = 0;  // 0 score value, 1 non-missing indicator, 2 named-allele dosage
};

double call_value(double d, double p, const CallModel& m);

// Fractional dosages (e.g. from .pgen or VCF DS): dosages [n_rows, n_samples] of the ALT
// allele (NaN = missing), p_alt [n_rows]; pairs of trait t: rows row[k], effect allele ALT when
// effect_is_alt[k]. out[t * n_samples + s] += Σ_k weight[k] · call_value(d_effect, p_effect).
void accumulate_dosages(const double* dosages, std::size_t n_rows, std::size_t n_samples, const double* p_alt,
                        const std::int64_t* trait_off, const std::int32_t* row, const std::uint8_t* effect_is_alt,
                        const double* weight, std::size_t n_traits, const CallModel& model, double* out);

}  // namespace ehrfast::prs
