// JSONL (kextrace/jsonl.h): events -> lines -> events identical; the header
// round trip; a replayed stream gives the same report; damaged lines are
// reported with their line number.
#include <kextrace/jsonl.h>
#include <kextrace/stream_builder.h>

#include <gtest/gtest.h>

#include <random>
#include <sstream>

using namespace kextrace;

namespace {

void expect_same(const Event& a, const Event& b, const std::string& what) {
    EXPECT_EQ(a.ts, b.ts) << what;
    EXPECT_EQ(a.type, b.type) << what;
    EXPECT_EQ(a.cpu, b.cpu) << what;
    EXPECT_EQ(a.pid, b.pid) << what;
    EXPECT_EQ(a.tid, b.tid) << what;
    EXPECT_EQ(a.pfn, b.pfn) << what;
    EXPECT_EQ(a.addr, b.addr) << what;
    EXPECT_EQ(a.arg0, b.arg0) << what;
    EXPECT_EQ(a.arg1, b.arg1) << what;
    EXPECT_EQ(a.ret, b.ret) << what;
    EXPECT_EQ(a.refcount, b.refcount) << what;
    EXPECT_EQ(a.mapcount, b.mapcount) << what;
    EXPECT_EQ(a.probe, b.probe) << what;
    EXPECT_EQ(a.stack, b.stack) << what;
}

JsonlHeader header_for(uint64_t events) {
    JsonlHeader h;
    h.run.kernel_release = "6.1.0-56-amd64";
    h.run.command_line = "mmap_test /dev/kex 8 --no-wait";
    h.run.set_pte_observed = "PTE read back at the return of insert_page_into_pte_locked";
    h.run.probes = {
        {"insert", "insert_page_into_pte_locked", "insert_page_into_pte_locked.constprop.0", true,
         "clone", 3, "tracefs kprobe + tracefs kretprobe"},
        {"dirty at zap", "set_page_dirty", "", false, "off: --watch", 0, "kprobe", true}};
    h.correlator.roots = {100};
    h.correlator.expected = kMsDefaultExpected & ~kMsKexInsert;
    h.correlator.alloc_attach_ns = 10'000'000'000ull;
    h.correlator.max_anomalies = 7;
    h.probe_names = {"rig_phase", "kex_page_alloc"};
    h.symbols = {{0xffffffffc0001000, "kex_mmap+0x1a5 [kex]"}};
    h.losses.per_type[KEX_EV_RMAP_ADD] = 2;
    h.losses.ring = 1;
    h.losses.decode_errors = 4;
    h.events = events;
    return h;
}

std::string file_of(const JsonlHeader& h, const std::vector<Event>& events) {
    std::string s = jsonl_header_line(h) + "\n";
    for (const Event& e : events)
        s += jsonl_event_line(e) + "\n";
    return s;
}

} // namespace

TEST(JsonlRoundTrip, StoryEventsComeBackIdentical) {
    StreamBuilder b;
    b.story({.pages = 8, .page_table_alloc = true, .fail_at = 5});
    b.events.front().ret = -12;
    b.events.front().addr = 0xffffffffffffffff;
    b.events.front().arg1 = 0x8000000000000000;
    b.events.front().probe = 17;
    for (std::size_t i = 0; i < b.events.size(); ++i) {
        const std::string line = jsonl_event_line(b.events[i]);
        EXPECT_EQ(line.find('\n'), std::string::npos);
        std::string why;
        auto back = parse_jsonl_event(line, &why);
        ASSERT_TRUE(back) << why << "\n" << line;
        expect_same(*back, b.events[i], line);
    }
}

TEST(JsonlRoundTrip, RandomEventsComeBackIdentical) {
    std::mt19937_64 rng(42);
    const uint32_t types[] = {KEX_EV_RIG_PHASE,   KEX_EV_KEX_PAGE_ALLOC, KEX_EV_INSERT_RET,
                              KEX_EV_RMAP_REMOVE, KEX_EV_SET_DIRTY,      KEX_EV_USER_FAULT};
    for (int i = 0; i < 2000; ++i) {
        Event e;
        e.ts = rng();
        e.type = types[rng() % std::size(types)];
        e.cpu = static_cast<uint32_t>(rng());
        e.pid = static_cast<uint32_t>(rng());
        e.tid = static_cast<uint32_t>(rng());
        e.pfn = rng() % 3 ? rng() : kNoPfn;
        e.addr = rng();
        e.arg0 = rng();
        e.arg1 = rng();
        e.ret = static_cast<int64_t>(rng());
        e.refcount = rng() % 4 ? static_cast<int32_t>(rng()) : kNoCount;
        e.mapcount = rng() % 4 ? static_cast<int32_t>(rng()) : kNoCount;
        e.probe = static_cast<uint32_t>(rng());
        e.stack.resize(rng() % (KEX_STACK_DEPTH + 1));
        for (auto& a : e.stack)
            a = rng();
        std::string why;
        auto back = parse_jsonl_event(jsonl_event_line(e), &why);
        ASSERT_TRUE(back) << why;
        expect_same(*back, e, std::to_string(i));
    }
}

TEST(JsonlRoundTrip, HeaderComesBackIdentical) {
    const JsonlHeader h = header_for(12);
    std::string why;
    auto back = parse_jsonl_header(jsonl_header_line(h), &why);
    ASSERT_TRUE(back) << why;
    EXPECT_EQ(back->run.kernel_release, h.run.kernel_release);
    EXPECT_EQ(back->run.command_line, h.run.command_line);
    EXPECT_EQ(back->run.set_pte_observed, h.run.set_pte_observed);
    ASSERT_EQ(back->run.probes.size(), 2u);
    EXPECT_EQ(back->run.probes[0].resolved, "insert_page_into_pte_locked.constprop.0");
    EXPECT_EQ(back->run.probes[0].nmissed, 3u);
    EXPECT_TRUE(back->run.probes[0].attached);
    EXPECT_FALSE(back->run.probes[0].off);
    EXPECT_TRUE(back->run.probes[1].off); // a step --watch left off stays off
    EXPECT_FALSE(back->run.probes[1].attached);
    EXPECT_EQ(back->correlator.roots, h.correlator.roots);
    EXPECT_EQ(back->correlator.expected, h.correlator.expected);
    EXPECT_EQ(back->correlator.alloc_attach_ns, 10'000'000'000ull);
    EXPECT_EQ(back->correlator.max_anomalies, 7u);
    EXPECT_EQ(back->correlator.reorder_window_ns, 0u);
    EXPECT_EQ(back->probe_names, h.probe_names);
    EXPECT_EQ(back->symbols, h.symbols);
    EXPECT_EQ(back->losses.per_type, h.losses.per_type);
    EXPECT_EQ(back->losses.ring, 1u);
    EXPECT_EQ(back->losses.decode_errors, 4u);
    EXPECT_EQ(back->events, 12u);
    EXPECT_EQ(symbolizer_of(*back)(0xffffffffc0001000), "kex_mmap+0x1a5 [kex]");
    EXPECT_EQ(symbolizer_of(*back)(0x1234), "");
}

TEST(JsonlRoundTrip, ReplayGivesTheSameReport) {
    StreamBuilder b;
    b.story({.pages = 8, .policy = Policy::keep});
    // same-ts events: the file order must break ties as the feed order did
    for (std::size_t i = 10; i < 20; ++i)
        b.events[i].ts = b.events[10].ts;
    const JsonlHeader h = header_for(b.events.size());

    const CorrelatorOptions opts = h.correlator;
    Correlator direct(opts);
    for (const Event& e : b.events)
        direct.feed(e);
    direct.set_losses(h.losses);
    const Report want = direct.finish();

    std::istringstream in(file_of(h, b.events));
    Correlator replay(opts);
    const JsonlRead r = read_jsonl(in, [&](Event&& e) { replay.feed(std::move(e)); });
    ASSERT_FALSE(r.error) << r.error->line << ": " << r.error->message;
    ASSERT_TRUE(r.header);
    EXPECT_EQ(r.events, b.events.size());
    replay.set_losses(r.header->losses);
    const Report got = replay.finish();
    EXPECT_EQ(to_json(got, r.header->run, symbolizer_of(*r.header)),
              to_json(want, h.run, symbolizer_of(h)));
}

TEST(JsonlMalformed, ErrorsNameTheLine) {
    StreamBuilder b;
    b.story({.pages = 2});
    const std::string good = file_of(header_for(b.events.size()), b.events);
    auto read = [](const std::string& text) {
        std::istringstream in(text);
        return read_jsonl(in, [](Event&&) {});
    };
    auto lines = [&] {
        std::vector<std::string> v;
        std::istringstream in(good);
        for (std::string l; std::getline(in, l);)
            v.push_back(l);
        return v;
    };
    auto join = [](const std::vector<std::string>& v) {
        std::string s;
        for (const auto& l : v)
            s += l + "\n";
        return s;
    };
    ASSERT_FALSE(read(good).error);

    auto expect_error = [&](std::vector<std::string> v, std::size_t line, const std::string& what) {
        const JsonlRead r = read(join(v));
        ASSERT_TRUE(r.error) << what;
        EXPECT_FALSE(r.header);
        EXPECT_EQ(r.error->line, line) << r.error->message;
        EXPECT_NE(r.error->message.find(what), std::string::npos) << r.error->message;
    };
    auto v = lines();
    v[2] = v[2].substr(0, v[2].size() / 2); // cut in the middle
    expect_error(v, 3, "not valid JSON");
    v = lines();
    v[4].replace(v[4].find("\"ts\""), 4, "\"tz\"");
    expect_error(v, 5, "no \"ts\"");
    v = lines();
    v[3].replace(v[3].find("\"addr\":\"0x"), 10, "\"addr\":\"zz");
    expect_error(v, 4, "\"addr\" is not a hex string");
    v = lines();
    v[6].replace(v[6].find("\"type\":\""), 8, "\"type\":\"bogus_");
    expect_error(v, 7, "unknown event type");
    v = lines();
    v[5].replace(v[5].find("\"pid\":"), 6, "\"pid\":-");
    expect_error(v, 6, "\"pid\" is not an integer in range");
    v = lines();
    v[2] = "[1,2,3]";
    expect_error(v, 3, "not a JSON object");
    v = lines();
    v[0].replace(v[0].find("kextrace.events/1"), 17, "kextrace.events/9");
    expect_error(v, 1, "schema");
    v = lines();
    v.pop_back(); // one event short of what the header announces
    expect_error(v, v.size() + 1, "truncated");
    expect_error({}, 1, "no header");
    // blank lines are fine and still counted
    v = lines();
    v.insert(v.begin() + 2, "");
    v[5] = "{";
    expect_error(v, 6, "not valid JSON");
}
