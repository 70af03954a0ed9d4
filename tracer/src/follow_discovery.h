// follow_discovery.h - which kernel functions --follow watches: every
// function of the kernel's BTF that takes a struct page * or struct folio *
// (or a folio_batch, or an array of pages with its length) in a register
// argument, narrowed by the user's globs, minus what cannot be
// probed safely (kprobe blacklist, notrace, ambiguous names, the tracer's own
// paths, what the curated plan watches with a BPF trampoline). Every
// function left out says why.
//
// Pure: the BTF comes in as an object (a file, or one built in a test), the
// blacklist and the traceable names as sets, so tests need no kernel.
//
// kextrace --follow --plan prints a FollowSet like:
//   follow: 1712 functions with a struct page * / struct folio * argument
//     chosen 1630 (page 812, folio 818)
//     left out 82:
//       kprobe blacklist (9): __free_one_page, ...
//       not traceable (notrace, inlined) (61): ...
#pragma once

#include "error.h"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

struct btf;

namespace kextrace {

// Registers carry the first six integer arguments on x86-64: a page or folio
// in a later one is on the stack, which the BPF side does not read.
inline constexpr unsigned kFollowMaxArg = 6;

// How an argument holds pages (the values of enum kex_follow_kind):
//   page   struct page *
//   folio  struct folio *
//   batch  struct folio_batch * (its nr and folios[] say which)
//   array  struct page ** / struct folio ** / struct encoded_page **, or a
//          union of such pointers (release_pages_arg), its length in the
//          very next argument, an integer in a register
enum class FollowArgKind : uint8_t { page, folio, batch, array };
std::string_view
follow_arg_kind_name(FollowArgKind k); // "page", "folio", "folio_batch", "page array"

// One argument of a followed function that holds a page or a folio.
struct FollowArg {
    uint8_t reg; // 1-based register argument (a 16-byte struct before it takes two)
    FollowArgKind kind;
    bool operator==(const FollowArg&) const = default;
};

// A function --follow can watch, as BTF describes it.
struct FollowFunc {
    std::string name;
    std::vector<FollowArg> args; // at least one, in register order
};

// A function with a page or folio argument that is not watched, and why.
struct FollowLeftOut {
    std::string name;
    std::string reason; // one of the kFollowWhy* texts, or "--follow-exclude GLOB"
};

// Reasons, shared by the text report and the tests.
inline constexpr std::string_view kFollowWhyStackArg =
    "page or folio only past the 6 register arguments";
inline constexpr std::string_view kFollowWhyBtfConflict =
    "BTF has functions of this name with different page arguments";
inline constexpr std::string_view kFollowWhyBlacklist = "kprobe blacklist";
inline constexpr std::string_view kFollowWhyNotrace =
    "not in available_filter_functions (notrace or inlined)";
inline constexpr std::string_view kFollowWhyAmbiguous =
    "several functions of this name: the attach may take another one";

// What the BTF offers: every function with a page or folio argument (sorted by
// name, one per name), and those that cannot be followed from their
// prototype alone (stack arguments only, conflicting duplicates).
struct FollowCandidates {
    std::vector<FollowFunc> funcs;
    std::vector<FollowLeftOut> unusable;
};
FollowCandidates follow_candidates(const btf* b);

// A built-in hazard: functions the probes must not sit on, by glob.
struct FollowHazard {
    const char* glob;
    const char* why;
};
const std::vector<FollowHazard>& follow_hazards();

// The narrowing: globs and what this kernel and the plan say.
struct FollowFilter {
    std::vector<std::string> globs;   // --follow GLOB (fnmatch); empty = every function
    std::vector<std::string> exclude; // --follow-exclude GLOB...
    std::set<std::string> blacklist;  // /sys/kernel/debug/kprobes/blacklist
    // available_filter_functions: name -> how often vmlinux lists it (modules'
    // functions are not in vmlinux's BTF); nullopt: unknown, not checked
    std::optional<std::map<std::string, unsigned>> traceable;
    // functions the curated plan watches with a BPF trampoline (fentry/fexit):
    // a kprobe beside one shares its ftrace site (docs/architecture.md), and
    // the page's life has the step already. name -> the plan's step
    std::map<std::string, std::string> watched;
};

// The result: chosen functions (sorted by name), what was left out (sorted by
// reason, then name) and how many did not match the globs.
struct FollowSet {
    std::vector<FollowFunc> chosen;
    std::vector<FollowLeftOut> left_out;
    std::size_t candidates = 0;  // functions with a page or folio argument
    std::size_t not_matched = 0; // of them, outside the globs or their own choice
};
FollowSet select_follow(const FollowCandidates& c, const FollowFilter& f);

// The kernel's BTF, owned. load_follow_btf("") reads the running kernel's
// (/sys/kernel/btf/vmlinux), else the file at path (raw BTF or an ELF).
struct BtfDeleter {
    void operator()(btf* b) const;
};
using BtfPtr = std::unique_ptr<btf, BtfDeleter>;
Result<BtfPtr> load_follow_btf(const std::string& path);

} // namespace kextrace
