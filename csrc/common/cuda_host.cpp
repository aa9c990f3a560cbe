// The CPU execution of CUDA kernels for ehrfast._cuda_host (see cuda_host.hpp): blocks one after
// another, a block's threads as fibers on the launching thread, one at a time in a fixed order,
// switching only at __syncthreads() and warp shuffles.
//
// A block of 256 threads switches tens of thousands of times per launch, so the switch is a few
// instructions on x86-64 (the callee-saved registers and the stack pointer, as a function call
// would preserve them); elsewhere it is ucontext's (which also saves the signal mask: a system
// call per switch, ~30x slower).
#include "common/cuda_host.hpp"

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#include <cstdlib>
#include <memory>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define EHRFAST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EHRFAST_ASAN 1
#endif
#endif
#if defined(EHRFAST_ASAN)
#include <sanitizer/common_interface_defs.h>
#endif

thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace ehrfast::cuda_host {
namespace {

#if defined(EHRFAST_ASAN)
constexpr std::size_t kStackBytes = 512 * 1024;  // AddressSanitizer's redzones make frames larger
#else
constexpr std::size_t kStackBytes = 128 * 1024;
#endif
constexpr std::size_t kMaxDynamicShared = 232448;  // an H100's opt-in shared memory per block
constexpr unsigned kFullWarp = 0xffffffffu;

enum class State { ready, at_barrier, at_shuffle, done };

// A suspended execution: where to resume it.
#if defined(__x86_64__)
// ehrfast_switch_stack(save, to): pushes the callee-saved registers, stores the stack pointer in
// *save, loads `to` and pops the registers saved there: the other context resumes where it left.
extern "C" void ehrfast_switch_stack(void** save, void* to);
asm(R"(
    .text
    .globl ehrfast_switch_stack
    .hidden ehrfast_switch_stack
    .type ehrfast_switch_stack, @function
ehrfast_switch_stack:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size ehrfast_switch_stack, .-ehrfast_switch_stack
)");

struct Context {
    void* sp = nullptr;

    // A fresh context on [stack, stack + bytes) that starts in entry(), which must never return.
    void start(char* stack, std::size_t bytes, void (*entry)()) {
        auto top = reinterpret_cast<std::uintptr_t>(stack + bytes) & ~std::uintptr_t{15};
        auto* slot = reinterpret_cast<void**>(top);
        *--slot = nullptr;                              // entry's return address: it never returns
        *--slot = reinterpret_cast<void*>(entry);       // what the switch's `ret` jumps to
        for (int r = 0; r < 6; ++r) *--slot = nullptr;  // the six callee-saved registers it pops
        sp = slot;
    }
};

void switch_context(Context& from, Context& to) { ehrfast_switch_stack(&from.sp, to.sp); }
#else
struct Context {
    ucontext_t uc{};

    void start(char* stack, std::size_t bytes, void (*entry)()) {
        getcontext(&uc);
        uc.uc_stack.ss_sp = stack;
        uc.uc_stack.ss_size = bytes;
        uc.uc_link = nullptr;
        makecontext(&uc, entry, 0);
    }
};

void switch_context(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
#endif

struct Fiber {
    Context context;
    char* stack = nullptr;  // kStackBytes, owned by the launch (reused by every block)
    State state = State::ready;
    const char* site_file = nullptr;  // where it waits
    int site_line = 0;
    dim3 index;
    void* asan_fake_stack = nullptr;
};

// One warp's shuffle in progress: which lanes have arrived, at which call, with what values.
struct WarpExchange {
    unsigned arrived = 0, mask = 0;
    Shuffle kind = Shuffle::down;
    int delta = 0;
    const char* file = nullptr;
    int line = 0;
    std::uint64_t value[32] = {};
    std::uint64_t result[32] = {};
};

std::string where(const char* file, int line) {
    const std::string f = file ? file : "?";
    return f.substr(f.find_last_of('/') + 1) + ":" + std::to_string(line);
}

// The running block: its fibers, the order they run in, and what they wait for.
class Block {
  public:
    Block(unsigned n_threads, dim3 block, std::vector<std::unique_ptr<char[]>>& stacks, std::vector<char>& shared,
          const std::function<void()>& body, bool reverse)
        : fibers_(n_threads), warps_((n_threads + 31) / 32), shared_(shared), body_(body), reverse_(reverse) {
        for (unsigned t = 0; t < n_threads; ++t) {
            fibers_[t].index = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
            fibers_[t].stack = stacks[t].get();
        }
    }

    // Runs every fiber to completion; returns "" or what went wrong.
    std::string run() {
        for (Fiber& f : fibers_) f.context.start(f.stack, kStackBytes, &Block::entry);
        int last = -1;  // the thread that ran last
        while (error_.empty()) {
            const int next = pick(last);
            if (next < 0) {
                if (!release_barrier()) break;
                last = -1;
                continue;
            }
            resume(static_cast<unsigned>(next));
            last = next;
        }
        return error_;
    }

    void* shared() { return shared_.data(); }

    void barrier(const char* file, int line) {
        Fiber& me = fibers_[current_];
        if (barrier_file_ == nullptr) {
            barrier_file_ = file, barrier_line_ = line;  // the first to arrive names the barrier
        } else if (barrier_line_ != line || std::strcmp(barrier_file_, file) != 0) {
            fail("__syncthreads() divergence: threads wait at " + where(barrier_file_, barrier_line_) + " and at " + where(file, line));
        }
        me.state = State::at_barrier;
        me.site_file = file;
        me.site_line = line;
        suspend();
    }

    std::uint64_t shuffle(unsigned mask, std::uint64_t bits, int delta, Shuffle kind, const char* file, int line) {
        const unsigned lane = current_ % 32, warp = current_ / 32;
        const unsigned lanes_present = fibers_.size() - warp * 32 >= 32 ? kFullWarp : (1u << (fibers_.size() - warp * 32)) - 1;
        if (!(mask >> lane & 1u))
            fail("shuffle at " + where(file, line) + ": lane " + std::to_string(lane) + " calls it with a mask that excludes it");
        if (mask & ~lanes_present) fail("shuffle at " + where(file, line) + ": its mask names lanes the block does not have");
        WarpExchange& x = warps_[warp];
        if (x.arrived == 0) {
            x.mask = mask, x.kind = kind, x.delta = delta, x.file = file, x.line = line;
        } else if (x.mask != mask || x.kind != kind || x.delta != delta || x.line != line || std::strcmp(x.file, file) != 0) {
            fail("lanes of warp " + std::to_string(warp) + " are at different shuffles (" + where(x.file, x.line) + " and " +
                 where(file, line) + ") or use different masks or offsets");
        }
        x.value[lane] = bits;
        x.arrived |= 1u << lane;
        if (x.arrived == mask) {
            exchange(x, warp);
            return x.result[lane];
        }
        Fiber& me = fibers_[current_];
        me.state = State::at_shuffle;
        me.site_file = file;
        me.site_line = line;
        suspend();
        return x.result[lane];
    }

    [[noreturn]] void fail(const std::string& message) {
        if (error_.empty()) error_ = message + " (block " + std::to_string(blockIdx.x) + ", thread " + std::to_string(current_) + ")";
        throw KernelError(error_);
    }

    static Block* current;

  private:
    [[noreturn]] static void entry() {
        Block& b = *current;
        b.finish_switch_in();
        try {
            b.body_();
        } catch (const KernelError&) {
            // already recorded; the block stops
        } catch (const std::exception& e) {
            if (b.error_.empty()) b.error_ = std::string("exception in the kernel: ") + e.what();
        }
        b.fibers_[b.current_].state = State::done;
        b.start_switch_out(/*exiting=*/true);
        Context finished;  // never resumed
        switch_context(finished, b.scheduler_);
        std::abort();  // unreachable: a finished fiber is not resumed
    }

    // The next thread to run, or -1 when none can. Greedy by warp: the lanes of the warp that ran
    // last go on until the whole warp waits at a __syncthreads() (or has returned), and only then
    // does the next warp start — so warps drift as far apart as a barrier allows, and a barrier
    // that is missing between two warps' reads and writes of shared memory gives a wrong answer.
    // Forward: warps and lanes in ascending order; reverse: descending.
    int pick(int last) const {
        const int n = static_cast<int>(fibers_.size()), step = reverse_ ? -1 : 1;
        if (last >= 0) {
            const int base = last / 32 * 32, lanes = std::min(32, n - base);
            for (int k = 1; k <= lanes; ++k) {
                const int t = base + ((last - base + step * k) % lanes + lanes) % lanes;
                if (fibers_[t].state == State::ready) return t;
            }
        }
        const int start = last >= 0 ? last : (reverse_ ? 0 : n - 1);
        for (int k = 1; k <= n; ++k) {
            const int t = ((start + step * k) % n + n) % n;
            if (fibers_[t].state == State::ready) return t;
        }
        return -1;
    }

    // No fiber can run: every one has finished, or they wait at one barrier (release it), or
    // the block is stuck (an error). Returns whether anything can run now.
    bool release_barrier() {
        unsigned waiting = 0, done = 0, shuffling = 0;
        const Fiber* at = nullptr;
        for (const Fiber& f : fibers_) {
            waiting += f.state == State::at_barrier;
            done += f.state == State::done;
            shuffling += f.state == State::at_shuffle;
            if (f.state == State::at_barrier) at = &f;
        }
        if (done == fibers_.size()) return false;
        if (shuffling) {
            for (const Fiber& f : fibers_)
                if (f.state == State::at_shuffle) {
                    error_ = "shuffle at " + where(f.site_file, f.site_line) + " never completes: lanes of its mask " +
                             (done ? "returned" : "wait at a __syncthreads()") + " instead";
                    break;
                }
            return false;
        }
        if (done) {
            error_ = "__syncthreads() at " + where(at->site_file, at->site_line) + " is not reached by every thread of the block: " +
                     std::to_string(done) + " of " + std::to_string(fibers_.size()) + " returned without it";
            return false;
        }
        for (Fiber& f : fibers_) f.state = State::ready;
        barrier_file_ = nullptr;
        return waiting > 0;
    }

    void exchange(WarpExchange& x, unsigned warp) {
        for (unsigned lane = 0; lane < 32; ++lane) {
            if (!(x.mask >> lane & 1u)) continue;
            long source = lane;
            switch (x.kind) {
                case Shuffle::down: source = static_cast<long>(lane) + x.delta; break;
                case Shuffle::up: source = static_cast<long>(lane) - x.delta; break;
                case Shuffle::xor_lanes: source = static_cast<long>(lane ^ static_cast<unsigned>(x.delta)); break;
                case Shuffle::index: source = x.delta; break;
            }
            if (source < 0 || source >= 32) {  // outside the warp: the caller's own value, as CUDA returns it
                x.result[lane] = x.value[lane];
                continue;
            }
            if (!(x.mask >> source & 1u)) {
                error_ = "shuffle at " + where(x.file, x.line) + ": lane " + std::to_string(lane) + " of warp " + std::to_string(warp) +
                         " reads lane " + std::to_string(source) + ", which is outside the mask";
                throw KernelError(error_);
            }
            x.result[lane] = x.value[source];
        }
        for (unsigned lane = 0; lane < 32; ++lane)
            if (x.mask >> lane & 1u) {
                Fiber& f = fibers_[warp * 32 + lane];
                if (f.state == State::at_shuffle) f.state = State::ready;
            }
        x.arrived = 0;
    }

    void resume(unsigned t) {
        current_ = t;
        threadIdx = fibers_[t].index;
#if defined(EHRFAST_ASAN)
        __sanitizer_start_switch_fiber(&scheduler_fake_stack_, fibers_[t].stack, kStackBytes);
#endif
        switch_context(scheduler_, fibers_[t].context);
#if defined(EHRFAST_ASAN)
        __sanitizer_finish_switch_fiber(scheduler_fake_stack_, nullptr, nullptr);
#endif
    }

    void suspend() {
        start_switch_out(false);
        switch_context(fibers_[current_].context, scheduler_);
        finish_switch_in();
        if (!error_.empty()) throw KernelError(error_);
    }

    void start_switch_out(bool exiting) {
#if defined(EHRFAST_ASAN)
        __sanitizer_start_switch_fiber(exiting ? nullptr : &fibers_[current_].asan_fake_stack, scheduler_stack_bottom_, scheduler_stack_size_);
#else
        (void)exiting;
#endif
    }

    void finish_switch_in() {
#if defined(EHRFAST_ASAN)
        __sanitizer_finish_switch_fiber(fibers_[current_].asan_fake_stack, &scheduler_stack_bottom_, &scheduler_stack_size_);
#endif
    }

    std::vector<Fiber> fibers_;
    std::vector<WarpExchange> warps_;
    std::vector<char>& shared_;
    const std::function<void()>& body_;
    bool reverse_;
    Context scheduler_;
    unsigned current_ = 0;
    const char* barrier_file_ = nullptr;  // the __syncthreads() threads wait at (nullptr: none)
    int barrier_line_ = 0;
    std::string error_;
#if defined(EHRFAST_ASAN)
    void* scheduler_fake_stack_ = nullptr;
    const void* scheduler_stack_bottom_ = nullptr;
    std::size_t scheduler_stack_size_ = 0;
#endif
};

Block* Block::current = nullptr;
thread_local std::string last_error;    // of the last launch, until cudaGetLastError reads it
thread_local std::string last_message;  // what cudaGetErrorString says about it
thread_local bool reverse_schedule = false;

Block& running_block(const char* what) {
    if (!Block::current) throw std::logic_error(std::string(what) + " called outside a kernel launch");
    return *Block::current;
}

}  // namespace

void syncthreads(const char* file, int line) { running_block("__syncthreads()").barrier(file, line); }

std::uint64_t shuffle_bits(unsigned mask, std::uint64_t bits, int delta, Shuffle kind, const char* file, int line) {
    return running_block("a warp shuffle").shuffle(mask, bits, delta, kind, file, line);
}

void* dynamic_shared() { return running_block("dynamic shared memory").shared(); }

void set_schedule(bool reverse) { reverse_schedule = reverse; }

std::size_t max_dynamic_shared() { return kMaxDynamicShared; }

void launch(dim3 grid, dim3 block, std::size_t shared_bytes, const std::function<void()>& body) {
    const unsigned n_threads = block.x * block.y * block.z;
    if (n_threads == 0 || n_threads > 1024 || shared_bytes > kMaxDynamicShared) {
        last_error = "invalid launch configuration: " + std::to_string(n_threads) + " threads, " + std::to_string(shared_bytes) +
                     " bytes of dynamic shared memory";
        return;
    }
    if (Block::current) throw std::logic_error("a kernel launch inside a kernel");
    std::vector<char> shared(std::max<std::size_t>(shared_bytes, 1));
    std::vector<std::unique_ptr<char[]>> stacks(n_threads);
    for (auto& stack : stacks) stack.reset(new char[kStackBytes]);  // not zeroed: untouched pages cost nothing
    blockDim = block;
    gridDim = grid;
    for (unsigned z = 0; z < grid.z; ++z)
        for (unsigned y = 0; y < grid.y; ++y)
            for (unsigned x = 0; x < grid.x; ++x) {
                std::fill(shared.begin(), shared.end(), static_cast<char>(0xff));  // NaN doubles: reading before writing shows
                blockIdx = dim3(x, y, z);
                Block b(n_threads, block, stacks, shared, body, reverse_schedule);
                Block::current = &b;
                const std::string error = b.run();
                Block::current = nullptr;
                if (!error.empty()) {
                    last_error = error;
                    return;
                }
            }
}

}  // namespace ehrfast::cuda_host

cudaError_t cudaGetLastError() {  // returns the last launch's error and resets it, as CUDA does
    using namespace ehrfast::cuda_host;
    if (last_error.empty()) return cudaSuccess;
    last_message = std::move(last_error);
    last_error.clear();
    return cudaErrorLaunchFailure;
}

const char* cudaGetErrorString(cudaError_t error) {
    switch (error) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument";
        case cudaErrorInvalidDevice: return "invalid device ordinal";
        case cudaErrorLaunchFailure: return ehrfast::cuda_host::last_message.c_str();
    }
    return "unknown error";
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attribute, int device) {
    if (device != 0) return cudaErrorInvalidDevice;
    if (attribute != cudaDevAttrMaxSharedMemoryPerBlockOptin) return cudaErrorInvalidValue;
    *value = static_cast<int>(ehrfast::cuda_host::max_dynamic_shared());
    return cudaSuccess;
}
