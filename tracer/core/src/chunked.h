// chunked.h - storage in fixed-size chunks that never move.
//
// ChunkedBuffer, the reorder buffer's records.
// A std::vector of records doubles as it grows: every doubling copies all the
// records so far and touches fresh pages for twice as many (buffer_all holds
// the whole stream: 80 B an event). Chunks never move: a push writes its
// record once, and the memory touched is what is held. clear() keeps the
// chunks for the next fill (the windowed flush refills two buffers in turn).
//
// Slab, the room the correlator lends each life for its steps: runs of slots
// taken one after the other, never given back one by one (all at once, with
// the slab, which the finished Report keeps), instead of a heap block a life.
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

namespace kextrace::corr {

template <class T, std::size_t kChunkBits = 12> class ChunkedBuffer {
    static_assert(std::is_trivially_copyable_v<T>);

  public:
    static constexpr std::size_t kChunk = std::size_t{1} << kChunkBits;

    std::size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }

    void push_back(const T& v) {
        if (cur_ == end_)
            next_chunk();
        *cur_++ = v;
        ++size_;
    }

    T& operator[](std::size_t i) { return chunks_[i >> kChunkBits][i & (kChunk - 1)]; }
    const T& operator[](std::size_t i) const { return chunks_[i >> kChunkBits][i & (kChunk - 1)]; }

    // Calls f on every element, in order.
    template <class F> void for_each(F&& f) const {
        for (std::size_t c = 0; c * kChunk < size_; ++c) {
            const std::size_t n = std::min(kChunk, size_ - c * kChunk);
            for (std::size_t i = 0; i < n; ++i)
                f(chunks_[c][i]);
        }
    }

    // Empty, its chunks kept for reuse.
    void clear() {
        size_ = 0;
        cur_ = end_ = nullptr;
    }
    void swap(ChunkedBuffer& o) noexcept {
        chunks_.swap(o.chunks_);
        std::swap(size_, o.size_);
        std::swap(cur_, o.cur_);
        std::swap(end_, o.end_);
    }

  private:
    // The current chunk full (size_ a multiple of kChunk): the next one, kept or new.
    void next_chunk() {
        const std::size_t c = size_ >> kChunkBits;
        if (c == chunks_.size())
            chunks_.push_back(std::make_unique_for_overwrite<T[]>(kChunk));
        cur_ = chunks_[c].get();
        end_ = cur_ + kChunk;
    }

    std::vector<std::unique_ptr<T[]>> chunks_;
    std::size_t size_ = 0;
    T* cur_ = nullptr; // where the next push goes, in the last chunk
    T* end_ = nullptr;
};

template <class T, std::size_t kChunk = 4096> class Slab {
    static_assert(std::is_trivially_copyable_v<T>);

  public:
    // n contiguous uninitialised slots (n <= kChunk).
    T* take(std::size_t n) {
        if (chunks_.empty() || used_ + n > kChunk) {
            chunks_.push_back(std::make_unique_for_overwrite<T[]>(kChunk));
            used_ = 0;
        }
        T* p = chunks_.back().get() + used_;
        used_ += n;
        return p;
    }

  private:
    std::vector<std::unique_ptr<T[]>> chunks_;
    std::size_t used_ = 0;
};

// Room for n elements in v; a block of many MiB (a large flush's keys, the
// lives of a buffered run) asks the kernel for 2 MiB pages (a madvise:
// transparent huge pages on request), before anything touches it. Faulting
// fresh memory in 4 KiB pages was most of a 10^7-event flush's time on the
// bench host (bench/README.md); elsewhere the advice is ignored.
template <class T> void reserve_huge(std::vector<T>& v, std::size_t n) {
    if (n <= v.capacity())
        return;
    v.reserve(n);
    constexpr std::uintptr_t kHuge = std::uintptr_t{2} << 20;
    const auto at = reinterpret_cast<std::uintptr_t>(v.data());
    const std::uintptr_t begin = (at + kHuge - 1) & ~(kHuge - 1);
    const std::uintptr_t end = (at + n * sizeof(T)) & ~(kHuge - 1);
    if (end >= begin + 4 * kHuge)
        madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

} // namespace kextrace::corr
