// A synthetic --follow stream for the tests: two pages of a kex mapping,
// each passing vm_insert_page before its insert, the rmap function after its
// rmap add and __folio_put before its free; page 0 also only_page0; one
// call on a pfn no life has.
#pragma once

#include <kextrace/core.h>
#include <kextrace/stream_builder.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace kextrace::follow_test {

inline constexpr uint64_t kPfn0 = 0x1000;
enum Func : uint32_t { vm_insert_page, rmap_add_fn, folio_put, only_page0 };
inline const std::vector<std::string> kNames = {"vm_insert_page", "folio_add_file_rmap_ptes",
                                                "__folio_put", "only_page0"};

inline Event follow_at(uint64_t ts, uint64_t pfn, uint32_t func, bool folio = true) {
    Event e;
    e.ts = ts;
    e.type = KEX_EV_FOLLOW;
    e.pid = e.tid = 100;
    e.pfn = pfn;
    e.arg0 = KEX_FOLLOW_ARG0(func, folio ? 1 : 3, folio ? KEX_FOLLOW_K_FOLIO : KEX_FOLLOW_K_PAGE);
    e.arg1 = 0xffffea0000040000 + pfn * 64;
    e.refcount = 2;
    e.mapcount = 1;
    return e;
}

inline uint64_t ts_of(const StreamBuilder& b, uint32_t type, uint64_t pfn) {
    for (const auto& e : b.events)
        if (e.type == type && e.pfn == pfn)
            return e.ts;
    ADD_FAILURE() << "no event " << type << " for pfn " << pfn;
    return 0;
}

inline StreamBuilder followed_story() {
    StreamBuilder b;
    b.story({.pages = 2, .pfn0 = kPfn0});
    std::vector<Event> extra;
    for (uint64_t pfn : {kPfn0, kPfn0 + 1}) {
        extra.push_back(follow_at(ts_of(b, KEX_EV_INSERT, pfn) - 1, pfn, vm_insert_page, false));
        extra.push_back(follow_at(ts_of(b, KEX_EV_RMAP_ADD, pfn) + 1, pfn, rmap_add_fn));
        extra.push_back(follow_at(ts_of(b, KEX_EV_PAGE_FREE, pfn) - 1, pfn, folio_put));
    }
    extra.push_back(follow_at(ts_of(b, KEX_EV_RMAP_ADD, kPfn0) + 2, kPfn0, only_page0));
    extra.push_back(follow_at(ts_of(b, KEX_EV_RMAP_ADD, kPfn0) + 3, 0x7777, only_page0));
    b.events.insert(b.events.end(), extra.begin(), extra.end());
    return b;
}

// The story's report, with the functions' names.
inline Report followed_report(const StreamBuilder& b = followed_story()) {
    return correlate(b, {.roots = {100}, .follow_functions = kNames});
}

} // namespace kextrace::follow_test
