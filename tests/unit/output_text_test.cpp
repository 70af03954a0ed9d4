// render_text on reports built from synthetic streams.
#include <kextrace/output.h>
#include <kextrace/stream_builder.h>

#include "report_of.h"

#include <gtest/gtest.h>

#include <sstream>

using namespace kextrace;
using kextrace::test::report_of;

namespace {

RunInfo run_info() {
    RunInfo run;
    run.kernel_release = "6.1.0-56-amd64";
    run.command_line = "mmap_test /dev/kex 8";
    run.probes = {
        {"insert", "insert_page_into_pte_locked", "insert_page_into_pte_locked.constprop.0", true,
         "", 0, "kprobe + kretprobe"},
        {"rmap add", "page_add_file_rmap", "page_add_file_rmap", true, "", 3, "kprobe"},
        {"fault pte", "do_set_pte", "", false, "no such symbol on this kernel", 0,
         "fentry + fexit"},
    };
    return run;
}

std::string text(const Report& r, TextOptions o = {}, Symbolizer sym = {}) {
    std::ostringstream out;
    render_text(r, run_info(), out, sym, o);
    return out.str();
}

std::vector<std::string> lines(const std::string& s) {
    std::vector<std::string> v;
    std::istringstream in(s);
    for (std::string l; std::getline(in, l);)
        v.push_back(l);
    return v;
}

// Display columns (UTF-8 code points).
std::size_t columns(const std::string& s) {
    std::size_t n = 0;
    for (unsigned char c : s)
        n += (c & 0xc0) != 0x80;
    return n;
}

bool contains(const std::string& s, std::string_view needle) {
    return s.find(needle) != std::string::npos;
}

} // namespace

TEST(OutputText, CleanDropStoryHasTheExpectedRows) {
    StreamBuilder b;
    b.story({.pages = 8});
    const std::string t = text(report_of(b));

    EXPECT_TRUE(contains(t, "kernel 6.1.0-56-amd64, 8 page lives")) << t;
    EXPECT_TRUE(contains(t, "command:  mmap_test /dev/kex 8"));
    // the probe report
    EXPECT_TRUE(contains(t, "insert_page_into_pte_locked.constprop.0"));
    EXPECT_TRUE(contains(t, "NOT ATTACHED"));
    EXPECT_TRUE(contains(t, "no such symbol on this kernel"));
    EXPECT_TRUE(contains(t, "set_pte_at is inline on x86"));
    EXPECT_TRUE(contains(t, "losses: none"));
    // phases
    EXPECT_TRUE(contains(t, "\n  mmap "));
    EXPECT_TRUE(contains(t, "\n  write "));
    EXPECT_TRUE(contains(t, "\n  munmap "));
    // mapping
    EXPECT_TRUE(contains(t, "0x7f0000000000-0x7f0000008000"));
    EXPECT_TRUE(contains(t, "ok, 8 mapped"));
    // page rows: page 5, both tables
    EXPECT_TRUE(contains(t, "    5 0x1005    0x7f0000005000 ")) << t;
    EXPECT_TRUE(contains(t, "0x8000000001005027 P RW U A - NX no fault"));
    EXPECT_TRUE(contains(t, "after-insert"));
    EXPECT_TRUE(contains(t, "munmap dirty"));
    EXPECT_TRUE(contains(t, "batched"));
    EXPECT_TRUE(contains(t, "1→2→1→0   0→1→0     complete"));
    EXPECT_FALSE(contains(t, "INCOMPLETE"));
    EXPECT_TRUE(contains(t, "anomalies: none"));
    EXPECT_TRUE(contains(t, "summary: 8 page lives: 8 complete, 0 incomplete; anomalies 0"));
    EXPECT_TRUE(contains(t, "refcount 1→2→1→0 8/8; first write without fault 8/8; zap dirty 8/8"));

    std::size_t rows = 0;
    for (const std::string& l : lines(t)) {
        EXPECT_LE(columns(l), 100u) << l;
        rows += contains(l, "0x7f00000") && contains(l, "P RW U A");
    }
    EXPECT_EQ(rows, 8u);
}

TEST(OutputText, IncompletePagesSayWhatIsMissing) {
    StreamBuilder b;
    b.story({.pages = 8});
    b.drop_if([](const Event& e) { return e.type == KEX_EV_RMAP_REMOVE && e.pfn == 0x1003; });
    Losses l;
    l.per_type[KEX_EV_RMAP_REMOVE] = 1;
    const std::string t = text(report_of(b, l));
    EXPECT_TRUE(contains(t, "INCOMPLETE !1")) << t;
    EXPECT_TRUE(contains(t, "incomplete: page 3 (pfn 0x1003): missing zap (events lost: zap)"));
    EXPECT_TRUE(contains(t, "losses: 1 (rmap_remove 1)"));
    EXPECT_TRUE(contains(t, "anomalies: 1"));
    EXPECT_TRUE(contains(t, "freed while still mapped"));
    EXPECT_TRUE(contains(t, "summary: 8 page lives: 7 complete, 1 incomplete; anomalies 1; "
                            "events lost 1"));
    for (const std::string& l : lines(t))
        EXPECT_LE(columns(l), 100u) << l;
}

TEST(OutputText, ManyPagesAreCompactUnlessFull) {
    StreamBuilder b;
    b.story({.pages = 1024});
    b.drop_if([](const Event& e) { return e.type == KEX_EV_PAGE_FREE_BATCHED && e.pfn == 0x1200; });
    b.drop_if([](const Event& e) { return e.type == KEX_EV_KEX_PAGE_FREE && e.pfn == 0x1300; });
    const Report r = report_of(b);
    const std::string compact = text(r);
    const auto cl = lines(compact);
    EXPECT_LT(cl.size(), 80u) << compact;
    EXPECT_TRUE(contains(compact, "... 763 page lives not shown ...")) << compact;
    EXPECT_TRUE(contains(compact, "... 252 page lives not shown ..."));
    EXPECT_TRUE(contains(compact, "page stories"));
    EXPECT_TRUE(contains(compact, "refcount: 1→2→1→0 ×1024")); // the free happened, unseen
    EXPECT_TRUE(contains(compact, "  1023 0x13ff "));          // the last row
    EXPECT_TRUE(contains(compact, "   768 0x1300 "));          // the incomplete page is shown
    EXPECT_TRUE(contains(compact, "incomplete: page 768 (pfn 0x1300): missing kex free"));
    for (const std::string& l : cl)
        EXPECT_LE(columns(l), 100u) << l;

    const std::string full = text(r, {.full = true});
    EXPECT_GT(lines(full).size(), 2048u);
    EXPECT_FALSE(contains(full, "not shown"));
}

TEST(OutputText, StacksAreSymbolized) {
    StreamBuilder b;
    b.story({.pages = 1});
    const Symbolizer sym = [](uint64_t a) {
        return a == 0xffffffffc0001000 ? std::string("kex_mmap+0x80 [kex]") : std::string();
    };
    const std::string t = text(report_of(b), {.stacks = true}, sym);
    EXPECT_TRUE(contains(t, "stack of kex_alloc (page 0, pfn 0x1000)")) << t;
    EXPECT_TRUE(contains(t, "  kex_mmap+0x80 [kex]\n"));
    EXPECT_TRUE(contains(t, "  0xffffffff81200000\n")); // unknown: hex
}

TEST(OutputText, EmptyReportRenders) {
    const std::string t = text(Report{});
    EXPECT_TRUE(contains(t, "pages: no page seen (no kex page")) << t;
    EXPECT_TRUE(contains(t, "(no rig phase markers)"));
    EXPECT_TRUE(contains(t, "summary: 0 page lives"));
}

// Another driver's pages: no kex policy, and the summary's refcount check is
// about kex pages only (a driver's own references have no expected story).
TEST(OutputText, DriverPagesHaveNoKexPolicyOrExpectedStory) {
    StreamBuilder b;
    VmaInfo v;
    v.vma = 0xffff888003a1b000;
    v.f_op = 0xffffffff82a00100; // a file: its name is shown
    v.ino = 777;
    v.magic = kSockfsMagic;
    v.flags = KEX_VMA_NAME_ROOT;
    v.name = {"socket:[777]"};
    b.driver_ring(0x7f1000000000, 8, 0x2000, v);
    const std::string t = text(report_of(b));
    EXPECT_TRUE(contains(t, "pages, insert side: 8 lives, policy -, mode driver")) << t;
    EXPECT_TRUE(contains(t, "refcount 1→2→1→0 0/0 (kex pages; 8 driver pages: no expected story)"))
        << t;
    EXPECT_TRUE(contains(t, "alloc@ unseen: a driver's page allocated before its first insert"))
        << t;
    EXPECT_TRUE(contains(t, "socket:[777]")) << t;
}

// Their allocation seen: the alloc@ column has its time, and the mapping
// names the first frame outside the page allocator that asked for it.
TEST(OutputText, DriverPagesWithTheirAllocationSayWhoAllocated) {
    const auto sym = [](uint64_t a) {
        if (a == 0xffffffff81200000) // StreamBuilder::driver_alloc's stack
            return std::string("__alloc_pages+0x228");
        return a == 0xffffffff81c00400 ? std::string("packet_set_ring+0x1e6") : std::string();
    };
    StreamBuilder b;
    VmaInfo v;
    v.f_op = 0xffffffff82a00100;
    v.magic = kSockfsMagic;
    v.flags = KEX_VMA_NAME_ROOT;
    v.name = {"socket:[777]"};
    b.driver_ring(0x7f1000000000, 4, 0x2000, v, true, b.ts());
    const std::string t = text(report_of(b), {}, sym);
    EXPECT_TRUE(contains(t, "allocated by packet_set_ring+0x1e6 (4 of its 4 lives)")) << t;
    EXPECT_FALSE(contains(t, "unseen")) << t;
    EXPECT_TRUE(contains(t, " +0ns ")) << t; // alloc@: the trace starts at the allocation
}

// A driver's pages from its fault handler, and a pfn map: the text says how
// each got into the page table.
TEST(OutputText, DriverFaultPagesAndPfnMapsSayHowTheyWereMapped) {
    const auto sym = [](uint64_t a) {
        return a == kPerfMmapFault ? std::string("perf_mmap_fault+0x0") : std::string();
    };
    StreamBuilder b;
    const VmaInfo perf = perf_ring_vma();
    b.driver_fault_ring(0x7f1000000000, 2, 0x2000, perf);
    VmaInfo mem;
    mem.f_op = 0xffffffff82c00000;
    mem.flags = KEX_VMA_NAME_ROOT | KEX_VMA_PFNMAP;
    mem.name = {"mem", "dev"};
    b.driver_vma(0x7f2000000000, 16, mem);
    Event& e = b.add(KEX_EV_DRIVER_PFNMAP);
    e.pfn = 0xf0;
    e.addr = e.arg1 = 0x7f2000000000;
    e.arg0 = 16 * kPageSize;
    b.add(KEX_EV_DRIVER_PFNMAP_RET);
    const std::string t = text(report_of(b), {}, sym);
    EXPECT_TRUE(contains(t, "mapped at fault by perf_mmap_fault")) << t;
    EXPECT_TRUE(contains(t, " at fault ")) << t;
    EXPECT_TRUE(contains(t, "pfn map: pfns 0xf0-0xff (16 pages) at 0x7f2000000000, "
                            "remap_pfn_range ok (special PTEs"))
        << t;
    EXPECT_TRUE(contains(t, "/dev/mem")) << t;
}

// A pfn fault handler (vgem's drm_gem_shmem_fault) maps one pfn per fault:
// each says so with its vm_fault_t; past 8 lines the rest is counted.
TEST(OutputText, PfnsMappedAtFaultsSayWhatEachFaultReturned) {
    StreamBuilder b;
    VmaInfo card;
    card.f_op = 0xffffffffc0400000;
    card.flags = KEX_VMA_PFNMAP;
    card.name = {"card0", "dri", "dev"};
    const uint64_t start = 0x7f3000000000;
    b.driver_vma(start, 10, card);
    for (uint64_t i = 0; i < 10; ++i) {
        Event& e = b.add(KEX_EV_DRIVER_PFNMAP);
        e.pfn = 0xa860 + i;
        e.addr = start + i * kPageSize;
        e.arg0 = kPageSize;
        e.arg1 = start;
        e.ret = 1;
        b.add(KEX_EV_DRIVER_PFNMAP_RET).ret = i == 1 ? 0x1 : 0x100;
    }
    const std::string t = text(report_of(b), {}, {});
    EXPECT_TRUE(contains(t, "pfn map: pfn 0xa860 at 0x7f3000000000, vmf_insert_pfn_prot at a "
                            "fault ok (special PTEs"))
        << t;
    EXPECT_TRUE(contains(t, "pfn map: pfn 0xa861 at 0x7f3000001000, vmf_insert_pfn_prot at a "
                            "fault vm_fault_t 0x1 ("))
        << t;
    EXPECT_TRUE(contains(t, "0xa867")) << t;
    EXPECT_FALSE(contains(t, "0xa868")) << t;
    EXPECT_TRUE(contains(t, "... 2 more pfn maps (--json lists them)")) << t;
    const nlohmann::json j = to_json(report_of(b), RunInfo{}, {});
    ASSERT_EQ(j["mappings"][0]["pfn_maps"].size(), 10u);
    EXPECT_EQ(j["mappings"][0]["pfn_maps"][1]["via"], "vmf_insert_pfn_prot");
    EXPECT_EQ(j["mappings"][0]["pfn_maps"][1]["ret"], 1);
}
