// Unit tests of --follow's discovery (tracer/src/follow_discovery) on a tiny
// BTF built here with libbpf's btf__add_* API: no kernel's BTF needed.
#include "follow_discovery.h"
#include "probe_plan.h"

#include <bpf/btf.h>

#include <gtest/gtest.h>

using namespace kextrace;

namespace {

// A BTF with struct page, struct folio and the types around them, and
// functions added one by one.
class TinyBtf {
  public:
    TinyBtf() : b_(btf__new_empty()) {
        int_ = btf__add_int(b_.get(), "int", 4, BTF_INT_SIGNED);
        long_ = btf__add_int(b_.get(), "long", 8, BTF_INT_SIGNED);
        page_ = btf__add_struct(b_.get(), "page", 64);
        btf__add_field(b_.get(), "flags", long_, 0, 0);
        folio_ = btf__add_struct(b_.get(), "folio", 64);
        btf__add_field(b_.get(), "flags", long_, 0, 0);
        pair_ = btf__add_struct(b_.get(), "pair", 16); // two registers by value
        btf__add_field(b_.get(), "a", long_, 0, 0);
        btf__add_field(b_.get(), "b", long_, 64, 0);
        big_ = btf__add_struct(b_.get(), "big", 24); // on the stack by value
        btf__add_field(b_.get(), "a", long_, 0, 0);
        btf__add_field(b_.get(), "b", long_, 64, 0);
        btf__add_field(b_.get(), "c", long_, 128, 0);
        page_ptr_ = btf__add_ptr(b_.get(), page_);
        folio_ptr_ = btf__add_ptr(b_.get(), folio_);
    }
    const btf* get() const { return b_.get(); }

    // int name(params...)
    void func(const char* name, std::vector<int> params) {
        int proto = btf__add_func_proto(b_.get(), int_);
        for (int p : params)
            btf__add_func_param(b_.get(), p ? "x" : nullptr, p);
        btf__add_func(b_.get(), name, BTF_FUNC_GLOBAL, proto);
    }

    int int_, long_, page_, folio_, pair_, big_, page_ptr_, folio_ptr_;
    BtfPtr b_;
};

std::vector<FollowArg> args_of(const FollowCandidates& c, const std::string& name) {
    for (const auto& f : c.funcs)
        if (f.name == name)
            return f.args;
    return {};
}

std::string reason_of(const std::vector<FollowLeftOut>& v, const std::string& name) {
    for (const auto& l : v)
        if (l.name == name)
            return l.reason;
    return "";
}

std::vector<std::string> names(const std::vector<FollowFunc>& v) {
    std::vector<std::string> out;
    for (const auto& f : v)
        out.push_back(f.name);
    return out;
}

constexpr FollowArgKind P = FollowArgKind::page;
constexpr FollowArgKind F = FollowArgKind::folio;

} // namespace

TEST(FollowDiscovery, FindsPageAndFolioArgumentsThroughModifiers) {
    TinyBtf t;
    t.func("page_fn", {t.page_ptr_});
    int cfolio = btf__add_ptr(t.b_.get(), btf__add_const(t.b_.get(), t.folio_));
    t.func("folio_fn", {t.int_, cfolio});
    int pgtable = btf__add_typedef(t.b_.get(), "pgtable_t", t.page_ptr_);
    int vpgtable = btf__add_volatile(t.b_.get(), pgtable);
    t.func("typedef_fn", {t.long_, t.long_, vpgtable});
    t.func("both_fn", {t.folio_ptr_, t.int_, t.page_ptr_});
    t.func("none_fn", {t.int_, t.long_});
    t.func("ptrptr_fn", {btf__add_ptr(t.b_.get(), t.page_ptr_)}); // struct page **
    t.func("byvalue_fn", {t.page_});                              // struct page, not a pointer

    FollowCandidates c = follow_candidates(t.get());
    EXPECT_EQ(names(c.funcs),
              (std::vector<std::string>{"both_fn", "folio_fn", "page_fn", "typedef_fn"}));
    EXPECT_EQ(args_of(c, "page_fn"), (std::vector<FollowArg>{{1, P}}));
    EXPECT_EQ(args_of(c, "folio_fn"), (std::vector<FollowArg>{{2, F}}));
    EXPECT_EQ(args_of(c, "typedef_fn"), (std::vector<FollowArg>{{3, P}}));
    EXPECT_EQ(args_of(c, "both_fn"), (std::vector<FollowArg>{{1, F}, {3, P}}));
    EXPECT_TRUE(c.unusable.empty());
}

TEST(FollowDiscovery, FindsBatchesAndArraysWithTheirLength) {
    TinyBtf t;
    btf* b = t.b_.get();
    int fbatch = btf__add_struct(b, "folio_batch", 256);
    btf__add_field(b, "nr", t.int_, 0, 0);
    int encoded = btf__add_fwd(b, "encoded_page", BTF_FWD_STRUCT);
    int page_pp = btf__add_ptr(b, t.page_ptr_);
    int folio_pp = btf__add_ptr(b, t.folio_ptr_);
    int enc_pp = btf__add_ptr(b, btf__add_ptr(b, encoded));
    // release_pages(release_pages_arg, int): a union of array pointers by value
    int arg_union = btf__add_union(b, nullptr, 8);
    btf__add_field(b, "pages", page_pp, 0, 0);
    btf__add_field(b, "folios", folio_pp, 0, 0);
    btf__add_field(b, "encoded_pages", enc_pp, 0, 0);
    int release_arg = btf__add_typedef(b, "release_pages_arg", arg_union);
    t.func("free_unref_folios", {btf__add_ptr(b, fbatch)});
    t.func("release_pages", {release_arg, t.int_});
    t.func("free_pages_and_swap_cache", {enc_pp, t.int_});
    t.func("put_folios", {t.int_, folio_pp, t.long_});
    t.func("no_length", {page_pp, t.page_ptr_}); // an array with no length after it
    t.func("length_on_stack", {t.int_, t.int_, t.int_, t.int_, t.int_, page_pp, t.int_});
    t.func("other_ptrptr", {btf__add_ptr(b, btf__add_ptr(b, t.int_)), t.int_});
    // the kernels' BTF: pahole keeps the transparent union without members
    int bare = btf__add_typedef(b, "release_pages_arg", btf__add_union(b, nullptr, 8));
    t.func("release_pages_bare", {bare, t.int_});
    t.func("other_union", {btf__add_union(b, "u", 8), t.int_});

    FollowCandidates c = follow_candidates(t.get());
    constexpr FollowArgKind B = FollowArgKind::batch, A = FollowArgKind::array;
    EXPECT_EQ(args_of(c, "free_unref_folios"), (std::vector<FollowArg>{{1, B}}));
    EXPECT_EQ(args_of(c, "release_pages"), (std::vector<FollowArg>{{1, A}}));
    EXPECT_EQ(args_of(c, "free_pages_and_swap_cache"), (std::vector<FollowArg>{{1, A}}));
    EXPECT_EQ(args_of(c, "put_folios"), (std::vector<FollowArg>{{2, A}}));
    EXPECT_EQ(args_of(c, "no_length"), (std::vector<FollowArg>{{2, P}}));
    EXPECT_TRUE(args_of(c, "length_on_stack").empty());
    EXPECT_TRUE(args_of(c, "other_ptrptr").empty());
    EXPECT_EQ(args_of(c, "release_pages_bare"), (std::vector<FollowArg>{{1, A}}));
    EXPECT_TRUE(args_of(c, "other_union").empty());
    EXPECT_EQ(follow_arg_kind_name(B), "folio_batch");
    EXPECT_EQ(follow_arg_kind_name(A), "page array");
}

TEST(FollowDiscovery, CountsRegistersNotParameters) {
    TinyBtf t;
    // a 16-byte struct takes two registers, a 24-byte one none (stack)
    t.func("pair_fn", {t.pair_, t.page_ptr_});
    t.func("big_fn", {t.big_, t.page_ptr_});
    t.func("sixth_fn", {t.int_, t.int_, t.int_, t.int_, t.int_, t.folio_ptr_});
    t.func("seventh_fn", {t.int_, t.int_, t.int_, t.int_, t.int_, t.int_, t.page_ptr_});
    // the pair no longer fits in registers 6..7: it goes on the stack, the
    // page after it still takes register 6
    t.func("spill_fn", {t.int_, t.int_, t.int_, t.int_, t.int_, t.pair_, t.page_ptr_});
    t.func("variadic_fn", {t.page_ptr_, 0});

    FollowCandidates c = follow_candidates(t.get());
    EXPECT_EQ(args_of(c, "pair_fn"), (std::vector<FollowArg>{{3, P}}));
    EXPECT_EQ(args_of(c, "big_fn"), (std::vector<FollowArg>{{1, P}}));
    EXPECT_EQ(args_of(c, "sixth_fn"), (std::vector<FollowArg>{{6, F}}));
    EXPECT_EQ(args_of(c, "spill_fn"), (std::vector<FollowArg>{{6, P}}));
    EXPECT_EQ(args_of(c, "variadic_fn"), (std::vector<FollowArg>{{1, P}}));
    EXPECT_EQ(reason_of(c.unusable, "seventh_fn"), kFollowWhyStackArg);
}

TEST(FollowDiscovery, DuplicateNamesConflictOnlyWhenTheirArgumentsDiffer) {
    TinyBtf t;
    t.func("same_fn", {t.page_ptr_});
    t.func("same_fn", {t.page_ptr_, t.int_});
    t.func("clash_fn", {t.page_ptr_});
    t.func("clash_fn", {t.int_, t.page_ptr_});

    FollowCandidates c = follow_candidates(t.get());
    EXPECT_EQ(names(c.funcs), (std::vector<std::string>{"same_fn"}));
    EXPECT_EQ(reason_of(c.unusable, "clash_fn"), kFollowWhyBtfConflict);
}

TEST(FollowDiscovery, NoBtfNoCandidates) {
    EXPECT_TRUE(follow_candidates(nullptr).funcs.empty());
    EXPECT_FALSE(load_follow_btf("/nonexistent/vmlinux").ok());
}

TEST(FollowSelect, FiltersSayWhy) {
    FollowCandidates c;
    for (const char* n : {"folio_add_file_rmap_ptes", "folio_mark_dirty", "free_pcppages_bulk",
                          "bpf_ringbuf_free", "set_pte_range", "vm_normal_page", "page_blacklisted",
                          "notrace_fn", "twice_fn", "unmap_page_range"})
        c.funcs.push_back({n, {{1, P}}});
    c.unusable.push_back({"stack_fn", std::string(kFollowWhyStackArg)});

    FollowFilter f;
    f.exclude = {"unmap_*"};
    f.blacklist = {"page_blacklisted"};
    f.watched = {{"set_pte_range", "pte set"}};
    f.traceable = count_traceable_functions(
        "folio_add_file_rmap_ptes\nfolio_mark_dirty\nfree_pcppages_bulk\nbpf_ringbuf_free\n"
        "set_pte_range\nvm_normal_page\npage_blacklisted\ntwice_fn\ntwice_fn\n"
        "unmap_page_range\nvm_normal_page [kvm]\n");

    FollowSet s = select_follow(c, f);
    EXPECT_EQ(s.candidates, 11u);
    EXPECT_EQ(s.not_matched, 0u);
    EXPECT_EQ(names(s.chosen), (std::vector<std::string>{"folio_add_file_rmap_ptes",
                                                         "folio_mark_dirty", "vm_normal_page"}));
    EXPECT_EQ(reason_of(s.left_out, "unmap_page_range"), "--follow-exclude unmap_*");
    EXPECT_EQ(reason_of(s.left_out, "page_blacklisted"), kFollowWhyBlacklist);
    EXPECT_EQ(reason_of(s.left_out, "notrace_fn"), kFollowWhyNotrace);
    EXPECT_EQ(reason_of(s.left_out, "twice_fn"), kFollowWhyAmbiguous);
    EXPECT_EQ(reason_of(s.left_out, "stack_fn"), kFollowWhyStackArg);
    EXPECT_TRUE(
        reason_of(s.left_out, "set_pte_range").starts_with("watched by the plan's pte set"));
    EXPECT_TRUE(reason_of(s.left_out, "free_pcppages_bulk").starts_with("hazard "));
    EXPECT_TRUE(reason_of(s.left_out, "bpf_ringbuf_free").starts_with("hazard bpf_*"));
    EXPECT_EQ(s.chosen.size() + s.left_out.size() + s.not_matched, s.candidates);
}

TEST(FollowSelect, GlobsNarrowAndUnknownTraceableIsNotChecked) {
    FollowCandidates c;
    for (const char* n : {"folio_add_file_rmap_ptes", "folio_mark_dirty", "vm_normal_page"})
        c.funcs.push_back({n, {{1, F}}});
    c.unusable.push_back({"stack_fn", std::string(kFollowWhyStackArg)});
    FollowFilter f;
    f.globs = {"folio_*", "stack_*"};
    FollowSet s = select_follow(c, f);
    EXPECT_EQ(names(s.chosen),
              (std::vector<std::string>{"folio_add_file_rmap_ptes", "folio_mark_dirty"}));
    EXPECT_EQ(s.not_matched, 1u);
    EXPECT_EQ(s.left_out.size(), 1u); // stack_fn matched the glob, and says why it is out
}

TEST(FollowSelect, HazardsAreExplained) {
    for (const auto& h : follow_hazards()) {
        EXPECT_NE(std::string(h.glob), "");
        EXPECT_GT(std::string(h.why).size(), 10u) << h.glob;
    }
}

TEST(FollowTraceable, CountsNamesListedSeveralTimesAndSkipsModules) {
    auto m = count_traceable_functions("a\nb\na\nc [kvm]\n#comment\nd.cold\n");
    EXPECT_EQ(m["a"], 2u);
    EXPECT_EQ(m["b"], 1u);
    EXPECT_FALSE(m.contains("c"));
    EXPECT_EQ(m["d.cold"], 1u);
}
