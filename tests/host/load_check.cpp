// load_check - loads kextrace's BPF object on this machine with EVERY program
// enabled, once per munmap reading (enum kex_unmap_mode), attaching nothing:
// CO-RE relocation against this kernel's BTF and the verifier must accept
// each program, including the kprobe ones this kernel may not be able to
// attach (no kprobes) and the kex ones it has no tracepoints for (no kex).
// Then the plan for this kernel alone, the way kextrace loads it, and every
// program again in each mode the programs branch on (--watch, --stacks).
//
// Prints one line per load; exit 0 if every load succeeded, 1 otherwise,
// 77 (ctest: skipped) without root or BTF.
#include "environment.h"
#include "ksyms.h"
#include "loader.h"
#include "probe_plan.h"

#include <cstdio>
#include <unistd.h>

#include <spdlog/spdlog.h>

using namespace kextrace;

namespace {

bool load(const char* what, const ProbePlan& plan, LoaderOptions lo = {}) {
    lo.ringbuf_bytes = 1 << 20;
    lo.max_pages = 1024;
    auto l = Loader::open(lo);
    if (!l) {
        std::printf("FAIL %s: %s\n", what, l.error().message.c_str());
        return false;
    }
    if (auto st = (*l)->configure(plan); !st) {
        std::printf("FAIL %s: %s\n", what, st.error().message.c_str());
        return false;
    }
    if (auto st = (*l)->load(); !st) {
        std::printf("FAIL %s: %s\n", what, st.error().message.c_str());
        return false;
    }
    unsigned n = 0;
    for (bool e : plan.enabled)
        n += e;
    std::printf("ok   %s: %u programs loaded\n", what, n);
    return true;
}

} // namespace

int main(int argc, char** argv) {
    if (argc > 1 && std::string(argv[1]) == "-v")
        spdlog::set_level(spdlog::level::debug);
    route_libbpf_logs();
    if (!check_privileges() || !check_btf()) {
        std::printf("skipped: needs root and /sys/kernel/btf/vmlinux\n");
        return 77;
    }
    std::optional<Tracefs> tracefs = find_or_mount_tracefs();
    KernelFacts facts = probe_kernel(tracefs);
    auto ks = Ksyms::load("/proc/kallsyms");
    if (!ks) {
        std::printf("FAIL kallsyms: %s\n", ks.error().message.c_str());
        return 1;
    }
    PlanOptions po;
    ProbePlan planned = plan_probes(*ks, facts, po);
    std::printf("kernel %s, kprobes %s, modules %s\n", facts.release.c_str(),
                facts.kprobes ? "yes" : "no", facts.modules ? "yes" : "no");

    bool ok = load("the plan for this kernel", planned);
    const std::pair<uint8_t, const char*> modes[] = {
        {KEX_UNMAP_REGION_61, "every program, munmap via unmap_region (6.1 layout)"},
        {KEX_UNMAP_VMS, "every program, munmap via struct vma_munmap_struct (6.11+)"},
        {KEX_UNMAP_VMAS, "every program, munmap via unmap_vmas"},
    };
    for (auto [mode, what] : modes) {
        ProbePlan all = planned;
        all.enabled.fill(true);
        all.config.unmap_mode = mode;
        // vma_munmap_struct exists since 6.11 only: its branch cannot relocate before
        if (mode == KEX_UNMAP_VMS && !ks->find("vms_complete_munmap_vmas")) {
            std::printf("skip %s: no vms_complete_munmap_vmas on this kernel\n", what);
            continue;
        }
        ok = load(what, all) && ok;
    }
    // The run's modes the programs branch on: read-only data the verifier
    // takes as constants, so each mode has it walk other paths (--follow
    // --watch once went past its 1,000,000 instructions on 7.2), --follow's
    // programs with them. The loads above are --stacks all without --watch.
    struct Variant {
        const char* what;
        bool watch, stacks, by_site;
    };
    const Variant variants[] = {
        {"every program and --follow's, --stacks none", false, false, false},
        {"every program and --follow's, --stacks sites (the default)", false, true, true},
        {"every program and --follow's, --watch --stacks none", true, false, false},
        {"every program and --follow's, --watch --stacks all", true, true, false},
        {"every program and --follow's, --watch --stacks sites", true, true, true},
    };
    for (const Variant& v : variants) {
        ProbePlan all = planned;
        all.enabled.fill(true);
        LoaderOptions lo;
        lo.watch = v.watch;
        lo.stacks = v.stacks;
        lo.stack_by_site = v.by_site;
        lo.follow = true; // --follow's two programs, loaded only for it
        ok = load(v.what, all, lo) && ok;
    }
    return ok ? 0 : 1;
}
