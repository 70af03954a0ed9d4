// plan_steps.cpp - plan_probes (probe_plan.h): for each logical step, the
// attach point on this kernel or why there is none. A kprobe step tries its
// candidate functions in order (the first in kallsyms and traceable wins, and
// sets the BPF side's argument layout); a tracepoint step needs each of its
// tracepoints, with the field layout the BPF programs read.
#include "probe_plan.h"

#include <algorithm>
#include <functional>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace kextrace {

namespace {

// One candidate attach point of a kprobe step.
struct KCandidate {
    const char* name;
    // Sets the argument layout for the resolved symbol; returns a note for the report.
    std::function<std::string(ProbeConfig&, const CloneName&)> apply;
    const char* reject_if_present = nullptr; // a symbol that says this one is off-path
    const char* reject_reason = nullptr;
    const char* require_present = nullptr;
    const char* require_reason = nullptr;
};

// The usable symbol for a function: exact name first, then whole-function
// clones (.constprop/.isra/.llvm); .part/.cold pieces are not entry points.
const Ksym* resolve_function(const Ksyms& ks, const char* base, std::string* note) {
    const Ksym* chosen = nullptr;
    std::vector<std::string> others;
    for (const Ksym* s : ks.find_function(base)) {
        CloneName c = split_clone_name(s->name);
        if (c.has("part") || c.has("cold"))
            continue;
        if (!chosen)
            chosen = s;
        else
            others.push_back(s->name);
    }
    if (chosen && !others.empty() && note)
        *note = fmt::format("other copies not traced: {}", fmt::join(others, ", "));
    return chosen;
}

// The returns of a resolved kprobe step: fexit where BTF has the symbol itself
// (not a clone) with few enough arguments, else the kretprobe. With an fexit,
// the step's entries become fentry programs: one function never carries a
// kprobe and a trampoline at once (bpf/kextrace.bpf.h says why). A note for
// the report says which and why.
std::string choose_returns(ProbePlan& plan, const KernelFacts& facts,
                           const std::vector<uint32_t>& probes, const std::string& symbol) {
    bool entries_have_fentry = std::all_of(probes.begin(), probes.end(), [](uint32_t p) {
        return probe_spec(p).kind != ProbeKind::kprobe || probe_spec(p).twin_prog;
    });
    std::string note;
    bool tramp = false;
    for (uint32_t p : probes) {
        const ProbeSpec& spec = probe_spec(p);
        if (spec.kind != ProbeKind::kretprobe)
            continue;
        std::optional<unsigned> nargs;
        if (facts.btf_func_params)
            if (auto params = facts.btf_func_params(symbol))
                nargs = static_cast<unsigned>(params->size());
        if (spec.twin_prog && entries_have_fentry && nargs && *nargs <= kFexitMaxArgs) {
            plan.kind[p] = ProbeKind::fexit;
            plan.config.fexit_probes |= KEX_FEXIT(p);
            tramp = true;
            note = "entry and return: fentry + fexit (in BTF, one trampoline)";
        } else if (!facts.btf_func_params) {
            note = "return: kretprobe (no kernel BTF functions known)";
        } else if (!nargs) {
            note = fmt::format("return: kretprobe ({} is not in BTF{})", symbol,
                               split_clone_name(symbol).is_clone() ? ": a compiler clone" : "");
        } else if (nargs && *nargs > kFexitMaxArgs) {
            note =
                fmt::format("return: kretprobe ({} arguments, a BPF trampoline takes at most {})",
                            *nargs, kFexitMaxArgs);
        } else {
            note = "return: kretprobe (no trampoline program for this step)";
        }
    }
    if (tramp)
        for (uint32_t p : probes)
            if (probe_spec(p).kind == ProbeKind::kprobe)
                plan.kind[p] = ProbeKind::fentry;
    return note;
}

void plan_kprobe_step(ProbePlan& plan, const Ksyms& ks, const KernelFacts& facts, std::string step,
                      const std::vector<KCandidate>& cands, std::vector<uint32_t> probes) {
    PlanStep s;
    s.step = std::move(step);
    s.probes = std::move(probes);
    std::vector<std::string> names, why;
    for (const auto& c : cands)
        names.emplace_back(c.name);
    s.wanted = fmt::format("{}", fmt::join(names, " | "));

    for (const auto& c : cands) {
        if (c.reject_if_present && ks.find(c.reject_if_present)) {
            why.push_back(fmt::format("{}: {}", c.name, c.reject_reason));
            continue;
        }
        if (c.require_present && !ks.find(c.require_present)) {
            why.push_back(fmt::format("{}: {}", c.name, c.require_reason));
            continue;
        }
        std::string extra;
        const Ksym* sym = resolve_function(ks, c.name, &extra);
        if (!sym) {
            why.push_back(fmt::format("{}: not in kallsyms (inlined or renamed)", c.name));
            continue;
        }
        if (facts.traceable && !facts.traceable->count(sym->name)) {
            why.push_back(fmt::format("{}: notrace, kprobe events refuse it (inline, or not in "
                                      "available_filter_functions)",
                                      sym->name));
            continue;
        }
        if (facts.kprobe_blacklist.count(sym->name)) {
            why.push_back(fmt::format("{}: in the kprobe blacklist", sym->name));
            continue;
        }
        std::string note = c.apply ? c.apply(plan.config, split_clone_name(sym->name)) : "";
        if (!facts.kprobes) {
            why.insert(why.begin(),
                       fmt::format("no kprobes on this kernel: would attach {}", sym->name));
            break;
        }
        s.available = true;
        s.resolved = sym->name;
        if (!note.empty())
            why.push_back(note);
        if (!extra.empty())
            why.push_back(extra);
        for (uint32_t p : s.probes) {
            plan.enabled[p] = true;
            plan.target[p] = sym->name;
            plan.kind[p] = probe_spec(p).kind;
        }
        if (std::string r = choose_returns(plan, facts, s.probes, sym->name); !r.empty())
            why.push_back(r);
        break;
    }
    if (!s.available && !facts.kprobes &&
        std::none_of(why.begin(), why.end(),
                     [](const std::string& w) { return w.starts_with("no kprobes"); }))
        why.insert(why.begin(), "no kprobes on this kernel");
    s.reason = fmt::format("{}", fmt::join(why, "; "));
    plan.steps.push_back(std::move(s));
}

const std::map<std::string, std::vector<ExpectedField>>& kex_layouts() {
    static const std::map<std::string, std::vector<ExpectedField>> m = {
        {"kex_mmap",
         {{"vm_start", 8, 8},
          {"vm_end", 16, 8},
          {"pgoff", 24, 8},
          {"pages", 32, 4},
          {"policy", 36, 4}}},
        {"kex_mmap_done", {{"vm_start", 8, 8}, {"ret", 16, 4}, {"mapped", 20, 4}}},
        {"kex_page_alloc", {{"pfn", 8, 8}, {"page", 16, 8}, {"index", 24, 4}}},
        {"kex_page_insert", {{"pfn", 8, 8}, {"uaddr", 16, 8}, {"index", 24, 4}, {"ret", 28, 4}}},
        {"kex_page_free", {{"pfn", 8, 8}, {"index", 16, 4}, {"reason", 20, 4}}},
        {"kex_vma_open", {{"vm_start", 8, 8}, {"vm_end", 16, 8}}},
        {"kex_vma_close", {{"vm_start", 8, 8}, {"vm_end", 16, 8}}},
        {"kex_release", {{"pages", 8, 4}}},
        {"kex_mmap_mode", {{"vm_start", 8, 8}, {"mode", 16, 4}}},
        {"kex_batch",
         {{"uaddr", 8, 8},
          {"index", 16, 4},
          {"requested", 20, 4},
          {"mapped", 24, 4},
          {"ret", 28, 4}}},
        {"kex_fault", {{"uaddr", 8, 8}, {"pfn", 16, 8}, {"index", 24, 4}, {"flags", 28, 4}}},
        // not kex's, but our own struct too (bpf/kex_tp.h)
        {"page_fault_user", {{"address", 8, 8}, {"ip", 16, 8}, {"error_code", 24, 8}}},
    };
    return m;
}

// A step made of classic tracepoints (and tp_btf): each probe's own tp must exist.
void plan_tp_step(ProbePlan& plan, const KernelFacts& facts, std::string step,
                  std::vector<uint32_t> probes, std::string missing_hint = {}) {
    PlanStep s;
    s.step = std::move(step);
    s.probes = std::move(probes);
    std::vector<std::string> wanted, got, why;
    for (uint32_t p : s.probes) {
        const ProbeSpec& spec = probe_spec(p);
        std::string tp = spec.tp;
        std::string sys = tp.substr(0, tp.find('/')), name = tp.substr(tp.find('/') + 1);
        std::string label = sys + ":" + name;
        wanted.push_back(label);
        if (!facts.has_tracepoint || !facts.has_tracepoint(sys, name)) {
            why.push_back(fmt::format("no tracepoint {}{}", label,
                                      missing_hint.empty() ? "" : " (" + missing_hint + ")"));
            continue;
        }
        if (spec.kind == ProbeKind::tp_btf && !facts.btf) {
            why.push_back(fmt::format("{}: tp_btf needs /sys/kernel/btf/vmlinux", label));
            continue;
        }
        if (auto it = kex_layouts().find(name); it != kex_layouts().end() && facts.tp_format) {
            if (auto f = facts.tp_format(sys, name)) {
                std::string bad = check_tp_layout(*f, it->second);
                if (!bad.empty()) {
                    why.push_back(
                        fmt::format("{}: field layout differs from bpf/kex_tp.h: {}", label, bad));
                    continue;
                }
            }
        }
        plan.enabled[p] = true;
        plan.target[p] = tp;
        plan.kind[p] = spec.kind;
        got.push_back(spec.kind == ProbeKind::tp_btf ? "tp_btf:" + name : label);
    }
    s.wanted = fmt::format("{}", fmt::join(wanted, ", "));
    s.available = !got.empty();
    if (got.empty() && s.probes.size() > 1 && why.size() == s.probes.size() &&
        std::all_of(why.begin(), why.end(),
                    [](const std::string& w) { return w.starts_with("no tracepoint"); })) {
        // the whole system is missing: say so once
        std::string sys = wanted.front().substr(0, wanted.front().find(':'));
        why = {fmt::format("no {}:* tracepoints{}", sys,
                           missing_hint.empty() ? "" : " (" + missing_hint + ")")};
    }
    if (s.probes.size() > 3 && got.size() == s.probes.size())
        s.resolved = fmt::format("{}:* ({} tracepoints)",
                                 wanted.front().substr(0, wanted.front().find(':')), got.size());
    else
        s.resolved = fmt::format("{}", fmt::join(got, ", "));
    if (got.size() > 3 && got.size() == s.probes.size())
        s.wanted = fmt::format("{} tracepoints", got.size());
    s.reason = fmt::format("{}", fmt::join(why, "; "));
    plan.steps.push_back(std::move(s));
}

// A candidate whose layout has the page (or folio) in argument n: sets field.
auto page_at(uint8_t ProbeConfig::*field, uint8_t n, const char* note = "") {
    return [field, n, note](ProbeConfig& c, const CloneName&) {
        c.*field = n;
        return std::string(note);
    };
}

// The page's allocation and kex's own tracepoints.
void plan_kex_steps(ProbePlan& plan, const KernelFacts& facts) {
    plan_tp_step(plan, facts, "alloc", {KEX_P_MM_PAGE_ALLOC});
    const char* kex_missing = facts.modules
                                  ? "kex not loaded? load it before kextrace"
                                  : "this kernel cannot load modules (no /proc/modules): no kex";
    plan_tp_step(plan, facts, "kex tracepoints",
                 {KEX_P_KEX_MMAP, KEX_P_KEX_MMAP_DONE, KEX_P_KEX_PAGE_ALLOC, KEX_P_KEX_PAGE_INSERT,
                  KEX_P_KEX_PAGE_FREE, KEX_P_KEX_VMA_OPEN, KEX_P_KEX_VMA_CLOSE, KEX_P_KEX_RELEASE},
                 kex_missing);
    {
        // The mapping modes' tracepoints came with the modes: a kex without
        // them maps in mode insert only, and the mode is inferred.
        bool old_kex = facts.has_tracepoint && facts.has_tracepoint("kex", "kex_mmap") &&
                       !facts.has_tracepoint("kex", "kex_mmap_mode");
        plan_tp_step(
            plan, facts, "kex modes", {KEX_P_KEX_MMAP_MODE, KEX_P_KEX_BATCH, KEX_P_KEX_FAULT},
            old_kex ? "this kex has no mapping modes: mode inferred from the events" : kex_missing);
    }
}

// The insert's (pte, addr, page, mkwrite) positions from its BTF parameter
// names; the C prototype where BTF has none (or other names).
std::string insert_layout_of(ProbeConfig& c,
                             const std::optional<std::vector<std::string>>& params) {
    auto at = [&](const char* name) -> uint8_t {
        if (!params)
            return 0;
        auto it = std::find(params->begin(), params->end(), name);
        return it == params->end() ? 0 : static_cast<uint8_t>(it - params->begin() + 1);
    };
    uint8_t pte = at("pte"), addr = at("addr"), page = at("page");
    if (!pte || !addr || !page) {
        c.insert_pte_arg = 2;
        c.insert_addr_arg = 3;
        c.insert_page_arg = 4;
        return params ? fmt::format("its BTF names no pte/addr/page ({}): C prototype assumed, pte "
                                    "PARM2, addr PARM3, page PARM4",
                                    fmt::join(*params, ", "))
                      : "C prototype (no BTF): pte PARM2, addr PARM3, page PARM4";
    }
    c.insert_pte_arg = pte;
    c.insert_addr_arg = addr;
    c.insert_page_arg = page;
    std::string note =
        fmt::format("from BTF: pte PARM{}, addr PARM{}, page PARM{}", pte, addr, page);
    if (uint8_t mk = at("mkwrite"))
        note += fmt::format("; mkwrite PARM{}: vmf_insert_page_mkwrite's upgrade of a PTE already "
                            "there is reported as an insert (kex never makes one)",
                            mk);
    return note;
}

// How a page goes in: insert, another driver's pages, batches.
void plan_insert_steps(ProbePlan& plan, const Ksyms& ks, const KernelFacts& facts,
                       const PlanOptions& opts) {
    // insert_page_into_pte_locked(vma, pte, addr, page, prot[, mkwrite]):
    // static, cloned by GCC on Debian's 6.1 (.constprop.0) and 6.12
    // (.isra.0), whole on 7.2. A whole function's layout is read from its
    // parameter names in the kernel's BTF. A clone is not in BTF: the clones
    // drop addr, the page moving from PARM4 to PARM3 (6.1 DWARF; 6.12
    // disassembly of the call to folio_add_file_rmap_ptes and of
    // compound_head(page)); a kernel whose clone differs shows it as
    // "pfn unknown" pages (page_to_pfn checks that it read a struct page),
    // and --insert-args sets the layout.
    auto insert_layout = [&](ProbeConfig& c, const CloneName& n) -> std::string {
        if (opts.insert_args) {
            c.insert_pte_arg = opts.insert_args->first;
            c.insert_page_arg = opts.insert_args->second;
            return fmt::format("--insert-args: pte PARM{}, page PARM{}", c.insert_pte_arg,
                               c.insert_page_arg);
        }
        if (n.has("constprop") || n.has("isra")) {
            c.insert_pte_arg = 2;
            c.insert_page_arg = 3;
            c.insert_addr_arg = 0;
            return "clone without addr (not in BTF): pte PARM2, page PARM3";
        }
        std::optional<std::vector<std::string>> params;
        if (facts.btf_func_params)
            params = facts.btf_func_params(n.base);
        return insert_layout_of(c, params);
    };
    plan_kprobe_step(plan, ks, facts, "insert", {{"insert_page_into_pte_locked", insert_layout}},
                     {KEX_P_INSERT, KEX_P_INSERT_RET});
    // Another driver's page has no kex_page_insert to say where it went: a
    // clone without addr learns it from its vm_insert_page caller (batches:
    // from vm_insert_pages, the batch insert step's probe).
    if (plan.config.insert_addr_arg == 0)
        plan_kprobe_step(plan, ks, facts, "driver page address",
                         {{"vm_insert_page",
                           [](ProbeConfig&, const CloneName&) {
                               return std::string("the user address of another driver's page, "
                                                  "for the insert clone without addr");
                           }}},
                         {KEX_P_VM_INSERT_PAGE});

    plan_kprobe_step(plan, ks, facts, "batch insert",
                     {{"vm_insert_pages",
                       [](ProbeConfig&, const CloneName&) {
                           return std::string("mode batch: calls inside kex's mmap; each page "
                                              "then goes through the insert step (another "
                                              "driver's: where its pages go)");
                       }}},
                     {KEX_P_VM_INSERT_PAGES});
}

// The inserted page's rmap, and its PTE (read back at the insert's return).
void plan_rmap_and_pte_steps(ProbePlan& plan, const Ksyms& ks, const KernelFacts& facts) {
    // 6.4-6.7: page_add_file_rmap is a wrapper of folio_add_file_rmap_range,
    // which set_pte_range (the fault path) calls directly: probe the folio one.
    plan_kprobe_step(
        plan, ks, facts, "rmap add",
        {{"page_add_file_rmap", page_at(&ProbeConfig::rmap_add_page_arg, 1),
          "folio_add_file_rmap_range",
          "a wrapper of folio_add_file_rmap_range, which the fault path calls "
          "directly"},
         {"folio_add_file_rmap_ptes", page_at(&ProbeConfig::rmap_add_page_arg, 2, "page PARM2")},
         {"folio_add_file_rmap_range", page_at(&ProbeConfig::rmap_add_page_arg, 2, "page PARM2")}},
        {KEX_P_RMAP_ADD});

    {
        const PlanStep* ins = plan.find("insert");
        PlanStep s;
        s.step = "pte set";
        s.wanted = "set_pte_at";
        s.probes = {KEX_P_INSERT_RET};
        s.available = ins && ins->available;
        if (s.available) {
            s.resolved = ins->resolved + " (return)";
            s.reason = "set_pte_at is inline on x86 (no symbol): PTE read back at the return of " +
                       ins->resolved;
        } else {
            s.reason = "set_pte_at is inline on x86; observed at the insert return, which is not "
                       "attached";
        }
        plan.steps.push_back(std::move(s));
    }
}

// The fault path's install, and the zap's rmap remove and dirtying.
// Which faults map a driver's page: those through a vm_ops->fault that is
// not one of the kernel's own handlers for page-cache, shmem and special
// mappings (bpf/driver.bpf.h). The handlers this kernel has go to the BPF
// side; a handler missing from the list only means its pages are followed
// as a driver's (named after their owner, --driver/--file narrow them).
void plan_driver_fault_step(ProbePlan& plan, const Ksyms& ks) {
    static constexpr std::array<const char*, 20> core = {
        "filemap_fault",      "shmem_fault",         "special_mapping_fault",
        "vdso_fault",         "vvar_fault",          "xol_fault",
        "secretmem_fault",    "hugetlb_vm_op_fault", "mmap_vmcore_fault",
        "ext4_dax_fault",     "ext2_dax_fault",      "xfs_filemap_fault",
        "f2fs_filemap_fault", "ceph_filemap_fault",  "gfs2_fault",
        "ocfs2_fault",        "orangefs_fault",      "bch2_page_fault",
        "erofs_dax_fault",    "fuse_dax_fault",
    };
    static_assert(core.size() < KEX_CORE_FAULTS);
    const PlanStep* install = plan.find("fault install");
    PlanStep s;
    s.step = "driver faults";
    s.wanted = "vm_ops->fault not the kernel's own";
    s.probes = {KEX_P_SET_PTE};
    std::size_t n = 0;
    for (const char* name : core)
        if (const Ksym* k = ks.find(name); k && k->is_text())
            plan.config.core_faults[n++] = k->addr;
    s.available = install && install->available;
    if (s.available) {
        s.resolved = fmt::format("{} core handlers left out", n);
        s.reason = "filemap_fault, shmem_fault, the vdso's, file systems' (plan_steps.cpp)";
    } else {
        s.reason = "the fault install step is not attached";
    }
    plan.steps.push_back(std::move(s));
}

void plan_fault_and_zap_steps(ProbePlan& plan, const Ksyms& ks, const KernelFacts& facts) {
    plan_kprobe_step(plan, ks, facts, "fault install",
                     {{"do_set_pte",
                       [](ProbeConfig& c, const CloneName&) {
                           c.set_pte_page_arg = 2;
                           c.set_pte_addr_arg = 3;
                           return std::string();
                       }},
                      {"set_pte_range",
                       [](ProbeConfig& c, const CloneName&) {
                           c.set_pte_page_arg = 3;
                           c.set_pte_addr_arg = 5;
                           return std::string("page PARM3, addr PARM5");
                       }}},
                     {KEX_P_SET_PTE, KEX_P_SET_PTE_RET});

    plan_driver_fault_step(plan, ks);

    plan_kprobe_step(
        plan, ks, facts, "zap (rmap remove)",
        {{"page_remove_rmap", page_at(&ProbeConfig::rmap_remove_page_arg, 1)},
         {"folio_remove_rmap_ptes", page_at(&ProbeConfig::rmap_remove_page_arg, 2, "page PARM2")},
         {"folio_remove_rmap_range", page_at(&ProbeConfig::rmap_remove_page_arg, 2, "page PARM2")}},
        {KEX_P_RMAP_REMOVE});

    plan_kprobe_step(
        plan, ks, facts, "dirty at zap",
        {{"set_page_dirty", page_at(&ProbeConfig::dirty_page_arg, 1), nullptr, nullptr,
          "page_remove_rmap", "zap calls folio_mark_dirty directly with the folio rmap API"},
         {"folio_mark_dirty",
          page_at(&ProbeConfig::dirty_page_arg, 1, "folio PARM1 (== page for order 0)")}},
        {KEX_P_SET_DIRTY});
}

// How a mapping goes: munmap, exit, and the pfn map mode.
void plan_unmap_steps(ProbePlan& plan, const Ksyms& ks, const KernelFacts& facts) {
    plan_kprobe_step(
        plan, ks, facts, "unmap (munmap)",
        {{"vms_clear_ptes",
          [](ProbeConfig& c, const CloneName&) {
              c.unmap_mode = KEX_UNMAP_VMS;
              return std::string("munmap: vms_complete_munmap_vmas -> vms_clear_ptes; "
                                 "start/end from struct vma_munmap_struct");
          }},
         {"vms_complete_munmap_vmas",
          [](ProbeConfig& c, const CloneName&) {
              c.unmap_mode = KEX_UNMAP_VMS;
              return std::string("munmap's completion (zap, then the VMAs' close); start/end "
                                 "from struct vma_munmap_struct");
          }},
         {"unmap_region",
          [](ProbeConfig& c, const CloneName&) {
              c.unmap_mode = KEX_UNMAP_REGION_61;
              return std::string("start PARM6, end on the stack");
          },
          "vms_complete_munmap_vmas", "only on the mmap error path since 6.11"},
         {"unmap_vmas",
          [](ProbeConfig& c, const CloneName&) {
              c.unmap_mode = KEX_UNMAP_VMAS;
              return std::string("start PARM4, end PARM5; calls under exit_mmap are left to "
                                 "the exit step");
          }}},
        {KEX_P_UNMAP, KEX_P_UNMAP_RET});

    plan_kprobe_step(plan, ks, facts, "exit unmap", {{"exit_mmap", nullptr}},
                     {KEX_P_EXIT_MMAP, KEX_P_EXIT_MMAP_RET});

    auto pfn_note = [](ProbeConfig&, const CloneName&) {
        return std::string("mode pfn: (addr, pfn, size) per call; its PTEs are special: no rmap, "
                           "no reference, nothing at the zap");
    };
    // 7.x: remap_pfn_range and the mmap_prepare path's remap_pfn_range_complete
    // (/dev/mem's) both end in remap_pfn_range_track, with remap_pfn_range's
    // arguments; where it is inlined or absent, remap_pfn_range itself
    plan_kprobe_step(plan, ks, facts, "pfn map",
                     {{"remap_pfn_range_track",
                       [pfn_note](ProbeConfig& c, const CloneName& n) {
                           return pfn_note(c, n) + "; where remap_pfn_range and mmap_prepare's "
                                                   "remap_pfn_range_complete meet";
                       }},
                      {"remap_pfn_range", pfn_note}},
                     {KEX_P_REMAP_PFN, KEX_P_REMAP_PFN_RET});

    plan_kprobe_step(plan, ks, facts, "pfn PTE",
                     {{"vm_normal_page",
                       [](ProbeConfig&, const CloneName&) {
                           return std::string("mode pfn: the PTE (by value, PARM3) the zap, a "
                                              "write fault or a page-table walker found; special "
                                              "PTEs stop there");
                       }}},
                     {KEX_P_PTE_LOOKUP});

    plan_kprobe_step(plan, ks, facts, "pfn fault insert",
                     {{"vmf_insert_pfn_prot",
                       [](ProbeConfig&, const CloneName&) {
                           return std::string("another driver's pfn at a fault (vmf_insert_pfn): "
                                              "a special PTE, no reference, no rmap");
                       }}},
                     {KEX_P_INSERT_PFN, KEX_P_INSERT_PFN_RET});
}

// Page frees and the processes' lives (syscalls, fork, exit, reap, faults).
void plan_process_steps(ProbePlan& plan, const KernelFacts& facts) {
    plan_tp_step(plan, facts, "free", {KEX_P_MM_PAGE_FREE});
    plan_tp_step(plan, facts, "free batched", {KEX_P_MM_PAGE_FREE_BATCHED});
    plan_tp_step(
        plan, facts, "syscalls",
        {KEX_P_SYS_ENTER_MMAP, KEX_P_SYS_EXIT_MMAP, KEX_P_SYS_ENTER_MUNMAP, KEX_P_SYS_EXIT_MUNMAP});
    plan_tp_step(plan, facts, "fork", {KEX_P_PROC_FORK});
    plan_tp_step(plan, facts, "exit", {KEX_P_PROC_EXIT});
    // the traced map forgets a thread group once its leader is freed
    plan_tp_step(plan, facts, "reap", {KEX_P_PROC_FREE},
                 "the traced set is never pruned: reused pids stay traced");
    plan_tp_step(plan, facts, "user faults", {KEX_P_USER_FAULT});
}

// The rig's USDT probes, in the command's (or --usdt's) binary.
void plan_usdt_step(ProbePlan& plan, const PlanOptions& opts) {
    PlanStep s;
    s.step = "usdt";
    s.wanted = "kex_rig:*";
    s.probes = {KEX_P_USDT};
    if (opts.usdt_binary.empty()) {
        s.reason = "no rig binary (the command is not a file with kex_rig probes; --usdt)";
    } else {
        s.available = true;
        s.resolved = "kex_rig:* in " + opts.usdt_binary;
        plan.enabled[KEX_P_USDT] = true;
        plan.kind[KEX_P_USDT] = ProbeKind::usdt;
        plan.target[KEX_P_USDT] = opts.usdt_binary;
    }
    plan.steps.push_back(std::move(s));
}

} // namespace

ProbePlan plan_probes(const Ksyms& ks, const KernelFacts& facts, const PlanOptions& opts) {
    ProbePlan plan;
    for (uint32_t id = 0; id < KEX_P_COUNT; id++)
        plan.kind[id] = probe_spec(id).kind;

    if (const Ksym* v = ks.find("vmemmap_base"); v && !v->is_text())
        plan.config.vmemmap_base_addr = v->addr;
    if (const Ksym* t = ks.find("arch_rethook_trampoline"); t && t->is_text())
        plan.config.rethook_trampoline = t->addr;

    plan_kex_steps(plan, facts);
    plan_insert_steps(plan, ks, facts, opts);
    plan_rmap_and_pte_steps(plan, ks, facts);
    plan_fault_and_zap_steps(plan, ks, facts);
    plan_unmap_steps(plan, ks, facts);
    plan_process_steps(plan, facts);
    plan_usdt_step(plan, opts);
    if (opts.watch)
        leave_off_for_watch(plan);
    return plan;
}

} // namespace kextrace
