// pretty_json.h - the pretty-printed JSON writer of the streamed report
// (report_json.cpp) and of its sections written elsewhere (the leaks:
// leaks.cpp): the bytes of nlohmann's dump(2, ' ', false, replace), written
// as the members come.
#pragma once

#include <kextrace/leaks.h>
#include <kextrace/output.h>

#include "json_buffer.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace kextrace::detail {

// Pretty-printed JSON into a buffer, flushed to the stream in large chunks.
// Containers are opened and closed explicitly; members and elements are
// started with key() / elem(), which write the separator and indentation.
class Pretty : public detail::JsonBuffer {
  public:
    using JsonBuffer::JsonBuffer;

    void begin_object() { open('{'); }
    void end_object() { close('}'); }
    void begin_array() { open('['); }
    void end_array() { close(']'); }

    // Starts the next member of the current object (k: plain ASCII, our own words).
    Pretty& key(std::string_view k) {
        elem();
        buf_.room(k.size() + 4);
        char* p = buf_.cursor();
        *p++ = '"';
        p = std::copy_n(k.data(), k.size(), p);
        buf_.commit(std::copy_n("\": ", 3, p));
        return *this;
    }
    // ... with any key, escaped as nlohmann escapes keys.
    Pretty& any_key(std::string_view k) {
        next();
        str(k);
        buf_.append(": ", 2);
        return *this;
    }
    // Starts the next element of the current array.
    Pretty& elem() {
        if (depth_ > kMaxInline) [[unlikely]] {
            next();
            return *this;
        }
        buf_.room(kSeparatorRoom);
        buf_.commit(separator(buf_.cursor()));
        return *this;
    }

    // Any value, as dump(2) writes it at this depth: its own dump, each line
    // after the first indented by the current depth (a dump has no raw newline
    // but those between its lines: newlines in strings are escaped).
    void value(const nlohmann::json& v) {
        const std::string text = v.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
        std::size_t from = 0;
        for (std::size_t nl; (nl = text.find('\n', from)) != std::string::npos; from = nl + 1) {
            buf_.append(text.data() + from, nl + 1 - from);
            indent();
        }
        buf_.append(std::string_view(text).substr(from));
    }

    template <class T> void array_of(const std::vector<T>& v) {
        begin_array();
        for (const T& x : v) {
            elem();
            if constexpr (std::is_signed_v<T>)
                i64(x);
            else
                u64(x);
        }
        end_array();
    }

  private:
    // ",\n" and the indentation of any depth up to kMaxInline, copied 16
    // bytes at a time (the room for the last copy's overrun is reserved).
    static constexpr std::size_t kMaxInline = 48;
    static constexpr std::size_t kSeparatorRoom = 2 + 2 * kMaxInline + 16;
    static constexpr std::array<char, kSeparatorRoom> kSeparators = [] {
        std::array<char, kSeparatorRoom> a{};
        a.fill(' ');
        a[0] = ',';
        a[1] = '\n';
        return a;
    }();
    // The next member's or element's separator and indentation at p (depth
    // up to kMaxInline, room for kSeparatorRoom reserved); returns its end.
    char* separator(char* p) {
        const char* from = kSeparators.data() + (first_ ? 1 : 0);
        const std::size_t n = 2 * depth_ + (first_ ? 1 : 2);
        for (std::size_t i = 0; i < n; i += 16)
            std::memcpy(p + i, from + i, 16);
        first_ = false;
        return p + n;
    }

    static constexpr std::string_view kSpaces = "                                                "
                                                "                                                ";

    void open(char c) {
        buf_.push_back(c);
        ++depth_;
        first_ = true;
    }
    void close(char c) {
        --depth_;
        if (first_) {
            buf_.push_back(c);
        } else if (depth_ <= kMaxInline) { // not empty: the bracket on a line of its own
            buf_.room(kSeparatorRoom + 1);
            first_ = true; // (a newline, no comma)
            char* p = separator(buf_.cursor());
            *p++ = c;
            buf_.commit(p);
        } else {
            buf_.push_back('\n');
            indent();
            buf_.push_back(c);
        }
        first_ = false; // the enclosing container has this one
        flush_if_full();
    }
    void next() {
        if (first_)
            buf_.push_back('\n');
        else
            buf_.append(",\n", 2);
        first_ = false;
        indent();
    }
    void indent() {
        std::size_t n = 2 * depth_;
        for (; n > kSpaces.size(); n -= kSpaces.size())
            buf_.append(kSpaces);
        buf_.append(kSpaces.data(), n);
    }

    std::size_t depth_ = 0;
    bool first_ = true; // the current container has no member yet
};

// The "leaks" section (leaks_json's tree, streamed), as the value of the member just started.
void write_leaks_json(Pretty& w, const LeakReport& leaks, const Report& report,
                      const Symbolizer& symbolize);

} // namespace kextrace::detail
