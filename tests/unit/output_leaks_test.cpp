// The --leaks renderers: the verdict table, the grouped findings with their
// ledger and stack, and the JSON "leaks" section.
#include <kextrace/core.h>
#include <kextrace/jsonl.h>
#include <kextrace/leaks.h>
#include <kextrace/output.h>
#include <kextrace/stream_builder.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

using namespace kextrace;

namespace {

Report noput_run(uint32_t pages, std::initializer_list<uint64_t> leaky) {
    StreamBuilder b;
    b.story({.pages = pages});
    for (uint64_t pfn : leaky) {
        b.drop_if([&](const Event& e) {
            return e.pfn == pfn && (e.type == KEX_EV_KEX_PAGE_FREE || e.type == KEX_EV_PAGE_FREE ||
                                    e.type == KEX_EV_PAGE_FREE_BATCHED);
        });
        for (Event& e : b.events)
            if (e.pfn == pfn && (e.type == KEX_EV_SET_DIRTY || e.type == KEX_EV_RMAP_REMOVE))
                ++e.refcount;
    }
    Correlator c;
    for (const Event& e : b.events)
        c.feed(e);
    return c.finish();
}

std::string sym(uint64_t a) {
    if (a == 0xffffffffc0001000)
        return "kex_mmap+0x1a5 [kex]";
    if (a == 0xffffffff81200000)
        return "mmap_region+0x5a1";
    return "";
}

} // namespace

TEST(OutputLeaks, TextNamesTheLeakedPagesAndTheirStack) {
    const Report r = noput_run(8, {0x1001, 0x1005});
    const LeakReport l = assess_leaks(r);
    std::ostringstream out;
    render_leaks_text(l, r, out, sym);
    const std::string s = out.str();
    EXPECT_NE(s.find("leaks: 6 freed, 2 leaked (8 page lives; the device was closed)"),
              std::string::npos)
        << s;
    EXPECT_NE(s.find("LEAKED"), std::string::npos) << s;
    // One finding for both pages (same ledger), with the stack.
    EXPECT_NE(s.find("leaked: pages 1, 5 (pfn 0x1001, 0x1005)"), std::string::npos) << s;
    EXPECT_NE(s.find("never dropped: 1 reference (alloc at kex_alloc), taken at\n"
                     "    kex_mmap+0x1a5 [kex]\n    mmap_region+0x5a1\n"),
              std::string::npos)
        << s;
    EXPECT_NE(s.find("(after the last event: inferred)"), std::string::npos) << s;
    for (const std::string& line : {std::string("refcount 1, mapcount 0")})
        EXPECT_NE(s.find(line), std::string::npos) << s;
}

TEST(OutputLeaks, ManyPagesListOnlyThoseNotFreed) {
    const Report r = noput_run(64, {0x1003});
    const LeakReport l = assess_leaks(r);
    std::ostringstream out;
    render_leaks_text(l, r, out, sym);
    const std::string s = out.str();
    EXPECT_NE(s.find("(63 freed pages not listed: --full)"), std::string::npos) << s;
    std::ostringstream full;
    render_leaks_text(l, r, full, sym, {.full = true});
    EXPECT_EQ(full.str().find("not listed"), std::string::npos);
}

TEST(OutputLeaks, Json) {
    const Report r = noput_run(8, {0x1001, 0x1005});
    const LeakReport l = assess_leaks(r);
    const nlohmann::json j = leaks_json(l, r, sym);
    EXPECT_EQ(j["counts"]["leaked"], 2);
    EXPECT_EQ(j["counts"]["freed"], 6);
    EXPECT_EQ(j["counts"]["still_mapped"], 0);
    EXPECT_EQ(j["bugs"], 2);
    EXPECT_EQ(j["device_closed"], true);
    ASSERT_EQ(j["pages"].size(), 8u);
    const auto& p1 = j["pages"][1];
    EXPECT_EQ(p1["verdict"], "leaked");
    EXPECT_EQ(p1["index"], 1);
    EXPECT_EQ(p1["pfn"], 0x1001);
    EXPECT_EQ(p1["refcount"], 1);
    EXPECT_EQ(p1["mapcount"], 0);
    EXPECT_EQ(p1["last_event"]["kind"], "rmap_remove");
    ASSERT_EQ(p1["never_dropped"].size(), 1u);
    EXPECT_EQ(p1["never_dropped"][0]["site"], "alloc");
    EXPECT_EQ(p1["never_dropped"][0]["frames"][0], "kex_mmap+0x1a5 [kex]");
    EXPECT_GT(p1["never_dropped"][0]["stack"].get<int>(), 0);
    EXPECT_FALSE(j["pages"][0].contains("ledger")); // freed and balanced: compact
    const nlohmann::json ledger = p1["ledger"];
    ASSERT_EQ(ledger.size(), 3u);
    EXPECT_EQ(ledger[0]["site"], "alloc");
    EXPECT_EQ(ledger[1]["site"], "insert");
    EXPECT_EQ(ledger[2]["site"], "zap");
    EXPECT_EQ(ledger[2]["dropped"], 1);
}

// The counts a plot draws (the report's refcount_after) are the reference
// ledger's bookings on a real run: analysis/tests/data/drop-8.jsonl, 8 kex
// pages under ref_policy=drop on 6.1, replayed. kex's put, read at 2 by
// kex_page_free before the put, is 1 right after it.
TEST(OutputLeaks, CountsAfterAreTheLedgerOnARealRun) {
    std::ifstream in(KEX_FIXTURES "/../../../analysis/tests/data/drop-8.jsonl");
    ASSERT_TRUE(in);
    std::string first;
    std::getline(in, first);
    const auto header = parse_jsonl_header(first);
    ASSERT_TRUE(header);
    Correlator c(header->correlator);
    in.seekg(0);
    const JsonlRead read = read_jsonl(in, [&c](Event&& ev) { c.feed(std::move(ev)); });
    ASSERT_FALSE(read.error);
    const Report r = c.finish();
    const LeakReport l = assess_leaks(r);
    ASSERT_EQ(l.pages.size(), 8u);
    for (const PageVerdict& v : l.pages) {
        const PageLife& p = r.pages[v.life];
        const std::vector<CountsAfter> after = counts_after_steps(p);
        ASSERT_EQ(after.size(), p.steps.size());
        std::size_t kex_puts = 0;
        for (const RefChange& ch : v.changes) {
            int64_t sum = 0;
            for (const RefChange& d : v.changes)
                if (d.site == RefSite::alloc || d.step <= ch.step)
                    sum += d.delta;
            EXPECT_EQ(after[ch.step].refcount, sum) << "life " << v.life;
            if (ch.site == RefSite::kex_put) {
                ++kex_puts;
                EXPECT_EQ(p.steps[ch.step].refcount, 2);
                EXPECT_EQ(after[ch.step].refcount, 1);
            }
        }
        EXPECT_EQ(kex_puts, 1u) << "life " << v.life;
        EXPECT_EQ(after.back().refcount, 0);
    }
}
