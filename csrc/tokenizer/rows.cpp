#include "tokenizer/rows.hpp"

namespace ehrfast::tokenizer {

template <typename In, typename Out>
void fill_nulls(const In* values, const std::uint8_t* validity, std::int64_t bit_offset, std::size_t n, Out fill, Out* out) {
    const auto count = static_cast<std::int64_t>(n);
    if (validity == nullptr) {
#if defined(EHRFAST_OPENMP)
#pragma omp parallel for schedule(static) if (count > (1 << 20))
#endif
        for (std::int64_t i = 0; i < count; ++i) out[i] = static_cast<Out>(values[i]);
        return;
    }
#if defined(EHRFAST_OPENMP)
#pragma omp parallel for schedule(static) if (count > (1 << 20))
#endif
    for (std::int64_t i = 0; i < count; ++i) {
        const std::int64_t bit = bit_offset + i;
        const bool valid = (validity[bit >> 3] >> (bit & 7)) & 1;
        out[i] = valid ? static_cast<Out>(values[i]) : fill;
    }
}

template void fill_nulls<std::int64_t, std::int64_t>(const std::int64_t*, const std::uint8_t*, std::int64_t, std::size_t, std::int64_t,
                                                     std::int64_t*);
template void fill_nulls<float, float>(const float*, const std::uint8_t*, std::int64_t, std::size_t, float, float*);
template void fill_nulls<double, float>(const double*, const std::uint8_t*, std::int64_t, std::size_t, float, float*);

SubjectSegments subject_segments(const std::vector<IdChunk>& subject_id, const std::int64_t* time) {
    SubjectSegments out;
    std::int64_t row = 0;
    for (const IdChunk& chunk : subject_id) {
        for (std::size_t i = 0; i < chunk.n; ++i, ++row) {
            const std::int64_t id = chunk.ids[i];
            if (row == 0 || id > out.subject_ids.back()) {
                out.seg.push_back(row);
                out.subject_ids.push_back(id);
            } else if (id < out.subject_ids.back()) {
                out.first_bad_row = row;
                out.bad_subject = true;
                return out;
            } else if (time[row] < time[row - 1]) {
                // static rows hold the smallest int64, so "time never decreases" also puts them first
                out.first_bad_row = row;
                return out;
            }
        }
    }
    out.seg.push_back(row);
    return out;
}

}  // namespace ehrfast::tokenizer
