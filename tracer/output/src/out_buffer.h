// out_buffer.h - the export writers' output bytes: one contiguous buffer,
// appended to through a cursor and written to the stream in large blocks.
// std::string's append pays for its small-string layout, a terminating NUL and
// a call per piece; here a piece of known size is one bounds check and an
// inlined copy, and a writer that knows a record's worst case reserves it
// once (room()) and writes it unchecked (put_*()).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <ostream>
#include <string_view>

namespace kextrace::detail {

class OutBuffer {
  public:
    explicit OutBuffer(std::ostream& out, std::size_t block = 1 << 20)
        : out_(out), block_(block), cap_(block + (64 << 10)),
          data_(std::make_unique_for_overwrite<char[]>(cap_)) {}
    OutBuffer(const OutBuffer&) = delete;
    OutBuffer& operator=(const OutBuffer&) = delete;

    // Always inlined (GCC otherwise calls them out of line from the many
    // writers, and a literal's copy becomes a memcpy call of unknown size).
    // Room for n more bytes (the buffer grows when a record is larger than it).
    [[gnu::always_inline]] void room(std::size_t n) {
        if (cap_ - size_ < n) [[unlikely]]
            grow(n);
    }
    // (std::copy_n: an empty piece may have no address; memcpy's may not be null)
    [[gnu::always_inline]] void append(const char* s, std::size_t n) {
        room(n);
        std::copy_n(s, n, data_.get() + size_);
        size_ += n;
    }
    [[gnu::always_inline]] void append(std::string_view s) { append(s.data(), s.size()); }
    [[gnu::always_inline]] void push_back(char c) {
        room(1);
        data_[size_++] = c;
    }
    // Unchecked: after room(). cursor() .. commit(end) for a run of bytes
    // written through a local pointer (a char store may alias size_).
    char* cursor() { return data_.get() + size_; }
    void commit(char* end) { size_ = static_cast<std::size_t>(end - data_.get()); }
    void put(char c) { data_[size_++] = c; }
    void put(const char* s, std::size_t n) {
        std::copy_n(s, n, data_.get() + size_);
        size_ += n;
    }

    char* data() { return data_.get(); }
    char& operator[](std::size_t i) { return data_[i]; }
    std::size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    // Moves the last size() - at bytes right by n (room(n) first): a nested
    // message's length prefix that needs more than its reserved byte.
    void open_gap(std::size_t at, std::size_t n) {
        room(n);
        std::memmove(data_.get() + at + n, data_.get() + at, size_ - at);
        size_ += n;
    }

    // Writes the buffer out when a block is full (at a record's end).
    void flush_if_full() {
        if (size_ >= block_)
            flush();
    }
    void flush() {
        out_.write(data_.get(), static_cast<std::streamsize>(size_));
        written_ += size_;
        size_ = 0;
    }
    // Bytes written so far, the buffered ones included.
    uint64_t bytes() const { return written_ + size_; }

  private:
    [[gnu::noinline]] void grow(std::size_t n) {
        std::size_t cap = cap_ * 2;
        while (cap - size_ < n)
            cap *= 2;
        auto d = std::make_unique_for_overwrite<char[]>(cap);
        std::memcpy(d.get(), data_.get(), size_);
        data_ = std::move(d);
        cap_ = cap;
    }

    std::ostream& out_;
    std::size_t block_;
    std::size_t cap_;
    std::size_t size_ = 0;
    uint64_t written_ = 0;
    std::unique_ptr<char[]> data_;
};

} // namespace kextrace::detail
