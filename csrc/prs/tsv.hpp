// Tab-separated score-file bodies parsed in one parallel pass: numeric columns straight into
// one column-major float64 matrix, text columns into Arrow string buffers (int32 offsets +
// bytes), so Python wraps them without a copy.
//
// This is a fast path for clean files only. Whatever pyarrow's CSV reader would treat in a
// way of its own — a blank line inside the body, '\r', a row with the wrong number of fields,
// a weight that is not a plain finite decimal, non-ASCII text — makes parse_tsv decline
// (`declined_row` set) and the caller reads the file with pyarrow, whose errors name the line.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace ehrfast::prs {

struct TextColumn {
    std::vector<std::int32_t> offsets;  // [n_rows + 1] into bytes
    std::vector<std::uint8_t> bytes;
};

struct ParsedTsv {
    std::int64_t n_rows = 0;
    std::unique_ptr<double[]> numbers;  // [n_numeric columns][n_rows]: column j at j * n_rows (not zeroed)
    std::vector<TextColumn> text;       // one per text column, in column order
    std::int64_t declined_row = -1;  // 0-based body row the fast path gave up on, -1 when parsed
};

// Parses body[0, size) — rows of `is_numeric.size()` tab-separated fields, each row ended by
// '\n' (the last one may not be) — with up to `n_threads` threads.
ParsedTsv parse_tsv(const char* body, std::size_t size, const std::vector<std::uint8_t>& is_numeric, int n_threads);

}  // namespace ehrfast::prs
