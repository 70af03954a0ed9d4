// follow_plan.cpp - see follow_plan.h.
#include "follow_plan.h"

#include "environment.h"
#include "text_file.h"

#include <kextrace/follow_output.h>

#include <iostream>

#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace kextrace {

std::map<std::string, std::string> trampoline_functions(const ProbePlan& plan) {
    std::map<std::string, std::string> out;
    for (const auto& step : plan.steps)
        for (uint32_t id : step.probes)
            if (id < KEX_P_COUNT && plan.enabled[id] && is_trampoline(plan.kind[id]))
                out.emplace(plan.target[id], step.step);
    return out;
}

std::set<std::string> curated_functions(const ProbePlan& plan) {
    std::set<std::string> out;
    for (uint32_t id = 0; id < KEX_P_COUNT; id++)
        if (plan.enabled[id] && plan.kind[id] != ProbeKind::tracepoint &&
            plan.kind[id] != ProbeKind::tp_btf && plan.kind[id] != ProbeKind::usdt)
            out.insert(plan.target[id]);
    return out;
}

Result<FollowSet> discover_follow(const FollowOptions& fo, const ProbePlan& plan,
                                  const std::optional<Tracefs>& tracefs) {
    auto btf = load_follow_btf(fo.btf_path);
    if (!btf)
        return btf.error();
    FollowFilter f;
    f.globs = fo.globs;
    f.exclude = fo.exclude;
    f.blacklist = read_kprobe_blacklist(fo.blacklist_path);
    if (tracefs)
        if (auto text = read_text_file(tracefs->root() + "/available_filter_functions"))
            f.traceable = count_traceable_functions(*text);
    f.watched = trampoline_functions(plan);
    return select_follow(follow_candidates(btf->get()), f);
}

namespace {

std::string args_text(const FollowFunc& fn) {
    std::vector<std::string> parts;
    for (const auto& a : fn.args)
        parts.push_back(fmt::format("arg{} {}", a.reg, follow_arg_kind_name(a.kind)));
    return fmt::format("{}", fmt::join(parts, ", "));
}

} // namespace

void print_follow_plan(std::ostream& out, const FollowOptions& fo, const FollowSet& s) {
    // functions by how they hold pages (one function can hold two ways)
    std::size_t by_kind[4] = {};
    for (const auto& fn : s.chosen) {
        std::set<FollowArgKind> kinds;
        for (const auto& a : fn.args)
            kinds.insert(a.kind);
        for (FollowArgKind k : kinds)
            by_kind[static_cast<unsigned>(k)]++;
    }
    out << fmt::format("follow: {} functions take a struct page *, a struct folio *, a "
                       "folio_batch or an array of pages in BTF\n",
                       s.candidates);
    if (!fo.globs.empty())
        out << fmt::format("  {} not matching {}\n", s.not_matched, fmt::join(fo.globs, " "));
    out << fmt::format(
        "  chosen {} (with a page {}, a folio {}, a folio_batch {}, a page array {})\n",
        s.chosen.size(), by_kind[0], by_kind[1], by_kind[2], by_kind[3]);
    for (const auto& fn : s.chosen)
        out << fmt::format("    {:<40} {}\n", fn.name, args_text(fn));
    out << fmt::format("  left out {}{}\n", s.left_out.size(), s.left_out.empty() ? "" : ":");
    for (std::size_t i = 0; i < s.left_out.size();) {
        std::size_t j = i;
        std::vector<std::string_view> names;
        for (; j < s.left_out.size() && s.left_out[j].reason == s.left_out[i].reason; j++)
            names.push_back(s.left_out[j].name);
        out << fmt::format("    {} ({}): {}\n", s.left_out[i].reason, names.size(),
                           fmt::join(names, ", "));
        i = j;
    }
}

FollowAttach attach_follow_or_die(Loader& loader, const FollowSet& set) {
    FollowAttach a = loader.attach_follow(set).take_or_die_with(2);
    std::cerr << fmt::format("kextrace: follow: {} of {} functions via {} ({} link{}) in {} ms{}\n",
                             a.attached_count, a.functions.size(), a.mechanism, a.links,
                             a.links == 1 ? "" : "s", a.took.count() / 1000,
                             a.why_not_multi.empty() ? "" : " (" + a.why_not_multi + ")");
    if (a.interrupted)
        std::cerr << "kextrace: follow: attach stopped by a signal\n";
    for (const auto& [name, why] : a.failed)
        std::cerr << fmt::format("kextrace: follow: {} not attached: {}\n", name, why);
    return a;
}

void print_follow_report(std::ostream& out, const Report& report, const FollowSummary& summary,
                         const FollowAttach& attach, const FollowCounts& stats, bool full) {
    out << fmt::format("\nfollow: {} functions via {} (attached in {} ms, detached in {} ms), "
                       "{} program runs, {} on tracked pages\n",
                       attach.attached_count, attach.mechanism, attach.took.count() / 1000,
                       stats.detach.count() / 1000, stats.runs, stats.matched);
    if (stats.nested || stats.folio_partial || stats.array_partial)
        out << fmt::format("follow: {} calls of tracked pages not recorded (inside another "
                           "probe's run on their CPU), {} folios and {} page arrays or "
                           "batches only partly looked up\n",
                           stats.nested, stats.folio_partial, stats.array_partial);
    if (stats.missed)
        out << fmt::format("follow: {} runs skipped by the kernel (inside another BPF "
                           "program on their CPU; pages unknown)\n",
                           stats.missed);
    render_follow_text(report, summary, out, full);
}

nlohmann::json follow_report_json(const Report& report, const FollowSummary& summary,
                                  const FollowSet& set, const FollowAttach& attach,
                                  const FollowCounts& stats) {
    nlohmann::json j = follow_json(report, summary);
    nlohmann::json left = nlohmann::json::array();
    for (const auto& l : set.left_out)
        left.push_back({{"function", l.name}, {"reason", l.reason}});
    for (const auto& [name, why] : attach.failed)
        left.push_back({{"function", name}, {"reason", "attach failed: " + why}});
    j["attach"] = {{"mechanism", attach.mechanism},
                   {"why_not_multi", attach.why_not_multi.empty()
                                         ? nlohmann::json()
                                         : nlohmann::json(attach.why_not_multi)},
                   {"attached", attach.attached_count},
                   {"links", attach.links},
                   {"us", attach.took.count()},
                   {"detach_us", stats.detach.count()}};
    j["left_out"] = std::move(left);
    j["not_matched"] = set.not_matched;
    j["nested_dropped"] = stats.nested;
    j["folios_partly_scanned"] = stats.folio_partial;
    j["arrays_partly_scanned"] = stats.array_partial;
    j["missed"] = stats.missed;
    j["runs"] = stats.runs;
    j["matched"] = stats.matched;
    return j;
}

} // namespace kextrace
