// Polygenic scores straight from SNP-major .bed bytes.
//
// Every (trait, variant) pair has a 4-entry value table `lut` indexed by the 2-bit genotype
// code (00 = two A1, 01 = missing, 10 = het, 11 = two A2): the Python side folds allele
// orientation, the dominant/recessive/centering transforms and mean imputation into it, so
// the kernels only look values up and accumulate. Each thread owns a disjoint part of the
// output (samples for the dense kernel, traits for the sparse one): no races, no atomics.
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

// The value rows of one block: row r reads packed row `packed_row[r]` through its 4-entry
// table `lut[r * 4 .. + 4]` (allele orientation, model transform and imputation folded in).
struct ValueRows {
    const std::int32_t* packed_row;  // [n_rows]
    const double* lut;               // [n_rows, 4]
    std::size_t n_rows;
};

// Dense weights: out[s * n_traits + t] += Σ_r lut[r][code(r, s)] · weight[r * n_traits + t].
// "Four Russians": four rows make an 8-bit code per sample, so each sample adds one row of a
// 256-entry table per four rows instead of four weighted rows (4x fewer adds than a GEMM).
void accumulate_dense(const PackedGenotypes& g, const ValueRows& rows, const double* weight, std::size_t n_traits,
                      double* out);

// The vector unit accumulate_dense and accumulate_sparse run on (avx512f, avx2, avx, sse2, neon,
// scalar), and whether it was picked for this CPU at load time (a portable build) rather than
// fixed at compile time.
const char* kernel_isa();
bool kernel_isa_chosen_at_run_time();

// Sparse weights, CSR over traits: pairs k in [trait_off[t], trait_off[t+1]) add
// lut[row[k]][code(row[k], s)] · weight[k] to out[t * n_samples + s]. Per pair, a 256-entry
// table maps a packed byte to its four samples' weighted values, added as one 4-wide vector.
void accumulate_sparse(const PackedGenotypes& g, const ValueRows& rows, const std::int64_t* trait_off, const std::int32_t* row,
                       const double* weight, std::size_t n_traits, double* out);

// plink2's count columns over each trait's pairs, exact in integers: named[t * n_samples + s]
// += named_lut[row[k]][code] (the named-allele count 0..2 of a call, 0 when missing) and
// called[t * n_samples + s] += 1 per non-missing call. Counts are kept in 16-bit lanes (four
// samples x both counts in one 16-byte vector per packed byte) and added to the float64
// outputs every kCountFlush pairs, so a pass reads a quarter of the bytes the float64 kernel
// moves; a row's table is shared by every row with the same 4-entry named_lut.
void accumulate_counts(const PackedGenotypes& g, const std::int32_t* packed_row, const std::uint8_t* named_lut, std::size_t n_rows,
                       const std::int64_t* trait_off, const std::int32_t* row, std::size_t n_traits, double* named, double* called);

// Per variant: sum of A1 counts over called samples, and the number of called samples.
void allele_counts(const PackedGenotypes& g, double* a1_sum, double* called);

// The genotype model of a call (ehrfast.genomics.score.ScoreModel.model).
enum class CallKind : int { additive = 0, dominant = 1, recessive = 2 };
// What a call contributes: its score value, a non-missing indicator, or its named-allele dosage.
enum class CallOutput : int { score = 0, nonmissing = 1, named = 2 };

// What a call contributes, computed as ehrfast.genomics.score.call_values does.
struct CallModel {
    CallKind kind = CallKind::additive;
    bool mean_impute = true;
    bool center = false;
    bool variance_standardize = false;
    bool plink2_center_quirk = false;
    CallOutput output = CallOutput::score;
};

double call_value(double d, double p, const CallModel& m);

// Fractional dosages (e.g. from .pgen or VCF DS): dosages [n_rows, n_samples] of the ALT
// allele (NaN = missing), p_alt [n_rows]; pairs of trait t: rows row[k], effect allele ALT when
// effect_is_alt[k]. out[t * n_samples + s] += Σ_k weight[k] · call_value(d_effect, p_effect).
void accumulate_dosages(const double* dosages, std::size_t n_rows, std::size_t n_samples, const double* p_alt,
                        const std::int64_t* trait_off, const std::int32_t* row, const std::uint8_t* effect_is_alt,
                        const double* weight, std::size_t n_traits, const CallModel& model, double* out);

}  // namespace ehrfast::prs
