// leak_streams.h - the leak tests' buggy drivers, written as edits of a
// clean story (drop the events of the put kex forgot, raise the counts it
// left behind), and the readers of their verdicts.
#pragma once

#include <kextrace/core.h>
#include <kextrace/leaks.h>
#include <kextrace/stream_builder.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <initializer_list>
#include <set>
#include <string>
#include <vector>

namespace kextrace::test {

inline constexpr uint64_t kPfn0 = 0x1000;

inline Report correlate(const std::vector<Event>& events, const Losses* losses = nullptr) {
    Correlator c;
    for (const Event& e : events)
        c.feed(e);
    if (losses)
        c.set_losses(*losses);
    return c.finish();
}

inline bool of(const Event& e, uint64_t pfn, std::initializer_list<uint32_t> types) {
    return e.pfn == pfn && std::find(types.begin(), types.end(), e.type) != types.end();
}

// Removes the final free of pfn (the kernel never freed it).
inline void never_freed(StreamBuilder& b, uint64_t pfn, std::size_t from = 0) {
    auto first = b.events.begin() + static_cast<std::ptrdiff_t>(from);
    b.events.erase(
        std::remove_if(first, b.events.end(),
                       [&](const Event& e) {
                           return of(e, pfn, {KEX_EV_PAGE_FREE, KEX_EV_PAGE_FREE_BATCHED});
                       }),
        b.events.end());
}

// Adds n to the refcount read by pfn's events of the given types.
inline void raise_refcount(StreamBuilder& b, uint64_t pfn, std::initializer_list<uint32_t> types,
                           int32_t n = 1, std::size_t from = 0) {
    for (std::size_t i = from; i < b.events.size(); ++i)
        if (of(b.events[i], pfn, types) && b.events[i].refcount != kNoCount)
            b.events[i].refcount += n;
}

// inject_noput: drop policy, but kex never puts its own reference.
inline void noput(StreamBuilder& b, uint64_t pfn, std::size_t from = 0) {
    auto first = b.events.begin() + static_cast<std::ptrdiff_t>(from);
    b.events.erase(
        std::remove_if(first, b.events.end(),
                       [&](const Event& e) { return of(e, pfn, {KEX_EV_KEX_PAGE_FREE}); }),
        b.events.end());
    never_freed(b, pfn, from);
    raise_refcount(b, pfn, {KEX_EV_SET_DIRTY, KEX_EV_RMAP_REMOVE}, 1, from);
}

inline const std::vector<uint64_t> kInsertSiteStack = {0xffffffffc0001234, 0xffffffff81200000};
inline const std::vector<uint64_t> kKexFreeStack = {0xffffffffc0001100, 0xffffffff81200100};

// inject_extra_get as kex does it: one more get_page once the page is
// mapped, after kex:kex_page_insert, before (drop) kex's put.
inline void extra_get(StreamBuilder& b, uint64_t pfn) {
    never_freed(b, pfn);
    raise_refcount(b, pfn, {KEX_EV_KEX_PAGE_FREE, KEX_EV_SET_DIRTY, KEX_EV_RMAP_REMOVE});
    for (Event& e : b.events)
        if (of(e, pfn, {KEX_EV_KEX_PAGE_INSERT}))
            e.stack = kInsertSiteStack;
}

// inject_fail_leak: the failing page (and, under keep, those before it) is
// never put by kex.
inline void fail_leak(StreamBuilder& b, uint64_t pfn) {
    b.events.erase(
        std::remove_if(b.events.begin(), b.events.end(),
                       [&](const Event& e) { return of(e, pfn, {KEX_EV_KEX_PAGE_FREE}); }),
        b.events.end());
    never_freed(b, pfn);
}

inline std::vector<Verdict> verdicts(const LeakReport& l) {
    std::vector<Verdict> v;
    for (const PageVerdict& p : l.pages)
        v.push_back(p.verdict);
    return v;
}

inline std::set<uint32_t> indexes_with(const Report& r, const LeakReport& l, Verdict v) {
    std::set<uint32_t> s;
    for (const PageVerdict& p : l.pages)
        if (p.verdict == v)
            s.insert(r.pages[p.life].index);
    return s;
}

inline const PageVerdict& page_at(const Report& r, const LeakReport& l, uint32_t index) {
    for (const PageVerdict& p : l.pages)
        if (r.pages[p.life].index == index)
            return p;
    static PageVerdict none;
    ADD_FAILURE() << "no page with index " << index;
    return none;
}

inline std::vector<RefSite> sites(const PageVerdict& v, bool with_zero = false) {
    std::vector<RefSite> s;
    for (const RefChange& c : v.changes)
        if (c.delta || with_zero)
            s.push_back(c.site);
    return s;
}

inline std::vector<int32_t> deltas(const PageVerdict& v) {
    std::vector<int32_t> d;
    for (const RefChange& c : v.changes)
        if (c.delta)
            d.push_back(c.delta);
    return d;
}

inline std::string describe(const Report& r, const LeakReport& l) {
    std::string s;
    for (const PageVerdict& p : l.pages) {
        s += "page " + std::to_string(r.pages[p.life].index) + ": " +
             std::string(verdict_name(p.verdict)) + " (" + p.reason + ");";
        for (const RefChange& c : p.changes)
            s += " " + std::string(ref_site_key(c.site)) + (c.delta >= 0 ? "+" : "") +
                 std::to_string(c.delta) + "@" + std::string(step_kind_name(c.kind)) +
                 (c.inferred ? "?" : "");
        s += "\n";
    }
    return s;
}

} // namespace kextrace::test
