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
