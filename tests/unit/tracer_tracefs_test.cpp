// Unit tests of tracer/src/tracefs: format and kprobe_profile parsing, on
// files captured in the 6.1 lab guest.
#include "probe_plan.h"
#include "tracefs.h"

#include <gtest/gtest.h>

using namespace kextrace;

namespace {
std::string fixture(const char* name) {
    auto t = read_text_file(std::string(KEX_FIXTURES) + "/" + name);
    EXPECT_TRUE(t.has_value()) << name;
    return t.value_or("");
}
} // namespace

TEST(TracerTracefs, ParsesKexTracepointFormat) {
    TpFormat f = parse_tp_format(fixture("tp-format-kex_page_alloc-6.1"));
    ASSERT_TRUE(f.count("pfn"));
    EXPECT_EQ(f["common_pid"].offset, 4u);
    EXPECT_TRUE(f["common_pid"].is_signed);
    EXPECT_EQ(f["pfn"].offset, 8u);
    EXPECT_EQ(f["page"].offset, 16u);
    EXPECT_EQ(f["index"].offset, 24u);
    EXPECT_EQ(f["index"].size, 4u);
}

TEST(TracerTracefs, LayoutCheckNamesTheMismatch) {
    TpFormat f = parse_tp_format(fixture("tp-format-kex_page_alloc-6.1"));
    EXPECT_EQ(check_tp_layout(f, {{"pfn", 8, 8}, {"page", 16, 8}, {"index", 24, 4}}), "");
    EXPECT_EQ(check_tp_layout(f, {{"pfn", 16, 8}}),
              "pfn at offset 8 size 8, expected offset 16 size 8");
    EXPECT_EQ(check_tp_layout(f, {{"uaddr", 16, 8}}), "no field uaddr");

    TpFormat pf = parse_tp_format(fixture("tp-format-page_fault_user-6.1"));
    EXPECT_EQ(check_tp_layout(pf, {{"address", 8, 8}, {"ip", 16, 8}, {"error_code", 24, 8}}), "");
}

TEST(TracerTracefs, ParsesArrayFieldNames) {
    TpFormat f = parse_tp_format("\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:1;\n"
                                 "\tfield:unsigned long *ptr;\toffset:24;\tsize:8;\tsigned:0;\n");
    ASSERT_TRUE(f.count("comm"));
    EXPECT_EQ(f["comm"].size, 16u);
    ASSERT_TRUE(f.count("ptr"));
    EXPECT_EQ(f["ptr"].offset, 24u);
}

TEST(TracerTracefs, ParsesKprobeProfile) {
    auto p = parse_kprobe_profile(fixture("kprobe_profile-6.1"));
    ASSERT_EQ(p.size(), 2u);
    EXPECT_EQ(p["kextrace_4242_insert"].hits, 4u);
    EXPECT_EQ(p["kextrace_4242_insert"].missed, 0u);
    auto q = parse_kprobe_profile("  a   10   3\n  b 0 0\ngarbage\n");
    EXPECT_EQ(q["a"].missed, 3u);
    EXPECT_EQ(q.size(), 2u);
}

TEST(TracerTracefs, MissingTreeAnswersNo) {
    Tracefs t("/nonexistent/tracing");
    EXPECT_FALSE(t.has_event("kmem", "mm_page_alloc"));
    EXPECT_FALSE(t.format("kmem", "mm_page_alloc").has_value());
    EXPECT_FALSE(t.kprobe_events_writable());
    EXPECT_TRUE(t.kprobe_profile().empty());
}
