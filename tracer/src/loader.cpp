// loader.cpp - see loader.h.
#include "loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kextrace_bpf.skel.h"

#include <cerrno>
#include <csignal>
#include <cstdarg>
#include <cstring>
#include <linux/perf_event.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace kextrace {

namespace {

int libbpf_print(enum libbpf_print_level level, const char* format, va_list args) {
    char buf[1024];
    int n = std::vsnprintf(buf, sizeof(buf), format, args);
    std::string_view msg(buf, n > 0 ? std::min<std::size_t>(n, sizeof(buf) - 1) : 0);
    while (!msg.empty() && msg.back() == '\n')
        msg.remove_suffix(1);
    if (level == LIBBPF_WARN)
        spdlog::debug("libbpf: {}", msg); // warnings are expected for optional probes
    else
        spdlog::debug("libbpf: {}", msg);
    return n;
}

std::string errstr(int err) {
    return std::strerror(err < 0 ? -err : err);
}

int perf_event_open_tracepoint(int id) {
    perf_event_attr attr{};
    attr.size = sizeof(attr);
    attr.type = PERF_TYPE_TRACEPOINT;
    attr.config = id;
    attr.sample_period = 1;
    attr.wakeup_events = 1;
    return static_cast<int>(::syscall(__NR_perf_event_open, &attr, -1 /* pid */, 0 /* cpu */, -1,
                                      PERF_FLAG_FD_CLOEXEC));
}

bool pid_alive(int pid) {
    return ::kill(pid, 0) == 0 || errno == EPERM;
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
void Loader::RingBufferDeleter::operator()(ring_buffer* rb) const {
    ring_buffer__free(rb);
}

// --- tracefs kprobes ---------------------------------------------------------

Result<std::unique_ptr<TracefsKprobe>> TracefsKprobe::create(const Tracefs& tfs, std::string event,
                                                             const std::string& symbol,
                                                             bool retprobe) {
    // "r64:" raises the kretprobe instance limit above the default 2*ncpus.
    std::string line = fmt::format("{}:{}/{} {}", retprobe ? "r64" : "p", kGroup, event, symbol);
    if (auto st = tfs.write_kprobe_events(line); !st)
        return st.error();
    auto id = tfs.event_id(kGroup, event);
    if (!id) {
        (void)tfs.write_kprobe_events(fmt::format("-:{}/{}", kGroup, event));
        return Error{fmt::format("no id for {}/{} after creating it", kGroup, event)};
    }
    return std::unique_ptr<TracefsKprobe>(new TracefsKprobe(tfs, std::move(event), *id));
}

TracefsKprobe::~TracefsKprobe() {
    if (auto st = tfs_.write_kprobe_events(fmt::format("-:{}/{}", kGroup, event_)); !st)
        spdlog::warn("removing kprobe {}: {}", event_, st.error().message);
}

// Event names are kextrace_<pid>_<probe>: remove those whose pid is gone.
void remove_stale_kprobes(const Tracefs& tfs) {
    auto text = read_text_file(tfs.root() + "/kprobe_events");
    if (!text)
        return;
    std::string prefix = fmt::format("{}/kextrace_", TracefsKprobe::kGroup);
    std::size_t pos = 0;
    while ((pos = text->find(prefix, pos)) != std::string::npos) {
        std::size_t start = pos + std::strlen(TracefsKprobe::kGroup) + 1;
        std::size_t end = text->find_first_of(" \n", start);
        std::string event = text->substr(start, end - start);
        pos = end;
        int pid = std::atoi(event.c_str() + std::strlen("kextrace_"));
        if (pid > 0 && !pid_alive(pid)) {
            spdlog::debug("removing stale kprobe {}", event);
            (void)tfs.write_kprobe_events(fmt::format("-:{}/{}", TracefsKprobe::kGroup, event));
        }
    }
}

// --- the loader -----------------------------------------------------------------

Result<std::unique_ptr<Loader>> Loader::open(const LoaderOptions& opts) {
    std::unique_ptr<Loader> l(new Loader(opts));
    ::kextrace_bpf* skel = kextrace_bpf__open();
    if (!skel)
        return Error{fmt::format("opening the BPF object: {}", errstr(errno))};
    l->skel_.reset(skel);
    return l;
}

Loader::~Loader() {
    detach();
}

Status Loader::configure(const ProbePlan& plan) {
    auto* ro = skel_->rodata;
    const ProbeConfig& c = plan.config;
    ro->insert_pte_arg = c.insert_pte_arg;
    ro->insert_page_arg = c.insert_page_arg;
    ro->rmap_add_page_arg = c.rmap_add_page_arg;
    ro->rmap_remove_page_arg = c.rmap_remove_page_arg;
    ro->dirty_page_arg = c.dirty_page_arg;
    ro->set_pte_page_arg = c.set_pte_page_arg;
    ro->set_pte_addr_arg = c.set_pte_addr_arg;
    ro->unmap_mode = c.unmap_mode;
    ro->vmemmap_base_addr = c.vmemmap_base_addr;
    ro->fault_all_pages = opts_.fault_all_pages;
    ro->capture_stacks = opts_.stacks;
    ro->trace_all = opts_.trace_all;
    ro->wakeup_bytes = opts_.ringbuf_bytes / 4;

    if (int err = bpf_map__set_max_entries(skel_->maps.events, opts_.ringbuf_bytes))
        return Error{fmt::format("ring buffer size {}: {}", opts_.ringbuf_bytes, errstr(err))};
    for (bpf_map* m : {skel_->maps.pages, skel_->maps.pfns})
        if (int err = bpf_map__set_max_entries(m, opts_.max_pages))
            return Error{fmt::format("map size {}: {}", opts_.max_pages, errstr(err))};

    for (uint32_t id = 0; id < KEX_P_COUNT; id++) {
        const ProbeSpec& spec = probe_spec(id);
        bpf_program* prog = bpf_object__find_program_by_name(skel_->obj, spec.prog);
        if (!prog)
            return Error{fmt::format("BPF program {} missing from the object", spec.prog)};
        results_[id].planned = plan.enabled[id];
        results_[id].target = plan.target[id];
        bpf_program__set_autoload(prog, plan.enabled[id]);
    }
    return Ok{};
}

Status Loader::load() {
    if (int err = kextrace_bpf__load(skel_.get()))
        return Error{fmt::format("loading the BPF programs: {} (run with -v for the verifier log)",
                                 errstr(err))};
    return Ok{};
}

Status Loader::attach_one(uint32_t id, const ProbePlan& plan) {
    const ProbeSpec& spec = probe_spec(id);
    bpf_program* prog = bpf_object__find_program_by_name(skel_->obj, spec.prog);
    const std::string& target = plan.target[id];
    bpf_link* link = nullptr;

    switch (spec.kind) {
    case ProbeKind::kprobe:
    case ProbeKind::kretprobe: {
        bool ret = spec.kind == ProbeKind::kretprobe;
        if (opts_.kprobe_mode == KprobeMode::tracefs && opts_.tracefs) {
            std::string event = fmt::format("kextrace_{}_{}", ::getpid(), spec.short_name);
            auto kp = TracefsKprobe::create(*opts_.tracefs, event, target, ret);
            if (!kp)
                return kp.error();
            int pfd = perf_event_open_tracepoint((*kp)->id());
            if (pfd < 0)
                return Error{fmt::format("perf_event_open for {}: {}", event, errstr(errno))};
            link = bpf_program__attach_perf_event(prog, pfd);
            if (!link) {
                int err = errno;
                ::close(pfd);
                kprobes_.push_back(std::move(*kp));
                return Error{fmt::format("attach to {}: {}", event, errstr(err))};
            }
            results_[id].kprobe_event = event;
            kprobes_.push_back(std::move(*kp));
        } else {
            LIBBPF_OPTS(bpf_kprobe_opts, kopts, .retprobe = ret);
            link = bpf_program__attach_kprobe_opts(prog, target.c_str(), &kopts);
        }
        break;
    }
    case ProbeKind::tracepoint: {
        std::string sys = target.substr(0, target.find('/'));
        std::string name = target.substr(target.find('/') + 1);
        link = bpf_program__attach_tracepoint(prog, sys.c_str(), name.c_str());
        break;
    }
    case ProbeKind::tp_btf:
        link = bpf_program__attach(prog);
        break;
    case ProbeKind::usdt: {
        std::vector<std::string> failed;
        for (const UsdtProbe& p : rig_usdt_probes()) {
            LIBBPF_OPTS(bpf_usdt_opts, uopts, .usdt_cookie = p.phase);
            bpf_link* l =
                bpf_program__attach_usdt(prog, -1, target.c_str(), "kex_rig", p.name, &uopts);
            if (!l) {
                failed.push_back(fmt::format("{} ({})", p.name, errstr(errno)));
                continue;
            }
            links_.emplace_back(l);
            results_[id].usdt_attached++;
        }
        if (results_[id].usdt_attached == 0)
            return Error{fmt::format("no kex_rig probe in {}: {}", target,
                                     failed.empty() ? "" : failed.front())};
        if (!failed.empty()) {
            std::string msg = "not attached:";
            for (const auto& f : failed)
                msg += " " + f;
            results_[id].error = msg;
        }
        return Ok{};
    }
    }
    if (!link)
        return Error{fmt::format("attach {} to {}: {}", spec.prog, target, errstr(errno))};
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
        results_[id].attached = st.ok();
        if (!st) {
            results_[id].error = st.error().message;
            spdlog::debug("probe {}: {}", probe_spec(id).short_name, st.error().message);
        }
    }
}

Status Loader::trace_tgid(uint32_t tgid) {
    uint32_t one = 1;
    if (bpf_map__update_elem(skel_->maps.traced, &tgid, sizeof(tgid), &one, sizeof(one), BPF_ANY))
        return Error{fmt::format("adding tgid {} to the traced map: {}", tgid, errstr(errno))};
    return Ok{};
}

Status Loader::open_ring_buffer(SampleFn on_sample) {
    on_sample_ = std::move(on_sample);
    auto cb = [](void* ctx, void* data, size_t size) -> int {
        auto* self = static_cast<Loader*>(ctx);
        return self->on_sample_(
            std::span<const std::byte>(static_cast<const std::byte*>(data), size));
    };
    ring_buffer* rb = ring_buffer__new(bpf_map__fd(skel_->maps.events), cb, this, nullptr);
    if (!rb)
        return Error{fmt::format("ring buffer: {}", errstr(errno))};
    rb_.reset(rb);
    return Ok{};
}

int Loader::drain(int poll_ms) {
    if (!rb_)
        return 0;
    int n = 0;
    if (poll_ms > 0) {
        int r = ring_buffer__poll(rb_.get(), poll_ms);
        if (r > 0)
            n += r;
    }
    int r = ring_buffer__consume(rb_.get());
    if (r > 0)
        n += r;
    return n;
}

std::array<uint64_t, KEX_LOSS_SLOTS> Loader::read_losses() const {
    std::array<uint64_t, KEX_LOSS_SLOTS> out{};
    for (uint32_t i = 0; i < KEX_LOSS_SLOTS; i++) {
        uint64_t v = 0;
        if (bpf_map__lookup_elem(skel_->maps.losses, &i, sizeof(i), &v, sizeof(v), 0) == 0)
            out[i] = v;
    }
    return out;
}

std::array<uint64_t, KEX_LOSS_SLOTS> Loader::read_produced() const {
    std::array<uint64_t, KEX_LOSS_SLOTS> out{};
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0)
        return out;
    std::vector<uint64_t> per_cpu(ncpu);
    for (uint32_t i = 0; i < KEX_LOSS_SLOTS; i++) {
        if (bpf_map__lookup_elem(skel_->maps.produced, &i, sizeof(i), per_cpu.data(),
                                 per_cpu.size() * sizeof(uint64_t), 0))
            continue;
        for (uint64_t v : per_cpu)
            out[i] += v;
    }
    return out;
}

std::array<kex_probe_stats, KEX_P_COUNT> Loader::read_probe_stats() const {
    std::array<kex_probe_stats, KEX_P_COUNT> out{};
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0)
        return out;
    std::vector<kex_probe_stats> per_cpu(ncpu);
    for (uint32_t i = 0; i < KEX_P_COUNT; i++) {
        if (bpf_map__lookup_elem(skel_->maps.probe_stats, &i, sizeof(i), per_cpu.data(),
                                 per_cpu.size() * sizeof(kex_probe_stats), 0))
            continue;
        for (const auto& s : per_cpu) {
            out[i].hits += s.hits;
            out[i].matched += s.matched;
            out[i].emitted += s.emitted;
        }
    }
    return out;
}

std::optional<std::array<uint64_t, KEX_P_COUNT>> Loader::read_kprobe_missed() const {
    if (opts_.kprobe_mode != KprobeMode::tracefs || !opts_.tracefs)
        return std::nullopt;
    auto profile = opts_.tracefs->kprobe_profile();
    std::array<uint64_t, KEX_P_COUNT> out{};
    for (uint32_t i = 0; i < KEX_P_COUNT; i++) {
        if (results_[i].kprobe_event.empty())
            continue;
        if (auto it = profile.find(results_[i].kprobe_event); it != profile.end())
            out[i] = it->second.missed;
    }
    return out;
}

void Loader::detach() {
    links_.clear(); // first: a tracefs kprobe in use cannot be removed
    kprobes_.clear();
}

} // namespace kextrace
