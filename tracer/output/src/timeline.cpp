// The timeline's builder (docs/timeline.md): the Report's tracks and events,
// sent to a Sink that writes them as Trace Event Format JSON
// (timeline_json.cpp) or Perfetto protobuf (perfetto.cpp); the public
// writers of both formats (kextrace/timeline.h). Events are
// collected per track, sorted (ts, longest first), checked for nesting, then
// sent on; only one track's events are held at a time.
// Its building blocks (events, args, the sink, step names) are in
// timeline_parts.h.
#include <kextrace/follow.h>
#include <kextrace/owner.h>
#include <kextrace/status_json.h>
#include <kextrace/timeline.h>

#include "format.h"
#include "timeline_parts.h"

#include <algorithm>
#include <charconv>
#include <memory>
#include <sstream>
#include <string_view>
#include <unordered_map>

namespace kextrace {

using nlohmann::json;

namespace {

using namespace detail::timeline;

class Builder {
  public:
    Builder(const Report& r, const RunInfo& run, const Symbolizer& sym, Sink& out,
            const TimelineOptions& opts)
        : r_(r), run_(run), sym_(sym), opts_(opts), out_(out), names_(run) {}

    TimelineStats run() {
        out_.begin(metadata());
        metadata_events();
        rig_tracks();
        if (opts_.counters)
            stats_.events += send_counters(r_, out_);
        page_tracks();
        stats_.bytes = out_.finish();
        return stats_;
    }

  private:
    uint32_t default_pid() const { return timeline_default_pid(r_); }
    uint32_t owner_of(const PageLife& p) const { return timeline_owner(r_, p); }

    json metadata() const {
        std::size_t complete = r_.pages.size() - r_.incomplete_pages();
        return {
            {"schema", kTimelineSchema},
            {"kernel_release", run_.kernel_release},
            {"command_line", run_.command_line},
            {"set_pte_observed", run_.set_pte_observed},
            {"probes", probes_json(run_.probes)},
            {"losses", losses_json(r_.losses)},
            {"trace",
             {{"first_ts", r_.first_ts},
              {"last_ts", r_.last_ts},
              {"events", r_.events},
              {"filtered", r_.filtered},
              {"orphans", r_.orphans},
              {"late", r_.late},
              {"tgids", r_.tgids}}},
            {"pages", {{"lives", r_.pages.size()}, {"complete", complete}}},
            {"anomalies", r_.anomalies.size() + r_.anomalies_dropped},
            {"layout",
             {{"page_tid_base", kPageTidBase},
              {"page_track", "tid = page_tid_base + life (index into the report's pages)"},
              {"ts", "CLOCK_MONOTONIC microseconds"}}},
        };
    }

    // Process and thread names, sort indexes.
    void metadata_events() {
        std::vector<uint32_t> pids;
        auto add_pid = [&](uint32_t pid) {
            if (std::find(pids.begin(), pids.end(), pid) == pids.end())
                pids.push_back(pid);
        };
        for (uint32_t t : r_.tgids)
            add_pid(t);
        for (const Phase& ph : r_.phases)
            add_pid(ph.tgid);
        for (const Mapping& m : r_.mappings)
            add_pid(m.tgid);
        for (const PageLife& p : r_.pages)
            add_pid(owner_of(p));
        if (pids.empty())
            add_pid(default_pid());
        for (std::size_t i = 0; i < pids.size(); ++i) {
            const uint32_t pid = pids[i];
            std::string name = i == 0 && !run_.command_line.empty()
                                   ? run_.command_line + " (pid " + std::to_string(pid) + ")"
                                   : "pid " + std::to_string(pid);
            out_.process(pid, name, i);
            stats_.events += 2; // process_name, process_sort_index
        }
        for (const auto& [pid, tid] : rig_track_ids()) {
            thread_meta(pid, tid, "rig " + std::to_string(tid) + " (phases, kex mmap)", -1, false);
            ++stats_.tracks;
        }
        std::string name; // "page <index> pfn 0x<pfn>", its room reused
        for (std::size_t i = 0; i < r_.pages.size(); ++i) {
            const PageLife& p = r_.pages[i];
            page_track_name(name, p);
            thread_meta(owner_of(p), page_tid(i), name, static_cast<int64_t>(i), true);
        }
        stats_.page_tracks = r_.pages.size();
        stats_.tracks += r_.pages.size();
    }

    // "page <index> pfn 0x<pfn>" ("?" for an unknown index) into name.
    static void page_track_name(std::string& name, const PageLife& p) {
        char buf[64] = "page ";
        char* e = buf + 5;
        if (p.index == kNoIndex)
            *e++ = '?';
        else
            e = std::to_chars(e, buf + 16, p.index).ptr;
        e = std::copy_n(" pfn 0x", 7, e);
        e = std::to_chars(e, buf + sizeof buf, p.pfn, 16).ptr;
        name.assign(buf, e);
    }

    void thread_meta(uint32_t pid, uint32_t tid, const std::string& name, int64_t sort, bool page) {
        out_.thread(pid, tid, name, sort, page);
        stats_.events += 2; // thread_name, thread_sort_index
    }

    static uint32_t page_tid(std::size_t life) {
        return kPageTidBase + static_cast<uint32_t>(life);
    }

    // (pid, tid) of the rig's thread tracks: phases on the tgid's own track,
    // kex mmaps on the tid that called mmap.
    std::vector<std::pair<uint32_t, uint32_t>> rig_track_ids() const {
        std::vector<std::pair<uint32_t, uint32_t>> ids;
        auto add = [&](uint32_t pid, uint32_t tid) {
            if (std::find(ids.begin(), ids.end(), std::make_pair(pid, tid)) == ids.end())
                ids.emplace_back(pid, tid);
        };
        for (const Phase& ph : r_.phases)
            add(ph.tgid, ph.tgid);
        for (const Mapping& m : r_.mappings)
            add(m.tgid, m.tid ? m.tid : m.tgid);
        for (const Anomaly& a : r_.anomalies)
            if (a.life < 0 || static_cast<std::size_t>(a.life) >= r_.pages.size())
                add(default_pid(), default_pid());
        return ids;
    }

    void rig_tracks() {
        for (const auto& [pid, tid] : rig_track_ids()) {
            track_.clear();
            track_.pid = pid;
            track_.tid = tid;
            for (const Phase& ph : r_.phases) {
                if (ph.tgid != pid || tid != pid)
                    continue;
                const uint64_t end = ph.end ? ph.end : std::max(ph.start, r_.last_ts);
                Ev& e = add(ph.start, end - ph.start, 'X', ph.name, "rig");
                Args a(track_);
                a.b("closed", ph.closed)
                    .hex("addr", ph.addr)
                    .u("pages", ph.arg1)
                    .u("kernel_events", ph.kernel_events)
                    .u("user_faults", ph.user_faults);
                a.end(e);
            }
            for (std::size_t i = 0; i < r_.mappings.size(); ++i) {
                const Mapping& m = r_.mappings[i];
                if (m.tgid != pid || (m.tid ? m.tid : m.tgid) != tid)
                    continue;
                if (m.driver) {
                    driver_vma(i, m);
                    continue;
                }
                const uint64_t dur = m.done_ts > m.ts ? m.done_ts - m.ts : 0;
                Ev& e = add(m.ts, dur, 'X', "kex_mmap", "kex");
                Args a(track_);
                a.u("mapping", i)
                    .hex("vm_start", m.vm_start)
                    .hex("vm_end", m.vm_end)
                    .u("pages", m.pages)
                    .word("policy", policy_name(m.policy))
                    .b("done_seen", m.done_ts != 0)
                    .i("ret", m.ret)
                    .u("mapped", m.mapped)
                    .u("other_allocations", m.other_allocations);
                a.end(e);
                if (m.close_ts) {
                    Ev& c = add(m.close_ts, 0, 'i', "kex_vma_close", "kex");
                    Args ca(track_);
                    ca.u("mapping", i).hex("vm_start", m.vm_start).hex("vm_end", m.vm_end);
                    ca.end(c);
                }
            }
            for (const Anomaly& an : r_.anomalies)
                if ((an.life < 0 || static_cast<std::size_t>(an.life) >= r_.pages.size()) &&
                    pid == default_pid() && tid == pid)
                    anomaly(an);
            flush_track(false);
        }
    }

    // Another driver's VMA: an instant at its first insert, with its owner.
    void driver_vma(std::size_t i, const Mapping& m) {
        const DriverOwner o = mapping_owner(r_, m, sym_);
        Ev& e = add(m.ts, 0, 'i', "driver_vma", "driver");
        Args a(track_);
        a.u("mapping", i)
            .hex("vm_start", m.vm_start)
            .hex("vm_end", m.vm_end)
            .u("pages", m.pages)
            .u("lives", m.lives)
            .text("owner", o.name)
            .b("module", o.module)
            .text("file", o.file)
            .text("mmap", o.handler)
            .text("f_op", o.f_op)
            .text("inserted_by", o.caller)
            .text("allocated_by", o.allocated_by)
            .text("flags", vm_flags_name(m.vm_flags));
        a.end(e);
    }

    void anomaly(const Anomaly& an) {
        Ev& e = add(an.ts, 0, 'i', "anomaly", "anomaly");
        Args a(track_);
        a.text("message", an.message);
        a.end(e);
    }

    Ev& add(uint64_t ts, uint64_t dur, char ph, std::string_view name, std::string_view cat) {
        Ev& e = track_.events.emplace_back();
        e.ts = ts;
        e.dur = dur;
        e.ph = ph;
        e.name = name;
        e.cat = cat;
        e.seq = static_cast<uint32_t>(track_.events.size() - 1);
        return e;
    }

    // The JSON array of a stack's frames, built once per stack.
    const std::string& stack_json(uint32_t id) {
        if (stack_cache_.size() < r_.stacks.size())
            stack_cache_.resize(r_.stacks.size());
        std::string& s = stack_cache_[id];
        if (s.empty()) {
            json a = json::array();
            for (uint64_t addr : r_.stack(id)) {
                std::string sym = sym_ ? sym_(addr) : std::string();
                a.push_back(sym.empty() ? detail::hex(addr) : sym);
            }
            s = a.dump(-1, ' ', false, json::error_handler_t::replace);
        }
        return s;
    }

    void common_args(Args& a, const Step& s) {
        a.word("step", step_kind_name(s.kind))
            .count("refcount", s.refcount)
            .count("mapcount", s.mapcount);
        if (s.flags & kStepLate)
            a.b("late", true);
        if (s.flags & kStepAfterFree)
            a.b("after_free", true);
    }

    void stack_arg(Args& a, const Step& s) {
        if (opts_.stacks && s.stack_id && s.stack_id < r_.stacks.size())
            a.raw("stack", stack_json(s.stack_id));
    }

    void pte_args(Args& a, const PageLife& p, uint64_t pte, uint8_t flags) {
        const PteBits bits = decode_pte(pte);
        a.hex("pte", pte)
            .text("bits", pte_flags(pte))
            .u("pfn", bits.pfn)
            .b("present", bits.present)
            .b("rw", bits.rw)
            .b("user", bits.user)
            .b("accessed", bits.accessed)
            .b("dirty", bits.dirty)
            .b("nx", bits.nx);
        if (bits.special)
            a.b("special", true);
        if (pte == p.pte && p.pte_addr)
            a.hex("pte_address", p.pte_addr);
        if (flags & kStepViaInsertRet)
            a.word("observed", "read back at the insert's return (set_pte_at is inline)");
        else if (flags & kStepViaDoSetPteRet)
            a.word("observed", "read back at the fault install's return (set_pte_at is inline)");
    }

    void page_tracks() {
        // the anomalies about a page, by life (in the report's order within one)
        std::vector<const Anomaly*> about;
        for (const Anomaly& an : r_.anomalies)
            if (an.life >= 0 && static_cast<std::size_t>(an.life) < r_.pages.size())
                about.push_back(&an);
        std::stable_sort(about.begin(), about.end(),
                         [](const Anomaly* a, const Anomaly* b) { return a->life < b->life; });
        auto next = about.begin();
        for (std::size_t life = 0; life < r_.pages.size(); ++life) {
            const PageLife& p = r_.pages[life];
            track_.clear();
            track_.pid = owner_of(p);
            track_.tid = page_tid(life);
            page_steps(p);
            for (; next != about.end() && static_cast<std::size_t>((*next)->life) == life; ++next)
                anomaly(**next);
            flush_track(opts_.flows, life + 1);
        }
    }

    void page_steps(const PageLife& p) {
        // indexed: decoded once, into room reused page after page
        steps_.assign(p.steps.begin(), p.steps.end());
        const std::vector<Step>& st = steps_;
        for (std::size_t i = 0; i < st.size(); ++i) {
            const Step& s = st[i];
            if (s.kind == StepKind::insert) {
                // entry .. return as one slice, when the return follows
                std::size_t ret = i + 1;
                while (ret < st.size() && st[ret].kind != StepKind::insert_ret &&
                       st[ret].kind != StepKind::insert)
                    ++ret;
                if (ret < st.size() && st[ret].kind == StepKind::insert_ret) {
                    insert_slice(p, s, st[ret]);
                    continue;
                }
            } else if (s.kind == StepKind::insert_ret) {
                bool paired = false;
                for (std::size_t j = i; j-- > 0;) {
                    if (st[j].kind == StepKind::insert_ret)
                        break;
                    if (st[j].kind == StepKind::insert) {
                        paired = true;
                        break;
                    }
                }
                if (paired)
                    continue;
            }
            point_step(p, s);
        }
    }

    void insert_slice(const PageLife& p, const Step& in, const Step& ret) {
        Ev& e = add(in.ts, ret.ts - in.ts, 'X', names_.of(StepKind::insert),
                    names_.cat_of(StepKind::insert));
        e.flow = true;
        Args a(track_);
        common_args(a, in);
        if (in.value)
            a.hex("addr", in.value);
        else
            a.null("addr");
        a.i("ret", ret.ret())
            .count("refcount_at_return", ret.refcount)
            .count("mapcount_at_return", ret.mapcount);
        if (p.pte_addr)
            a.hex("pte_address", p.pte_addr);
        stack_arg(a, in);
        a.end(e);
    }

    // A followed call (--follow) is named after its function, on the page's track.
    std::string_view step_name(const Step& s) const {
        if (s.kind != StepKind::followed)
            return names_.of(s.kind);
        const uint32_t f = KEX_FOLLOW_FUNC(s.value);
        return f < r_.follow_functions.size() ? std::string_view(r_.follow_functions[f])
                                              : names_.of(s.kind);
    }

    void point_step(const PageLife& p, const Step& s) {
        Ev& e = add(s.ts, 0, 'X', step_name(s), names_.cat_of(s.kind));
        e.flow = true;
        Args a(track_);
        common_args(a, s);
        switch (s.kind) {
        case StepKind::kmem_alloc:
        case StepKind::page_free:
            a.u("order", s.value);
            break;
        case StepKind::kex_alloc:
            a.u("index", s.value);
            break;
        case StepKind::insert:
        case StepKind::do_set_pte:
            if (s.value)
                a.hex("addr", s.value);
            else
                a.null("addr");
            break;
        case StepKind::insert_ret:
        case StepKind::kex_insert:
            a.i("ret", s.ret());
            if (p.uaddr)
                a.hex("uaddr", p.uaddr);
            break;
        case StepKind::pte_set:
            pte_args(a, p, s.value, s.flags);
            break;
        case StepKind::pte_lookup:
            pte_args(a, p, s.value, s.flags);
            a.word("observed", "given to vm_normal_page, by value (a pfn map's PTE)");
            break;
        case StepKind::user_fault:
            a.u("error_code", s.value).b("in_write_phase", (s.flags & kStepInWritePhase) != 0);
            break;
        case StepKind::rmap_remove:
            a.word("zap_context", p.zap_context == ZapContext::none
                                      ? std::string_view("none")
                                      : zap_context_name(p.zap_context));
            break;
        case StepKind::kex_free:
            a.word("reason", detail::kex_free_reason_name(static_cast<uint32_t>(s.value)));
            break;
        case StepKind::followed:
            a.u("arg", KEX_FOLLOW_REG(s.value))
                .word("passed_as", followed_kind_name(KEX_FOLLOW_KIND(s.value)));
            break;
        default:
            break;
        }
        stack_arg(a, s);
        a.end(e);
    }

    // Sort the track, keep its slices nested, chain its flow events, write it.
    void flush_track(bool flows, uint64_t flow_id = 0) {
        auto& evs = track_.events;
        const auto before = [](const Ev& a, const Ev& b) {
            if (a.ts != b.ts)
                return a.ts < b.ts;
            return a.dur > b.dur;
        };
        // (a page's steps come in time order: sorted already, as a rule)
        if (!std::is_sorted(evs.begin(), evs.end(), before))
            std::stable_sort(evs.begin(), evs.end(), before);
        // A slice that would overlap its parent partially is cut to it (never
        // happens on a sane stream; viewers drop such slices).
        std::vector<uint64_t>& open = open_;
        open.clear();
        std::size_t chain = 0, n_chain = 0;
        for (Ev& e : evs) {
            if (e.ph != 'X')
                continue;
            n_chain += e.flow;
            while (!open.empty() && (open.back() < e.ts || (open.back() == e.ts && e.dur > 0)))
                open.pop_back();
            if (!open.empty() && e.ts + e.dur > open.back())
                e.dur = open.back() - e.ts;
            open.push_back(e.ts + e.dur);
        }
        if (!flows)
            n_chain = 0;
        if (n_chain >= 2)
            stats_.flow_arrows += n_chain - 1;
        for (const Ev& e : evs) {
            Flow f;
            if (n_chain >= 2 && e.flow && e.ph == 'X') {
                f = {flow_id, chain > 0, chain + 1 < n_chain};
                ++chain;
            }
            out_.event(track_, e, f);
        }
        out_.end_track(track_);
        stats_.events += evs.size();
    }

    const Report& r_;
    const RunInfo& run_;
    const Symbolizer& sym_;
    TimelineOptions opts_;
    Sink& out_;
    StepNames names_;
    TimelineStats stats_;
    Track track_;
    std::vector<std::string> stack_cache_;
    std::vector<Step> steps_;    // page_steps' decoded steps, the room reused page after page
    std::vector<uint64_t> open_; // flush_track's open slices, the room reused
};

} // namespace

TimelineStats write_trace_events(const Report& report, const RunInfo& run,
                                 const Symbolizer& symbolize, std::ostream& out,
                                 const TimelineOptions& opts) {
    return write_timeline_as(TimelineFormat::json, report, run, symbolize, out, opts);
}

TimelineStats write_perfetto_trace(const Report& report, const RunInfo& run,
                                   const Symbolizer& symbolize, std::ostream& out,
                                   const TimelineOptions& opts) {
    return write_timeline_as(TimelineFormat::perfetto, report, run, symbolize, out, opts);
}

TimelineStats write_timeline_as(TimelineFormat format, const Report& report, const RunInfo& run,
                                const Symbolizer& symbolize, std::ostream& out,
                                const TimelineOptions& opts) {
    const std::unique_ptr<Sink> sink =
        format == TimelineFormat::perfetto ? perfetto_sink(out) : json_sink(out);
    Builder b(report, run, symbolize, *sink, opts);
    return b.run();
}

TimelineFormat timeline_format_of(std::string_view path) {
    for (std::string_view ext : {".pftrace", ".perfetto-trace"})
        if (path.size() > ext.size() && path.ends_with(ext))
            return TimelineFormat::perfetto;
    return TimelineFormat::json;
}

std::optional<TimelineFormat> parse_timeline_format(std::string_view name) {
    if (name == "json")
        return TimelineFormat::json;
    if (name == "perfetto")
        return TimelineFormat::perfetto;
    return std::nullopt;
}

} // namespace kextrace
