// MEDS shard columns (Arrow buffers) -> the flat arrays the tokenizer works on.
//
// Arrow keeps nulls in a validity bitmap beside the values; the tokenizer wants one plain
// array with a fill value in the null slots (kStaticTime for a null time, NaN for a null
// numeric_value). These helpers do that in one pass, reading the Arrow buffers in place,
// and find each subject's rows while checking the MEDS sort order in the same pass.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ehrfast::tokenizer {

// out[i] = validity bit (bit_offset + i) set ? Out(values[i]) : fill. `validity` may be null
// (no nulls). Arrow bitmaps are least-significant bit first.
template <typename In, typename Out>
void fill_nulls(const In* values, const std::uint8_t* validity, std::int64_t bit_offset, std::size_t n, Out fill, Out* out);

struct SubjectSegments {
    std::vector<std::int64_t> seg;          // [n_subjects + 1] row boundaries of each subject
    std::vector<std::int64_t> subject_ids;  // [n_subjects]
    std::int64_t first_bad_row = -1;        // first row out of (subject_id, time) order, or -1
    bool bad_subject = false;               // that row's subject_id decreases (else its time does)
};

// A run of consecutive subject_id values (one Arrow chunk, read in place).
struct IdChunk {
    const std::int64_t* ids;
    std::size_t n;
};

// Rows, given as consecutive chunks of subject_id and one time array, must be sorted by
// subject_id, then time, static rows (time == kStaticTime, the smallest int64) first. Stops
// at the first row out of order.
SubjectSegments subject_segments(const std::vector<IdChunk>& subject_id, const std::int64_t* time);

}  // namespace ehrfast::tokenizer
