#include "tokenizer/timeline.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>

#include <fcntl.h>
#include <unistd.h>

namespace ehrfast::tokenizer {
namespace {

// Appends one subject's timeline to a block.
class Emitter {
  public:
    Emitter(const Rows& rows, const CodeTable& table, const Rules& rules, TokenBlock& block, GapsByBin* gaps)
        : rows_(rows), table_(table), rules_(rules), block_(block), gaps_(gaps), start_(block.size), n_(block.size) {
        refresh();
    }

    SubjectSummary run(std::size_t s) {
        const std::int64_t a = rows_.seg[s], b = rows_.seg[s + 1];
        SubjectSummary out;
        std::int64_t t0 = kStaticTime;  // time of the first emitting timed row
        std::int64_t last_timed = kStaticTime;
        for (std::int64_t r = a; r < b; ++r) {
            const std::int64_t t = rows_.time[r];
            if (t == kStaticTime) continue;
            last_timed = t;
            if (rows_.entry(r) == kBirth) {
                if (out.birth == kStaticTime) out.birth = t;
            } else if (rows_.entry(r) >= 0 && t0 == kStaticTime) {
                t0 = t;
            }
        }
        if (t0 == kStaticTime) t0 = last_timed != kStaticTime ? last_timed : (out.birth != kStaticTime ? out.birth : 0);

        for (std::int64_t r = a; r < b && rows_.time[r] == kStaticTime; ++r)
            if (rows_.entry(r) >= 0) emit_entry(r, t0);
        if (rules_.age_tokens && out.birth != kStaticTime) emit_age(t0, out.birth);
        out.static_length = static_cast<std::int32_t>(n_ - start_);

        std::int64_t prev = kStaticTime;
        for (std::int64_t r = a; r < b; ++r) {
            const std::int64_t t = rows_.time[r];
            if (t == kStaticTime || rows_.entry(r) < 0) continue;
            if (prev != kStaticTime) emit_interval(t - prev, t);
            emit_entry(r, t);
            prev = t;
        }
        if (rules_.timeline_end >= 0) {
            room(1);
            put(rules_.timeline_end, prev != kStaticTime ? prev : t0);
        }
        block_.size = n_;
        out.n_tokens = static_cast<std::int64_t>(n_ - start_);
        out.n_intervals = n_intervals_;
        return out;
    }

  private:
    // Writes go through raw pointers into the block's buffers; room(k) before every group of
    // at most k puts keeps them in bounds (one check per row instead of one per token).
    void refresh() {
        tokens_ = block_.tokens.data();
        times_ = block_.times.data();
        capacity_ = block_.tokens.size();
    }

    void room(std::size_t k) {
        if (n_ + k <= capacity_) return;
        block_.size = n_;
        block_.reserve_more(k);
        refresh();
    }

    void put(std::int32_t token, std::int64_t time) {
        tokens_[n_] = token;
        times_[n_] = time;
        ++n_;
    }

    void emit_entry(std::int64_t r, std::int64_t t) {
        const std::int32_t e = rows_.entry(r);
        room(static_cast<std::size_t>(table_.pre_off[e + 1] - table_.pre_off[e] + 1 + table_.post_off[e + 1] - table_.post_off[e]));
        for (std::int64_t k = table_.pre_off[e]; k < table_.pre_off[e + 1]; ++k) put(table_.pre[k], t);
        const float v = rows_.value[r];
        const std::int64_t c0 = table_.cut_off[e], c1 = table_.cut_off[e + 1];
        if (c1 > c0 && !std::isnan(v)) {
            // bin = 1 + number of cut points strictly below the value; counted without
            // branches (at most a few cut points, and values land unpredictably among them)
            const double x = v;
            std::int32_t below = 0;
            for (std::int64_t k = c0; k < c1; ++k) below += table_.cuts[k] < x;
            put(rules_.q_first + below, t);
        }
        for (std::int64_t k = table_.post_off[e]; k < table_.post_off[e + 1]; ++k) put(table_.post[k], t);
    }

    void emit_interval(std::int64_t gap, std::int64_t t) {
        const std::int64_t* lo = rules_.interval_lower;
        const std::size_t n = rules_.n_intervals;
        if (n == 0 || gap < lo[0]) return;
        std::size_t at_or_below = 0;  // edges <= gap, counted without branches (few edges, unpredictable gaps)
        for (std::size_t i = 0; i < n; ++i) at_or_below += lo[i] <= gap;
        const std::size_t bin = at_or_below - 1;
        // the top bin repeats: round(gap / lower edge), halves rounded up
        const std::int64_t count = bin + 1 == n ? (2 * gap + lo[bin]) / (2 * lo[bin]) : 1;
        const double share = static_cast<double>(gap) / static_cast<double>(count);
        room(static_cast<std::size_t>(count));
        for (std::int64_t k = 0; k < count; ++k) {
            put(rules_.interval_token[bin], t);
            if (gaps_) (*gaps_)[bin].push_back(share);
            ++n_intervals_;
        }
    }

    // The two age rules of ehrfast/tokenize/reference.py::age_digits_at (keep them in step).
    void emit_age(std::int64_t t0, std::int64_t birth) {
        int tens = 0, units = 0;
        if (rules_.age_rounding == kAgeEthos) {
            const std::int64_t gap = t0 - birth;  // floor division, as Python's //
            const double days = static_cast<double>(gap >= 0 ? gap / kMicrosPerDay : -((-gap + kMicrosPerDay - 1) / kMicrosPerDay));
            const double age = std::clamp(days / 365.25, 0.0, 99.0);
            tens = static_cast<int>(std::floor(age / 10.0));
            units = static_cast<int>(std::nearbyint(std::fmod(age, 10.0)));  // round half to even, as Python's round()
            if (units == 10) {
                tens += 1;
                units = 0;
            }
        } else {
            const double age = std::clamp(static_cast<double>(t0 - birth) / kMicrosPerYear, 0.0, 99.0);
            tens = std::min(9, static_cast<int>(std::floor(age / 10.0)));
            units = std::min(9, static_cast<int>(std::floor(std::fmod(age, 10.0) + 0.5)));
        }
        room(2);
        put(rules_.q_first + std::min(tens, rules_.n_quantiles - 1), t0);
        put(rules_.q_first + std::min(units, rules_.n_quantiles - 1), t0);
    }

    const Rows& rows_;
    const CodeTable& table_;
    const Rules& rules_;
    TokenBlock& block_;
    GapsByBin* gaps_;
    const std::size_t start_;  // block size before this subject
    std::size_t n_;            // block size so far
    std::int32_t* tokens_ = nullptr;
    std::int64_t* times_ = nullptr;
    std::size_t capacity_ = 0;
    std::int64_t n_intervals_ = 0;
};

}  // namespace

SubjectSummary append_subject(const Rows& rows, const CodeTable& table, const Rules& rules, std::size_t s, TokenBlock& block,
                              GapsByBin* gaps) {
    return Emitter(rows, table, rules, block, gaps).run(s);
}

void TokenBlock::reserve_more(std::size_t k) {
    if (size + k <= tokens.size()) return;
    const std::size_t capacity = std::max<std::size_t>({size + k, 2 * tokens.size(), 1024});
    tokens.resize(capacity);
    times.resize(capacity);
}

namespace {

// Writes all bytes at the file's current offset; returns 0 or the errno.
int write_all(int fd, const void* data, std::size_t bytes) {
    const char* p = static_cast<const char*>(data);
    while (bytes > 0) {
        const ssize_t n = ::write(fd, p, bytes);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        p += n;
        bytes -= static_cast<std::size_t>(n);
    }
    return 0;
}

// Streams output through the page cache instead of filling it: starts writeback of the bytes
// just written [start, end) and evicts what fell more than a window behind — by then it is
// written back. Without this, GBs of output take fresh pages that cost more than the writing
// itself on virtual machines, and evict the page cache other work relies on.
void evict_behind(int fd, off_t start, off_t end) {
#if defined(__linux__)
    constexpr off_t kWindow = off_t{64} << 20;
    sync_file_range(fd, start, end - start, SYNC_FILE_RANGE_WRITE);
    if (end > kWindow) posix_fadvise(fd, std::max<off_t>(0, start - kWindow), end - kWindow - std::max<off_t>(0, start - kWindow), POSIX_FADV_DONTNEED);
#else
    (void)fd, (void)start, (void)end;
#endif
}

int write_stream(int fd, const void* data, std::size_t bytes, bool evict) {
    const off_t start = evict ? lseek(fd, 0, SEEK_CUR) : 0;
    const int err = write_all(fd, data, bytes);
    if (err == 0 && evict && start >= 0) evict_behind(fd, start, start + static_cast<off_t>(bytes));
    return err;
}

}  // namespace

int write_block(const TokenBlock& block, int token_fd, int time_fd, bool evict_written) {
    const int e = write_stream(token_fd, block.tokens.data(), block.size * sizeof(std::int32_t), evict_written);
    return e != 0 ? e : write_stream(time_fd, block.times.data(), block.size * sizeof(std::int64_t), evict_written);
}

std::int64_t first_bad_code(const std::int32_t* code, std::size_t n, std::size_t n_codes) {
    // a branch-free pass (vectorized) over the usual all-valid input; search only on failure
    std::uint32_t largest = 0;
    for (std::size_t r = 0; r < n; ++r) largest = std::max(largest, static_cast<std::uint32_t>(code[r]));  // negatives wrap high
    if (n == 0 || largest < n_codes) return -1;
    for (std::size_t r = 0; r < n; ++r)
        if (static_cast<std::uint32_t>(code[r]) >= n_codes) return static_cast<std::int64_t>(r);
    return -1;
}

}  // namespace ehrfast::tokenizer
