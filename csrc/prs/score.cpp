#include "prs/score.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#if defined(EHRFAST_OPENMP)
#include <omp.h>
#endif

namespace ehrfast::prs {
namespace {

// Four doubles as one SIMD value (AVX when the compiler targets it, SSE pairs otherwise).
using v4d = double __attribute__((vector_size(32)));

// n zeroed v4d, 32-byte aligned: alignof(v4d) is 16 on an SSE2 baseline, and the AVX copies of
// a dispatched function (EHRFAST_DISPATCH) assume 32, so std::vector<v4d> would not do there.
class V4dBuffer {
  public:
    explicit V4dBuffer(std::size_t n) : storage_(4 * n + 4) {}
    v4d* data() {
        void* p = storage_.data();
        std::size_t space = storage_.size() * sizeof(double);
        return static_cast<v4d*>(std::align(32, 32, p, space));
    }

  private:
    std::vector<double> storage_;
};

// On a function: compiled once per x86-64 level (v4: AVX-512, v3: AVX2, baseline SSE2), the
// highest the CPU has chosen when the module loads (an ifunc), where the build's baseline lacks
// AVX2 (EHRFAST_NATIVE=OFF, portable wheels). Native builds already use the CPU's widest unit.
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__) && !defined(__AVX2__)
#define EHRFAST_DISPATCH __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define EHRFAST_DISPATCHES 1
#else
#define EHRFAST_DISPATCH
#endif
// On the helpers of a dispatched function: GCC does not inline a baseline function into a
// target clone on its own, and left out of line they would run on SSE2.
#if defined(EHRFAST_DISPATCHES)
#define EHRFAST_INLINE __attribute__((always_inline)) inline
#else
#define EHRFAST_INLINE inline
#endif

// kSpread[b]: the four 2-bit codes of byte b, one per byte of a uint32 (sample k in byte k).
const std::array<std::uint32_t, 256> kSpread = [] {
    std::array<std::uint32_t, 256> t{};
    for (unsigned b = 0; b < 256; ++b)
        for (unsigned k = 0; k < 4; ++k) t[b] |= ((b >> (2 * k)) & 3u) << (8 * k);
    return t;
}();

// The half-open range of 4-sample byte columns thread `rank` of `n_threads` owns.
std::pair<std::size_t, std::size_t> quad_range(std::size_t n_quads, int rank, int n_threads) {
    const std::size_t per = (n_quads + static_cast<std::size_t>(n_threads) - 1) / static_cast<std::size_t>(n_threads);
    const std::size_t a = std::min(n_quads, per * static_cast<std::size_t>(rank));
    return {a, std::min(n_quads, a + per)};
}

int thread_count() {
#if defined(EHRFAST_OPENMP)
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int thread_rank() {
#if defined(EHRFAST_OPENMP)
    return omp_get_thread_num();
#else
    return 0;
#endif
}

constexpr std::size_t kRowsPerGroup = 4;     // 4 rows x 2 bits = an 8-bit table index

// codes[gi][s] = c0 | c1 << 2 | c2 << 4 | c3 << 6 for the four rows of group `group`.
EHRFAST_INLINE void combine_codes(const PackedGenotypes& g, const ValueRows& rows, std::size_t group, std::uint8_t* codes, std::size_t first_quad,
                   std::size_t n_quads) {
    const std::uint8_t* row_bytes[kRowsPerGroup];
    for (std::size_t j = 0; j < kRowsPerGroup; ++j) {
        const std::size_t r = group * kRowsPerGroup + j;
        row_bytes[j] = r < rows.n_rows ? g.bytes + static_cast<std::size_t>(rows.packed_row[r]) * g.bytes_per_variant : nullptr;
    }
    for (std::size_t q = 0; q < n_quads; ++q) {
        std::uint32_t c = 0;
        for (std::size_t j = 0; j < kRowsPerGroup; ++j)
            if (row_bytes[j]) c |= kSpread[row_bytes[j][first_quad + q]] << (2 * j);
        std::memcpy(codes + 4 * q, &c, 4);
    }
}

// table[c][v] = Σ_j lut[r_j][(c >> 2j) & 3] · weight[r_j][first_trait + 4v .. + 4], built
// one row at a time: an entry with digit d for row j is the entry without it plus d's term.
// Rows past the end of the block contribute nothing.
template <std::size_t kVec>
EHRFAST_INLINE void build_table(const ValueRows& rows, std::size_t group, const double* weight, std::size_t n_traits, std::size_t first_trait,
                 v4d* table) {
    for (std::size_t j = 0, width = 1; j < kRowsPerGroup; ++j, width *= 4) {
        const std::size_t r = group * kRowsPerGroup + j;
        const bool real = r < rows.n_rows;
        v4d w[kVec] = {};  // every lane is set below (GCC cannot see it in the dispatched copies)
        for (std::size_t v = 0; v < kVec; ++v)
            for (std::size_t i = 0; i < 4; ++i) {
                const std::size_t t = first_trait + 4 * v + i;
                w[v][i] = (real && t < n_traits) ? weight[r * n_traits + t] : 0.0;
            }
        const double value[4] = {real ? rows.lut[4 * r] : 0.0, real ? rows.lut[4 * r + 1] : 0.0, real ? rows.lut[4 * r + 2] : 0.0,
                                 real ? rows.lut[4 * r + 3] : 0.0};
        if (j == 0) {
            for (std::size_t d = 0; d < 4; ++d)
                for (std::size_t v = 0; v < kVec; ++v) table[d * kVec + v] = value[d] * w[v];
            continue;
        }
        for (std::size_t d = 3; d >= 1; --d)  // digits 1..3 read the digit-0 entries before those are updated
            for (std::size_t low = 0; low < width; ++low)
                for (std::size_t v = 0; v < kVec; ++v) table[(d * width + low) * kVec + v] = table[low * kVec + v] + value[d] * w[v];
        for (std::size_t low = 0; low < width; ++low)
            for (std::size_t v = 0; v < kVec; ++v) table[low * kVec + v] += value[0] * w[v];
    }
}

// The dense kernel's shape: entries of kDenseVec 4-double vectors (8 traits: 16 KiB tables), and
// kSweepVectors / kVec tables added per sweep over the accumulators (8 tables, 128 KiB, in L2).
// Measured on Zen 5 (RESULTS.md 2026-12-07, second session): 8 tables of 16 KiB with the
// accumulators swept took 20 ms per 4,000-variant block; 16 tables of 32 KiB with the
// accumulators in registers (the kernel before), 28 ms; 4 tables of 8 KiB in L1, 26 ms.
constexpr std::size_t kDenseVec = 2;
constexpr std::size_t kSweepVectors = 16;

// acc[s] += Σ_{gi < kCount} tables_gi[codes[gi][s]] over the thread's samples.
template <std::size_t kVec, std::size_t kCount>
EHRFAST_INLINE void add_sweep(const v4d* tables, const std::uint8_t* codes, std::size_t stride, std::size_t n_samples, v4d* acc) {
    for (std::size_t s = 0; s < n_samples; ++s) {
        v4d a[kVec];
        for (std::size_t v = 0; v < kVec; ++v) a[v] = acc[s * kVec + v];
        for (std::size_t gi = 0; gi < kCount; ++gi) {
            const v4d* entry = tables + (gi * 256 + codes[gi * stride + s]) * kVec;
            for (std::size_t v = 0; v < kVec; ++v) a[v] += entry[v];
        }
        for (std::size_t v = 0; v < kVec; ++v) acc[s * kVec + v] = a[v];
    }
}

// out[s, first_trait .. + 4 kVec] += Σ over all groups: a few small tables at a time, and the
// thread's accumulators [n_samples, kVec] swept in order once per few tables (a stream the
// prefetcher keeps ahead of), rather than many large tables and the accumulators in registers.
template <std::size_t kVec>
EHRFAST_INLINE void dense_traits(const ValueRows& rows, const double* weight, std::size_t n_traits, std::size_t n_groups, std::size_t first_trait,
                  const std::uint8_t* codes, std::size_t stride, std::size_t first_sample, std::size_t n_samples, v4d* tables,
                  v4d* acc, double* out) {
    constexpr std::size_t kTables = kSweepVectors / kVec;
    std::fill(acc, acc + n_samples * kVec, v4d{});
    for (std::size_t first = 0; first < n_groups; first += kTables) {  // n_groups: a multiple of kSweepVectors
        for (std::size_t gi = 0; gi < kTables; ++gi)
            build_table<kVec>(rows, first + gi, weight, n_traits, first_trait, tables + gi * 256 * kVec);
        add_sweep<kVec, kTables>(tables, codes + first * stride, stride, n_samples, acc);
    }
    const std::size_t width = std::min<std::size_t>(4 * kVec, n_traits - first_trait);
    for (std::size_t s = 0; s < n_samples; ++s) {
        double* o = out + (first_sample + s) * n_traits + first_trait;
        for (std::size_t t = 0; t < width; ++t) o[t] += acc[s * kVec + t / 4][t % 4];
    }
}

// One thread's share of accumulate_dense: its samples' codes for every group, then all traits,
// 4 kDenseVec at a time.
EHRFAST_DISPATCH
void dense_thread(const PackedGenotypes& g, const ValueRows& rows, const double* weight, std::size_t n_traits, std::size_t n_groups,
                  std::size_t q0, std::size_t q1, double* out) {
    const std::size_t first_sample = 4 * q0, n_samples = std::min(g.n_samples, 4 * q1) - std::min(g.n_samples, 4 * q0);
    const std::size_t stride = 4 * (q1 - q0);
    // every group's codes, computed once; the groups past the block (rows past n_rows) pad to
    // whole sweeps: code 0 into a table build_table leaves all zero
    const std::size_t n_padded = (n_groups + kSweepVectors - 1) / kSweepVectors * kSweepVectors;
    std::vector<std::uint8_t> codes(n_padded * stride);
    for (std::size_t gi = 0; gi < n_groups; ++gi) combine_codes(g, rows, gi, codes.data() + gi * stride, q0, q1 - q0);
    V4dBuffer table_buffer(256 * kSweepVectors), acc_buffer(stride * kDenseVec);
    v4d* tables = table_buffer.data();
    v4d* acc = acc_buffer.data();
    for (std::size_t t = 0; t < n_traits; t += 4 * kDenseVec) {
        if (n_traits - t > 4)
            dense_traits<kDenseVec>(rows, weight, n_traits, n_padded, t, codes.data(), stride, first_sample, n_samples, tables, acc, out);
        else  // the last 1-4 traits: half the table bytes
            dense_traits<1>(rows, weight, n_traits, n_padded, t, codes.data(), stride, first_sample, n_samples, tables, acc, out);
    }
}

}  // namespace

const char* kernel_isa() {
#if defined(EHRFAST_DISPATCHES)
    // the same choice the ifunc resolver makes: the clones in order of priority
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return "avx512f";
    if (__builtin_cpu_supports("x86-64-v3")) return "avx2";
#endif
#if defined(__AVX512F__)
    return "avx512f";
#elif defined(__AVX2__)
    return "avx2";
#elif defined(__AVX__)
    return "avx";
#elif defined(__SSE2__)
    return "sse2";
#elif defined(__aarch64__)
    return "neon";
#else
    return "scalar";
#endif
}

bool kernel_isa_chosen_at_run_time() {
#if defined(EHRFAST_DISPATCHES)
    return true;
#else
    return false;
#endif
}

void accumulate_dense(const PackedGenotypes& g, const ValueRows& rows, const double* weight, std::size_t n_traits, double* out) {
    const std::size_t n_groups = (rows.n_rows + kRowsPerGroup - 1) / kRowsPerGroup;
    const std::size_t n_quads = (g.n_samples + 3) / 4;
    if (n_groups == 0 || n_traits == 0 || g.n_samples == 0) return;
#if defined(EHRFAST_OPENMP)
#pragma omp parallel num_threads(static_cast<int>(std::min<std::size_t>(n_quads, static_cast<std::size_t>(thread_count()))))
#endif
    {
        int n_threads = 1;
#if defined(EHRFAST_OPENMP)
        n_threads = omp_get_num_threads();
#endif
        const auto [q0, q1] = quad_range(n_quads, thread_rank(), n_threads);
        if (q1 > q0) dense_thread(g, rows, weight, n_traits, n_groups, q0, q1, out);
    }
}

namespace {

// table[b] = the weighted values of the four samples of byte b, for one (trait, row) pair.
EHRFAST_INLINE void fill_byte_table(const double* lut_row, double weight, v4d* table) {
    using v2d = double __attribute__((vector_size(16)));
    const double wl[4] = {weight * lut_row[0], weight * lut_row[1], weight * lut_row[2], weight * lut_row[3]};
    v2d half[16];  // two samples (a nibble) at a time, then each byte is two halves
    for (unsigned c = 0; c < 16; ++c) half[c] = v2d{wl[c & 3], wl[c >> 2]};
    for (unsigned b = 0; b < 256; ++b) table[b] = __builtin_shufflevector(half[b & 15], half[b >> 4], 0, 1, 2, 3);
}

// acc[s] += Σ_j value_j(s) for kPairs pairs at once: one load and store of the accumulator
// per kPairs table look-ups (the loop is bound by those stores).
template <int kPairs>
EHRFAST_INLINE void add_pairs(const PackedGenotypes& g, const ValueRows& rows, const std::int32_t* row, const double* weight, v4d* tables, double* acc) {
    const std::uint8_t* bytes[kPairs];
    for (int j = 0; j < kPairs; ++j) {
        const auto r = static_cast<std::size_t>(row[j]);
        fill_byte_table(rows.lut + 4 * r, weight[j], tables + 256 * j);
        bytes[j] = g.bytes + static_cast<std::size_t>(rows.packed_row[r]) * g.bytes_per_variant;
    }
    const std::size_t full = g.n_samples / 4;
    for (std::size_t i = 0; i < full; ++i) {
        v4d sum = tables[bytes[0][i]];
        for (int j = 1; j < kPairs; ++j) sum += tables[256 * j + bytes[j][i]];
        // acc is numpy's (8-byte aligned): an unaligned load and store, never a cast to a
        // 32-byte vector pointer (clang ignores a reduced alignment on a vector typedef and
        // emits an aligned access, which faults — found by fuzzing the clang build)
        v4d a;
        std::memcpy(&a, acc + 4 * i, sizeof a);
        a += sum;
        std::memcpy(acc + 4 * i, &a, sizeof a);
    }
    for (int j = 0; j < kPairs; ++j)  // the last, partial byte
        for (std::size_t s = 4 * full, k = 0; s < g.n_samples; ++s, ++k) acc[s] += tables[256 * j + ((bytes[j][full] >> (2 * k)) & 3)][0];
}

// acc[s] += the pairs [begin, end) of one trait (accumulate_sparse's unit of work).
// tables: 4 x 256 v4d of scratch.
EHRFAST_DISPATCH
void sparse_trait(const PackedGenotypes& g, const ValueRows& rows, std::int64_t begin, std::int64_t end, const std::int32_t* row,
                  const double* weight, v4d* tables, double* acc) {
    std::int64_t k = begin;
    for (; k + 4 <= end; k += 4) add_pairs<4>(g, rows, row + k, weight + k, tables, acc);
    for (; k < end; ++k) add_pairs<1>(g, rows, row + k, weight + k, tables, acc);
}

}  // namespace

void accumulate_sparse(const PackedGenotypes& g, const ValueRows& rows, const std::int64_t* trait_off, const std::int32_t* row,
                       const double* weight, std::size_t n_traits, double* out) {
#if defined(EHRFAST_OPENMP)
#pragma omp parallel
#endif
    {
        V4dBuffer tables(4 * 256);
#if defined(EHRFAST_OPENMP)
#pragma omp for schedule(dynamic, 1)
#endif
        for (std::int64_t t = 0; t < static_cast<std::int64_t>(n_traits); ++t)
            sparse_trait(g, rows, trait_off[t], trait_off[t + 1], row, weight, tables.data(), out + static_cast<std::size_t>(t) * g.n_samples);
    }
}

namespace {

// Lanes 0-3: the named counts of a byte's four samples; lanes 4-7: whether each was called.
using v8u16 = std::uint16_t __attribute__((vector_size(16)));
constexpr std::int64_t kCountFlush = 16383;  // pairs between flushes: 2 x 16383 < 2^16, a lane never wraps

// The 256-entry table of one 4-entry named_lut (values 0..2, checked by the caller).
void fill_count_table(const std::uint8_t* lut, v8u16* table) {
    for (unsigned b = 0; b < 256; ++b) {
        v8u16 e{};
        for (unsigned k = 0; k < 4; ++k) {
            const unsigned code = (b >> (2 * k)) & 3u;
            e[k] = lut[code];
            e[4 + k] = code != 1;  // 01 = missing
        }
        table[b] = e;
    }
}

template <int kPairs>
void add_count_pairs(const std::uint8_t* const* bytes, const v8u16* const* tables, std::size_t full, std::size_t n_quads, v8u16 tail_mask,
                     v8u16* acc) {
    for (std::size_t i = 0; i < full; ++i) {
        v8u16 sum = tables[0][bytes[0][i]];
        for (int j = 1; j < kPairs; ++j) sum += tables[j][bytes[j][i]];
        acc[i] += sum;
    }
    if (full < n_quads)  // the last byte's padding codes (00) are masked out
        for (int j = 0; j < kPairs; ++j) acc[full] += tables[j][bytes[j][full]] & tail_mask;
}

}  // namespace

void accumulate_counts(const PackedGenotypes& g, const std::int32_t* packed_row, const std::uint8_t* named_lut, std::size_t n_rows,
                       const std::int64_t* trait_off, const std::int32_t* row, std::size_t n_traits, double* named, double* called) {
    // one table per distinct named_lut (a handful: each model has one per allele orientation)
    std::vector<int> table_of_pattern(81, -1), table_of_row(n_rows);
    std::vector<v8u16> tables;
    for (std::size_t r = 0; r < n_rows; ++r) {
        const std::uint8_t* lut = named_lut + 4 * r;
        const int pattern = lut[0] + 3 * lut[1] + 9 * lut[2] + 27 * lut[3];
        if (table_of_pattern[pattern] < 0) {
            table_of_pattern[pattern] = static_cast<int>(tables.size() / 256);
            tables.resize(tables.size() + 256);
            fill_count_table(lut, tables.data() + tables.size() - 256);
        }
        table_of_row[r] = table_of_pattern[pattern];
    }
    const std::size_t full = g.n_samples / 4, n_quads = (g.n_samples + 3) / 4, rem = g.n_samples % 4;
    v8u16 tail_mask{};
    for (std::size_t k = 0; k < rem; ++k) tail_mask[k] = tail_mask[4 + k] = 0xFFFF;
#if defined(EHRFAST_OPENMP)
#pragma omp parallel
#endif
    {
        std::vector<v8u16> acc(n_quads);
#if defined(EHRFAST_OPENMP)
#pragma omp for schedule(dynamic, 1)
#endif
        for (std::int64_t t = 0; t < static_cast<std::int64_t>(n_traits); ++t) {
            for (std::int64_t k = trait_off[t]; k < trait_off[t + 1]; k += kCountFlush) {
                const std::int64_t end = std::min(trait_off[t + 1], k + kCountFlush);
                std::fill(acc.begin(), acc.end(), v8u16{});
                for (std::int64_t j = k; j < end;) {
                    const int n_pairs = end - j >= 4 ? 4 : 1;
                    const std::uint8_t* bytes[4];
                    const v8u16* pair_tables[4];
                    for (int i = 0; i < n_pairs; ++i) {
                        const auto r = static_cast<std::size_t>(row[j + i]);
                        bytes[i] = g.bytes + static_cast<std::size_t>(packed_row[r]) * g.bytes_per_variant;
                        pair_tables[i] = tables.data() + 256 * static_cast<std::size_t>(table_of_row[r]);
                    }
                    if (n_pairs == 4)
                        add_count_pairs<4>(bytes, pair_tables, full, n_quads, tail_mask, acc.data());
                    else
                        add_count_pairs<1>(bytes, pair_tables, full, n_quads, tail_mask, acc.data());
                    j += n_pairs;
                }
                double* nt = named + static_cast<std::size_t>(t) * g.n_samples;
                double* ct = called + static_cast<std::size_t>(t) * g.n_samples;
                for (std::size_t s = 0; s < g.n_samples; ++s) {
                    nt[s] += acc[s / 4][s % 4];
                    ct[s] += acc[s / 4][4 + s % 4];
                }
            }
        }
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
    if (m.output == CallOutput::nonmissing) return missing ? 0.0 : 1.0;
    double t = d, imputed = 2.0 * p;
    if (m.kind == CallKind::dominant) {
        t = std::min(d, 1.0);
        imputed = p;
    } else if (m.kind == CallKind::recessive) {
        t = std::max(d - 1.0, 0.0);
        imputed = p;
    }
    if (m.output == CallOutput::named) return missing ? 0.0 : t;
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
