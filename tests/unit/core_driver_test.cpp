// Another driver's pages (KEX_EV_DRIVER_VMA / KEX_EV_DRIVER_PAGE): the
// correlator's lives and mappings, and the leak verdicts, on synthetic
// streams shaped as the guest's AF_PACKET ring runs them.
#include <kextrace/core.h>
#include <kextrace/leaks.h>
#include <kextrace/stream_builder.h>

#include <gtest/gtest.h>

using namespace kextrace;

namespace {

constexpr uint64_t kStart = 0x7f1000000000;
constexpr uint64_t kPfn0 = 0x2000;

VmaInfo packet_socket() {
    VmaInfo v;
    v.vma = 0xffff888003a1b000;
    v.f_op = 0xffffffff82a00100;
    v.mmap = 0xffffffff81c00200;
    v.ino = 777;
    v.magic = kSockfsMagic;
    v.flags = KEX_VMA_NAME_ROOT;
    v.name = {"socket:[777]"};
    return v;
}

Report run(const StreamBuilder& b) {
    return correlate(b);
}

std::string anomalies(const Report& r) {
    return anomaly_text(r);
}

} // namespace

TEST(CoreDriver, RingPagesLiveFromInsertToFree) {
    StreamBuilder b;
    b.driver_ring(kStart, 8, kPfn0, packet_socket());
    const Report r = run(b);
    ASSERT_EQ(r.pages.size(), 8u);
    ASSERT_EQ(r.mappings.size(), 1u);
    const Mapping& m = r.mappings[0];
    EXPECT_TRUE(m.driver);
    EXPECT_EQ(m.mode, MapMode::driver);
    EXPECT_EQ(m.lives, 8u);
    EXPECT_EQ(m.pages, 8u);
    ASSERT_TRUE(m.vma);
    EXPECT_EQ(vma_file_name(*m.vma), "socket:[777]");
    EXPECT_NE(m.stack_id, 0u);
    for (uint32_t i = 0; i < 8; ++i) {
        const PageLife& p = r.pages[i];
        EXPECT_EQ(p.pfn, kPfn0 + i);
        EXPECT_EQ(p.index, i);
        EXPECT_EQ(p.uaddr, kStart + i * kPageSize);
        EXPECT_EQ(p.mode, MapMode::driver);
        EXPECT_TRUE(p.alloc_before_trace);
        EXPECT_EQ(p.mapping, 0);
        EXPECT_TRUE(p.complete()) << milestone_names(p.missing);
        EXPECT_EQ(p.zap_context, ZapContext::munmap);
        EXPECT_NE(p.free_ts, 0u);
        EXPECT_EQ(p.pte, StreamBuilder::pte_for(kPfn0 + i));
        EXPECT_EQ(refcount_trail(p), (std::vector<int32_t>{1, 2, 0}));
    }
    EXPECT_TRUE(r.anomalies.empty()) << anomalies(r);
    EXPECT_EQ(r.orphans, 0u);

    const LeakReport leaks = assess_leaks(r);
    EXPECT_EQ(leaks.count(Verdict::freed), 8u);
    EXPECT_EQ(leaks.bugs(), 0u);
}

TEST(CoreDriver, PageTheDriverStillHoldsIsNotIncomplete) {
    StreamBuilder b;
    b.driver_ring(kStart, 2, kPfn0, packet_socket(), /*close=*/false);
    const Report r = run(b);
    ASSERT_EQ(r.pages.size(), 2u);
    for (const PageLife& p : r.pages) {
        EXPECT_TRUE(p.open_at_end);
        EXPECT_TRUE(p.complete()) << milestone_names(p.missing);
    }
}

TEST(CoreDriver, FreedWhileMappedIsTheBugItIsForKex) {
    StreamBuilder b;
    b.driver_vma(kStart, 1, packet_socket());
    b.driver_page(kPfn0, kStart, kStart, 1);
    b.insert(kPfn0, 0);
    b.rmap_add(kPfn0, 0);
    b.insert_ret(kPfn0, 0, StreamBuilder::pte_for(kPfn0));
    b.page_free(kPfn0, 0);
    const Report r = run(b);
    ASSERT_EQ(r.pages.size(), 1u);
    EXPECT_NE(anomalies(r).find("freed while still mapped"), std::string::npos) << anomalies(r);
    EXPECT_EQ(assess_leaks(r).count(Verdict::freed_while_mapped), 1u);
}

TEST(CoreDriver, LostVmaRecordStillFollowsThePage) {
    StreamBuilder b;
    b.driver_ring(kStart, 2, kPfn0, packet_socket());
    b.drop_if([](const Event& e) { return e.type == KEX_EV_DRIVER_VMA; });
    const Report r = run(b);
    ASSERT_EQ(r.pages.size(), 2u);
    EXPECT_TRUE(r.mappings.empty());
    EXPECT_EQ(r.pages[0].mapping, -1);
    EXPECT_EQ(r.pages[0].mode, MapMode::driver);
    EXPECT_TRUE(r.pages[0].complete());
}

TEST(CoreDriver, SameRangeMappedAgainIsANewMapping) {
    StreamBuilder b;
    b.driver_ring(kStart, 2, kPfn0, packet_socket());
    b.driver_ring(kStart, 2, kPfn0 + 16, packet_socket());
    const Report r = run(b);
    ASSERT_EQ(r.mappings.size(), 2u);
    EXPECT_NE(r.mappings[0].close_ts, 0u);
    EXPECT_EQ(r.mappings[0].lives, 2u);
    EXPECT_EQ(r.mappings[1].lives, 2u);
    EXPECT_EQ(r.pages[3].mapping, 1);
}

TEST(CoreDriver, NotTracedProcessIsFiltered) {
    StreamBuilder b(200);
    b.driver_ring(kStart, 2, kPfn0, packet_socket());
    const Report r = run(b);
    EXPECT_TRUE(r.pages.empty());
    EXPECT_TRUE(r.mappings.empty());
}

// kextrace --driver / --file: a VMA the filter leaves out is not reported,
// nor are its pages, and none of their events is an orphan or an anomaly;
// the same range mapped again by a followed driver is followed.
TEST(CoreDriver, FilterLeavesOutOtherOwnersVmasAndTheirPages) {
    VmaInfo other = packet_socket();
    other.ino = 778;
    other.name = {"socket:[778]"};
    StreamBuilder b;
    b.driver_ring(kStart, 4, kPfn0, other);                           // left out
    b.driver_ring(kStart + 0x100000, 2, kPfn0 + 16, packet_socket()); // followed
    b.driver_ring(kStart, 2, kPfn0 + 32, packet_socket());            // the first range again
    CorrelatorOptions o{.roots = {100}};
    o.follow_driver_vma = [](const VmaInfo& v) { return v.ino == 777; };
    const Report r = correlate(b, std::move(o));
    ASSERT_EQ(r.mappings.size(), 2u);
    for (const Mapping& m : r.mappings) {
        ASSERT_TRUE(m.vma);
        EXPECT_EQ(m.vma->ino, 777u);
        EXPECT_EQ(m.lives, 2u);
    }
    ASSERT_EQ(r.pages.size(), 4u);
    for (const PageLife& p : r.pages) {
        EXPECT_GE(p.pfn, kPfn0 + 16);
        EXPECT_TRUE(p.complete()) << milestone_names(p.missing);
    }
    EXPECT_EQ(r.unfollowed_driver_pages, 4u);
    EXPECT_EQ(r.orphans, 0u);
    EXPECT_TRUE(r.anomalies.empty()) << anomalies(r);
    EXPECT_GT(r.filtered, 4u); // the left-out pages' events
}
