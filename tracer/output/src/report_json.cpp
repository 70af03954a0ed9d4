// write_report_json: the document of to_json (json.cpp, the reference) with
// the caller's extra top-level sections, streamed. The bytes are those of
// nlohmann's dump(2, ' ', false, error_handler_t::replace) of the tree: keys
// in std::map (byte) order, two spaces per level, "[]" / "{}" when empty,
// integers as plain decimals, strings escaped by nlohmann's own serializer
// whenever they are not plain ASCII. tests/unit/output_report_json_test.cpp
// compares the two byte for byte.
//
// Members are written in sorted key order by hand: a key added to to_json
// must be added here at its sorted place (the test fails otherwise).
#include <kextrace/leaks.h>
#include <kextrace/output.h>
#include <kextrace/owner.h>

#include "format.h"
#include "pretty_json.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <ostream>
#include <span>
#include <stdexcept>
#include <string_view>
#include <type_traits>
#include <vector>

namespace kextrace {

using nlohmann::json;

namespace {

using detail::Pretty;

// Event type slots in the order of their names (the keys of a counts object).
// Names can repeat ("unknown" for every unnamed slot): there the tree keeps
// the last slot's count that is not zero, as o[name] = count does.
struct TypeGroup {
    std::string_view name;
    std::vector<uint32_t> slots; // ascending
};
const std::vector<TypeGroup>& type_groups() {
    static const std::vector<TypeGroup> groups = [] {
        std::vector<TypeGroup> g;
        for (uint32_t t = 0; t < kTypeSlots; ++t) {
            const std::string_view name = event_type_name(t);
            auto it = std::find_if(g.begin(), g.end(),
                                   [name](const TypeGroup& x) { return x.name == name; });
            if (it == g.end())
                g.push_back({name, {t}});
            else
                it->slots.push_back(t);
        }
        std::sort(g.begin(), g.end(),
                  [](const TypeGroup& a, const TypeGroup& b) { return a.name < b.name; });
        return g;
    }();
    return groups;
}

template <class Counts> void type_counts(Pretty& w, const Counts& counts) {
    w.begin_object();
    for (const TypeGroup& g : type_groups())
        for (auto it = g.slots.rbegin(); it != g.slots.rend(); ++it)
            if (counts[*it]) {
                w.key(g.name).u64(counts[*it]);
                break;
            }
    w.end_object();
}

void milestones(Pretty& w, uint16_t mask) {
    w.begin_array();
    for (const auto& [bit, name] : detail::milestone_token_table())
        if (mask & bit)
            w.elem().str(name);
    w.end_array();
}

void step_flags(Pretty& w, uint8_t f) {
    w.begin_array();
    if (f & kStepViaInsertRet)
        w.elem().str("via_insert_ret");
    if (f & kStepViaDoSetPteRet)
        w.elem().str("via_do_set_pte_ret");
    if (f & kStepInWritePhase)
        w.elem().str("in_write_phase");
    if (f & kStepAfterFree)
        w.elem().str("after_free");
    if (f & kStepLate)
        w.elem().str("late");
    w.end_array();
}

void step_value(Pretty& w, const Step& s) {
    switch (s.kind) {
    case StepKind::insert_ret:
    case StepKind::kex_insert:
        return w.i64(s.ret());
    case StepKind::insert:
    case StepKind::do_set_pte:
        return s.value ? w.hex(s.value) : w.null();
    case StepKind::pte_set:
        return w.hex(s.value);
    case StepKind::kex_free:
        return w.str(detail::kex_free_reason_name(static_cast<uint32_t>(s.value)));
    case StepKind::followed: // the function's id in the "follow" section
        return w.u64(KEX_FOLLOW_FUNC(s.value));
    default: // user_fault: the error code
        return w.u64(s.value);
    }
}

void ts_or_null(Pretty& w, uint64_t ts) {
    ts ? w.u64(ts) : w.null();
}

struct Tally {
    std::size_t clean_trail = 0, no_fault = 0, dirty = 0;
    void add(const PageLife& p, const std::vector<int32_t>& trail) {
        clean_trail += trail == expected(p);
        no_fault += p.first_write == FirstWrite::no_fault;
        dirty += p.zap_dirty;
    }

  private:
    // expected_refcount_trail of the page's policy and mode, asked once
    // per pair (a vector built per call: per page, otherwise)
    const std::vector<int32_t>& expected(const PageLife& p) {
        for (const Expected& e : expected_)
            if (e.policy == p.policy && e.mode == p.mode)
                return e.trail;
        return expected_
            .emplace_back(Expected{p.policy, p.mode, expected_refcount_trail(p.policy, p.mode)})
            .trail;
    }
    struct Expected {
        Policy policy;
        MapMode mode;
        std::vector<int32_t> trail;
    };
    std::vector<Expected> expected_;
};

void write_first_write(Pretty& w, const PageLife& p) {
    w.begin_object();
    w.key("error_code");
    p.first_write == FirstWrite::fault ? w.u64(p.fault_error_code) : w.null();
    w.key("kind").str(p.first_write == FirstWrite::no_fault ? "no_fault"
                                                            : first_write_name(p.first_write));
    w.key("ts");
    ts_or_null(w, p.first_write_ts);
    w.end_object();
}

// The PTE the page was installed with, its bits decoded; null if none was read.
void write_pte(Pretty& w, const PageLife& p) {
    if (!p.pte) {
        w.null();
        return;
    }
    const PteBits b = decode_pte(p.pte);
    w.begin_object();
    w.key("accessed").boolean(b.accessed);
    w.key("address");
    if (p.pte_addr)
        w.hex(p.pte_addr);
    else
        w.null(); // given by value (pte_lookup): where it lives was not read
    w.key("dirty").boolean(b.dirty);
    w.key("flags").str(pte_flags(p.pte));
    w.key("nx").boolean(b.nx);
    w.key("pfn").u64(b.pfn);
    w.key("present").boolean(b.present);
    w.key("rw").boolean(b.rw);
    w.key("source").str(pte_source_name(p.pte_source));
    w.key("special").boolean(b.special);
    w.key("user").boolean(b.user);
    w.key("value").hex(p.pte);
    w.end_object();
}

void write_steps(Pretty& w, const PageLife& p, std::span<const Step> steps) {
    w.begin_array();
    const std::vector<CountsAfter> after = counts_after_steps(steps);
    auto a = after.begin();
    for (const Step& s : steps) {
        const CountsAfter& now = *a++;
        w.elem().begin_object();
        w.key("dt").i64(static_cast<int64_t>(s.ts - p.alloc_ts));
        if (s.flags) {
            w.key("flags");
            step_flags(w, s.flags);
        }
        w.key("kind").str(step_kind_name(s.kind));
        w.key("mapcount").count(s.mapcount);
        w.key("mapcount_after").count(now.mapcount);
        w.key("refcount").count(s.refcount);
        w.key("refcount_after").count(now.refcount);
        if (s.stack_id)
            w.key("stack").u64(s.stack_id);
        w.key("ts").u64(s.ts);
        w.key("value");
        step_value(w, s);
        w.end_object();
    }
    w.end_array();
}

void write_zap(Pretty& w, const PageLife& p) {
    w.begin_object();
    w.key("context").str(p.zap_context == ZapContext::none ? "none"
                                                           : zap_context_name(p.zap_context));
    w.key("dirty").boolean(p.zap_dirty);
    w.key("ts");
    ts_or_null(w, p.zap_ts);
    w.end_object();
}

// One page life, its keys in sorted order (as nlohmann::json would write them).
// steps: scratch, its room reused page after page.
void write_page(Pretty& w, const PageLife& p, std::size_t life, Tally& tally,
                std::vector<Step>& steps) {
    steps.assign(p.steps.begin(), p.steps.end()); // read five times: decoded once
    const std::vector<int32_t> rtrail = refcount_trail(steps);
    tally.add(p, rtrail);
    w.begin_object();
    w.key("alloc_before_trace").boolean(p.alloc_before_trace);
    w.key("alloc_ts").u64(p.alloc_ts);
    w.key("anomalies").u64(p.anomalies);
    w.key("by_fault").boolean(p.by_fault);
    w.key("complete").boolean(p.complete());
    w.key("expected");
    milestones(w, p.expected);
    w.key("first_write");
    write_first_write(w, p);
    w.key("free").begin_object();
    w.key("batched").boolean(p.free_batched);
    w.key("ts");
    ts_or_null(w, p.free_ts);
    w.end_object();
    w.key("index");
    p.index == kNoIndex ? w.null() : w.u64(p.index);
    w.key("insert_ret").i64(p.insert_ret);
    w.key("kex_faults").u64(p.kex_faults);
    w.key("kex_free_reason");
    p.kex_free_reason == UINT32_MAX ? w.null()
                                    : w.str(detail::kex_free_reason_name(p.kex_free_reason));
    w.key("life").u64(life);
    w.key("mapcount_trail").array_of(mapcount_trail(steps));
    w.key("mapping").i64(p.mapping);
    w.key("max_mapcount").i64(max_mapcount(steps));
    w.key("missing");
    milestones(w, p.missing);
    w.key("missing_lost");
    milestones(w, p.missing_lost);
    w.key("mode").str(map_mode_name(p.mode));
    w.key("open_at_end").boolean(p.open_at_end);
    w.key("owner").u64(p.owner);
    w.key("pfn").u64(p.pfn);
    w.key("policy").str(policy_name(p.policy));
    w.key("pte");
    write_pte(w, p);
    w.key("refcount_trail").array_of(rtrail);
    w.key("remap_pfn_ts");
    ts_or_null(w, p.remap_ts);
    w.key("seen");
    milestones(w, p.seen);
    w.key("steps");
    write_steps(w, p, steps);
    w.key("uaddr");
    p.uaddr ? w.hex(p.uaddr) : w.null();
    w.key("zap");
    write_zap(w, p);
    w.end_object();
}

void write_run(Pretty& w, const RunInfo& run) {
    w.begin_object();
    w.key("command_line").str(run.command_line);
    w.key("kernel_release").str(run.kernel_release);
    w.key("probes").begin_array();
    for (const ProbeStatus& p : run.probes) {
        w.elem().begin_object();
        w.key("attached").boolean(p.attached);
        w.key("mechanism").str(p.mechanism);
        w.key("nmissed").u64(p.nmissed);
        w.key("off").boolean(p.off);
        w.key("reason").str(p.reason);
        w.key("resolved").str(p.resolved);
        w.key("step").str(p.step);
        w.key("wanted").str(p.wanted);
        w.end_object();
    }
    w.end_array();
    w.key("set_pte_observed").str(run.set_pte_observed);
    w.end_object();
}

void write_phases(Pretty& w, const Report& r) {
    w.begin_array();
    for (const Phase& ph : r.phases) {
        w.elem().begin_object();
        w.key("addr").hex(ph.addr);
        w.key("arg1").u64(ph.arg1);
        w.key("closed").boolean(ph.closed);
        w.key("counts");
        type_counts(w, ph.counts);
        w.key("duration_ns").u64(ph.end - ph.start);
        w.key("end").u64(ph.end);
        w.key("kernel_events").u64(ph.kernel_events);
        w.key("name").str(ph.name);
        w.key("start").u64(ph.start);
        w.key("tgid").u64(ph.tgid);
        w.key("user_faults").u64(ph.user_faults);
        w.end_object();
    }
    w.end_array();
}

void write_mappings(Pretty& w, const Report& r, const Symbolizer& symbolize) {
    w.begin_array();
    for (const Mapping& m : r.mappings) {
        w.elem().begin_object();
        w.key("batch_calls").u64(m.batch_calls);
        w.key("close_ts");
        ts_or_null(w, m.close_ts);
        w.key("done_ts");
        ts_or_null(w, m.done_ts);
        w.key("driver").boolean(m.driver);
        w.key("faults").u64(m.faults);
        w.key("lives").u64(m.lives);
        w.key("mapped").u64(m.mapped);
        w.key("mode").str(map_mode_name(m.mode));
        w.key("mode_inferred").boolean(m.mode_inferred);
        w.key("other_allocations").u64(m.other_allocations);
        if (m.driver) {
            w.key("owner");
            w.value(owner_json(r, m, symbolize));
        }
        w.key("pages").u64(m.pages);
        if (m.driver) {
            w.key("pfn_maps");
            w.value(pfnmaps_json(m));
        }
        w.key("policy").str(policy_name(m.policy));
        w.key("remap_pfn_calls").u64(m.remap_pfn_calls);
        w.key("ret").i64(m.ret);
        w.key("tgid").u64(m.tgid);
        w.key("tid").u64(m.tid);
        w.key("ts").u64(m.ts);
        w.key("vm_end").hex(m.vm_end);
        w.key("vm_insert_pages").u64(m.vm_insert_pages);
        w.key("vm_start").hex(m.vm_start);
        w.end_object();
    }
    w.end_array();
}

void write_stacks(Pretty& w, const Report& r, const Symbolizer& symbolize) {
    w.begin_array();
    for (const auto& st : r.stacks) {
        w.elem().begin_array();
        for (uint64_t a : st) {
            w.elem().begin_object();
            w.key("addr").hex(a);
            w.key("sym");
            const std::string sym = symbolize ? symbolize(a) : std::string();
            sym.empty() ? w.null() : w.str(sym);
            w.end_object();
        }
        w.end_array();
    }
    w.end_array();
}

void write_anomalies(Pretty& w, const Report& r) {
    w.begin_array();
    for (const Anomaly& a : r.anomalies) {
        w.elem().begin_object();
        w.key("life");
        a.life < 0 ? w.null() : w.i64(a.life);
        w.key("message").str(a.message);
        w.key("ts").u64(a.ts);
        w.end_object();
    }
    w.end_array();
}

void write_trace(Pretty& w, const Report& r) {
    w.begin_object();
    w.key("events").u64(r.events);
    w.key("filtered").u64(r.filtered);
    w.key("first_ts").u64(r.first_ts);
    w.key("last_ts").u64(r.last_ts);
    w.key("late").u64(r.late);
    w.key("orphans").u64(r.orphans);
    w.key("other_allocations").u64(r.other_allocations);
    w.key("other_frees").u64(r.other_frees);
    w.key("tgids").array_of(r.tgids);
    w.key("unfollowed_driver_pages").u64(r.unfollowed_driver_pages);
    w.end_object();
}

void write_losses(Pretty& w, const Report& r) {
    w.begin_object();
    w.key("decode_errors").u64(r.losses.decode_errors);
    w.key("map_full").begin_object();
    for (const auto& [name, n] : detail::map_full_entries(r.losses))
        w.key(name).u64(n);
    w.end_object();
    w.key("per_type");
    type_counts(w, r.losses.per_type);
    w.key("pfn_unknown").u64(r.losses.pfn_unknown());
    w.key("ring").u64(r.losses.ring);
    w.key("total").u64(r.losses.total());
    w.end_object();
}

void write_summary(Pretty& w, const Report& r, const Tally& t) {
    const std::size_t incomplete = r.incomplete_pages();
    w.begin_object();
    w.key("anomalies").u64(r.anomalies.size() + r.anomalies_dropped);
    w.key("complete").u64(r.pages.size() - incomplete);
    w.key("events_lost").u64(r.losses.total());
    w.key("expected_refcount_trail").array_of(expected_refcount_trail(Policy::drop));
    w.key("first_write_no_fault").u64(t.no_fault);
    w.key("incomplete").u64(incomplete);
    w.key("pages").u64(r.pages.size());
    w.key("refcount_as_expected").u64(t.clean_trail);
    w.key("zap_dirty").u64(t.dirty);
    w.end_object();
}

} // namespace

uint64_t write_report_json(std::ostream& out, const Report& r, const RunInfo& run,
                           const Symbolizer& symbolize, const json& extra,
                           const LeakReport* leaks) {
    if (!extra.is_null() && !extra.is_object())
        throw std::invalid_argument("write_report_json: extra must be a JSON object");
    Pretty w(out);
    Tally tally;
    bool tallied = false; // the pages were written (and counted)

    // The top-level members, the report's and extra's, in key order; extra's
    // replace the report's of the same name.
    auto x = extra.is_object() ? extra.begin() : extra.end();
    const auto x_end = extra.end();
    auto section = [&](std::string_view name, auto&& write) {
        for (; x != x_end && std::string_view(x.key()) < name; ++x)
            w.any_key(x.key()).value(*x);
        if (x != x_end && x.key() == name) {
            w.key(name).value(*x);
            ++x;
            return;
        }
        w.key(name);
        write();
    };

    w.begin_object();
    section("anomalies", [&] { write_anomalies(w, r); });
    section("anomalies_dropped", [&] { w.u64(r.anomalies_dropped); });
    section("counts", [&] { type_counts(w, r.counts); });
    if (leaks)
        section("leaks", [&] { detail::write_leaks_json(w, *leaks, r, symbolize); });
    section("losses", [&] { write_losses(w, r); });
    section("mappings", [&] { write_mappings(w, r, symbolize); });
    section("pages", [&] {
        w.begin_array();
        std::vector<Step> steps;
        for (std::size_t i = 0; i < r.pages.size(); ++i)
            write_page(w.elem(), r.pages[i], i, tally, steps);
        w.end_array();
        tallied = true;
    });
    section("phases", [&] { write_phases(w, r); });
    section("run", [&] { write_run(w, run); });
    section("schema", [&] { w.str(kJsonSchema); });
    section("stacks", [&] { write_stacks(w, r, symbolize); });
    section("summary", [&] {
        if (!tallied)
            for (const PageLife& p : r.pages)
                tally.add(p, refcount_trail(p));
        write_summary(w, r, tally);
    });
    section("trace", [&] { write_trace(w, r); });
    for (; x != x_end; ++x)
        w.any_key(x.key()).value(*x);
    w.end_object();
    w.flush();
    return w.bytes();
}

} // namespace kextrace
