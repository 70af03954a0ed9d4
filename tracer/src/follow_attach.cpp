// follow_attach.cpp - Loader::attach_follow (loader.h): --follow's entry
// probes. kprobe.multi (fprobe) attaches every function in one link; a
// kernel without fprobe (CONFIG_FPROBE off, 6.1's Debian build) refuses it
// with EOPNOTSUPP and gets a kprobe per function (perf PMU), each an fd pair.
// Links are owned by the Loader (follow_links_), so nothing stays attached
// on any exit path.
#include "loader.h"
#include "session.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kextrace_bpf.skel.h"

#include <algorithm>
#include <cerrno>
#include <sys/resource.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace kextrace {

namespace {

__u64 follow_cookie(uint32_t func, const FollowFunc& fn) {
    uint32_t masks[4] = {}; // by FollowArgKind: page, folio, batch, array
    for (const auto& a : fn.args)
        masks[static_cast<unsigned>(a.kind)] |= 1u << (a.reg - 1);
    return KEX_FOLLOW_COOKIE(func, masks[0], masks[1], masks[2], masks[3]);
}

// Single kprobes take a perf event and a link fd each: raise the soft limit
// on open files to the hard one (root's is far above the default 1024).
void raise_nofile(std::size_t want) {
    rlimit r{};
    if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < want + 256 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &r) != 0)
            spdlog::debug("follow: RLIMIT_NOFILE: {}", errstr(errno));
    }
}

} // namespace

// One kprobe.multi link for syms[begin, end); a refused set is split in two
// until the function that cannot be attached is alone (and listed as failed).
void Loader::attach_follow_multi(std::vector<const char*>& syms, const std::vector<__u64>& cookies,
                                 std::size_t begin, std::size_t end, FollowAttach& out) {
    LIBBPF_OPTS(bpf_kprobe_multi_opts, mopts, .syms = syms.data() + begin,
                .cookies = cookies.data() + begin, .cnt = end - begin);
    bpf_link* l = bpf_program__attach_kprobe_multi_opts(skel_->progs.follow_multi, nullptr, &mopts);
    if (l) {
        follow_links_.emplace_back(l);
        for (std::size_t i = begin; i < end; i++)
            out.attached[KEX_FOLLOW_FUNC(cookies[i])] = true;
        out.attached_count += end - begin;
        return;
    }
    int err = errno;
    if (end - begin == 1) {
        out.failed.emplace_back(syms[begin], errstr(err));
        return;
    }
    std::size_t mid = begin + (end - begin) / 2;
    attach_follow_multi(syms, cookies, begin, mid, out);
    attach_follow_multi(syms, cookies, mid, end, out);
}

// A kprobe per function (perf PMU, or tracefs where the kernel has no PMU).
void Loader::attach_follow_singles(std::vector<const char*>& syms,
                                   const std::vector<__u64>& cookies, FollowAttach& out) {
    raise_nofile(2 * syms.size());
    for (std::size_t i = 0; i < syms.size(); i++) {
        if (stop_requested()) { // Ctrl-C: the rest is not attached, the run ends
            out.interrupted = true;
            return;
        }
        LIBBPF_OPTS(bpf_kprobe_opts, kopts, .bpf_cookie = cookies[i]);
        bpf_link* l = bpf_program__attach_kprobe_opts(skel_->progs.follow_kprobe, syms[i], &kopts);
        if (!l) {
            out.failed.emplace_back(syms[i], errstr(errno));
            continue;
        }
        follow_links_.emplace_back(l);
        out.attached[i] = true;
        out.attached_count++;
    }
}

Result<FollowAttach> Loader::attach_follow(const FollowSet& set) {
    FollowAttach out;
    std::vector<const char*> syms;
    std::vector<__u64> cookies; // libbpf's type: unsigned long long
    for (uint32_t i = 0; i < set.chosen.size(); i++) {
        out.functions.push_back(set.chosen[i].name);
        cookies.push_back(follow_cookie(i, set.chosen[i]));
    }
    for (const auto& name : out.functions) // once the vector no longer grows
        syms.push_back(name.c_str());
    out.attached.assign(syms.size(), false);
    if (syms.empty())
        return Error{"--follow: no function to follow (see --follow ... --plan)"};

    auto t0 = std::chrono::steady_clock::now();
    // the feature check: one function alone; EOPNOTSUPP is a kernel without
    // fprobe, another error that function's own
    LIBBPF_OPTS(bpf_kprobe_multi_opts, probe, .syms = syms.data(), .cookies = cookies.data(),
                .cnt = 1);
    bpf_link* first =
        bpf_program__attach_kprobe_multi_opts(skel_->progs.follow_multi, nullptr, &probe);
    int err = first ? 0 : errno;
    if (first || err != EOPNOTSUPP) {
        out.mechanism = "kprobe.multi";
        if (first) {
            follow_links_.emplace_back(first);
            out.attached[0] = true;
            out.attached_count = 1;
        } else {
            out.failed.emplace_back(syms[0], errstr(err));
        }
        if (syms.size() > 1)
            attach_follow_multi(syms, cookies, 1, syms.size(), out);
    }
    if (out.attached_count == 0) { // no kprobe.multi here, whatever the kernel said
        out.mechanism = "kprobe";
        out.why_not_multi = fmt::format("kprobe.multi refused: {}{}", errstr(err),
                                        err == EOPNOTSUPP ? " (no fprobe: CONFIG_FPROBE off)" : "");
        out.failed.clear();
        attach_follow_singles(syms, cookies, out);
    }
    out.took = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - t0);
    out.links = follow_links_.size();
    if (out.attached_count == 0 && !out.interrupted)
        return Error{fmt::format("--follow: no function could be attached ({}; {}: {})",
                                 out.why_not_multi.empty() ? out.mechanism : out.why_not_multi,
                                 out.failed.empty() ? "" : out.failed.front().first,
                                 out.failed.empty() ? "" : out.failed.front().second)};
    return out;
}

// A kprobe.multi link is one release; single kprobes, many (release_links).
void Loader::detach_follow() {
    if (follow_links_.empty())
        return;
    auto t0 = std::chrono::steady_clock::now();
    release_links(follow_links_, [](std::size_t) { return true; });
    follow_links_.clear();
    follow_detach_ = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - t0);
}

FollowCounts Loader::read_follow_stats() const {
    FollowCounts sum;
    sum.detach = follow_detach_;
    int ncpu = libbpf_num_possible_cpus();
    if (!skel_ || ncpu <= 0 || bpf_map__fd(skel_->maps.follow_stats) < 0)
        return sum;
    for (bpf_program* prog : {skel_->progs.follow_multi, skel_->progs.follow_kprobe}) {
        bpf_prog_info info{};
        uint32_t len = sizeof(info);
        if (bpf_program__fd(prog) >= 0 &&
            bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) == 0)
            sum.missed += info.recursion_misses;
    }
    std::vector<kex_follow_stats> per(ncpu);
    uint32_t key = 0;
    if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.follow_stats), &key, per.data()) != 0)
        return sum;
    for (const auto& p : per) {
        sum.nested += p.nested;
        sum.folio_partial += p.folio_partial;
        sum.array_partial += p.array_partial;
    }
    return sum;
}

} // namespace kextrace
