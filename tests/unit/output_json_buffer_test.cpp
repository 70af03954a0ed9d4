// The JSON writers' pieces (tracer/output/src): JsonBuffer::plain's word-wise
// escape test against a byte-wise one, and Pretty's separators at any depth
// against nlohmann's dump(2).
#include "../../tracer/output/src/pretty_json.h"

#include <gtest/gtest.h>

#include <random>
#include <sstream>
#include <string>

using kextrace::detail::JsonBuffer;
using kextrace::detail::Pretty;
using nlohmann::json;

namespace {

bool plain_bytewise(std::string_view s) {
    for (unsigned char c : s)
        if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80)
            return false;
    return true;
}

} // namespace

TEST(OutputJsonBuffer, PlainAgreesWithTheByteTest) {
    EXPECT_TRUE(JsonBuffer::plain({}));
    EXPECT_TRUE(JsonBuffer::plain(""));
    // every byte value at every place of strings up to 20 bytes
    for (std::size_t len = 1; len <= 20; ++len)
        for (std::size_t at = 0; at < len; ++at)
            for (int c = 0; c < 256; ++c) {
                std::string s(len, 'x');
                s[at] = static_cast<char>(c);
                ASSERT_EQ(JsonBuffer::plain(s), plain_bytewise(s)) << len << " " << at << " " << c;
            }
    // random strings over the bytes around the borders (0x1f/0x20, '"', '\\', 0x7f/0x80)
    std::mt19937 rng(7);
    const unsigned char pool[] = {0x00, 0x1f, 0x20, 0x21, '"',  '#',  '[',  '\\', ']',
                                  0x7e, 0x7f, 0x80, 0x81, 0xdf, 0xfe, 0xff, 'a',  'z'};
    for (int i = 0; i < 20000; ++i) {
        std::string s(rng() % 40, 'a');
        for (char& c : s)
            if (rng() % 8 == 0)
                c = static_cast<char>(pool[rng() % sizeof pool]);
        ASSERT_EQ(JsonBuffer::plain(s), plain_bytewise(s)) << s;
    }
}

TEST(OutputJsonBuffer, PrettySeparatorsAtAnyDepth) {
    // nested objects and arrays 0 to 70 deep: the inline separators, then
    // the general path beyond them
    for (int depth : {0, 1, 5, 47, 48, 49, 70}) {
        std::ostringstream out;
        Pretty w(out);
        json ref = json::array({1, "two"});
        for (int i = 0; i < depth; ++i)
            ref = i % 2 ? json::array({ref, i, json::array(), json::object()})
                        : json::object({{"k", ref}, {"n", i}, {"e", json::object()}});
        const auto write = [&w](const json& v, const auto& self) -> void {
            if (v.is_object()) {
                w.begin_object();
                for (const auto& [k, x] : v.items()) {
                    w.key(k);
                    self(x, self);
                }
                w.end_object();
            } else if (v.is_array()) {
                w.begin_array();
                for (const json& x : v) {
                    w.elem();
                    self(x, self);
                }
                w.end_array();
            } else if (v.is_string()) {
                w.str(v.get<std::string>());
            } else {
                w.i64(v.get<int64_t>());
            }
        };
        write(ref, write);
        w.flush();
        EXPECT_EQ(out.str(), ref.dump(2)) << depth;
    }
}
