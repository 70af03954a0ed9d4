// decode_event / encode_event: the record contract of bpf/events.h, and PTE decoding.
#include <kextrace/core.h>

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <set>

using namespace kextrace;

namespace {

Event sample(std::size_t stack_len) {
    Event e;
    e.ts = 123456789;
    e.type = KEX_EV_KEX_PAGE_FREE;
    e.cpu = 3;
    e.pid = 100;
    e.tid = 101;
    e.pfn = 0x1a2b3;
    e.addr = 0x7f0000001000;
    e.arg0 = 5;
    e.arg1 = KEX_FREE_AFTER_INSERT;
    e.ret = -16;
    e.refcount = 2;
    e.mapcount = 1;
    e.probe = 18;
    for (std::size_t i = 0; i < stack_len; ++i)
        e.stack.push_back(0xffffffff81000000 + i);
    return e;
}

std::span<const std::byte> bytes(const std::vector<std::byte>& v) {
    return {v.data(), v.size()};
}

} // namespace

TEST(CoreDecode, RoundTripsEveryField) {
    for (std::size_t n : {0u, 1u, 7u, static_cast<unsigned>(KEX_STACK_DEPTH)}) {
        const Event in = sample(n);
        const auto rec = encode_event(in);
        ASSERT_EQ(rec.size(), KEX_EVENT_SIZE(n));
        std::string why;
        const auto out = decode_event(bytes(rec), &why);
        ASSERT_TRUE(out) << why;
        EXPECT_EQ(out->ts, in.ts);
        EXPECT_EQ(out->type, in.type);
        EXPECT_EQ(out->cpu, in.cpu);
        EXPECT_EQ(out->pid, in.pid);
        EXPECT_EQ(out->tid, in.tid);
        EXPECT_EQ(out->pfn, in.pfn);
        EXPECT_EQ(out->addr, in.addr);
        EXPECT_EQ(out->arg0, in.arg0);
        EXPECT_EQ(out->arg1, in.arg1);
        EXPECT_EQ(out->ret, in.ret);
        EXPECT_EQ(out->refcount, in.refcount);
        EXPECT_EQ(out->mapcount, in.mapcount);
        EXPECT_EQ(out->probe, in.probe);
        EXPECT_EQ(out->stack, in.stack);
    }
}

TEST(CoreDecode, DecodesFromAnUnalignedBuffer) {
    const auto rec = encode_event(sample(3));
    std::vector<std::byte> shifted(rec.size() + 1);
    std::memcpy(shifted.data() + 1, rec.data(), rec.size());
    const auto out = decode_event(std::span(shifted).subspan(1));
    ASSERT_TRUE(out);
    EXPECT_EQ(out->stack.size(), 3u);
}

TEST(CoreDecode, RejectsShortRecords) {
    const auto rec = encode_event(sample(0));
    std::string why;
    EXPECT_FALSE(decode_event({}, &why));
    EXPECT_NE(why.find("shorter"), std::string::npos) << why;
    EXPECT_FALSE(decode_event(std::span(rec).first(79), &why));
    // A record that announces a stack but was cut before it.
    const auto with_stack = encode_event(sample(4));
    EXPECT_FALSE(decode_event(std::span(with_stack).first(with_stack.size() - 8), &why));
    EXPECT_NE(why.find("stack_len 4"), std::string::npos) << why;
}

TEST(CoreDecode, RejectsOversizedRecords) {
    auto rec = encode_event(sample(2));
    rec.resize(rec.size() + 8);
    std::string why;
    EXPECT_FALSE(decode_event(bytes(rec), &why));
    EXPECT_NE(why.find("needs"), std::string::npos) << why;
}

TEST(CoreDecode, RejectsStackLenBeyondDepth) {
    auto rec = encode_event(sample(0));
    const uint32_t bad = KEX_STACK_DEPTH + 1;
    std::memcpy(rec.data() + offsetof(kex_event, stack_len), &bad, sizeof(bad));
    rec.resize(KEX_EVENT_SIZE(bad));
    std::string why;
    EXPECT_FALSE(decode_event(bytes(rec), &why));
    EXPECT_NE(why.find("stack_len"), std::string::npos) << why;
}

TEST(CoreDecode, RejectsUnknownTypes) {
    for (uint32_t type : {0u, 8u, 29u, 47u, 64u, 0xffffffffu}) {
        Event e = sample(0);
        e.type = type;
        std::string why;
        EXPECT_FALSE(decode_event(bytes(encode_event(e)), &why)) << type;
        EXPECT_NE(why.find("unknown event type"), std::string::npos) << why;
    }
}

TEST(CoreDecode, SurvivesGarbage) {
    std::mt19937_64 rng(42);
    std::size_t accepted = 0;
    for (int i = 0; i < 20000; ++i) {
        std::vector<std::byte> buf(rng() % (KEX_EVENT_SIZE(KEX_STACK_DEPTH) + 16));
        for (auto& b : buf)
            b = static_cast<std::byte>(rng());
        if (buf.size() >= sizeof(kex_event) && i % 2) {
            // Make half of them plausible so the later checks run too.
            const uint32_t type = KEX_EV_INSERT, n = static_cast<uint32_t>(rng() % 30);
            std::memcpy(buf.data() + offsetof(kex_event, type), &type, 4);
            std::memcpy(buf.data() + offsetof(kex_event, stack_len), &n, 4);
        }
        std::string why;
        auto ev = decode_event(bytes(buf), &why);
        if (ev) {
            ++accepted;
            EXPECT_LE(ev->stack.size(), static_cast<std::size_t>(KEX_STACK_DEPTH));
        } else {
            EXPECT_FALSE(why.empty());
        }
    }
    EXPECT_GT(accepted, 0u); // some plausible ones got through
}

// --watch: a life record is its header and arg0 records, each decodable.
TEST(CoreDecode, TakesALifeRecordApart) {
    std::vector<std::byte> rec(KEX_LIFE_SIZE(3));
    kex_event head{};
    head.type = KEX_EV_LIFE;
    head.pfn = 0x1a2b3;
    head.arg0 = 3;
    head.arg1 = KEX_LIFE_FREED;
    std::memcpy(rec.data(), &head, sizeof(head));
    for (uint32_t i = 0; i < 3; ++i) {
        Event e = sample(0);
        e.ts += i;
        const auto one = encode_event(e);
        std::memcpy(rec.data() + (i + 1) * sizeof(kex_event), one.data(), one.size());
    }
    std::string why;
    const auto parts = life_records(bytes(rec), &why);
    ASSERT_TRUE(parts) << why;
    ASSERT_EQ(parts->size(), 3u);
    for (uint32_t i = 0; i < 3; ++i) {
        const auto ev = decode_event((*parts)[i], &why);
        ASSERT_TRUE(ev) << why;
        EXPECT_EQ(ev->ts, sample(0).ts + i);
        EXPECT_EQ(ev->pfn, 0x1a2b3u);
    }
    // the header is no record of its own, and a length that does not fit is refused
    EXPECT_FALSE(decode_event(bytes(rec).first(sizeof(kex_event)), &why));
    EXPECT_FALSE(life_records(bytes(rec).first(KEX_LIFE_SIZE(2)), &why));
    EXPECT_NE(why.find("with 3 records"), std::string::npos) << why;
    head.arg0 = KEX_LIFE_STEPS + 1;
    std::memcpy(rec.data(), &head, sizeof(head));
    EXPECT_FALSE(life_records(bytes(rec), &why));
    EXPECT_FALSE(life_records(bytes(rec).first(10), &why));
}

// --watch: BPF reserves a life's sample for KEX_LIFE_STEPS records; the
// reader trims it to the header and the arg0 records it carries.
TEST(CoreDecode, TrimsALifeSampleToItsRecords) {
    std::vector<std::byte> rec(KEX_LIFE_SIZE(KEX_LIFE_STEPS));
    kex_event head{};
    head.type = KEX_EV_LIFE;
    head.arg0 = 3;
    std::memcpy(rec.data(), &head, sizeof(head));
    EXPECT_EQ(trim_record(bytes(rec)).size(), KEX_LIFE_SIZE(3));
    std::string why;
    const auto parts = life_records(trim_record(bytes(rec)), &why);
    ASSERT_TRUE(parts) << why;
    EXPECT_EQ(parts->size(), 3u);
    head.arg0 = KEX_LIFE_STEPS + 1; // not a life's count: left as it came
    std::memcpy(rec.data(), &head, sizeof(head));
    EXPECT_EQ(trim_record(bytes(rec)).size(), rec.size());
}

TEST(CoreDecode, TypeNamesRoundTrip) {
    std::size_t known = 0;
    for (uint32_t t = 0; t < kTypeSlots; ++t) {
        if (!is_known_event_type(t)) {
            EXPECT_EQ(event_type_name(t), "unknown");
            continue;
        }
        ++known;
        const auto name = event_type_name(t);
        EXPECT_NE(name, "unknown");
        EXPECT_EQ(event_type_from_name(name), t);
    }
    // + the mapping modes' six (events.h 50..55), a driver page's allocation
    // (59), the driver VMA, page and pfn map (60..63), a pfn map's PTE (46),
    // --follow's call (56), --watch's page life (58)
    EXPECT_EQ(known, 43u);
    EXPECT_FALSE(event_type_from_name("nope"));
    EXPECT_EQ(event_type_name(1000), "unknown");
}

// Every tracking slot has its own name (the JSON's map_full keys, read back
// by the JSONL reader): a slot without one would print as "" and fail to read.
TEST(CoreDecode, TrackSlotNamesRoundTrip) {
    std::set<std::string_view> seen;
    for (uint32_t m = 0; m < KEX_TRACK_COUNT; ++m) {
        const auto name = track_slot_name(m);
        EXPECT_FALSE(name.empty()) << "slot " << m;
        EXPECT_TRUE(seen.insert(name).second) << name;
        EXPECT_EQ(track_slot_from_name(name), m);
    }
    EXPECT_EQ(track_slot_name(KEX_TRACK_STACK_SITES), "stack_sites");
    EXPECT_EQ(track_slot_name(KEX_TRACK_COUNT), "");
}

TEST(CorePte, DecodesBitsAndPfn) {
    const uint64_t pte = (1ULL << 63) | (0x1a2b3ULL << 12) | 0x27; // P RW U A, NX
    const PteBits b = decode_pte(pte);
    EXPECT_EQ(b.pfn, 0x1a2b3u);
    EXPECT_TRUE(b.present);
    EXPECT_TRUE(b.rw);
    EXPECT_TRUE(b.user);
    EXPECT_TRUE(b.accessed);
    EXPECT_FALSE(b.dirty);
    EXPECT_TRUE(b.nx);
    EXPECT_EQ(pte_flags(pte), "P RW U A - NX");
    EXPECT_EQ(pte_flags(pte | 0x40), "P RW U A D NX");
    EXPECT_EQ(pte_flags(0), "-  - - - -  -");
    // Bits 52..62 (software / protection keys) are not part of the pfn.
    EXPECT_EQ(decode_pte(pte | (0x7ffULL << 52)).pfn, 0x1a2b3u);
}
