// json_buffer.h - JSON text into a buffer, flushed to a stream in large
// chunks: the scalar writers the streaming exports share (the timeline, the
// report JSON). Numbers by std::to_chars; strings that need escaping (or are
// not plain ASCII) through nlohmann's serializer, so escapes and the U+FFFD
// replacement of invalid UTF-8 are exactly nlohmann::json's.
#pragma once

#include <kextrace/core.h>

#include <nlohmann/json.hpp>

#include <charconv>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

namespace kextrace::detail {

class JsonBuffer {
  public:
    explicit JsonBuffer(std::ostream& out) : out_(out) { buf_.reserve(kChunk + 64 * 1024); }
    JsonBuffer(const JsonBuffer&) = delete;
    JsonBuffer& operator=(const JsonBuffer&) = delete;

    void raw(std::string_view s) {
        buf_.append(s);
        flush_if_full();
    }
    void ch(char c) { buf_.push_back(c); }
    void u64(uint64_t v) {
        char tmp[24];
        auto r = std::to_chars(tmp, tmp + sizeof(tmp), v);
        buf_.append(tmp, r.ptr);
    }
    void i64(int64_t v) {
        char tmp[24];
        auto r = std::to_chars(tmp, tmp + sizeof(tmp), v);
        buf_.append(tmp, r.ptr);
    }
    void boolean(bool v) { v ? buf_.append("true", 4) : buf_.append("false", 5); }
    void null() { buf_.append("null", 4); }
    // a count the BPF side could not read (KEX_NO_COUNT) is null
    void count(int32_t v) { v == kNoCount ? null() : i64(v); }
    // detail::hex as a JSON string: "0x1f".
    void hex(uint64_t v) {
        char tmp[24] = {'"', '0', 'x'};
        auto r = std::to_chars(tmp + 3, tmp + sizeof(tmp) - 1, v, 16);
        *r.ptr++ = '"';
        buf_.append(tmp, r.ptr);
    }
    void str(std::string_view s) {
        for (unsigned char c : s)
            if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) {
                buf_.append(nlohmann::json(std::string(s))
                                .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
                return;
            }
        buf_.push_back('"');
        buf_.append(s);
        buf_.push_back('"');
    }

    void flush() {
        out_.write(buf_.data(), static_cast<std::streamsize>(buf_.size()));
        bytes_ += buf_.size();
        buf_.clear();
    }
    uint64_t bytes() const { return bytes_ + buf_.size(); }

  protected:
    void flush_if_full() {
        if (buf_.size() >= kChunk)
            flush();
    }
    std::string buf_;

  private:
    static constexpr std::size_t kChunk = 1 << 20;
    std::ostream& out_;
    uint64_t bytes_ = 0;
};

} // namespace kextrace::detail
