// StackSites: --stacks=sites records get their call site's stack back.
#include <kextrace/core.h>
#include <kextrace/stack_sites.h>

#include <gtest/gtest.h>

using namespace kextrace;

namespace {
Event rec(uint32_t site, std::vector<uint64_t> stack = {}) {
    Event e;
    e.type = KEX_EV_KEX_PAGE_ALLOC;
    e.stack_site = site;
    e.stack = std::move(stack);
    return e;
}
} // namespace

TEST(StackSites, ALaterRecordGetsItsSitesStack) {
    StackSites s;
    Event def = rec(7, {0xa, 0xb, 0xc});
    ASSERT_TRUE(s.resolve(def));
    EXPECT_EQ(def.stack, (std::vector<uint64_t>{0xa, 0xb, 0xc}));
    Event use = rec(7);
    ASSERT_TRUE(s.resolve(use));
    EXPECT_EQ(use.stack, (std::vector<uint64_t>{0xa, 0xb, 0xc}));
    EXPECT_EQ(s.stats().walked, 1u);
    EXPECT_EQ(s.stats().reused, 1u);
    EXPECT_EQ(s.sites(), 1u);
}

TEST(StackSites, RecordsWithoutASiteAreLeftAlone) {
    StackSites s;
    Event walked = rec(0, {1, 2});
    Event none = rec(0);
    EXPECT_TRUE(s.resolve(walked));
    EXPECT_TRUE(s.resolve(none));
    EXPECT_EQ(walked.stack.size(), 2u);
    EXPECT_TRUE(none.stack.empty());
    EXPECT_EQ(s.stats().walked + s.stats().reused + s.stats().unresolved, 0u);
}

TEST(StackSites, AnUndefinedSiteIsCountedNotInvented) {
    StackSites s;
    Event use = rec(3);
    EXPECT_FALSE(s.resolve(use));
    EXPECT_TRUE(use.stack.empty());
    EXPECT_EQ(s.stats().unresolved, 1u);
}

TEST(StackSites, ASiteDefinedAgainNamesTheNewerStack) {
    StackSites s;
    Event a = rec(5, {1}), b = rec(5, {2, 3}), use = rec(5);
    s.resolve(a);
    s.resolve(b);
    ASSERT_TRUE(s.resolve(use));
    EXPECT_EQ(use.stack, (std::vector<uint64_t>{2, 3}));
    EXPECT_EQ(s.stats().walked, 2u);
}

TEST(StackSites, TheSiteSurvivesEncodeAndDecode) {
    Event def = rec(0x123456, {0xffffffff81000000ull, 0xffffffff81000010ull});
    auto bytes = encode_event(def);
    auto back = decode_event({bytes.data(), bytes.size()});
    ASSERT_TRUE(back);
    EXPECT_EQ(back->stack_site, 0x123456u);
    EXPECT_EQ(back->stack, def.stack);
    Event use = rec(0x123456);
    bytes = encode_event(use);
    EXPECT_EQ(bytes.size(), KEX_RECORD_SIZE(use.type, 0));
    back = decode_event({bytes.data(), bytes.size()});
    ASSERT_TRUE(back);
    EXPECT_EQ(back->stack_site, 0x123456u);
    EXPECT_TRUE(back->stack.empty());
    EXPECT_EQ(trim_record({bytes.data(), bytes.size()}).size(), bytes.size());
}

TEST(StackSites, ACheckRecordIsComparedWithItsSite) {
    StackSites s;
    Event def = rec(9, {1, 2, 3});
    s.resolve(def);
    Event same = rec(9 | KEX_SITE_CHECK, {1, 2, 3});
    Event other = rec(9 | KEX_SITE_CHECK, {1, 4, 3});
    EXPECT_TRUE(s.resolve(same));
    EXPECT_TRUE(s.resolve(other));
    EXPECT_EQ(same.stack_site, 9u);
    EXPECT_EQ(other.stack, (std::vector<uint64_t>{1, 4, 3})); // the walk, the truth
    EXPECT_EQ(s.stats().checked, 2u);
    EXPECT_EQ(s.stats().mismatched, 1u);
    Event unknown = rec(4 | KEX_SITE_CHECK, {1});
    EXPECT_FALSE(s.resolve(unknown));
    EXPECT_EQ(s.stats().unresolved, 1u);
}
