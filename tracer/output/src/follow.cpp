// follow.cpp - kextrace/follow_output.h.
#include <kextrace/follow_output.h>

#include "format.h"

#include <fmt/format.h>

namespace kextrace {

namespace {

std::string count_cell(int32_t v) {
    return v == kNoCount ? std::string("-") : std::to_string(v);
}

// One page's path: every step, a followed one by its function's name.
void render_page_path(const Report& r, const PageLife& p, std::size_t life, std::ostream& out) {
    out << fmt::format("  page {} pfn {}:\n", life, detail::hex(p.pfn));
    for (const Step& s : p.steps) {
        std::string what(step_kind_name(s.kind)), arg;
        if (s.kind == StepKind::followed) {
            FollowedCall c = followed_call(s);
            what = followed_name(r, c.func);
            arg = fmt::format("arg{} {}", c.reg, followed_kind_name(c.kind));
        }
        out << fmt::format("    {:<10} {:<34} {:<12} ref {} map {}\n",
                           detail::delta(p.alloc_ts, s.ts), what, arg, count_cell(s.refcount),
                           count_cell(s.mapcount));
    }
}

} // namespace

void render_follow_text(const Report& r, const FollowSummary& s, std::ostream& out, bool full) {
    out << fmt::format("followed: {} calls on {} of {} pages ({} outside any page life)\n", s.calls,
                       s.followed_lives, s.lives, s.unmatched);
    if (!s.path.empty())
        out << "common path (pages that passed each function, or [curated step]):\n";
    for (const auto& f : s.path)
        out << fmt::format("  {:>4}/{:<4} {}{}\n", f.pages, s.lives,
                           f.step ? "[" + f.name + "]" : f.name,
                           f.step      ? "  (curated step)"
                           : f.curated ? "  (the plan watches it)"
                                       : "");
    if (!s.every_page_unwatched.empty()) {
        out << "every page passed, not watched by the plan:";
        for (std::size_t i = 0; i < s.every_page_unwatched.size(); i++)
            out << (i ? ", " : " ") << s.every_page_unwatched[i];
        out << "\n";
    }
    if (!full)
        return;
    out << "followed paths:\n";
    for (std::size_t i = 0; i < r.pages.size(); i++)
        render_page_path(r, r.pages[i], i, out);
}

std::set<std::string> curated_functions_of(const RunInfo& run) {
    std::set<std::string> out;
    for (const ProbeStatus& p : run.probes) {
        if (!p.attached)
            continue;
        // "a", or "a, b" where a step has several; tracepoints ("sys:name") never match
        std::size_t i = 0;
        while (i < p.resolved.size()) {
            std::size_t j = p.resolved.find_first_of(", ", i);
            if (j == std::string::npos)
                j = p.resolved.size();
            if (j > i)
                out.insert(p.resolved.substr(i, j - i));
            i = j + 1;
        }
    }
    return out;
}

nlohmann::json follow_json(const Report& r, const FollowSummary& s) {
    nlohmann::json path = nlohmann::json::array();
    for (const auto& f : s.path)
        path.push_back({{"function", f.step ? nullptr : nlohmann::json(f.name)},
                        {"step", f.step ? nlohmann::json(f.name) : nullptr},
                        {"id", f.step ? nullptr : nlohmann::json(f.func)},
                        {"pages", f.pages},
                        {"calls", f.calls},
                        {"curated", f.curated}});
    return {{"functions", r.follow_functions},
            {"calls", s.calls},
            {"pages", s.lives},
            {"followed_pages", s.followed_lives},
            {"unmatched", s.unmatched},
            {"common_path", std::move(path)},
            {"every_page_unwatched", s.every_page_unwatched}};
}

} // namespace kextrace
