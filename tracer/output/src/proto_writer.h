// proto_writer.h - the few pieces of the protobuf wire format the Perfetto
// export (perfetto.cpp) needs: varint, fixed64 and length-delimited fields
// appended to a byte buffer, and nested messages whose length is patched in
// when they end (no generated code, no libprotobuf).
//
// Each field reserves its worst case once and writes through a local pointer
// (a tag and a varint: 20 bytes); a nested message reserves one length byte,
// and only one that ends up 128 bytes or longer moves its body up.
#pragma once

#include "out_buffer.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace kextrace::detail::proto {

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLen = 2 };

// v as a varint at p; returns the end. (A branchless one, its 7-bit groups
// spread into one 8-byte store, ran 4% slower here: more instructions, and
// the loop's exit is predicted well enough.)
inline char* put_varint(char* p, uint64_t v) {
    while (v >= 0x80) {
        *p++ = static_cast<char>((v & 0x7f) | 0x80);
        v >>= 7;
    }
    *p++ = static_cast<char>(v);
    return p;
}

constexpr uint64_t tag(uint32_t field, WireType t) {
    return (uint64_t{field} << 3) | t;
}

// Fields written at p, for BasicWriter::fields(): each returns the end.
inline char* put_field(char* p, uint32_t field, uint64_t v) {
    return put_varint(put_varint(p, tag(field, kVarint)), v);
}
// v as 8 little-endian bytes at p (a fixed64 field's value); returns the end.
inline char* put_fixed64(char* p, uint64_t v) {
    if constexpr (std::endian::native == std::endian::little) {
        std::memcpy(p, &v, 8);
        return p + 8;
    }
    for (int i = 0; i < 8; ++i)
        *p++ = static_cast<char>(v >> (8 * i));
    return p;
}
// A short length-delimited field (s: under 128 bytes).
inline char* put_short_bytes(char* p, uint32_t field, std::string_view s) {
    p = put_varint(p, tag(field, kLen));
    *p++ = static_cast<char>(s.size());
    return std::copy_n(s.data(), s.size(), p); // s may be empty, with no address
}

// A std::string as a Writer's buffer (a packet's InternedData, built aside).
class StringBytes {
  public:
    explicit StringBytes(std::string& s) : s_(s) {}
    void room(std::size_t n) { s_.reserve(s_.size() + n); }
    void append(const char* p, std::size_t n) { s_.append(p, n); }
    std::size_t size() const { return s_.size(); }
    char& operator[](std::size_t i) { return s_[i]; }
    void open_gap(std::size_t at, std::size_t n) { s_.insert(at, n, '\0'); }
    // at most max bytes, written by put(p) (returns the end)
    template <class Put> void put_with(std::size_t max, Put&& put) {
        const std::size_t at = s_.size();
        s_.resize(at + max);
        s_.resize(static_cast<std::size_t>(put(s_.data() + at) - s_.data()));
    }

  private:
    std::string& s_;
};

// An OutBuffer as a Writer's buffer: fields written in place.
class BufferBytes {
  public:
    explicit BufferBytes(OutBuffer& b) : b_(b) {}
    void room(std::size_t n) { b_.room(n); }
    void append(const char* p, std::size_t n) { b_.append(p, n); }
    std::size_t size() const { return b_.size(); }
    char& operator[](std::size_t i) { return b_[i]; }
    void open_gap(std::size_t at, std::size_t n) { b_.open_gap(at, n); }
    template <class Put> void put_with(std::size_t max, Put&& put) {
        b_.room(max);
        b_.commit(put(b_.cursor()));
    }

  private:
    OutBuffer& b_;
};

template <class Bytes> class BasicWriter {
  public:
    template <class Target> explicit BasicWriter(Target& out) : out_(out) {}

    void varint(uint32_t field, uint64_t v) {
        out_.put_with(kField, [&](char* p) { return put_field(p, field, v); });
    }
    void fixed64(uint32_t field, uint64_t v) {
        out_.put_with(kField,
                      [&](char* p) { return put_fixed64(put_varint(p, tag(field, kFixed64)), v); });
    }
    void bytes(uint32_t field, std::string_view s) {
        out_.put_with(
            kField, [&](char* p) { return put_varint(put_varint(p, tag(field, kLen)), s.size()); });
        out_.append(s.data(), s.size());
    }

    // Several fields at once: put(p) writes at most max bytes (put_field(),
    // put_short_bytes()...) and returns the end; one check for all of them.
    template <class Put> void fields(std::size_t max, Put&& put) { out_.put_with(max, put); }

    // A nested message: begin() returns a mark for end(), which writes its
    // length (one byte reserved; the body moved up when the length needs more).
    std::size_t begin(uint32_t field) {
        out_.put_with(kField, [&](char* p) {
            p = put_varint(p, tag(field, kLen));
            *p++ = '\0';
            return p;
        });
        return out_.size();
    }
    void end(std::size_t mark) {
        const uint64_t len = out_.size() - mark;
        if (len < 0x80) [[likely]] {
            out_[mark - 1] = static_cast<char>(len);
            return;
        }
        char tmp[10];
        const auto n = static_cast<std::size_t>(put_varint(tmp, len) - tmp);
        out_.open_gap(mark, n - 1);
        std::memcpy(&out_[mark - 1], tmp, n);
    }

  private:
    static constexpr std::size_t kField = 24; // a tag and a varint (or fixed64), at most
    Bytes out_;
};

using Writer = BasicWriter<BufferBytes>;
using StringWriter = BasicWriter<StringBytes>;

} // namespace kextrace::detail::proto
