// write_report_json: byte for byte the dump(2, ' ', false, replace) of to_json
// (the reference tree) with the extra sections merged in.
#include <kextrace/output.h>
#include <kextrace/stream_builder.h>

#include "report_of.h"

#include <gtest/gtest.h>

#include <sstream>

using namespace kextrace;
using kextrace::test::report_of;
using kextrace::test::run_info;
using nlohmann::json;

namespace {

Symbolizer some_symbols() {
    return [](uint64_t a) {
        if (a == 0xffffffff81300000)
            return std::string("free_unref_page_list+0x1f");
        if (a == 0xffffffffc0001000)
            return std::string("kex_mmap+0x1a5 [kex]");
        if (a == 0xffffffffc0001100)
            return std::string("odd \"name\"\\\t\x01 \xff\xfe [k\xc3\x28x] →");
        return std::string();
    };
}

// The reference: what the tree path wrote.
std::string reference(const Report& r, const RunInfo& run, const Symbolizer& sym,
                      const json& extra = json::object()) {
    json j = to_json(r, run, sym);
    for (const auto& [k, v] : extra.items())
        j[k] = v;
    return j.dump(2, ' ', false, json::error_handler_t::replace);
}

std::string streamed(const Report& r, const RunInfo& run, const Symbolizer& sym,
                     const json& extra = json::object()) {
    std::ostringstream out;
    const uint64_t n = write_report_json(out, r, run, sym, extra);
    EXPECT_EQ(n, out.str().size());
    return out.str();
}

// EXPECT_EQ on megabytes prints megabytes: say where they first differ.
void expect_same(const std::string& want, const std::string& got) {
    if (want == got)
        return;
    std::size_t i = 0;
    while (i < want.size() && i < got.size() && want[i] == got[i])
        ++i;
    const std::size_t from = i > 200 ? i - 200 : 0;
    ADD_FAILURE() << "differ at byte " << i << " of " << want.size() << " / " << got.size()
                  << "\n--- want:\n"
                  << want.substr(from, 400) << "\n--- got:\n"
                  << got.substr(from, 400);
}

} // namespace

TEST(OutputReportJson, StoryWithAndWithoutSymbolizer) {
    StreamBuilder b;
    b.story({.pages = 8, .page_table_alloc = true});
    const Report r = report_of(b);
    ASSERT_GT(r.stacks.size(), 1u);
    expect_same(reference(r, run_info(), some_symbols()), streamed(r, run_info(), some_symbols()));
    expect_same(reference(r, run_info(), {}), streamed(r, run_info(), {}));
    // a symbolizer that knows nothing: every sym null
    const Symbolizer none = [](uint64_t) { return std::string(); };
    expect_same(reference(r, run_info(), none), streamed(r, run_info(), none));
}

TEST(OutputReportJson, KeepPolicyExitAndFailedInsert) {
    StreamBuilder b;
    b.story({.pages = 3, .policy = Policy::keep, .exit_instead_of_munmap = true});
    b.story({.pages = 4, .vm_start = 0x7f1000000000, .pfn0 = 0x2000, .fail_at = 2});
    const Report r = report_of(b);
    expect_same(reference(r, run_info(), some_symbols()), streamed(r, run_info(), some_symbols()));
}

TEST(OutputReportJson, LostEventsAndIncompletePages) {
    StreamBuilder b;
    b.story({.pages = 2});
    b.drop_if([](const Event& e) { return e.type == KEX_EV_KEX_PAGE_FREE && e.pfn == 0x1001; });
    Losses l;
    l.per_type[KEX_EV_KEX_PAGE_FREE] = 1;
    l.per_type[0] = 5;  // "unknown"
    l.per_type[63] = 7; // "unknown" again: the tree keeps the last slot's
    l.ring = 2;
    l.decode_errors = UINT64_MAX;
    const Report r = report_of(b, l);
    ASSERT_GT(r.incomplete_pages(), 0u);
    expect_same(reference(r, run_info(), {}), streamed(r, run_info(), {}));
}

TEST(OutputReportJson, AnomaliesAndAFault) {
    StreamBuilder b;
    b.story({.pages = 2});
    for (Event& e : b.events)
        if (e.type == KEX_EV_INSERT_RET && e.pfn == 0x1001)
            e.arg0 = StreamBuilder::pte_for(0x4242);
    const StreamBuilder::Story s{.pages = 1, .vm_start = 0x7f2000000000, .pfn0 = 0x3000};
    b.map(s);
    b.phase(KEX_PHASE_WRITE_BEGIN, s.vm_start, 1);
    b.user_fault(s.vm_start, 0x7);
    b.phase(KEX_PHASE_WRITE_END, s.vm_start, 1);
    b.unmap(s);
    Report r = report_of(b);
    ASSERT_FALSE(r.anomalies.empty());
    // messages needing escapes, invalid UTF-8, negative and extreme numbers
    r.anomalies.push_back({UINT64_MAX, -1, "quote \" backslash \\ newline \n tab \t bell \x07"});
    r.anomalies.push_back({0, 0, "bad utf-8: \xc3\x28 \xa0\xa1 \xf0\x28\x8c\xbc end \xe2\x82"});
    r.anomalies.push_back({1, 1, "fine utf-8: 1→2→1 ü \x7f"});
    r.anomalies_dropped = UINT64_MAX;
    r.pages[0].insert_ret = INT64_MIN;
    r.pages[0].mapping = -1;
    r.pages[0].pfn = UINT64_MAX;
    r.pages[0].pte_addr = UINT64_MAX;
    r.pages[1].index = kNoIndex;
    std::vector<Step> steps = r.pages[1].steps.to_vector();
    steps.front().ts = r.pages[1].alloc_ts - 5; // dt < 0
    steps.back().flags = 0xff;
    r.pages[1].steps.assign(steps);
    r.phases.front().end = 0; // still open: duration_ns wraps (unsigned)
    r.phases.front().name = "ph\xffse";
    r.last_ts = UINT64_MAX;
    RunInfo run = run_info();
    run.command_line = "sh -c 'echo \"a\\b\"' \x1b[1m\xc0\xaf";
    run.probes.front().nmissed = UINT64_MAX;
    expect_same(reference(r, run, some_symbols()), streamed(r, run, some_symbols()));
}

TEST(OutputReportJson, EveryEscapeAtEveryPlace) {
    // the writer tests strings for escapes 8 bytes at a time, then the tail:
    // a character to escape (or not ASCII) at each place of strings of 0 to
    // 24 bytes, and the same strings plain
    StreamBuilder b;
    b.story({.pages = 1});
    Report r = report_of(b);
    const std::string special[] = {"\"", "\\", "\n", "\x01", "\x1f", "\xc3\xa9", "\xff", "\x80"};
    for (std::size_t len = 0; len <= 24; ++len) {
        const std::string plain(len, 'a');
        r.anomalies.push_back({len, -1, plain});
        r.anomalies.push_back({len, -1, std::string(len, '\x7f') + " ~}{"});
        for (std::size_t at = 0; at < len; ++at)
            for (const std::string& c : special)
                r.anomalies.push_back({len, -1, plain.substr(0, at) + c + plain.substr(at + 1)});
    }
    expect_same(reference(r, run_info(), {}), streamed(r, run_info(), {}));
}

TEST(OutputReportJson, EmptyReport) {
    const Report r = Correlator(CorrelatorOptions{}).finish();
    RunInfo run; // empty strings, no probes
    expect_same(reference(r, run, {}), streamed(r, run, {}));
    expect_same(reference(r, run, {}, json()), streamed(r, run, {}, json()));
}

TEST(OutputReportJson, ExtraSectionsAtTheirSortedPlaces) {
    StreamBuilder b;
    b.story({.pages = 3});
    const Report r = report_of(b);
    json extra = json::object();
    // what main.cpp adds
    auto& acct = extra["ring_accounting"] = {{"produced", 0}, {"received", 0}, {"lost", 0}};
    acct["per_type"] = json::object();
    acct["per_type"]["kex_page_alloc"] = {{"produced", 3}, {"received", 3}, {"lost", 0}};
    acct["exact"] = true;
    extra["probe_counters"] = json::object();
    extra["probe_counters"]["kex_alloc"] = {
        {"hits", 3}, {"matched", 3}, {"emitted", 3}, {"missed", json()}};
    extra["leaks"] = {
        {"device_closed", true}, {"pages", json::array()}, {"counts", json::object()}, {"bugs", 0}};
    // before, after and between every section; nested empties, escapes, floats
    extra["aaa"] = {{"nested", {{"deeper", json::array({1, -2, json::object(), json::array()})}}}};
    extra["zzz"] = "last \"one\" \xff";
    extra["pages_x"] = json::array({json::array({json::array()})});
    extra["e\"scaped\nkey"] = 1.5;
    extra["summary_"] = -0.25;
    extra["n"] = nullptr;
    expect_same(reference(r, run_info(), some_symbols(), extra),
                streamed(r, run_info(), some_symbols(), extra));

    // a report section replaced by extra's
    extra["summary"] = {{"replaced", true}};
    extra["pages"] = json::array();
    expect_same(reference(r, run_info(), some_symbols(), extra),
                streamed(r, run_info(), some_symbols(), extra));

    std::ostringstream out;
    EXPECT_THROW(write_report_json(out, r, run_info(), {}, json::array()), std::invalid_argument);
}

TEST(OutputReportJson, ManyPages) {
    // several processes, thousands of pages, both policies, out-of-order delivery
    StreamBuilder b(100);
    for (uint32_t m = 0; m < 6; ++m) {
        b.pid(100 + m % 3).cpu(m % 2);
        b.story({.pages = 700,
                 .vm_start = 0x7f0000000000 + (uint64_t(m) << 32),
                 .pfn0 = 0x100000 + m * 0x1000,
                 .policy = m % 2 ? Policy::keep : Policy::drop,
                 .write = m != 4,
                 .page_table_alloc = m == 0,
                 .fail_at = m == 5 ? 650 : -1});
    }
    std::vector<Event> events = b.events;
    for (std::size_t i = 0; i + 256 < events.size(); i += 512)
        std::swap_ranges(events.begin() + i, events.begin() + i + 128, events.begin() + i + 128);
    Correlator c({.roots = {}});
    for (const Event& e : events)
        c.feed(e);
    Losses l;
    l.per_type[KEX_EV_RMAP_ADD] = 3;
    c.set_losses(l);
    const Report r = c.finish();
    ASSERT_GT(r.pages.size(), 4000u);
    const std::string got = streamed(r, run_info(), some_symbols());
    expect_same(reference(r, run_info(), some_symbols()), got);
    EXPECT_EQ(json::parse(got)["summary"]["pages"], r.pages.size());
}
