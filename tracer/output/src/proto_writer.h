// proto_writer.h - the few pieces of the protobuf wire format the Perfetto
// export (perfetto.cpp) needs: varint, fixed64 and length-delimited fields
// appended to a byte string, and nested messages whose length is patched in
// when they end (no generated code, no libprotobuf).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kextrace::detail::proto {

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLen = 2 };

// v as a varint into tmp (10 bytes at most); returns its length.
inline std::size_t varint_bytes(uint64_t v, char* tmp) {
    std::size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = static_cast<char>((v & 0x7f) | 0x80);
        v >>= 7;
    }
    tmp[n++] = static_cast<char>(v);
    return n;
}

inline void put_varint(std::string& out, uint64_t v) {
    char tmp[10];
    out.append(tmp, varint_bytes(v, tmp));
}

class Writer {
  public:
    explicit Writer(std::string& out) : out_(out) {}

    void varint(uint32_t field, uint64_t v) {
        tag(field, kVarint);
        put_varint(out_, v);
    }
    // int32/int64 fields: two's complement as a 64-bit varint
    void sint(uint32_t field, int64_t v) { varint(field, static_cast<uint64_t>(v)); }
    void fixed64(uint32_t field, uint64_t v) {
        tag(field, kFixed64);
        for (int i = 0; i < 8; ++i)
            out_.push_back(static_cast<char>(v >> (8 * i)));
    }
    void bytes(uint32_t field, std::string_view s) {
        tag(field, kLen);
        put_varint(out_, s.size());
        out_.append(s);
    }

    // A nested message: begin() returns a mark for end(), which writes its
    // length (one byte reserved; moved up when the length needs more).
    std::size_t begin(uint32_t field) {
        tag(field, kLen);
        out_.push_back('\0');
        return out_.size();
    }
    void end(std::size_t mark) {
        const uint64_t len = out_.size() - mark;
        if (len < 0x80) {
            out_[mark - 1] = static_cast<char>(len);
            return;
        }
        char tmp[10];
        const std::size_t n = varint_bytes(len, tmp);
        out_.replace(mark - 1, 1, tmp, n);
    }

  private:
    void tag(uint32_t field, WireType t) { put_varint(out_, (uint64_t{field} << 3) | t); }
    std::string& out_;
};

} // namespace kextrace::detail::proto
