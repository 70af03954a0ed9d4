// probe_plan.cpp - see probe_plan.h.
#include "probe_plan.h"
#include "lines.h"

#include <algorithm>
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace kextrace {

namespace {

const std::array<ProbeSpec, KEX_P_COUNT> kSpecs = {{
    {KEX_P_INSERT, "kprobe__insert_page", ProbeKind::kprobe, nullptr, "insert",
     "fentry__insert_page"},
    {KEX_P_INSERT_RET, "kretprobe__insert_page", ProbeKind::kretprobe, nullptr, "insert_ret",
     "fexit__insert_page"},
    {KEX_P_RMAP_ADD, "kprobe__rmap_add", ProbeKind::kprobe, nullptr, "rmap_add"},
    {KEX_P_RMAP_REMOVE, "kprobe__rmap_remove", ProbeKind::kprobe, nullptr, "rmap_remove"},
    {KEX_P_SET_DIRTY, "kprobe__set_dirty", ProbeKind::kprobe, nullptr, "set_dirty"},
    {KEX_P_SET_PTE, "kprobe__set_pte", ProbeKind::kprobe, nullptr, "set_pte", "fentry__set_pte"},
    {KEX_P_SET_PTE_RET, "kretprobe__set_pte", ProbeKind::kretprobe, nullptr, "set_pte_ret",
     "fexit__set_pte"},
    {KEX_P_UNMAP, "kprobe__unmap", ProbeKind::kprobe, nullptr, "unmap", "fentry__unmap"},
    {KEX_P_UNMAP_RET, "kretprobe__unmap", ProbeKind::kretprobe, nullptr, "unmap_ret",
     "fexit__unmap"},
    {KEX_P_EXIT_MMAP, "kprobe__exit_mmap", ProbeKind::kprobe, nullptr, "exit_mmap",
     "fentry__exit_mmap"},
    {KEX_P_EXIT_MMAP_RET, "kretprobe__exit_mmap", ProbeKind::kretprobe, nullptr, "exit_mmap_ret",
     "fexit__exit_mmap"},
    {KEX_P_MM_PAGE_ALLOC, "tp__mm_page_alloc", ProbeKind::tracepoint, "kmem/mm_page_alloc",
     "mm_page_alloc"},
    {KEX_P_MM_PAGE_FREE, "tp__mm_page_free", ProbeKind::tracepoint, "kmem/mm_page_free",
     "mm_page_free"},
    {KEX_P_MM_PAGE_FREE_BATCHED, "tp__mm_page_free_batched", ProbeKind::tracepoint,
     "kmem/mm_page_free_batched", "mm_page_free_batched"},
    {KEX_P_KEX_MMAP, "tp__kex_mmap", ProbeKind::tracepoint, "kex/kex_mmap", "kex_mmap"},
    {KEX_P_KEX_MMAP_DONE, "tp__kex_mmap_done", ProbeKind::tracepoint, "kex/kex_mmap_done",
     "kex_mmap_done"},
    {KEX_P_KEX_PAGE_ALLOC, "tp__kex_page_alloc", ProbeKind::tracepoint, "kex/kex_page_alloc",
     "kex_page_alloc"},
    {KEX_P_KEX_PAGE_INSERT, "tp__kex_page_insert", ProbeKind::tracepoint, "kex/kex_page_insert",
     "kex_page_insert"},
    {KEX_P_KEX_PAGE_FREE, "tp__kex_page_free", ProbeKind::tracepoint, "kex/kex_page_free",
     "kex_page_free"},
    {KEX_P_KEX_VMA_OPEN, "tp__kex_vma_open", ProbeKind::tracepoint, "kex/kex_vma_open",
     "kex_vma_open"},
    {KEX_P_KEX_VMA_CLOSE, "tp__kex_vma_close", ProbeKind::tracepoint, "kex/kex_vma_close",
     "kex_vma_close"},
    {KEX_P_KEX_RELEASE, "tp__kex_release", ProbeKind::tracepoint, "kex/kex_release", "kex_release"},
    {KEX_P_SYS_ENTER_MMAP, "tp__sys_enter_mmap", ProbeKind::tracepoint, "syscalls/sys_enter_mmap",
     "sys_enter_mmap"},
    {KEX_P_SYS_EXIT_MMAP, "tp__sys_exit_mmap", ProbeKind::tracepoint, "syscalls/sys_exit_mmap",
     "sys_exit_mmap"},
    {KEX_P_SYS_ENTER_MUNMAP, "tp__sys_enter_munmap", ProbeKind::tracepoint,
     "syscalls/sys_enter_munmap", "sys_enter_munmap"},
    {KEX_P_SYS_EXIT_MUNMAP, "tp__sys_exit_munmap", ProbeKind::tracepoint,
     "syscalls/sys_exit_munmap", "sys_exit_munmap"},
    {KEX_P_PROC_FORK, "tp__sched_process_fork", ProbeKind::tp_btf, "sched/sched_process_fork",
     "fork"},
    {KEX_P_PROC_EXIT, "tp__sched_process_exit", ProbeKind::tracepoint, "sched/sched_process_exit",
     "exit"},
    {KEX_P_USER_FAULT, "tp__page_fault_user", ProbeKind::tracepoint, "exceptions/page_fault_user",
     "page_fault_user"},
    {KEX_P_USDT, "usdt__rig_phase", ProbeKind::usdt, nullptr, "usdt"},
    {KEX_P_KEX_MMAP_MODE, "tp__kex_mmap_mode", ProbeKind::tracepoint, "kex/kex_mmap_mode",
     "kex_mmap_mode"},
    {KEX_P_KEX_BATCH, "tp__kex_batch", ProbeKind::tracepoint, "kex/kex_batch", "kex_batch"},
    {KEX_P_KEX_FAULT, "tp__kex_fault", ProbeKind::tracepoint, "kex/kex_fault", "kex_fault"},
    {KEX_P_VM_INSERT_PAGES, "kprobe__vm_insert_pages", ProbeKind::kprobe, nullptr,
     "vm_insert_pages"},
    {KEX_P_REMAP_PFN, "kprobe__remap_pfn", ProbeKind::kprobe, nullptr, "remap_pfn",
     "fentry__remap_pfn"},
    {KEX_P_REMAP_PFN_RET, "kretprobe__remap_pfn", ProbeKind::kretprobe, nullptr, "remap_pfn_ret",
     "fexit__remap_pfn"},
    {KEX_P_PROC_FREE, "tp__sched_process_free", ProbeKind::tp_btf, "sched/sched_process_free",
     "reap"},
    {KEX_P_VM_INSERT_PAGE, "kprobe__vm_insert_page", ProbeKind::kprobe, nullptr, "vm_insert_page"},
    {KEX_P_INSERT_PFN, "kprobe__insert_pfn", ProbeKind::kprobe, nullptr, "insert_pfn",
     "fentry__insert_pfn"},
    {KEX_P_INSERT_PFN_RET, "kretprobe__insert_pfn", ProbeKind::kretprobe, nullptr, "insert_pfn_ret",
     "fexit__insert_pfn"},
    {KEX_P_PTE_LOOKUP, "kprobe__pte_lookup", ProbeKind::kprobe, nullptr, "pte_lookup"},
    // never in the plan: --follow attaches it (or follow_multi) itself, follow_attach.cpp
    {KEX_P_FOLLOW, "follow_kprobe", ProbeKind::kprobe, nullptr, "follow"},
}};

} // namespace

const ProbeSpec& probe_spec(uint32_t id) {
    return kSpecs.at(id);
}

bool is_trampoline(ProbeKind k) {
    return k == ProbeKind::fentry || k == ProbeKind::fexit;
}

const char* probe_program(const ProbeSpec& spec, ProbeKind kind) {
    return is_trampoline(kind) ? spec.twin_prog : spec.prog;
}

std::string_view probe_kind_name(ProbeKind k) {
    switch (k) {
    case ProbeKind::kprobe:
        return "kprobe";
    case ProbeKind::kretprobe:
        return "kretprobe";
    case ProbeKind::tracepoint:
        return "tracepoint";
    case ProbeKind::tp_btf:
        return "tp_btf";
    case ProbeKind::usdt:
        return "usdt";
    case ProbeKind::fexit:
        return "fexit";
    case ProbeKind::fentry:
        return "fentry";
    }
    return "?";
}

std::string step_mechanism(const ProbePlan& plan, const PlanStep& step, bool tracefs_kprobes) {
    std::vector<std::string> kinds;
    for (uint32_t p : step.probes) {
        ProbeKind k = plan.enabled[p] ? plan.kind[p] : probe_spec(p).kind;
        std::string name(probe_kind_name(k));
        if (tracefs_kprobes && (k == ProbeKind::kprobe || k == ProbeKind::kretprobe))
            name = "tracefs " + name;
        if (std::find(kinds.begin(), kinds.end(), name) == kinds.end())
            kinds.push_back(name);
    }
    return fmt::format("{}", fmt::join(kinds, " + "));
}

std::map<std::string, unsigned> count_traceable_functions(std::string_view text) {
    std::map<std::string, unsigned> out;
    for (std::string_view line : Lines(text)) {
        if (line.empty() || line.front() == '#')
            continue;
        std::size_t sp = line.find_first_of(" \t");
        if (sp != std::string_view::npos && line.substr(sp).find('[') != std::string_view::npos)
            continue; // a module's function
        out[std::string(line.substr(0, sp))]++;
    }
    return out;
}

std::set<std::string> parse_traceable_functions(std::string_view text) {
    std::set<std::string> out;
    for (auto& [name, n] : count_traceable_functions(text))
        out.insert(out.end(), name);
    return out;
}

const PlanStep* ProbePlan::find(std::string_view step) const {
    for (const auto& s : steps)
        if (s.step == step)
            return &s;
    return nullptr;
}

std::string check_tp_layout(const TpFormat& format, const std::vector<ExpectedField>& expected) {
    for (const auto& e : expected) {
        auto it = format.find(e.name);
        if (it == format.end())
            return fmt::format("no field {}", e.name);
        if (it->second.offset != e.offset || it->second.size != e.size)
            return fmt::format("{} at offset {} size {}, expected offset {} size {}", e.name,
                               it->second.offset, it->second.size, e.offset, e.size);
    }
    return {};
}

// A verdict and its reference ledger read the page's counts at the steps
// that take or drop a reference or a mapping (alloc, insert, rmap add and
// remove, kex's put, the free); the zap's dirtying reads the counts the
// zap's rmap remove reads a moment later, and a user fault reads none. Each
// costs a program run a page (bench/README.md), which a run left on across
// a test suite would pay for nothing.
void leave_off_for_watch(ProbePlan& plan) {
    static const std::map<std::string_view, const char*> off = {
        {"dirty at zap", "off: --watch (a leak verdict needs no dirtying: the zap's rmap remove "
                         "reads the same counts)"},
        {"user faults", "off: --watch (a leak verdict reads no fault)"},
    };
    for (PlanStep& s : plan.steps) {
        auto it = off.find(s.step);
        if (it == off.end() || !s.available)
            continue;
        s.off = it->second;
        for (uint32_t p : s.probes)
            plan.enabled[p] = false;
    }
}

const std::vector<UsdtProbe>& rig_usdt_probes() {
    static const std::vector<UsdtProbe> v = {
        {"mmap_begin", KEX_PHASE_MMAP_BEGIN},     {"mmap_end", KEX_PHASE_MMAP_END},
        {"write_begin", KEX_PHASE_WRITE_BEGIN},   {"write_end", KEX_PHASE_WRITE_END},
        {"munmap_begin", KEX_PHASE_MUNMAP_BEGIN}, {"munmap_end", KEX_PHASE_MUNMAP_END},
    };
    return v;
}

} // namespace kextrace
