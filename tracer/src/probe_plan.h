// probe_plan.h - which kernel attach point observes each logical step on
// *this* kernel, chosen at start-up from kallsyms and tracefs.
//
// Each step has an ordered list of candidates (6.1 names, then the 6.x folio
// names, compiler clones of them); the first one present wins, and the plan
// says per step what was used or why nothing could be (missing symbol,
// inlined, no kprobes on this kernel, tracepoint absent, layout mismatch).
// Argument positions of what was resolved go into ProbeConfig, which the
// loader copies into the BPF program's const volatile globals.
//
// Pure: inputs are a Ksyms and a KernelFacts, so tests run on fixture files.
#pragma once

#include "ksyms.h"
#include "tracefs.h"

extern "C" {
#include <linux/types.h>
}
#include "kextrace.h"

#include <array>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace kextrace {

// How a probe observes the kernel. A return probe is a kretprobe by default
// and fexit (a BPF trampoline) where the plan finds the function in BTF; the
// entry of a function whose return is an fexit is an fentry, so that one
// function never carries a kprobe and a trampoline at once (bpf/kextrace.bpf.h).
enum class ProbeKind { kprobe, kretprobe, tracepoint, tp_btf, usdt, fexit, fentry };
std::string_view probe_kind_name(ProbeKind k); // "kprobe", "fexit", ...

// The BPF program behind each probe id (enum kex_probe_id).
struct ProbeSpec {
    uint32_t id;
    const char* prog; // program name in bpf/NAME.bpf.c
    ProbeKind kind;
    const char* tp;                  // "sys/name" for tracepoints, nullptr otherwise
    const char* short_name;          // for kprobe event names and the probe report
    const char* twin_prog = nullptr; // kprobes: the fentry twin; kretprobes: the fexit twin
};
const ProbeSpec& probe_spec(uint32_t id);
// the BPF program that observes as kind: spec.prog, or its trampoline twin
const char* probe_program(const ProbeSpec& spec, ProbeKind kind);
bool is_trampoline(ProbeKind k); // fentry, fexit

// BPF trampolines on x86-64 pass at most 6 arguments before 6.6: a function
// with more keeps its kretprobe.
inline constexpr unsigned kFexitMaxArgs = 6;

// What the running kernel offers besides its symbols.
struct KernelFacts {
    std::string release; // uname -r
    bool kprobes = false;
    std::string no_kprobes_reason; // when !kprobes
    bool btf = true;               // /sys/kernel/btf/vmlinux (tp_btf programs)
    bool modules = true;           // /proc/modules: the kernel can load modules (kex)
    std::function<bool(std::string_view sys, std::string_view name)> has_tracepoint;
    // Field layout of a tracepoint; may be empty (no check then).
    std::function<std::optional<TpFormat>(std::string_view sys, std::string_view name)> tp_format;
    std::set<std::string> kprobe_blacklist; // /sys/kernel/debug/kprobes/blacklist
    // tracefs available_filter_functions: kprobe events refuse functions not
    // in it (notrace, e.g. a static inline compiled out of line) unless
    // CONFIG_KPROBE_EVENTS_ON_NOTRACE. nullopt = unknown, do not check.
    std::optional<std::set<std::string>> traceable;
    // The parameter names of a function in the kernel's BTF (their number is
    // its argument count), nullopt if BTF has no such function (compiler
    // clones never are). Unset: no BTF functions known, every return is a
    // kretprobe, and argument layouts are the C prototypes'.
    std::function<std::optional<std::vector<std::string>>(std::string_view name)> btf_func_params;
};

// Function names of an available_filter_functions file ("name" or "name [mod]").
std::set<std::string> parse_traceable_functions(std::string_view text);
// The same, vmlinux's only, with how often each name is listed (static
// functions of several files share a name; "name [mod]" lines are skipped).
std::map<std::string, unsigned> count_traceable_functions(std::string_view text);

struct PlanOptions {
    // Override of the insert clone's (pte, page) argument positions.
    std::optional<std::pair<int, int>> insert_args;
    std::string usdt_binary; // rig binary carrying the kex_rig probes; "" = none
    // --watch: leave off the steps no leak verdict reads (PlanStep::off)
    bool watch = false;
};

// Values for the BPF side's const volatile globals.
struct ProbeConfig {
    uint8_t insert_pte_arg = 2;
    uint8_t insert_page_arg = 3;
    uint8_t insert_addr_arg = 0; // 0: the insert clone has no addr (vm_insert_page tells)
    uint8_t rmap_add_page_arg = 1;
    uint8_t rmap_remove_page_arg = 1;
    uint8_t dirty_page_arg = 1;
    uint8_t set_pte_page_arg = 2;
    uint8_t set_pte_addr_arg = 3;
    uint8_t unmap_mode = KEX_UNMAP_REGION_61;
    uint64_t vmemmap_base_addr = 0; // kallsyms address of vmemmap_base, 0 = absent
    // The return trampoline a kretprobe writes over its function's return
    // address (arch_rethook_trampoline), 0 = absent: stack sites read the
    // real address from the task's rethook list instead.
    uint64_t rethook_trampoline = 0;
    uint64_t fexit_probes = 0; // KEX_FEXIT(id) of the returns attached as fexit
    // The kernel's own vm_ops->fault handlers (page cache, shmem, the vdso,
    // ...), 0-terminated: a fault through any other one maps a driver's page.
    std::array<uint64_t, KEX_CORE_FAULTS> core_faults{};
};

// One row of the start-up report.
struct PlanStep {
    std::string step;     // "insert", "rmap add", ...
    std::string wanted;   // candidates, in order: "page_add_file_rmap | folio_add_file_rmap_ptes"
    std::string resolved; // the symbol / tracepoint(s) chosen, "" = none
    bool available = false;
    std::string reason;           // why none, or how the choice was made
    std::vector<uint32_t> probes; // probe ids that implement it
    std::string mechanism;        // "fentry + fexit", "tracepoint", ... (see step_mechanism)
    // Not armed although it could be: why the run's options need nothing of
    // it ("" = armed when available). Its probes are not enabled.
    std::string off;
};

struct ProbePlan {
    std::vector<PlanStep> steps;
    ProbeConfig config;
    std::array<bool, KEX_P_COUNT> enabled{};     // programs to load and attach
    std::array<std::string, KEX_P_COUNT> target; // symbol, "sys/name", or binary
    std::array<ProbeKind, KEX_P_COUNT> kind{};   // how each enabled probe attaches
    const PlanStep* find(std::string_view step) const;
};

// A step's mechanisms, its probes' kinds joined by " + " (duplicates once);
// kprobes are "tracefs kprobe" when tracefs_kprobes (kprobe_events).
std::string step_mechanism(const ProbePlan& plan, const PlanStep& step, bool tracefs_kprobes);

ProbePlan plan_probes(const Ksyms& ksyms, const KernelFacts& facts, const PlanOptions& opts);
// What plan_probes does last with PlanOptions::watch: the steps no leak
// verdict reads get PlanStep::off and their probes are not enabled.
void leave_off_for_watch(ProbePlan& plan);

// The kex tracepoints and the offsets bpf/kex_tp.h assumes (docs/architecture.md).
struct ExpectedField {
    const char* name;
    std::size_t offset;
    std::size_t size;
};
// "" if format matches, else a one-line description of the first mismatch.
std::string check_tp_layout(const TpFormat& format, const std::vector<ExpectedField>& expected);

// The kex_rig USDT probes and the phase each one marks (cookie).
struct UsdtProbe {
    const char* name;
    uint32_t phase; // enum kex_phase
};
const std::vector<UsdtProbe>& rig_usdt_probes();

} // namespace kextrace
