#include "prs/bed.hpp"

#include <array>
#include <limits>

namespace ehrfast::bed {
namespace {

// A1 count (+1 so -1 indexes 0) -> 2-bit code.
constexpr std::array<std::uint8_t, 4> kCodeOfCount = {0b01, 0b11, 0b10, 0b00};

// One byte -> its four A1 counts; built once, 1 KiB.
struct UnpackTable {
    std::array<std::array<std::int8_t, 4>, 256> values{};
    UnpackTable() {
        constexpr std::int8_t kCountOfCode[4] = {2, -1, 1, 0};
        for (int byte = 0; byte < 256; ++byte)
            for (int k = 0; k < 4; ++k) values[byte][k] = kCountOfCode[(byte >> (2 * k)) & 3];
    }
};
const UnpackTable kUnpack;

}  // namespace

std::int64_t first_invalid_genotype(MatrixView<const std::int8_t> genotypes) {
    const std::int64_t total = static_cast<std::int64_t>(genotypes.rows * genotypes.cols);
    std::int64_t first = std::numeric_limits<std::int64_t>::max();
#if defined(EHRFAST_OPENMP)
#pragma omp parallel for reduction(min : first) schedule(static)
#endif
    for (std::int64_t i = 0; i < total; ++i) {
        const std::int8_t g = genotypes.data[i];
        if ((g < -1 || g > 2) && i < first) first = i;
    }
    return first == std::numeric_limits<std::int64_t>::max() ? -1 : first;
}

void pack(MatrixView<const std::int8_t> genotypes, MatrixView<std::uint8_t> packed) {
    const std::int64_t n_variants = static_cast<std::int64_t>(genotypes.rows);
    const std::size_t n_samples = genotypes.cols;
    const std::size_t full_bytes = n_samples / 4;
#if defined(EHRFAST_OPENMP)
#pragma omp parallel for schedule(static)
#endif
    for (std::int64_t v = 0; v < n_variants; ++v) {
        const std::int8_t* in = genotypes.row(v);
        std::uint8_t* out = packed.row(v);
        for (std::size_t b = 0; b < full_bytes; ++b) {
            const std::int8_t* g = in + 4 * b;
            out[b] = static_cast<std::uint8_t>(kCodeOfCount[g[0] + 1] | (kCodeOfCount[g[1] + 1] << 2) |
                                               (kCodeOfCount[g[2] + 1] << 4) |
                                               (kCodeOfCount[g[3] + 1] << 6));
        }
        if (full_bytes < packed.cols) {  // tail: unused bit pairs stay 0, as plink writes them
            std::uint8_t last = 0;
            for (std::size_t s = 4 * full_bytes, k = 0; s < n_samples; ++s, ++k)
                last |= static_cast<std::uint8_t>(kCodeOfCount[in[s] + 1] << (2 * k));
            out[full_bytes] = last;
        }
    }
}

void unpack(MatrixView<const std::uint8_t> packed, MatrixView<std::int8_t> genotypes) {
    const std::int64_t n_variants = static_cast<std::int64_t>(genotypes.rows);
    const std::size_t n_samples = genotypes.cols;
    const std::size_t full_bytes = n_samples / 4;
#if defined(EHRFAST_OPENMP)
#pragma omp parallel for schedule(static)
#endif
    for (std::int64_t v = 0; v < n_variants; ++v) {
        const std::uint8_t* in = packed.row(v);
        std::int8_t* out = genotypes.row(v);
        for (std::size_t b = 0; b < full_bytes; ++b) {
            const auto& four = kUnpack.values[in[b]];
            out[4 * b] = four[0];
            out[4 * b + 1] = four[1];
            out[4 * b + 2] = four[2];
            out[4 * b + 3] = four[3];
        }
        for (std::size_t s = 4 * full_bytes, k = 0; s < n_samples; ++s, ++k)
            out[s] = kUnpack.values[in[full_bytes]][k];
    }
}

}  // namespace ehrfast::bed
