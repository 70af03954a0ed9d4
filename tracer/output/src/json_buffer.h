// json_buffer.h - JSON text into a buffer (OutBuffer), flushed to a stream in
// large chunks: the scalar writers the streaming exports share (the timeline, the
// report JSON). Numbers by std::to_chars; strings that need escaping (or are
// not plain ASCII) through nlohmann's serializer, so escapes and the U+FFFD
// replacement of invalid UTF-8 are exactly nlohmann::json's.
#pragma once

#include <kextrace/core.h>

#include "out_buffer.h"

#include <nlohmann/json.hpp>

#include <charconv>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <string>
#include <string_view>

namespace kextrace::detail {

class JsonBuffer {
  public:
    explicit JsonBuffer(std::ostream& out) : buf_(out) {}
    JsonBuffer(const JsonBuffer&) = delete;
    JsonBuffer& operator=(const JsonBuffer&) = delete;

    [[gnu::always_inline]] void raw(std::string_view s) {
        buf_.append(s);
        buf_.flush_if_full();
    }
    void ch(char c) { buf_.push_back(c); }
    void u64(uint64_t v) { number(v); }
    void i64(int64_t v) { number(v); }
    void boolean(bool v) { v ? buf_.append("true", 4) : buf_.append("false", 5); }
    void null() { buf_.append("null", 4); }
    // a count the BPF side could not read (KEX_NO_COUNT) is null
    void count(int32_t v) { v == kNoCount ? null() : i64(v); }
    // detail::hex as a JSON string: "0x1f".
    void hex(uint64_t v) {
        buf_.room(24);
        char* p = buf_.cursor();
        p[0] = '"';
        p[1] = '0';
        p[2] = 'x';
        p = std::to_chars(p + 3, p + 23, v, 16).ptr;
        *p++ = '"';
        buf_.commit(p);
    }
    void str(std::string_view s) {
        if (!plain(s)) [[unlikely]] {
            buf_.append(nlohmann::json(std::string(s))
                            .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
            return;
        }
        buf_.room(s.size() + 2);
        buf_.put('"');
        buf_.put(s.data(), s.size());
        buf_.put('"');
    }

    // s needs no escape: plain ASCII, no control character, quote or
    // backslash. Eight bytes at a time (a word's test is exact as a whole:
    // a borrow only ever marks bytes above one that really matched).
    static bool plain(std::string_view s) {
        constexpr uint64_t ones = 0x0101010101010101, high = 0x8080808080808080;
        const auto bad = [](uint64_t w) {
            const uint64_t quote = w ^ (ones * '"'), backslash = w ^ (ones * '\\');
            return (((w - ones * 0x20) & ~w) | ((quote - ones) & ~quote) |
                    ((backslash - ones) & ~backslash) | w) &
                   high;
        };
        const char* p = s.data();
        std::size_t n = s.size();
        for (; n >= 8; p += 8, n -= 8) {
            uint64_t w;
            std::memcpy(&w, p, 8);
            if (bad(w))
                return false;
        }
        if (n && s.size() >= 8) { // the last 8 bytes, overlapping those seen
            uint64_t w;
            std::memcpy(&w, s.data() + s.size() - 8, 8);
            return !bad(w);
        }
        for (; n; ++p, --n) {
            const auto c = static_cast<unsigned char>(*p);
            if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80)
                return false;
        }
        return true;
    }

    void flush() { buf_.flush(); }
    uint64_t bytes() const { return buf_.bytes(); }

  protected:
    void flush_if_full() { buf_.flush_if_full(); }
    OutBuffer buf_;

  private:
    template <class Int> void number(Int v) {
        buf_.room(24);
        buf_.commit(std::to_chars(buf_.cursor(), buf_.cursor() + 24, v).ptr);
    }
};

} // namespace kextrace::detail
