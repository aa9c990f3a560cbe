#include "prs/tsv.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <system_error>

namespace ehrfast::prs {
namespace {

const char* find(const char* p, const char* end, char c) {
    const void* hit = std::memchr(p, c, static_cast<std::size_t>(end - p));
    return hit ? static_cast<const char*>(hit) : end;
}

// The start of the line after the one ending at `line_end` ('\n' or the end of the body).
const char* next_line(const char* line_end, const char* end) { return line_end == end ? end : line_end + 1; }

// Chunk k is body[starts[k], starts[k + 1]), each starting at a line start.
std::vector<std::size_t> chunk_starts(const char* body, std::size_t size, int n_chunks) {
    std::vector<std::size_t> starts{0};
    for (int k = 1; k < n_chunks; ++k) {
        const std::size_t at = std::max(starts.back(), size / static_cast<std::size_t>(n_chunks) * static_cast<std::size_t>(k));
        const char* nl = find(body + at, body + size, '\n');
        starts.push_back(nl == body + size ? size : static_cast<std::size_t>(nl - body) + 1);
    }
    starts.push_back(size);
    return starts;
}

std::int64_t count_lines(const char* p, const char* end) {
    std::int64_t n = 0;
    for (; p < end; ++n) p = next_line(find(p, end, '\n'), end);
    return n;
}

// A plain finite decimal filling the whole field, as pyarrow reads it (both round correctly).
bool parse_number(const char* f, const char* e, double& out) {
    if (f == e) return false;  // empty: pyarrow reads null
    const auto [ptr, ec] = std::from_chars(f, e, out);
    return ec == std::errc() && ptr == e && std::isfinite(out);
}

bool plain_text(const char* f, const char* e) {
    for (; f < e; ++f)
        if (static_cast<unsigned char>(*f) >= 0x80 || *f == '\r') return false;  // non-ASCII: pyarrow checks UTF-8
    return true;
}

struct ChunkText {
    std::vector<std::vector<std::int32_t>> lengths;  // per text column
    std::vector<std::vector<std::uint8_t>> bytes;
};

// Parses the rows of one chunk (its first row is body row `row0`); returns the first row it
// declined, or -1.
std::int64_t parse_chunk(const char* p, const char* end, std::int64_t row0, std::int64_t n_rows, const std::vector<std::uint8_t>& is_numeric,
                         const std::vector<std::size_t>& slot, double* numbers, ChunkText& text) {
    const std::size_t n_cols = is_numeric.size();
    for (std::int64_t row = row0; p < end; ++row) {
        const char* line_end = find(p, end, '\n');
        if (line_end == p) return row;  // blank line: pyarrow skips it
        for (std::size_t j = 0; j < n_cols; ++j) {
            const char* field_end = find(p, line_end, '\t');
            if ((field_end == line_end) != (j + 1 == n_cols)) return row;  // too few or too many fields
            if (is_numeric[j]) {
                double v;
                if (!parse_number(p, field_end, v)) return row;
                numbers[static_cast<std::int64_t>(slot[j]) * n_rows + row] = v;
            } else {
                if (!plain_text(p, field_end)) return row;
                text.lengths[slot[j]].push_back(static_cast<std::int32_t>(field_end - p));
                text.bytes[slot[j]].insert(text.bytes[slot[j]].end(), p, field_end);
            }
            if (j + 1 < n_cols) p = field_end + 1;  // past the tab
        }
        p = next_line(line_end, end);
    }
    return -1;
}

}  // namespace

ParsedTsv parse_tsv(const char* body, std::size_t size, const std::vector<std::uint8_t>& is_numeric, int n_threads) {
    ParsedTsv out;
    const std::size_t n_cols = is_numeric.size();
    std::vector<std::size_t> slot(n_cols);  // index among the numeric or among the text columns
    std::size_t n_numeric = 0, n_text = 0;
    for (std::size_t j = 0; j < n_cols; ++j) slot[j] = is_numeric[j] ? n_numeric++ : n_text++;
    // about 1 MiB per chunk, so small files stay on one thread
    const int n_chunks = static_cast<int>(std::clamp<std::size_t>(size >> 20, 1, static_cast<std::size_t>(std::max(n_threads, 1))));
    const std::vector<std::size_t> starts = chunk_starts(body, size, n_chunks);
    std::vector<std::int64_t> first_row(static_cast<std::size_t>(n_chunks) + 1, 0);
#if defined(EHRFAST_OPENMP)
#pragma omp parallel for num_threads(n_chunks) schedule(static, 1)
#endif
    for (int k = 0; k < n_chunks; ++k) first_row[k + 1] = count_lines(body + starts[k], body + starts[k + 1]);
    for (int k = 0; k < n_chunks; ++k) first_row[k + 1] += first_row[k];
    out.n_rows = first_row[n_chunks];
    out.numbers.reset(new double[n_numeric * static_cast<std::size_t>(out.n_rows)]);  // every slot is written or the parse declines
    std::vector<ChunkText> text(static_cast<std::size_t>(n_chunks), ChunkText{std::vector<std::vector<std::int32_t>>(n_text),
                                                                             std::vector<std::vector<std::uint8_t>>(n_text)});
    std::vector<std::int64_t> declined(static_cast<std::size_t>(n_chunks), -1);
#if defined(EHRFAST_OPENMP)
#pragma omp parallel for num_threads(n_chunks) schedule(static, 1)
#endif
    for (int k = 0; k < n_chunks; ++k)
        declined[k] = parse_chunk(body + starts[k], body + starts[k + 1], first_row[k], out.n_rows, is_numeric, slot, out.numbers.get(), text[k]);
    for (std::int64_t d : declined)
        if (d >= 0) {
            out.declined_row = d;
            return out;
        }
    out.text.resize(n_text);
    for (std::size_t c = 0; c < n_text; ++c) {
        TextColumn& col = out.text[c];
        col.offsets.reserve(static_cast<std::size_t>(out.n_rows) + 1);
        col.offsets.push_back(0);
        std::int64_t total = 0;
        for (const ChunkText& t : text) total += static_cast<std::int64_t>(t.bytes[c].size());
        if (total > std::numeric_limits<std::int32_t>::max()) {  // beyond Arrow's string offsets: let pyarrow chunk it
            out.declined_row = 0;
            return out;
        }
        col.bytes.reserve(static_cast<std::size_t>(total));
        for (ChunkText& t : text) {
            for (std::int32_t len : t.lengths[c]) col.offsets.push_back(col.offsets.back() + len);
            col.bytes.insert(col.bytes.end(), t.bytes[c].begin(), t.bytes[c].end());
            std::vector<std::uint8_t>().swap(t.bytes[c]);
        }
    }
    return out;
}

}  // namespace ehrfast::prs
