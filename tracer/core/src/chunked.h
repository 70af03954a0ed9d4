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
#include <bit>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

namespace kextrace::corr {

// Asks for 2 MiB pages (transparent huge pages on request) over the whole
// 2 MiB pages inside [p, p + bytes), when there are at least 4 of them.
// Faulting fresh memory in 4 KiB pages was most of a 10^7-event flush's time
// on the bench host (bench/README.md); elsewhere the advice is ignored.
inline void advise_huge(const void* p, std::size_t bytes) {
    constexpr std::uintptr_t kHuge = std::uintptr_t{2} << 20;
    const auto at = reinterpret_cast<std::uintptr_t>(p);
    const std::uintptr_t begin = (at + kHuge - 1) & ~(kHuge - 1);
    const std::uintptr_t end = (at + bytes) & ~(kHuge - 1);
    if (end >= begin + 4 * kHuge)
        madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

// Chunks of kChunk elements, then twice as many each, up to kChunk <<
// kGrowBits (a buffered run's records: chunks of many MiB, advised into
// 2 MiB pages before anything touches them; a short windowed buffer stays
// in small ones).
template <class T, std::size_t kChunkBits = 12, unsigned kGrowBits = 5> class ChunkedBuffer {
    static_assert(std::is_trivially_copyable_v<T>);

  public:
    static constexpr std::size_t kChunk = std::size_t{1} << kChunkBits;

    std::size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }

    void push_back(const T& v) { emplace_back() = v; }
    // The next element's room (uninitialised): the caller writes it in place.
    T& emplace_back() {
        if (cur_ == end_)
            next_chunk();
        ++size_;
        return *cur_++;
    }

    T& operator[](std::size_t i) {
        const auto [c, k] = locate(i);
        return chunks_[c][k];
    }
    const T& operator[](std::size_t i) const {
        const auto [c, k] = locate(i);
        return chunks_[c][k];
    }

    // Elements i.. as far as they lie in i's chunk (i < size()).
    std::span<T> segment(std::size_t i) {
        const auto [c, k] = locate(i);
        const std::size_t room = chunk_size(c) - k;
        return {chunks_[c].get() + k, std::min(room, size_ - i)};
    }

    // Calls f on every element, in order.
    template <class F> void for_each(F&& f) const {
        std::size_t left = size_;
        for (std::size_t c = 0; left; ++c) {
            const std::size_t n = std::min(chunk_size(c), left);
            for (std::size_t i = 0; i < n; ++i)
                f(chunks_[c][i]);
            left -= n;
        }
    }

    // Empty, its chunks kept for reuse.
    void clear() {
        size_ = 0;
        used_chunks_ = 0;
        cur_ = end_ = nullptr;
    }
    void swap(ChunkedBuffer& o) noexcept {
        chunks_.swap(o.chunks_);
        std::swap(size_, o.size_);
        std::swap(used_chunks_, o.used_chunks_);
        std::swap(cur_, o.cur_);
        std::swap(end_, o.end_);
    }

  private:
    static constexpr std::size_t kMaxChunk = kChunk << kGrowBits;

    // Chunk 0 and 1: kChunk elements; chunk c then starts at kChunk << (c - 1),
    // twice the one before, until kMaxChunk.
    static std::size_t chunk_size(std::size_t c) {
        return c == 0 ? kChunk : kChunk << std::min<std::size_t>(c - 1, kGrowBits);
    }
    // (chunk, place in it) of element i
    static std::pair<std::size_t, std::size_t> locate(std::size_t i) {
        const std::size_t q = i >> kChunkBits;
        if (q < (std::size_t{1} << kGrowBits)) {
            const auto c = static_cast<std::size_t>(std::bit_width(q));
            return {c, c ? i - (kChunk << (c - 1)) : i};
        }
        const std::size_t j = i - kMaxChunk;
        return {kGrowBits + 1 + j / kMaxChunk, j % kMaxChunk};
    }

    // The current chunk full: the next one, kept or new.
    void next_chunk() {
        const std::size_t c = used_chunks_++;
        const std::size_t n = chunk_size(c);
        if (c == chunks_.size()) {
            chunks_.push_back(std::make_unique_for_overwrite<T[]>(n));
            advise_huge(chunks_.back().get(), n * sizeof(T));
        }
        cur_ = chunks_[c].get();
        end_ = cur_ + n;
    }

    std::vector<std::unique_ptr<T[]>> chunks_;
    std::size_t size_ = 0;
    std::size_t used_chunks_ = 0;
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

// A flush's sort keys: n elements not initialised (each is written before it
// is read: a vector's resize would first zero them, a pass over as many
// bytes again), the room kept for the next flush, a large one advised into
// 2 MiB pages.
template <class T> class ScratchArray {
    static_assert(std::is_trivially_copyable_v<T>);

  public:
    void resize_for_overwrite(std::size_t n) {
        if (n > cap_) {
            p_.reset(); // the old room goes before the new one is taken
            p_ = std::make_unique_for_overwrite<T[]>(n);
            cap_ = n;
            advise_huge(p_.get(), n * sizeof(T));
        }
        n_ = n;
    }
    std::size_t size() const { return n_; }
    T* begin() { return p_.get(); }
    T* end() { return p_.get() + n_; }
    T& operator[](std::size_t i) { return p_[i]; }
    void swap(ScratchArray& o) noexcept {
        p_.swap(o.p_);
        std::swap(n_, o.n_);
        std::swap(cap_, o.cap_);
    }

  private:
    std::unique_ptr<T[]> p_;
    std::size_t n_ = 0;
    std::size_t cap_ = 0;
};

// Room for n elements in v; a block of many MiB (a large flush's keys, the
// lives of a buffered run) advised into 2 MiB pages before anything touches it.
template <class T> void reserve_huge(std::vector<T>& v, std::size_t n) {
    if (n <= v.capacity())
        return;
    v.reserve(n);
    advise_huge(v.data(), n * sizeof(T));
}

// Room for one more element in v, doubling as a vector does, advised like
// reserve_huge's (a windowed run's lives grow to many MiB a doubling).
template <class T> void grow_huge(std::vector<T>& v) {
    if (v.size() == v.capacity())
        reserve_huge(v, std::max<std::size_t>(64, 2 * v.capacity()));
}

// v's elements moved into a block of their size (shrink_to_fit), advised
// like reserve_huge's.
template <class T> void shrink_huge(std::vector<T>& v) {
    if (v.size() == v.capacity())
        return;
    std::vector<T> exact;
    reserve_huge(exact, v.size());
    std::move(v.begin(), v.end(), std::back_inserter(exact));
    v.swap(exact);
}

} // namespace kextrace::corr
