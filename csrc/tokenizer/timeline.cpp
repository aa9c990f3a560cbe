#include "tokenizer/timeline.hpp"

#include <algorithm>
#include <cmath>

namespace ehrfast::tokenizer {
namespace {

// Counts or writes tokens; one template so that both passes share the rules.
template <bool kWrite>
class Emitter {
  public:
    Emitter(const Rows& rows, const CodeTable& table, const Rules& rules, Sink sink)
        : rows_(rows), table_(table), rules_(rules), sink_(sink) {}

    SubjectSummary run(std::size_t s) {
        const std::int64_t a = rows_.seg[s], b = rows_.seg[s + 1];
        SubjectSummary out;
        std::int64_t t0 = kStaticTime;  // time of the first emitting timed row
        std::int64_t last_timed = kStaticTime;
        for (std::int64_t r = a; r < b; ++r) {
            const std::int64_t t = rows_.time[r];
            if (t == kStaticTime) continue;
            last_timed = t;
            if (rows_.entry[r] == kBirth) {
                if (out.birth == kStaticTime) out.birth = t;
            } else if (rows_.entry[r] >= 0 && t0 == kStaticTime) {
                t0 = t;
            }
        }
        if (t0 == kStaticTime) t0 = last_timed != kStaticTime ? last_timed : (out.birth != kStaticTime ? out.birth : 0);

        for (std::int64_t r = a; r < b && rows_.time[r] == kStaticTime; ++r)
            if (rows_.entry[r] >= 0) emit_entry(r, t0);
        if (rules_.age_tokens && out.birth != kStaticTime) emit_age(t0, out.birth);
        out.static_length = static_cast<std::int32_t>(n_);

        std::int64_t prev = kStaticTime;
        for (std::int64_t r = a; r < b; ++r) {
            const std::int64_t t = rows_.time[r];
            if (t == kStaticTime || rows_.entry[r] < 0) continue;
            if (prev != kStaticTime) emit_interval(t - prev, t);
            emit_entry(r, t);
            prev = t;
        }
        if (rules_.timeline_end >= 0) put(rules_.timeline_end, prev != kStaticTime ? prev : t0);
        out.n_tokens = n_;
        out.n_intervals = n_intervals_;
        return out;
    }

  private:
    void put(std::int32_t token, std::int64_t time) {
        if constexpr (kWrite) {
            if (n_ < sink_.capacity) {
                sink_.tokens[n_] = token;
                sink_.times[n_] = time;
            }
        }
        ++n_;
    }

    void emit_entry(std::int64_t r, std::int64_t t) {
        const std::int32_t e = rows_.entry[r];
        for (std::int64_t k = table_.pre_off[e]; k < table_.pre_off[e + 1]; ++k) put(table_.pre[k], t);
        const float v = rows_.value[r];
        const std::int64_t c0 = table_.cut_off[e], c1 = table_.cut_off[e + 1];
        if (c1 > c0 && !std::isnan(v)) {
            // bin = 1 + number of cut points strictly below the value
            const auto below = std::lower_bound(table_.cuts + c0, table_.cuts + c1, static_cast<double>(v)) - (table_.cuts + c0);
            put(rules_.q_first + static_cast<std::int32_t>(below), t);
        }
        for (std::int64_t k = table_.post_off[e]; k < table_.post_off[e + 1]; ++k) put(table_.post[k], t);
    }

    void emit_interval(std::int64_t gap, std::int64_t t) {
        const std::int64_t* lo = rules_.interval_lower;
        const std::size_t n = rules_.n_intervals;
        if (n == 0 || gap < lo[0]) return;
        const std::size_t bin = static_cast<std::size_t>(std::upper_bound(lo, lo + n, gap) - lo) - 1;
        // the top bin repeats: round(gap / lower edge), halves rounded up
        const std::int64_t count = bin + 1 == n ? (2 * gap + lo[bin]) / (2 * lo[bin]) : 1;
        const double share = static_cast<double>(gap) / static_cast<double>(count);
        for (std::int64_t k = 0; k < count; ++k) {
            put(rules_.interval_token[bin], t);
            if constexpr (kWrite) {
                if (sink_.interval_bin && n_intervals_ < sink_.interval_capacity) {
                    sink_.interval_bin[n_intervals_] = static_cast<std::int32_t>(bin);
                    sink_.interval_share[n_intervals_] = share;
                }
            }
            ++n_intervals_;
        }
    }

    void emit_age(std::int64_t t0, std::int64_t birth) {
        const double age = std::clamp(static_cast<double>(t0 - birth) / kMicrosPerYear, 0.0, 99.0);
        const int tens = std::min(9, static_cast<int>(std::floor(age / 10.0)));
        const int units = std::min(9, static_cast<int>(std::floor(std::fmod(age, 10.0) + 0.5)));
        put(rules_.q_first + std::min(tens, rules_.n_quantiles - 1), t0);
        put(rules_.q_first + std::min(units, rules_.n_quantiles - 1), t0);
    }

    const Rows& rows_;
    const CodeTable& table_;
    const Rules& rules_;
    Sink sink_;
    std::int64_t n_ = 0;
    std::int64_t n_intervals_ = 0;
};

}  // namespace

SubjectSummary measure_subject(const Rows& rows, const CodeTable& table, const Rules& rules, std::size_t s) {
    return Emitter<false>(rows, table, rules, Sink{}).run(s);
}

SubjectSummary write_subject(const Rows& rows, const CodeTable& table, const Rules& rules, std::size_t s, Sink sink) {
    return Emitter<true>(rows, table, rules, sink).run(s);
}

std::int64_t first_bad_entry(const Rows& rows, std::size_t n_rows, std::int64_t n_entries) {
    for (std::size_t r = 0; r < n_rows; ++r) {
        const std::int32_t e = rows.entry[r];
        if (e < kBirth || e >= n_entries) return static_cast<std::int64_t>(r);
    }
    return -1;
}

}  // namespace ehrfast::tokenizer
