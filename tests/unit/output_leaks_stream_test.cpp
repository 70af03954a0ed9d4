// The leaks section streamed by write_report_json is byte for byte the tree
// of leaks_json (the reference) merged into the document.
#include <kextrace/core.h>
#include <kextrace/leaks.h>
#include <kextrace/output.h>
#include <kextrace/stream_builder.h>

#include <gtest/gtest.h>

#include "leak_streams.h"

#include <sstream>

using namespace kextrace;

namespace {

// A run where the pages of pfn in leaky keep kex's reference, and those in
// lost miss their zap (unbalanced ledgers).
Report run(uint32_t pages, std::initializer_list<uint64_t> leaky,
           std::initializer_list<uint64_t> lost = {}) {
    StreamBuilder b;
    b.story({.pages = pages});
    for (uint64_t pfn : leaky)
        test::noput(b, pfn);
    for (uint64_t pfn : lost)
        b.drop_if([&](const Event& e) { return test::of(e, pfn, {KEX_EV_RMAP_REMOVE}); });
    return test::correlate(b.events);
}

// Names that need escaping, non-ASCII and invalid UTF-8, and none at all.
std::string sym(uint64_t a) {
    if (a == 0xffffffffc0001000)
        return "kex_mmap+0x1a5 [kex] \"q\" ← \xff";
    if (a == 0xffffffff81200000)
        return "mmap_region+0x5a1";
    return "";
}

void expect_same(const Report& r, const LeakReport& l, nlohmann::json extra) {
    RunInfo info;
    info.kernel_release = "6.1.0-test";
    std::ostringstream streamed, tree;
    const uint64_t n = write_report_json(streamed, r, info, sym, extra, &l);
    extra["leaks"] = leaks_json(l, r, sym);
    write_report_json(tree, r, info, sym, extra);
    EXPECT_EQ(streamed.str(), tree.str());
    EXPECT_EQ(n, streamed.str().size());
}

} // namespace

TEST(OutputLeaksStream, LeakedPagesAsTheTree) {
    const Report r = run(8, {0x1001, 0x1005});
    const LeakReport l = assess_leaks(r);
    ASSERT_EQ(l.bugs(), 2u);
    expect_same(r, l, nlohmann::json::object());
}

TEST(OutputLeaksStream, BesideOtherSections) {
    const Report r = run(5, {0x1002}, {0x1003});
    const LeakReport l = assess_leaks(r, {.device_closed = false, .alive = {100}});
    expect_same(
        r, l,
        {{"aaa", 1}, {"leaks_more", {1, 2}}, {"probe_counters", {{"x", "y"}}}, {"zzz", nullptr}});
}

TEST(OutputLeaksStream, NoPagesAndAllFreed) {
    const Report empty = Correlator().finish();
    expect_same(empty, assess_leaks(empty), nlohmann::json::object());
    const Report r = run(3, {});
    expect_same(r, assess_leaks(r), nlohmann::json::object());
}

TEST(OutputLeaksStream, AGivenLeaksSectionReplacesIt) {
    const Report r = run(2, {0x1001});
    const LeakReport l = assess_leaks(r);
    RunInfo info;
    std::ostringstream a, b;
    write_report_json(a, r, info, sym, {{"leaks", 7}}, &l);
    write_report_json(b, r, info, sym, {{"leaks", 7}});
    EXPECT_EQ(a.str(), b.str());
}
