// Unit tests of the probe planner (tracer/src/probe_plan) on excerpts of the
// 6.1 and 6.12 lab guests' kallsyms and available_filter_functions.
#include "probe_plan.h"
#include "probe_report.h"

#include <gtest/gtest.h>

#include <array>
#include <map>
#include <sstream>

using namespace kextrace;

namespace {

std::string fixture_path(const std::string& name) {
    return std::string(KEX_FIXTURES) + "/" + name;
}

Ksyms ksyms(const std::string& kernel) {
    auto k = Ksyms::load(fixture_path("kallsyms-" + kernel));
    EXPECT_TRUE(k.ok());
    return k.ok() ? std::move(*k) : Ksyms{};
}

// A kernel like the lab guests: kprobes, every tracepoint we use, kex loaded.
KernelFacts facts(const std::string& kernel, bool with_traceable = true) {
    KernelFacts f;
    f.release = kernel;
    f.kprobes = true;
    f.has_tracepoint = [](std::string_view, std::string_view) { return true; };
    if (with_traceable) {
        auto t = read_text_file(fixture_path("available_filter_functions-" + kernel));
        EXPECT_TRUE(t.has_value());
        f.traceable = parse_traceable_functions(t.value_or(""));
    }
    return f;
}

PlanOptions with_rig() {
    PlanOptions o;
    o.usdt_binary = "/opt/kextrace/build/bin/mmap_test";
    return o;
}

const PlanStep& step(const ProbePlan& p, const char* name) {
    const PlanStep* s = p.find(name);
    EXPECT_NE(s, nullptr) << name;
    static PlanStep none;
    return s ? *s : none;
}

} // namespace

TEST(TracerProbePlan, Debian61) {
    ProbePlan p = plan_probes(ksyms("6.1"), facts("6.1"), with_rig());

    EXPECT_EQ(step(p, "insert").resolved, "insert_page_into_pte_locked.constprop.0");
    EXPECT_EQ(p.config.insert_pte_arg, 2);
    EXPECT_EQ(p.config.insert_page_arg, 3);
    EXPECT_TRUE(p.enabled[KEX_P_INSERT] && p.enabled[KEX_P_INSERT_RET]);
    EXPECT_EQ(p.target[KEX_P_INSERT_RET], "insert_page_into_pte_locked.constprop.0");

    EXPECT_EQ(step(p, "rmap add").resolved, "page_add_file_rmap");
    EXPECT_EQ(p.config.rmap_add_page_arg, 1);
    EXPECT_EQ(step(p, "fault install").resolved, "do_set_pte");
    EXPECT_EQ(p.config.set_pte_page_arg, 2);
    EXPECT_EQ(p.config.set_pte_addr_arg, 3);
    EXPECT_EQ(step(p, "zap (rmap remove)").resolved, "page_remove_rmap");
    EXPECT_EQ(p.config.rmap_remove_page_arg, 1);
    EXPECT_EQ(step(p, "dirty at zap").resolved, "set_page_dirty");
    EXPECT_EQ(step(p, "unmap (munmap)").resolved, "unmap_region");
    EXPECT_EQ(p.config.unmap_mode, KEX_UNMAP_REGION_61);
    EXPECT_EQ(step(p, "exit unmap").resolved, "exit_mmap");
    EXPECT_TRUE(step(p, "pte set").available);
    EXPECT_NE(step(p, "pte set").reason.find("inline"), std::string::npos);
    EXPECT_EQ(p.config.vmemmap_base_addr, 0xffffffffb5a15730ull);

    // every probe of the plan; --follow's is attached by the Loader itself
    for (uint32_t id = 0; id < KEX_P_COUNT; id++)
        EXPECT_EQ(p.enabled[id], id != KEX_P_FOLLOW) << probe_spec(id).short_name;
}

// --watch leaves off the steps no leak verdict reads, says so per row, and
// arms everything else as without it.
TEST(TracerProbePlan, WatchLeavesOffWhatNoVerdictReads) {
    PlanOptions o = with_rig();
    o.watch = true;
    ProbePlan w = plan_probes(ksyms("6.1"), facts("6.1"), o);
    ProbePlan full = plan_probes(ksyms("6.1"), facts("6.1"), with_rig());
    for (uint32_t id = 0; id < KEX_P_COUNT; id++) {
        const bool off = id == KEX_P_SET_DIRTY || id == KEX_P_USER_FAULT;
        EXPECT_EQ(w.enabled[id], full.enabled[id] && !off) << probe_spec(id).short_name;
    }
    for (const char* s : {"dirty at zap", "user faults"}) {
        EXPECT_TRUE(step(w, s).available) << s;
        EXPECT_NE(step(w, s).off.find("--watch"), std::string::npos) << s;
        EXPECT_TRUE(step(full, s).off.empty()) << s;
    }
    for (const char* s :
         {"insert", "rmap add", "zap (rmap remove)", "free", "free batched", "alloc"})
        EXPECT_TRUE(step(w, s).off.empty()) << s;

    std::array<AttachResult, KEX_P_COUNT> attached{};
    for (uint32_t id = 0; id < KEX_P_COUNT; id++)
        attached[id].planned = attached[id].attached = w.enabled[id];
    std::size_t off_rows = 0;
    for (const ProbeStatus& r : probe_statuses(w, &attached, nullptr)) {
        const bool want_off = r.step == "dirty at zap" || r.step == "user faults";
        EXPECT_EQ(r.off, want_off) << r.step;
        if (!r.off)
            continue;
        off_rows++;
        EXPECT_FALSE(r.attached) << r.step;
        EXPECT_TRUE(r.resolved.empty()) << r.step;
        EXPECT_NE(r.reason.find("off: --watch"), std::string::npos) << r.reason;
    }
    EXPECT_EQ(off_rows, 2u);
    std::ostringstream out;
    print_probe_table(out, probe_statuses(w, &attached, nullptr));
    // the ok column says off, whatever the column width
    std::istringstream lines(out.str());
    std::string line, ok;
    while (std::getline(lines, line))
        if (line.rfind("dirty at zap ", 0) == 0)
            std::istringstream(line.substr(13)) >> ok;
    EXPECT_EQ(ok, "off") << out.str();
    // the milestones a page must reach are the same: none of them is off
    EXPECT_EQ(expected_milestones(w, &attached), expected_milestones(full, nullptr));
}

TEST(TracerProbePlan, Debian612FolioNamesAndClones) {
    ProbePlan p = plan_probes(ksyms("6.12"), facts("6.12"), with_rig());

    EXPECT_EQ(step(p, "insert").resolved, "insert_page_into_pte_locked.isra.0");
    EXPECT_EQ(p.config.insert_pte_arg, 2);
    EXPECT_EQ(p.config.insert_page_arg, 3);
    EXPECT_EQ(step(p, "rmap add").resolved, "folio_add_file_rmap_ptes");
    EXPECT_EQ(p.config.rmap_add_page_arg, 2);
    EXPECT_NE(step(p, "rmap add").reason.find("page_add_file_rmap: not in kallsyms"),
              std::string::npos);
    EXPECT_EQ(step(p, "fault install").resolved, "set_pte_range");
    EXPECT_EQ(p.config.set_pte_page_arg, 3);
    EXPECT_EQ(p.config.set_pte_addr_arg, 5);
    EXPECT_EQ(step(p, "zap (rmap remove)").resolved, "folio_remove_rmap_ptes");
    EXPECT_EQ(p.config.rmap_remove_page_arg, 2);
    // set_page_dirty still exists on 6.12, but zap calls folio_mark_dirty
    EXPECT_EQ(step(p, "dirty at zap").resolved, "folio_mark_dirty");
    EXPECT_NE(step(p, "dirty at zap").reason.find("set_page_dirty"), std::string::npos);
    // vms_clear_ptes is notrace (inline); unmap_region is off the munmap path
    EXPECT_EQ(step(p, "unmap (munmap)").resolved, "vms_complete_munmap_vmas");
    EXPECT_EQ(p.config.unmap_mode, KEX_UNMAP_VMS);
    EXPECT_NE(step(p, "unmap (munmap)").reason.find("vms_clear_ptes: notrace"), std::string::npos);
    EXPECT_EQ(p.config.vmemmap_base_addr, 0xffffffff8fdd8598ull);
}

TEST(TracerProbePlan, WithoutTraceableListTakesTheFirstSymbol) {
    ProbePlan p = plan_probes(ksyms("6.12"), facts("6.12", false), with_rig());
    EXPECT_EQ(step(p, "unmap (munmap)").resolved, "vms_clear_ptes");
    EXPECT_EQ(p.config.unmap_mode, KEX_UNMAP_VMS);
}

TEST(TracerProbePlan, UnmapRegionRejectedOnceMunmapHasVms) {
    // no vms_* symbols at all but the marker: falls through to unmap_vmas
    Ksyms k = Ksyms::parse("ffffffff81000000 T unmap_region\n"
                           "ffffffff81000100 T unmap_vmas\n"
                           "ffffffff81000200 T vms_complete_munmap_vmas_marker\n");
    ProbePlan p = plan_probes(k, facts("x", false), {});
    EXPECT_EQ(step(p, "unmap (munmap)").resolved, "unmap_region");

    k = Ksyms::parse("ffffffff81000000 T unmap_region\n"
                     "ffffffff81000100 T unmap_vmas\n"
                     "ffffffff81000200 D vms_complete_munmap_vmas\n");
    p = plan_probes(k, facts("x", false), {});
    EXPECT_EQ(step(p, "unmap (munmap)").resolved, "unmap_vmas");
    EXPECT_EQ(p.config.unmap_mode, KEX_UNMAP_VMAS);
    EXPECT_NE(step(p, "unmap (munmap)").reason.find("unmap_region: only on the mmap error path"),
              std::string::npos);
}

// 6.4 to 6.7, the folio "range" rmap era (the synthesized 6.6 fixture's case,
// kept as symbols): page_add_file_rmap is a wrapper of
// folio_add_file_rmap_range, which set_pte_range calls directly.
TEST(TracerProbePlan, RmapWrapperLeftForTheFolioRange) {
    Ksyms k = Ksyms::parse("ffffffff81000000 T page_add_file_rmap\n"
                           "ffffffff81000100 T folio_add_file_rmap_range\n"
                           "ffffffff81000200 T set_pte_range\n");
    ProbePlan p = plan_probes(k, facts("x", false), {});
    EXPECT_EQ(step(p, "rmap add").resolved, "folio_add_file_rmap_range");
    EXPECT_EQ(p.config.rmap_add_page_arg, 2);
    EXPECT_NE(step(p, "rmap add").reason.find("page_add_file_rmap: a wrapper"), std::string::npos)
        << step(p, "rmap add").reason;
}

TEST(TracerProbePlan, NoKprobesLeavesTracepointsAndSaysWhy) {
    KernelFacts f = facts("6.1");
    f.kprobes = false;
    f.no_kprobes_reason = "CONFIG_KPROBES is off";
    ProbePlan p = plan_probes(ksyms("6.1"), f, with_rig());
    for (const char* s : {"insert", "rmap add", "pte set", "fault install", "zap (rmap remove)",
                          "dirty at zap", "unmap (munmap)", "exit unmap"}) {
        EXPECT_FALSE(step(p, s).available) << s;
        if (std::string(s) != "pte set") {
            EXPECT_EQ(step(p, s).reason.rfind("no kprobes on this kernel", 0), 0u)
                << s << ": " << step(p, s).reason;
        }
    }
    EXPECT_NE(step(p, "insert").reason.find("would attach insert_page_into_pte_locked.constprop.0"),
              std::string::npos);
    for (uint32_t id : {KEX_P_INSERT, KEX_P_INSERT_RET, KEX_P_RMAP_ADD, KEX_P_SET_PTE, KEX_P_UNMAP,
                        KEX_P_EXIT_MMAP})
        EXPECT_FALSE(p.enabled[id]);
    for (const char* s : {"alloc", "kex tracepoints", "free", "syscalls", "fork", "user faults"})
        EXPECT_TRUE(step(p, s).available) << s;

    // the report keeps every row, marking the unobservable ones
    auto rows = probe_statuses(p, nullptr, nullptr);
    std::ostringstream out;
    print_probe_table(out, rows);
    // the insert row says NO in the ok column, whatever the column width
    std::istringstream lines(out.str());
    std::string line;
    bool insert_no = false;
    while (std::getline(lines, line)) {
        std::istringstream cols(line);
        std::string c1, c2;
        if (line.rfind("insert ", 0) == 0 && (cols >> c1 >> c2) && c2 == "NO")
            insert_no = true;
    }
    EXPECT_TRUE(insert_no) << out.str();
    // and the correlator is told not to expect what cannot be seen
    uint16_t m = expected_milestones(p, nullptr);
    EXPECT_FALSE(m & kMsInsert);
    EXPECT_FALSE(m & kMsZap);
    EXPECT_TRUE(m & kMsKexAlloc);
    EXPECT_TRUE(m & kMsPageFree);
}

TEST(TracerProbePlan, KexNotLoadedIsOneReason) {
    KernelFacts f = facts("6.1");
    f.has_tracepoint = [](std::string_view sys, std::string_view) { return sys != "kex"; };
    ProbePlan p = plan_probes(ksyms("6.1"), f, with_rig());
    const PlanStep& s = step(p, "kex tracepoints");
    EXPECT_FALSE(s.available);
    EXPECT_EQ(s.reason, "no kex:* tracepoints (kex not loaded? load it before kextrace)");
    EXPECT_FALSE(p.enabled[KEX_P_KEX_PAGE_ALLOC]);
}

TEST(TracerProbePlan, KexLayoutMismatchDisablesThatTracepoint) {
    KernelFacts f = facts("6.1");
    f.tp_format = [](std::string_view, std::string_view name) -> std::optional<TpFormat> {
        if (name == "kex_page_alloc")
            return TpFormat{
                {"pfn", {8, 8, false}}, {"page", {24, 8, false}}, {"index", {16, 4, false}}};
        return std::nullopt;
    };
    ProbePlan p = plan_probes(ksyms("6.1"), f, with_rig());
    EXPECT_FALSE(p.enabled[KEX_P_KEX_PAGE_ALLOC]);
    EXPECT_TRUE(p.enabled[KEX_P_KEX_MMAP]);
    EXPECT_NE(step(p, "kex tracepoints").reason.find("kex:kex_page_alloc: field layout differs"),
              std::string::npos);
}

TEST(TracerProbePlan, InsertArgumentLayouts) {
    // the C prototype when the function is not cloned
    Ksyms plain = Ksyms::parse("ffffffff81000000 t insert_page_into_pte_locked\n");
    ProbePlan p = plan_probes(plain, facts("x", false), {});
    EXPECT_EQ(p.config.insert_pte_arg, 2);
    EXPECT_EQ(p.config.insert_page_arg, 4);
    // a .part piece is not an entry point
    Ksyms part = Ksyms::parse("ffffffff81000000 t insert_page_into_pte_locked.part.0\n");
    p = plan_probes(part, facts("x", false), {});
    EXPECT_FALSE(step(p, "insert").available);
    // the user's override wins
    PlanOptions o;
    o.insert_args = std::make_pair(2, 4);
    p = plan_probes(ksyms("6.1"), facts("6.1"), o);
    EXPECT_EQ(p.config.insert_page_arg, 4);
    EXPECT_NE(step(p, "insert").reason.find("--insert-args"), std::string::npos);
}

TEST(TracerProbePlan, BlacklistedSymbolFallsBack) {
    KernelFacts f = facts("6.1");
    f.kprobe_blacklist = {"page_add_file_rmap"};
    ProbePlan p = plan_probes(ksyms("6.1"), f, with_rig());
    EXPECT_FALSE(step(p, "rmap add").available);
    EXPECT_NE(step(p, "rmap add").reason.find("in the kprobe blacklist"), std::string::npos);
}

TEST(TracerProbePlan, UsdtNeedsABinary) {
    ProbePlan p = plan_probes(ksyms("6.1"), facts("6.1"), {});
    EXPECT_FALSE(step(p, "usdt").available);
    EXPECT_FALSE(p.enabled[KEX_P_USDT]);
    p = plan_probes(ksyms("6.1"), facts("6.1"), with_rig());
    EXPECT_EQ(p.target[KEX_P_USDT], "/opt/kextrace/build/bin/mmap_test");
}

TEST(TracerProbePlan, TraceableFunctionsSkipModules) {
    auto s = parse_traceable_functions("# comment\nfoo\nbar [kex]\nbaz.isra.0\n");
    EXPECT_EQ(s, (std::set<std::string>{"foo", "baz.isra.0"}));
}

TEST(TracerProbePlan, ProbeSpecsAreIndexedById) {
    for (uint32_t id = 0; id < KEX_P_COUNT; id++)
        EXPECT_EQ(probe_spec(id).id, id);
}

namespace {

// Argument counts of the functions kextrace probes, as the lab guests' BTF
// (/sys/kernel/btf/vmlinux) declares them; clones (.constprop/.isra) are not
// in BTF.
KernelFacts with_btf(KernelFacts f, std::map<std::string, unsigned> funcs) {
    f.btf_func_params = [funcs](std::string_view n) -> std::optional<std::vector<std::string>> {
        auto it = funcs.find(std::string(n));
        if (it == funcs.end())
            return std::nullopt;
        std::vector<std::string> names;
        for (unsigned i = 1; i <= it->second; i++)
            names.push_back("arg" + std::to_string(i));
        return names;
    };
    return f;
}

const std::map<std::string, unsigned> kBtf61 = {
    {"do_set_pte", 3},         {"exit_mmap", 1},           {"unmap_region", 7},
    {"unmap_vmas", 5},         {"remap_pfn_range", 5},     {"vm_insert_pages", 4},
    {"page_add_file_rmap", 3}, {"page_remove_rmap", 3},    {"set_page_dirty", 1},
    {"folio_mark_dirty", 1},   {"vmf_insert_pfn_prot", 4},
};
const std::map<std::string, unsigned> kBtf612 = {
    {"set_pte_range", 5},          {"exit_mmap", 1},        {"vms_complete_munmap_vmas", 2},
    {"vms_clear_ptes", 3},         {"unmap_region", 4},     {"unmap_vmas", 7},
    {"remap_pfn_range", 5},        {"vm_insert_pages", 4},  {"folio_add_file_rmap_ptes", 4},
    {"folio_remove_rmap_ptes", 4}, {"folio_mark_dirty", 1}, {"set_page_dirty", 1},
    {"vmf_insert_pfn_prot", 4},
};

std::string table_row(const ProbePlan& p, const std::string& step) {
    std::ostringstream out;
    print_probe_table(out, probe_statuses(p, nullptr, nullptr));
    std::istringstream in(out.str());
    for (std::string line; std::getline(in, line);)
        if (line.rfind(step + "  ", 0) == 0)
            return line;
    return "";
}

} // namespace

TEST(TracerProbePlan, ReturnsAreFexitWhereBtfHasTheFunction61) {
    ProbePlan p = plan_probes(ksyms("6.1"), with_btf(facts("6.1"), kBtf61), with_rig());
    // the clone is not in BTF: kretprobe
    EXPECT_EQ(p.kind[KEX_P_INSERT], ProbeKind::kprobe);
    EXPECT_EQ(p.kind[KEX_P_INSERT_RET], ProbeKind::kretprobe);
    EXPECT_NE(step(p, "insert")
                  .reason.find(
                      "return: kretprobe (insert_page_into_pte_locked.constprop.0 is not in BTF: a "
                      "compiler clone)"),
              std::string::npos)
        << step(p, "insert").reason;
    // do_set_pte, exit_mmap, remap_pfn_range: fexit, and their entries
    // fentry: never a kprobe and a trampoline on one function
    EXPECT_EQ(p.kind[KEX_P_SET_PTE], ProbeKind::fentry);
    EXPECT_EQ(p.kind[KEX_P_SET_PTE_RET], ProbeKind::fexit);
    EXPECT_EQ(p.target[KEX_P_SET_PTE], "do_set_pte");
    EXPECT_EQ(p.target[KEX_P_SET_PTE_RET], "do_set_pte");
    EXPECT_EQ(p.kind[KEX_P_EXIT_MMAP], ProbeKind::fentry);
    EXPECT_EQ(p.kind[KEX_P_EXIT_MMAP_RET], ProbeKind::fexit);
    EXPECT_EQ(p.kind[KEX_P_REMAP_PFN], ProbeKind::fentry);
    EXPECT_EQ(p.kind[KEX_P_REMAP_PFN_RET], ProbeKind::fexit);
    EXPECT_EQ(p.kind[KEX_P_INSERT_PFN], ProbeKind::fentry);
    EXPECT_EQ(p.kind[KEX_P_INSERT_PFN_RET], ProbeKind::fexit);
    EXPECT_EQ(p.target[KEX_P_INSERT_PFN], "vmf_insert_pfn_prot");
    EXPECT_NE(step(p, "fault install").reason.find("fentry + fexit (in BTF, one trampoline)"),
              std::string::npos)
        << step(p, "fault install").reason;
    // unmap_region has 7 arguments: more than a trampoline takes; its
    // entry stays the kprobe
    EXPECT_EQ(p.kind[KEX_P_UNMAP], ProbeKind::kprobe);
    EXPECT_EQ(p.kind[KEX_P_UNMAP_RET], ProbeKind::kretprobe);
    EXPECT_NE(step(p, "unmap (munmap)").reason.find("7 arguments"), std::string::npos);
    EXPECT_EQ(p.config.fexit_probes, KEX_FEXIT(KEX_P_SET_PTE_RET) | KEX_FEXIT(KEX_P_EXIT_MMAP_RET) |
                                         KEX_FEXIT(KEX_P_REMAP_PFN_RET) |
                                         KEX_FEXIT(KEX_P_INSERT_PFN_RET));
    // the report says which mechanism each step uses
    EXPECT_EQ(step_mechanism(p, step(p, "fault install"), false), "fentry + fexit");
    EXPECT_EQ(step_mechanism(p, step(p, "fault install"), true), "fentry + fexit");
    EXPECT_EQ(step_mechanism(p, step(p, "insert"), true), "tracefs kprobe + tracefs kretprobe");
    EXPECT_EQ(step_mechanism(p, step(p, "alloc"), true), "tracepoint");
    EXPECT_EQ(step_mechanism(p, step(p, "fork"), true), "tp_btf");
    EXPECT_EQ(step_mechanism(p, step(p, "usdt"), true), "usdt");
    EXPECT_NE(table_row(p, "fault install").find(" yes  fentry + fexit "), std::string::npos)
        << table_row(p, "fault install");
    EXPECT_NE(table_row(p, "exit unmap").find(" yes  fentry + fexit "), std::string::npos);
    EXPECT_NE(table_row(p, "unmap (munmap)").find(" yes  kprobe + kretprobe "), std::string::npos);
}

TEST(TracerProbePlan, ReturnsAreFexitWhereBtfHasTheFunction612) {
    ProbePlan p = plan_probes(ksyms("6.12"), with_btf(facts("6.12"), kBtf612), with_rig());
    EXPECT_EQ(step(p, "fault install").resolved, "set_pte_range");
    EXPECT_EQ(p.kind[KEX_P_SET_PTE_RET], ProbeKind::fexit);
    EXPECT_EQ(step(p, "unmap (munmap)").resolved, "vms_complete_munmap_vmas");
    EXPECT_EQ(p.kind[KEX_P_UNMAP_RET], ProbeKind::fexit);
    EXPECT_EQ(p.target[KEX_P_UNMAP_RET], "vms_complete_munmap_vmas");
    EXPECT_EQ(p.kind[KEX_P_EXIT_MMAP_RET], ProbeKind::fexit);
    EXPECT_EQ(p.kind[KEX_P_INSERT_RET], ProbeKind::kretprobe); // .isra.0
    // every function watched by one mechanism: kprobe + kretprobe, or one
    // trampoline (fentry + fexit)
    for (const PlanStep& s : p.steps) {
        bool tramp = false, kp = false;
        for (uint32_t id : s.probes) {
            if (!p.enabled[id])
                continue;
            tramp = tramp || is_trampoline(p.kind[id]);
            kp = kp || p.kind[id] == ProbeKind::kprobe || p.kind[id] == ProbeKind::kretprobe;
        }
        EXPECT_FALSE(tramp && kp) << s.step;
    }
    EXPECT_EQ(p.kind[KEX_P_UNMAP], ProbeKind::fentry);
    EXPECT_EQ(p.kind[KEX_P_INSERT], ProbeKind::kprobe);
}

TEST(TracerProbePlan, WithoutBtfFunctionsEveryReturnIsAKretprobe) {
    ProbePlan p = plan_probes(ksyms("6.1"), facts("6.1"), with_rig());
    for (uint32_t id : {KEX_P_INSERT_RET, KEX_P_SET_PTE_RET, KEX_P_UNMAP_RET, KEX_P_EXIT_MMAP_RET,
                        KEX_P_REMAP_PFN_RET})
        EXPECT_EQ(p.kind[id], ProbeKind::kretprobe) << probe_spec(id).short_name;
    EXPECT_EQ(p.config.fexit_probes, 0u);
}

TEST(TracerProbePlan, NoKprobesAttachesNoReturnEither) {
    // fexit alone would see returns without their entries: the step stays
    // unobservable, and says why, as the host's table must
    KernelFacts f = with_btf(facts("6.1"), kBtf61);
    f.kprobes = false;
    ProbePlan p = plan_probes(ksyms("6.1"), f, with_rig());
    EXPECT_FALSE(p.enabled[KEX_P_SET_PTE_RET]);
    EXPECT_FALSE(p.enabled[KEX_P_EXIT_MMAP_RET]);
    EXPECT_EQ(p.config.fexit_probes, 0u);
    EXPECT_EQ(step(p, "exit unmap").reason.rfind("no kprobes on this kernel", 0), 0u);
}

TEST(TracerProbePlan, ReapPrunesTheTracedSet) {
    ProbePlan p = plan_probes(ksyms("6.1"), facts("6.1"), with_rig());
    EXPECT_TRUE(p.enabled[KEX_P_PROC_FREE]);
    EXPECT_EQ(step(p, "reap").resolved, "tp_btf:sched_process_free");
}
