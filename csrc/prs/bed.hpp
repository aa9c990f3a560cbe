// PLINK 1 .bed 2-bit genotype packing (SNP-major).
//
// Genotypes are allele counts of A1 (the .bim's 5th column): 0, 1, 2, or -1 for a missing
// call. On disk each call takes 2 bits, four samples per byte, lowest bits first:
//   A1 count 2 -> 0b00, missing -> 0b01, 1 -> 0b10, 0 -> 0b11
// and every variant starts on a fresh byte (ceil(n_samples / 4) bytes per variant).
#pragma once

#include <cstddef>
#include <cstdint>

namespace ehrfast::bed {

// Bytes one variant takes in a SNP-major .bed.
constexpr std::size_t bytes_per_variant(std::size_t n_samples) { return (n_samples + 3) / 4; }

// Row-major 2-D view over a buffer we do not own (std::span-style, C++17).
template <typename T>
struct MatrixView {
    T* data;
    std::size_t rows;
    std::size_t cols;
    T* row(std::size_t r) const { return data + r * cols; }
};

// Index (row-major) of the first value outside {-1, 0, 1, 2}, or -1 if all are valid.
std::int64_t first_invalid_genotype(MatrixView<const std::int8_t> genotypes);

// Packs [n_variants, n_samples] A1 counts into [n_variants, bytes_per_variant] bytes.
// Preconditions (checked by the binding): all values valid, out shaped correctly.
void pack(MatrixView<const std::int8_t> genotypes, MatrixView<std::uint8_t> packed);

// Unpacks [n_variants, bytes_per_variant] bytes into [n_variants, n_samples] A1 counts.
void unpack(MatrixView<const std::uint8_t> packed, MatrixView<std::int8_t> genotypes);

}  // namespace ehrfast::bed
