// The probe planner across kernel versions: fixture kallsyms,
// available_filter_functions and available_events of 6.1, 6.12 and 7.2 (the
// lab guests: Debian bookworm's two and sid's, real excerpts) and 6.18 (this
// build machine, real: no kprobes, no modules, available_filter_functions
// unreadable).
#include "probe_plan.h"
#include "probe_report.h"

#include <gtest/gtest.h>

#include <sstream>

using namespace kextrace;

namespace {

std::string fixture(const std::string& name) {
    return std::string(KEX_FIXTURES) + "/" + name;
}

Ksyms kallsyms(const std::string& kernel) {
    auto k = Ksyms::load(fixture("kallsyms-" + kernel));
    EXPECT_TRUE(k.ok()) << kernel;
    return k.ok() ? std::move(*k) : Ksyms{};
}

// The kernel as its tracefs and /proc show it, from the fixture files.
KernelFacts facts(const std::string& kernel) {
    KernelFacts f;
    f.release = kernel;
    auto events = read_text_file(fixture("available_events-" + kernel));
    EXPECT_TRUE(events.has_value()) << kernel;
    std::set<std::string> have;
    std::istringstream in(events.value_or(""));
    for (std::string line; std::getline(in, line);)
        if (!line.empty() && line[0] != '#')
            have.insert(line);
    f.has_tracepoint = [have](std::string_view sys, std::string_view name) {
        return have.count(std::string(sys) + ":" + std::string(name)) > 0;
    };
    if (auto aff = read_text_file(fixture("available_filter_functions-" + kernel)))
        f.traceable = parse_traceable_functions(*aff);
    if (kernel == "6.18") {
        // Firecracker's 6.18: CONFIG_KPROBES and CONFIG_MODULES off;
        // available_filter_functions exists but reading it is refused (EPERM)
        f.kprobes = false;
        f.no_kprobes_reason = "no kprobe PMU in /sys/bus/event_source/devices, no kprobe_events "
                              "in tracefs: CONFIG_KPROBES is off";
        f.modules = false;
        f.traceable.reset();
    } else {
        f.kprobes = true;
    }
    return f;
}

ProbePlan plan(const std::string& kernel) {
    PlanOptions o;
    o.usdt_binary = "/opt/kextrace/build/bin/mmap_test";
    return plan_probes(kallsyms(kernel), facts(kernel), o);
}

const PlanStep& step(const ProbePlan& p, const char* name) {
    const PlanStep* s = p.find(name);
    EXPECT_NE(s, nullptr) << name;
    static PlanStep none;
    return s ? *s : none;
}

bool has(const std::string& text, const std::string& what) {
    return text.find(what) != std::string::npos;
}

// What each kprobe step resolves to on a kernel with kprobes.
struct Expect {
    const char* kernel;
    const char* insert;
    int insert_pte, insert_page;
    const char* rmap_add;
    int rmap_add_page;
    const char* fault_install;
    int set_pte_page, set_pte_addr;
    const char* zap;
    int zap_page;
    const char* dirty;
    const char* unmap;
    uint8_t unmap_mode;
};

const Expect kKernels[] = {
    {"6.1", "insert_page_into_pte_locked.constprop.0", 2, 3, "page_add_file_rmap", 1, "do_set_pte",
     2, 3, "page_remove_rmap", 1, "set_page_dirty", "unmap_region", KEX_UNMAP_REGION_61},
    {"6.12", "insert_page_into_pte_locked.isra.0", 2, 3, "folio_add_file_rmap_ptes", 2,
     "set_pte_range", 3, 5, "folio_remove_rmap_ptes", 2, "folio_mark_dirty",
     "vms_complete_munmap_vmas", KEX_UNMAP_VMS},
    // the insert whole again, with mkwrite; vms_clear_ptes inlined
    {"7.2", "insert_page_into_pte_locked", 2, 4, "folio_add_file_rmap_ptes", 2, "set_pte_range", 3,
     5, "folio_remove_rmap_ptes", 2, "folio_mark_dirty", "vms_complete_munmap_vmas", KEX_UNMAP_VMS},
};

const char* const kKprobeSteps[] = {"insert",         "batch insert",      "rmap add",
                                    "fault install",  "zap (rmap remove)", "dirty at zap",
                                    "unmap (munmap)", "exit unmap",        "pfn map"};
const char* const kTracepointSteps[] = {"alloc", "free", "free batched", "syscalls",
                                        "fork",  "exit", "user faults"};

} // namespace

TEST(TracerPlanKernels, EachKernelWithKprobesGetsItsNames) {
    for (const Expect& e : kKernels) {
        SCOPED_TRACE(e.kernel);
        ProbePlan p = plan(e.kernel);
        EXPECT_EQ(step(p, "insert").resolved, e.insert);
        EXPECT_EQ(p.config.insert_pte_arg, e.insert_pte);
        EXPECT_EQ(p.config.insert_page_arg, e.insert_page);
        EXPECT_EQ(step(p, "rmap add").resolved, e.rmap_add);
        EXPECT_EQ(p.config.rmap_add_page_arg, e.rmap_add_page);
        EXPECT_EQ(step(p, "fault install").resolved, e.fault_install);
        EXPECT_EQ(p.config.set_pte_page_arg, e.set_pte_page);
        EXPECT_EQ(p.config.set_pte_addr_arg, e.set_pte_addr);
        EXPECT_EQ(step(p, "zap (rmap remove)").resolved, e.zap);
        EXPECT_EQ(p.config.rmap_remove_page_arg, e.zap_page);
        EXPECT_EQ(step(p, "dirty at zap").resolved, e.dirty);
        EXPECT_EQ(step(p, "unmap (munmap)").resolved, e.unmap);
        EXPECT_EQ(p.config.unmap_mode, e.unmap_mode);
        // the modes' own kernel calls are the same symbols everywhere
        EXPECT_EQ(step(p, "batch insert").resolved, "vm_insert_pages");
        // 7.2: where remap_pfn_range and mmap_prepare's remap meet
        EXPECT_EQ(step(p, "pfn map").resolved,
                  std::string(e.kernel) == "7.2" ? "remap_pfn_range_track" : "remap_pfn_range");
        EXPECT_TRUE(p.enabled[KEX_P_REMAP_PFN] && p.enabled[KEX_P_REMAP_PFN_RET]);
        EXPECT_EQ(step(p, "pfn fault insert").resolved, "vmf_insert_pfn_prot");
        EXPECT_EQ(step(p, "pfn PTE").resolved, "vm_normal_page");
        EXPECT_TRUE(p.enabled[KEX_P_PTE_LOOKUP]);
        EXPECT_TRUE(step(p, "kex tracepoints").available);
        EXPECT_TRUE(step(p, "kex modes").available);
        EXPECT_TRUE(p.enabled[KEX_P_KEX_FAULT] && p.enabled[KEX_P_KEX_BATCH] &&
                    p.enabled[KEX_P_KEX_MMAP_MODE]);
        // every step is observed: the report has no "NO" row
        for (const PlanStep& s : p.steps)
            EXPECT_TRUE(s.available) << s.step << ": " << s.reason;
        EXPECT_EQ(expected_milestones(p, nullptr), kMsDefaultExpected);
    }
}

// 7.2 (sid): the insert is whole, with a sixth parameter (mkwrite); its
// layout comes from the parameter names in the kernel's BTF (as 7.2's BTF
// declares them: mm/memory.c), the C prototype's without BTF.
TEST(TracerPlanKernels, Linux72InsertLayoutFromBtf) {
    ProbePlan bare = plan("7.2");
    EXPECT_TRUE(has(step(bare, "insert").reason, "C prototype (no BTF): pte PARM2, addr PARM3"))
        << step(bare, "insert").reason;
    EXPECT_EQ(bare.config.insert_addr_arg, 3);

    KernelFacts f = facts("7.2");
    f.btf_func_params = [](std::string_view n) -> std::optional<std::vector<std::string>> {
        if (n == "insert_page_into_pte_locked")
            return std::vector<std::string>{"vma", "pte", "addr", "page", "prot", "mkwrite"};
        return std::nullopt;
    };
    PlanOptions o;
    ProbePlan p = plan_probes(kallsyms("7.2"), f, o);
    const PlanStep& ins = step(p, "insert");
    EXPECT_TRUE(has(ins.reason, "from BTF: pte PARM2, addr PARM3, page PARM4; mkwrite PARM6"))
        << ins.reason;
    EXPECT_EQ(p.config.insert_pte_arg, 2);
    EXPECT_EQ(p.config.insert_addr_arg, 3);
    EXPECT_EQ(p.config.insert_page_arg, 4);
    // six arguments fit a trampoline: entry and return on one
    EXPECT_EQ(p.kind[KEX_P_INSERT_RET], ProbeKind::fexit);
    // a kernel whose parameters are named otherwise: said, and the prototype used
    f.btf_func_params = [](std::string_view n) -> std::optional<std::vector<std::string>> {
        if (n == "insert_page_into_pte_locked")
            return std::vector<std::string>{"vma", "ptep", "address", "pg", "prot"};
        return std::nullopt;
    };
    p = plan_probes(kallsyms("7.2"), f, o);
    EXPECT_TRUE(has(step(p, "insert").reason, "its BTF names no pte/addr/page (vma, ptep"))
        << step(p, "insert").reason;
    EXPECT_EQ(p.config.insert_page_arg, 4);
    // no vms_clear_ptes (inlined): munmap's completion; no driver-address probe
    // (the insert has addr)
    EXPECT_TRUE(has(step(p, "unmap (munmap)").reason, "vms_clear_ptes: not in kallsyms"));
    EXPECT_EQ(p.find("driver page address"), nullptr);
    EXPECT_TRUE(has(step(p, "pfn map").reason, "remap_pfn_range_complete meet"))
        << step(p, "pfn map").reason;
}

TEST(TracerPlanKernels, Linux618NoKprobesNoModules) {
    ProbePlan p = plan("6.18");
    for (const char* s : kKprobeSteps) {
        SCOPED_TRACE(s);
        EXPECT_FALSE(step(p, s).available);
        EXPECT_EQ(step(p, s).reason.rfind("no kprobes on this kernel", 0), 0u) << step(p, s).reason;
        for (uint32_t id : step(p, s).probes)
            EXPECT_FALSE(p.enabled[id]) << probe_spec(id).short_name;
    }
    // what would be used if it had kprobes: the 6.12-era names, a plain insert
    EXPECT_TRUE(has(step(p, "insert").reason, "would attach insert_page_into_pte_locked"));
    EXPECT_TRUE(has(step(p, "rmap add").reason, "would attach folio_add_file_rmap_ptes"));
    EXPECT_TRUE(has(step(p, "fault install").reason, "would attach set_pte_range"));
    EXPECT_TRUE(has(step(p, "zap (rmap remove)").reason, "would attach folio_remove_rmap_ptes"));
    EXPECT_TRUE(has(step(p, "pfn map").reason, "would attach remap_pfn_range"));
    EXPECT_FALSE(step(p, "pte set").available);

    for (const char* s : kTracepointSteps)
        EXPECT_TRUE(step(p, s).available) << s << ": " << step(p, s).reason;
    for (const char* s : {"kex tracepoints", "kex modes"}) {
        EXPECT_FALSE(step(p, s).available);
        EXPECT_TRUE(has(step(p, s).reason, "cannot load modules")) << step(p, s).reason;
    }

    // the report: every unobservable step is a NO row with its reason
    std::ostringstream out;
    print_probe_table(out, probe_statuses(p, nullptr, nullptr));
    for (const char* s : kKprobeSteps) {
        std::string row;
        std::istringstream in(out.str());
        while (std::getline(in, row) && row.rfind(std::string(s) + "  ", 0) != 0) {
        }
        EXPECT_TRUE(has(row, " NO ") && has(row, "no kprobes on this kernel")) << out.str();
    }
    // and nothing kprobe-made nor kex-made is expected of a page
    uint16_t m = expected_milestones(p, nullptr);
    EXPECT_EQ(m, kMsPageFree);
}

TEST(TracerPlanKernels, OldKexWithoutModesSaysModeIsInferred) {
    KernelFacts f = facts("6.1");
    f.has_tracepoint = [](std::string_view sys, std::string_view name) {
        return sys != "kex" ||
               (name != "kex_mmap_mode" && name != "kex_batch" && name != "kex_fault");
    };
    ProbePlan p = plan_probes(kallsyms("6.1"), f, {});
    EXPECT_TRUE(step(p, "kex tracepoints").available);
    EXPECT_FALSE(step(p, "kex modes").available);
    EXPECT_TRUE(has(step(p, "kex modes").reason, "this kex has no mapping modes"))
        << step(p, "kex modes").reason;
}

TEST(TracerPlanKernels, KexModeLayoutsAreChecked) {
    KernelFacts f = facts("6.12");
    f.tp_format = [](std::string_view, std::string_view name) -> std::optional<TpFormat> {
        if (name == "kex_fault") // pfn and uaddr swapped in some future kex
            return TpFormat{{"uaddr", {16, 8, false}},
                            {"pfn", {8, 8, false}},
                            {"index", {24, 4, false}},
                            {"flags", {28, 4, false}}};
        return std::nullopt;
    };
    ProbePlan p = plan_probes(kallsyms("6.12"), f, {});
    EXPECT_FALSE(p.enabled[KEX_P_KEX_FAULT]);
    EXPECT_TRUE(p.enabled[KEX_P_KEX_BATCH]);
    EXPECT_TRUE(has(step(p, "kex modes").reason, "kex:kex_fault: field layout differs"));
}
