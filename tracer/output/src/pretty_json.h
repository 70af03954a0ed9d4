// pretty_json.h - the pretty-printed JSON writer of the streamed report
// (report_json.cpp) and of its sections written elsewhere (the leaks:
// leaks.cpp): the bytes of nlohmann's dump(2, ' ', false, replace), written
// as the members come.
#pragma once

#include <kextrace/leaks.h>
#include <kextrace/output.h>

#include "json_buffer.h"

#include <cstddef>
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
        next();
        buf_.push_back('"');
        buf_.append(k);
        buf_.append("\": ", 3);
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
        next();
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
    static constexpr std::string_view kSpaces = "                                                "
                                                "                                                ";

    void open(char c) {
        buf_.push_back(c);
        ++depth_;
        first_ = true;
    }
    void close(char c) {
        --depth_;
        if (!first_) { // not empty: the bracket on a line of its own
            buf_.push_back('\n');
            indent();
        }
        buf_.push_back(c);
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
