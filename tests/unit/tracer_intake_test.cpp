// Intake: ring-buffer records to the correlator, and --watch's life records
// (a page's records in one sample, or read from the BPF map after the trace)
// taken apart into the same records, counted per type as the ring
// accounting needs (produced = received + lost).
#include "intake.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

using namespace kextrace;

namespace {

Event page_event(uint32_t type, uint64_t ts) {
    Event e;
    e.ts = ts;
    e.type = type;
    e.pid = e.tid = 100;
    e.pfn = 0x1234;
    e.refcount = 1;
    e.mapcount = 0;
    return e;
}

// A KEX_EV_LIFE record of the given events, flagged flags.
std::vector<std::byte> life(const std::vector<Event>& steps, uint64_t flags) {
    std::vector<std::byte> rec(KEX_LIFE_SIZE(steps.size()));
    kex_event head{};
    head.type = KEX_EV_LIFE;
    head.pfn = 0x1234;
    head.arg0 = steps.size();
    head.arg1 = flags;
    head.ret = static_cast<int64_t>(steps.size());
    std::memcpy(rec.data(), &head, sizeof(head));
    for (std::size_t i = 0; i < steps.size(); ++i) {
        const auto one = encode_event(steps[i]);
        std::memcpy(rec.data() + (i + 1) * sizeof(kex_event), one.data(), one.size());
    }
    return rec;
}

struct IntakeTest : ::testing::Test {
    Ksyms ksyms = Ksyms::parse("ffffffff81000000 T _text\n");
    ProbePlan plan;
    Streams streams;
    Intake intake{CorrelatorOptions{}, ksyms, plan, streams};
};

} // namespace

TEST_F(IntakeTest, APlainRecordIsOneSampleOfItsType) {
    const auto rec = encode_event(page_event(KEX_EV_KEX_PAGE_ALLOC, 10));
    intake.take(rec);
    EXPECT_EQ(intake.ring_records, 1u);
    EXPECT_EQ(intake.received[KEX_EV_KEX_PAGE_ALLOC], 1u);
    EXPECT_EQ(intake.decode_errors, 0u);
}

TEST_F(IntakeTest, ALifeIsOneSampleAndEachOfItsRecords) {
    const auto rec =
        life({page_event(KEX_EV_KEX_PAGE_ALLOC, 10), page_event(KEX_EV_KEX_PAGE_INSERT, 20),
              page_event(KEX_EV_PAGE_FREE, 30)},
             KEX_LIFE_FREED);
    intake.take(rec);
    EXPECT_EQ(intake.ring_records, 1u);
    EXPECT_EQ(intake.received[KEX_EV_LIFE], 1u);
    EXPECT_EQ(intake.received[KEX_EV_KEX_PAGE_ALLOC], 1u);
    EXPECT_EQ(intake.received[KEX_EV_KEX_PAGE_INSERT], 1u);
    EXPECT_EQ(intake.received[KEX_EV_PAGE_FREE], 1u);
    EXPECT_EQ(intake.decode_errors, 0u);
    const Report r = intake.correlator.finish();
    EXPECT_EQ(r.events, 3u); // the records, not the life
}

// A life read from the map after the trace came through no ring: its records
// count as received (they were produced), the life itself does not.
TEST_F(IntakeTest, AnOpenLifeIsNoSample) {
    intake.take(life({page_event(KEX_EV_KEX_PAGE_ALLOC, 10)}, KEX_LIFE_OPEN));
    EXPECT_EQ(intake.ring_records, 0u);
    EXPECT_EQ(intake.received[KEX_EV_LIFE], 0u);
    EXPECT_EQ(intake.received[KEX_EV_KEX_PAGE_ALLOC], 1u);
}

// A life cut short is one undecodable record: none of its records is taken.
TEST_F(IntakeTest, ACutLifeIsUndecodable) {
    auto rec = life({page_event(KEX_EV_KEX_PAGE_ALLOC, 10), page_event(KEX_EV_PAGE_FREE, 30)},
                    KEX_LIFE_FREED);
    rec.resize(KEX_LIFE_SIZE(1));
    intake.take(rec);
    EXPECT_EQ(intake.decode_errors, 1u);
    EXPECT_EQ(intake.received[KEX_EV_LIFE], 1u);
    EXPECT_EQ(intake.received[KEX_EV_KEX_PAGE_ALLOC], 0u);
    EXPECT_EQ(intake.correlator.finish().events, 0u);
}

// A kex_page_alloc record carrying the mm_page_alloc BPF held back for it
// (addr = its ts, ret = its order | its cpu << 32: bpf/events.h) is one
// sample and the two events it stands for, the allocation first, counted
// per type as if each had come alone; a claim without one is itself.
TEST_F(IntakeTest, AClaimCarryingItsAllocationIsBothEvents) {
    Event claim = page_event(KEX_EV_KEX_PAGE_ALLOC, 10);
    claim.arg0 = 7;                   // kex's index
    claim.addr = 5;                   // the held-back allocation's ts
    claim.ret = int64_t{3} << 32 | 0; // on cpu 3, order 0
    intake.take(encode_event(claim));
    EXPECT_EQ(intake.ring_records, 1u);
    EXPECT_EQ(intake.received[KEX_EV_PAGE_ALLOC], 1u);
    EXPECT_EQ(intake.received[KEX_EV_KEX_PAGE_ALLOC], 1u);
    EXPECT_EQ(intake.decode_errors, 0u);
    const Report r = intake.correlator.finish();
    EXPECT_EQ(r.events, 2u);
    EXPECT_EQ(r.counts[KEX_EV_PAGE_ALLOC], 1u);
    ASSERT_EQ(r.pages.size(), 1u);
    const std::vector<Step> steps = r.pages[0].steps.to_vector();
    ASSERT_EQ(steps.size(), 2u);
    EXPECT_EQ(steps[0].kind, StepKind::kmem_alloc); // attached: same task, pfn
    EXPECT_EQ(steps[0].ts, 5u);
    EXPECT_EQ(steps[0].value, 0u); // order
    EXPECT_EQ(steps[1].kind, StepKind::kex_alloc);
    EXPECT_EQ(steps[1].ts, 10u);
    EXPECT_EQ(steps[1].value, 7u);
    EXPECT_EQ(r.pages[0].index, 7u);
}

TEST_F(IntakeTest, AClaimWithoutAnAllocationIsOneEvent) {
    intake.take(encode_event(page_event(KEX_EV_KEX_PAGE_ALLOC, 10)));
    EXPECT_EQ(intake.received[KEX_EV_PAGE_ALLOC], 0u);
    EXPECT_EQ(intake.received[KEX_EV_KEX_PAGE_ALLOC], 1u);
    EXPECT_EQ(intake.correlator.finish().events, 1u);
}
