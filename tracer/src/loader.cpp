// loader.cpp - see loader.h.
#include "loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kextrace_bpf.skel.h"

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstddef>
#include <cstring>
#include <memory>
#include <sys/mman.h>
#include <system_error>
#include <thread>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

namespace kextrace {

namespace {

// Whole messages: a verifier log runs to megabytes, and its end says why a
// program was refused. Warnings are expected for optional probes: debug too.
int libbpf_print(enum libbpf_print_level, const char* format, va_list args) {
    if (!spdlog::should_log(spdlog::level::debug)) // not -v: a refused program's log unformatted
        return 0;
    va_list again;
    va_copy(again, args);
    char small[1024];
    int n = std::vsnprintf(small, sizeof(small), format, args);
    std::string big;
    std::string_view msg;
    if (n >= static_cast<int>(sizeof(small))) {
        big.resize(static_cast<std::size_t>(n) + 1);
        std::vsnprintf(big.data(), big.size(), format, again);
        msg = std::string_view(big.data(), static_cast<std::size_t>(n));
    } else {
        msg = std::string_view(small, n > 0 ? static_cast<std::size_t>(n) : 0);
    }
    va_end(again);
    while (!msg.empty() && msg.back() == '\n')
        msg.remove_suffix(1);
    spdlog::debug("libbpf: {}", msg);
    return n;
}

} // namespace

void route_libbpf_logs() {
    libbpf_set_print(libbpf_print);
}

void LinkDeleter::operator()(bpf_link* l) const {
    bpf_link__destroy(l);
}
void Loader::SkelDeleter::operator()(::kextrace_bpf* s) const {
    kextrace_bpf__destroy(s);
}

Result<std::unique_ptr<Loader>> Loader::open(const LoaderOptions& opts) {
    std::unique_ptr<Loader> l(new Loader(opts));
    ::kextrace_bpf* skel = kextrace_bpf__open();
    if (!skel)
        return Error{fmt::format("opening the BPF object: {}", errstr(errno))};
    l->skel_.reset(skel);
    return l;
}

Loader::~Loader() {
    abandon_draining();
    detach();
}

Status Loader::configure(const ProbePlan& plan) {
    auto* ro = skel_->rodata;
    const ProbeConfig& c = plan.config;
    ro->insert_pte_arg = c.insert_pte_arg;
    ro->insert_page_arg = c.insert_page_arg;
    ro->insert_addr_arg = c.insert_addr_arg;
    ro->driver_pages = opts_.driver_pages;
    ro->tracer_tgid = static_cast<uint32_t>(::getpid());
    ro->rmap_add_page_arg = c.rmap_add_page_arg;
    ro->rmap_remove_page_arg = c.rmap_remove_page_arg;
    ro->dirty_page_arg = c.dirty_page_arg;
    ro->set_pte_page_arg = c.set_pte_page_arg;
    ro->set_pte_addr_arg = c.set_pte_addr_arg;
    ro->unmap_mode = c.unmap_mode;
    ro->vmemmap_base_addr = c.vmemmap_base_addr;
    ro->fexit_probes = c.fexit_probes;
    std::copy(c.core_faults.begin(), c.core_faults.end(), ro->core_faults);
    ro->fault_all_pages = opts_.fault_all_pages;
    ro->capture_stacks = opts_.stacks;
    ro->stack_by_site = opts_.stack_by_site;
    ro->stack_site_check = opts_.stack_site_check;
    ro->rethook_trampoline = c.rethook_trampoline;
    ro->stack_site_cpus = static_cast<uint32_t>(std::max(libbpf_num_possible_cpus(), 1));
    ro->trace_all = opts_.trace_all;
    ro->wakeup_bytes = opts_.ringbuf_bytes / 4;

    if (int err = bpf_map__set_max_entries(skel_->maps.events, opts_.ringbuf_bytes))
        return Error{fmt::format("ring buffer size {}: {}", opts_.ringbuf_bytes, errstr(err))};
    if (int err = bpf_map__set_max_entries(skel_->maps.traced, opts_.max_traced))
        return Error{fmt::format("traced map size {}: {}", opts_.max_traced, errstr(err))};
    ro->watch_lives = opts_.watch;
    if (int err = bpf_map__set_max_entries(skel_->maps.pfns, opts_.max_pages))
        return Error{fmt::format("map size {}: {}", opts_.max_pages, errstr(err))};
    if (int err = bpf_map__set_max_entries(skel_->maps.driver_allocs, opts_.max_allocs))
        return Error{fmt::format("allocations map size {}: {}", opts_.max_allocs, errstr(err))};
    if (opts_.watch) {
        const uint32_t lives = watch_lives(opts_.max_pages);
        ro->lives_max = lives;
        for (bpf_map* m : {skel_->maps.lives, skel_->maps.free_lives})
            if (int err = bpf_map__set_max_entries(m, lives))
                return Error{fmt::format("page lives map size {}: {}", lives, errstr(err))};
    }

    for (uint32_t id = 0; id < KEX_P_COUNT; id++) {
        const ProbeSpec& spec = probe_spec(id);
        bpf_program* prog = bpf_object__find_program_by_name(skel_->obj, spec.prog);
        if (!prog)
            return Error{fmt::format("BPF program {} missing from the object", spec.prog)};
        results_[id].planned = plan.enabled[id];
        results_[id].target = plan.target[id];
        bool tramp = plan.enabled[id] && is_trampoline(plan.kind[id]);
        if (tramp && !spec.twin_prog)
            return Error{fmt::format("probe {} has no {} program", spec.short_name,
                                     probe_kind_name(plan.kind[id]))};
        bpf_program__set_autoload(prog, plan.enabled[id] && !tramp);
        if (!spec.twin_prog)
            continue;
        bpf_program* twin = bpf_object__find_program_by_name(skel_->obj, spec.twin_prog);
        if (!twin)
            return Error{fmt::format("BPF program {} missing from the object", spec.twin_prog)};
        bpf_program__set_autoload(twin, tramp);
        // the trampoline's function: BTF resolves it at load
        if (tramp)
            if (int err = bpf_program__set_attach_target(twin, 0, plan.target[id].c_str()))
                return Error{fmt::format("{} target {}: {}", probe_kind_name(plan.kind[id]),
                                         plan.target[id], errstr(err))};
    }
    // --follow's programs: loaded only when asked (follow_attach.cpp)
    bpf_program__set_autoload(skel_->progs.follow_multi, opts_.follow);
    bpf_program__set_autoload(skel_->progs.follow_kprobe, opts_.follow);
    return Ok{};
}

Status Loader::load() {
    if (int err = kextrace_bpf__load(skel_.get()))
        return Error{fmt::format("loading the BPF programs: {} (run with -v for the verifier log)",
                                 errstr(err))};
    return Ok{};
}

// A kprobe or kretprobe: through tracefs's kprobe_events (its misses are
// counted there) or libbpf's perf kprobe PMU. nullptr with errno set.
Result<bpf_link*> Loader::attach_kprobe(uint32_t id, bpf_program* prog, const std::string& target,
                                        bool ret) {
    if (opts_.kprobe_mode == KprobeMode::tracefs && opts_.tracefs) {
        std::string event = fmt::format("kextrace_{}_{}", ::getpid(), probe_spec(id).short_name);
        auto l = attach_tracefs_kprobe(prog, *opts_.tracefs, event, target, ret, kprobes_);
        if (l)
            results_[id].kprobe_event = event;
        return l;
    }
    LIBBPF_OPTS(bpf_kprobe_opts, kopts, .retprobe = ret);
    return bpf_program__attach_kprobe_opts(prog, target.c_str(), &kopts);
}

// The rig's USDT phase markers in binary: every one that attaches counts;
// none is an error, some missing a note.
Status Loader::attach_usdt(uint32_t id, bpf_program* prog, const std::string& binary) {
    std::vector<std::string> failed;
    for (const UsdtProbe& p : rig_usdt_probes()) {
        LIBBPF_OPTS(bpf_usdt_opts, uopts, .usdt_cookie = p.phase);
        bpf_link* l = bpf_program__attach_usdt(prog, -1, binary.c_str(), "kex_rig", p.name, &uopts);
        if (!l) {
            failed.push_back(fmt::format("{} ({})", p.name, errstr(errno)));
            continue;
        }
        links_.emplace_back(l);
        results_[id].usdt_attached++;
    }
    if (results_[id].usdt_attached == 0)
        return Error{fmt::format("no kex_rig probe in {}: {}", binary,
                                 failed.empty() ? "" : failed.front())};
    if (!failed.empty())
        results_[id].error = fmt::format("not attached: {}", fmt::join(failed, " "));
    return Ok{};
}

Status Loader::attach_one(uint32_t id, const ProbePlan& plan) {
    const ProbeSpec& spec = probe_spec(id);
    const ProbeKind kind = plan.kind[id];
    bpf_program* prog = bpf_object__find_program_by_name(skel_->obj, probe_program(spec, kind));
    const std::string& target = plan.target[id];
    bpf_link* link = nullptr;

    switch (kind) {
    case ProbeKind::kprobe:
    case ProbeKind::kretprobe: {
        auto l = attach_kprobe(id, prog, target, kind == ProbeKind::kretprobe);
        if (!l)
            return l.error();
        link = *l;
        break;
    }
    case ProbeKind::tracepoint: {
        std::string sys = target.substr(0, target.find('/'));
        std::string name = target.substr(target.find('/') + 1);
        link = bpf_program__attach_tracepoint(prog, sys.c_str(), name.c_str());
        break;
    }
    case ProbeKind::tp_btf:
    case ProbeKind::fexit:
    case ProbeKind::fentry:
        link = bpf_program__attach(prog);
        break;
    case ProbeKind::usdt:
        return attach_usdt(id, prog, target);
    }
    if (!link)
        return Error{
            fmt::format("attach {} to {}: {}", probe_program(spec, kind), target, errstr(errno))};
    links_.emplace_back(link);
    return Ok{};
}

void Loader::attach(const ProbePlan& plan) {
    if (opts_.kprobe_mode == KprobeMode::tracefs && opts_.tracefs)
        remove_stale_kprobes(*opts_.tracefs);
    for (uint32_t id = 0; id < KEX_P_COUNT; id++) {
        if (!plan.enabled[id])
            continue;
        Status st = attach_one(id, plan);
        link_probes_.resize(links_.size(), id);
        results_[id].attached = st.ok();
        if (!st) {
            results_[id].error = st.error().message;
            spdlog::debug("probe {}: {}", probe_spec(id).short_name, st.error().message);
        }
    }
    // Every page life starts with every step observable (bpf/kextrace.bpf.h).
    if (skel_ && skel_->bss)
        skel_->bss->tracking_armed = true;
}

Status Loader::trace_tgid(uint32_t tgid) {
    uint64_t any_instance = 0; // seeded: removed at the free of whichever leader has tgid
    if (bpf_map__update_elem(skel_->maps.traced, &tgid, sizeof(tgid), &any_instance,
                             sizeof(any_instance), BPF_ANY))
        return Error{fmt::format("adding tgid {} to the traced map: {}", tgid, errstr(errno))};
    return Ok{};
}

Status Loader::open_ring_buffer(SampleFn on_sample) {
    auto ring = RingDrain::open(bpf_map__fd(skel_->maps.events), std::move(on_sample));
    if (!ring)
        return ring.error();
    ring_ = std::move(*ring);
    return Ok{};
}

Status Loader::start_draining(std::chrono::milliseconds interval, std::size_t queue_limit_bytes) {
    if (!ring_)
        return Error{"no ring buffer to drain"};
    return ring_->start(interval, queue_limit_bytes);
}

void Loader::finish_draining() {
    if (ring_)
        ring_->finish();
}

void Loader::abandon_draining() noexcept {
    if (ring_)
        ring_->abandon();
}

int Loader::drain(int poll_ms) {
    return ring_ ? ring_->drain(poll_ms) : 0;
}

RecordQueue::Stats Loader::queue_stats() const {
    return ring_ ? ring_->queue_stats() : RecordQueue::Stats{};
}

RingDrain::ThreadInfo Loader::drain_thread() const {
    return ring_ ? ring_->thread_info() : RingDrain::ThreadInfo{};
}

namespace {
// an ARRAY map of N u64 counters, one lookup per slot (a slot that cannot be
// read stays 0)
template <std::size_t N> std::array<uint64_t, N> read_counters(const bpf_map* m) {
    std::array<uint64_t, N> out{};
    for (uint32_t i = 0; i < N; i++) {
        uint64_t v = 0;
        if (bpf_map__lookup_elem(m, &i, sizeof(i), &v, sizeof(v), 0) == 0)
            out[i] = v;
    }
    return out;
}
} // namespace

std::array<uint64_t, KEX_TRACK_SLOTS> Loader::read_tracking() const {
    return read_counters<KEX_TRACK_SLOTS>(skel_->maps.tracking);
}

uint32_t Loader::traced_entries() const {
    uint32_t key = 0, next = 0, n = 0;
    const uint32_t* prev = nullptr;
    int fd = bpf_map__fd(skel_->maps.traced);
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        n++;
        key = next;
        prev = &key;
    }
    return n;
}

Result<std::size_t> Loader::read_open_lives(const SampleFn& on_sample) const {
    // The slots handed out so far, mapped read-only (BPF_F_MMAPABLE): a
    // slot marked KEX_EV_LIFE is a page's life still held (bpf/watch.bpf.h).
    const uint64_t max = bpf_map__max_entries(skel_->maps.lives);
    const uint64_t used = skel_->bss ? std::min<uint64_t>(skel_->bss->lives_used, max) : max;
    const std::size_t bytes = max * sizeof(kex_life);
    void* mem = ::mmap(nullptr, bytes, PROT_READ, MAP_SHARED, bpf_map__fd(skel_->maps.lives), 0);
    if (mem == MAP_FAILED)
        return Error{fmt::format("reading the page lives: {}", errstr(errno))};
    // unmapped however this returns (on_sample may throw)
    auto unmap = [bytes](void* p) { ::munmap(p, bytes); };
    const std::unique_ptr<void, decltype(unmap)> mapping(mem, unmap);
    const auto* slots = static_cast<const kex_life*>(mem);
    std::size_t n = 0;
    kex_life life{};
    for (uint64_t i = 0; i < used; ++i) {
        if (slots[i].head.type != KEX_EV_LIFE)
            continue;
        const uint64_t kept = slots[i].head.arg0;
        const uint64_t steps = std::min<uint64_t>(kept, KEX_LIFE_STEPS);
        life.head = kex_event{};
        life.head.type = KEX_EV_LIFE;
        life.head.pfn = slots[i].head.pfn;
        life.head.ret = static_cast<int64_t>(kept);
        life.head.arg0 = steps;
        life.head.arg1 = KEX_LIFE_OPEN;
        std::memcpy(life.steps, slots[i].steps, steps * sizeof(kex_event));
        on_sample(std::span(reinterpret_cast<const std::byte*>(&life), KEX_LIFE_SIZE(steps)));
        n++;
    }
    return n;
}

Result<ProgramCounters> Loader::read_program_counters() const {
    const int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0)
        return Error{
            fmt::format("reading the BPF counters: the number of CPUs: {}", errstr(-ncpu))};
    std::vector<kex_counters> per_cpu(ncpu);
    const uint32_t zero = 0;
    if (bpf_map__lookup_elem(skel_->maps.counters, &zero, sizeof(zero), per_cpu.data(),
                             per_cpu.size() * sizeof(kex_counters), 0))
        return Error{fmt::format("reading the BPF counters: {}", errstr(errno))};
    ProgramCounters out;
    for (const kex_counters& c : per_cpu) {
        for (uint32_t i = 0; i < KEX_LOSS_SLOTS; i++) {
            out.produced[i] += c.produced[i];
            out.lost[i] += c.lost[i];
        }
        for (uint32_t i = 0; i < KEX_P_COUNT; i++) {
            out.probes[i].hits += c.probe[i].hits;
            out.probes[i].matched += c.probe[i].matched;
            out.probes[i].emitted += c.probe[i].emitted;
        }
    }
    return out;
}

void Loader::read_kprobe_missed(MissedCounts& into) const {
    if (opts_.kprobe_mode != KprobeMode::tracefs || !opts_.tracefs)
        return;
    auto profile = opts_.tracefs->kprobe_profile();
    for (uint32_t i = 0; i < KEX_P_COUNT; i++) {
        if (results_[i].kprobe_event.empty())
            continue;
        if (auto it = profile.find(results_[i].kprobe_event); it != profile.end())
            into[i] = it->second.missed;
    }
}

void Loader::read_trampoline_missed(MissedCounts& into) const {
    for (uint32_t i = 0; i < KEX_P_COUNT; i++) {
        const ProbeSpec& spec = probe_spec(i);
        if (!results_[i].attached || !spec.twin_prog)
            continue;
        bpf_program* prog = bpf_object__find_program_by_name(skel_->obj, spec.twin_prog);
        if (!prog || bpf_program__fd(prog) < 0)
            continue; // the probe ran as a kprobe
        bpf_prog_info info{};
        uint32_t len = sizeof(info);
        if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) == 0)
            into[i] = info.recursion_misses;
    }
}

void release_links(std::vector<LinkPtr>& links, const std::function<bool(std::size_t)>& which) {
    constexpr std::size_t kThreads = 16;
    std::vector<LinkPtr*> todo;
    for (std::size_t i = 0; i < links.size(); ++i)
        if (links[i] && which(i))
            todo.push_back(&links[i]);
    const std::size_t workers = std::min(kThreads, todo.size());
    if (workers > 1) {
        try {
            std::vector<std::jthread> pool;
            for (std::size_t w = 0; w < workers; w++)
                pool.emplace_back([&todo, w, workers] {
                    for (std::size_t i = w; i < todo.size(); i += workers)
                        todo[i]->reset();
                });
        } catch (const std::system_error& e) { // no thread: the rest one by one, below
            spdlog::debug("detach threads: {}", e.what());
        }
    }
    for (LinkPtr* l : todo)
        l->reset();
}

void Loader::detach(const std::function<void()>& before_frees) {
    // Each detach waits for an RCU grace period: under load in the TCG guest
    // they took seconds together (the last event of each probe says when it
    // went). In probe id order, kmem:mm_page_free went before
    // kex:kex_page_free, and every page kex freed in between looked leaked.
    if (skel_ && skel_->bss)
        skel_->bss->tracking_armed = false; // no new page life from here on
    link_probes_.resize(links_.size(), KEX_P_COUNT);
    // USDT links one by one: libbpf's USDT manager (spec ids) is not thread-safe
    auto detach_if = [this](auto&& pred) {
        for (std::size_t i = 0; i < links_.size(); ++i)
            if (links_[i] && link_probes_[i] == KEX_P_USDT && pred(link_probes_[i]))
                links_[i].reset();
        release_links(links_, [&](std::size_t i) { return pred(link_probes_[i]); });
    };
    // No new page lives (nor faults on pages whose life the trace missed).
    detach_if([](uint32_t id) {
        return id == KEX_P_KEX_PAGE_ALLOC || id == KEX_P_MM_PAGE_ALLOC || id == KEX_P_KEX_FAULT ||
               id == KEX_P_KEX_MMAP || id == KEX_P_KEX_MMAP_MODE;
    });
    detach_follow();
    detach_if(
        [](uint32_t id) { return id != KEX_P_MM_PAGE_FREE && id != KEX_P_MM_PAGE_FREE_BATCHED; });
    kprobes_.clear(); // after their links: a tracefs kprobe in use cannot be removed
    if (before_frees)
        before_frees();
    detach_if([](uint32_t) { return true; });
    links_.clear();
    link_probes_.clear();
}

} // namespace kextrace
