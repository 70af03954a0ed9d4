// TrampStacks: an fentry record's stack starts at the traced function on
// every kernel. The stacks below are the shapes the lab guests gave for kex's
// insert under fentry (bpf_get_stack past the program and its trampoline):
// 6.12 keeps the traced function's frame, 7.2 starts at its caller.
#include "tramp_stack.h"

#include <gtest/gtest.h>

using namespace kextrace;

namespace {

const char* const kSyms = "ffffffff81000000 T _text\n"
                          "ffffffff81100000 t insert_page_into_pte_locked\n"
                          "ffffffff81100200 t insert_page\n"
                          "ffffffff81100400 T vm_insert_page\n"
                          "ffffffff81200000 T set_pte_range\n"
                          "ffffffff81200400 T finish_fault\n";

ProbePlan plan_with(ProbeKind insert_kind) {
    ProbePlan p;
    p.enabled[KEX_P_INSERT] = true;
    p.kind[KEX_P_INSERT] = insert_kind;
    p.target[KEX_P_INSERT] = "insert_page_into_pte_locked";
    p.enabled[KEX_P_SET_PTE] = true;
    p.kind[KEX_P_SET_PTE] = ProbeKind::fentry;
    p.target[KEX_P_SET_PTE] = "set_pte_range";
    return p;
}

Event with_stack(uint32_t probe, std::vector<uint64_t> stack) {
    Event ev;
    ev.probe = probe;
    ev.stack = std::move(stack);
    return ev;
}

} // namespace

TEST(TrampStacks, SevenTwoStackGetsTheTracedFunctionFirst) {
    Ksyms k = Ksyms::parse(kSyms);
    TrampStacks t(plan_with(ProbeKind::fentry), k);
    Event ev = with_stack(KEX_P_INSERT, {0xffffffff8110026f, 0xffffffff81300010});
    t.complete(ev);
    ASSERT_EQ(ev.stack.size(), 3u);
    EXPECT_EQ(k.symbolize(ev.stack[0]), "insert_page_into_pte_locked+0x0");
    EXPECT_EQ(k.symbolize(ev.stack[1]), "insert_page+0x6f");
}

TEST(TrampStacks, SixTwelveStackIsLeftAsItIs) {
    Ksyms k = Ksyms::parse(kSyms);
    TrampStacks t(plan_with(ProbeKind::fentry), k);
    Event ev = with_stack(KEX_P_SET_PTE, {0xffffffff81200005, 0xffffffff81200480});
    t.complete(ev);
    ASSERT_EQ(ev.stack.size(), 2u);
    EXPECT_EQ(k.symbolize(ev.stack[0]), "set_pte_range+0x5");
}

TEST(TrampStacks, KprobeStacksAndStacklessRecordsAreNotTouched) {
    Ksyms k = Ksyms::parse(kSyms);
    TrampStacks t(plan_with(ProbeKind::kprobe), k);
    Event kp = with_stack(KEX_P_INSERT, {0xffffffff8110026f});
    t.complete(kp);
    EXPECT_EQ(kp.stack.size(), 1u);
    Event none = with_stack(KEX_P_SET_PTE, {});
    t.complete(none);
    EXPECT_TRUE(none.stack.empty());
    Event bad = with_stack(KEX_P_COUNT + 3, {0xffffffff8110026f});
    t.complete(bad);
    EXPECT_EQ(bad.stack.size(), 1u);
    // the allocation's stack, re-emitted by the insert that adopted the page
    Event alloc = with_stack(KEX_P_INSERT, {0xffffffff81300010});
    alloc.type = KEX_EV_DRIVER_ALLOC;
    TrampStacks(plan_with(ProbeKind::fentry), k).complete(alloc);
    EXPECT_EQ(alloc.stack.size(), 1u);
}
