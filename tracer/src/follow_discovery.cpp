// follow_discovery.cpp - see follow_discovery.h.
#include "follow_discovery.h"

#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <fnmatch.h>

#include <fmt/format.h>

namespace kextrace {

namespace {

// t with const/volatile/restrict/type tags and typedefs peeled off.
const btf_type* peel(const btf* b, uint32_t id) {
    const btf_type* t = btf__type_by_id(b, id);
    while (t && (btf_is_mod(t) || btf_is_typedef(t)))
        t = btf__type_by_id(b, t->type);
    return t;
}

// The name of the struct (or forward-declared struct) id is, after peeling.
std::string_view struct_name(const btf* b, uint32_t id) {
    const btf_type* s = peel(b, id);
    if (!s || !(btf_is_struct(s) || (btf_is_fwd(s) && !btf_kflag(s))))
        return {};
    return btf__name_by_offset(b, s->name_off);
}

// An array of pages: a pointer to a pointer to struct page, folio or
// encoded_page (whose low bits carry flags).
bool page_array_pointer(const btf* b, uint32_t id) {
    const btf_type* t = peel(b, id);
    if (!t || !btf_is_ptr(t))
        return false;
    const btf_type* inner = peel(b, t->type);
    if (!inner || !btf_is_ptr(inner))
        return false;
    std::string_view n = struct_name(b, inner->type);
    return n == "page" || n == "folio" || n == "encoded_page";
}

// How a parameter of type id holds pages, if it does (before the length
// check of an array, done by the caller).
std::optional<FollowArgKind> page_holder(const btf* b, uint32_t id) {
    // release_pages_arg by name: pahole drops the members of a transparent
    // union (vlen 0 in the kernels' BTF), so its type says nothing more
    for (const btf_type* q = btf__type_by_id(b, id); q && (btf_is_mod(q) || btf_is_typedef(q));
         q = btf__type_by_id(b, q->type))
        if (btf_is_typedef(q) &&
            std::string_view(btf__name_by_offset(b, q->name_off)) == "release_pages_arg")
            return FollowArgKind::array;
    const btf_type* t = peel(b, id);
    if (!t)
        return std::nullopt;
    if (btf_is_ptr(t)) {
        std::string_view n = struct_name(b, t->type);
        if (n == "page")
            return FollowArgKind::page;
        if (n == "folio")
            return FollowArgKind::folio;
        if (n == "folio_batch")
            return FollowArgKind::batch;
        if (page_array_pointer(b, id))
            return FollowArgKind::array;
        return std::nullopt;
    }
    // release_pages(release_pages_arg, int): a transparent union of page
    // array pointers, passed by value in one register
    if (btf_is_union(t) && btf_vlen(t) > 0 && t->size == 8) {
        const btf_member* m = btf_members(t);
        for (unsigned i = 0; i < btf_vlen(t); i++)
            if (!page_array_pointer(b, m[i].type))
                return std::nullopt;
        return FollowArgKind::array;
    }
    return std::nullopt;
}

// An array's length: an integer (int, unsigned int, long, ...).
bool is_integer(const btf* b, uint32_t id) {
    const btf_type* t = peel(b, id);
    return t && btf_is_int(t) && t->size >= 4;
}

// How many of the six argument registers a parameter of this type takes
// (System V x86-64, integer classes only, as in the kernel): up to 8 bytes
// one, up to 16 two, more goes on the stack.
unsigned registers_of(const btf* b, uint32_t id) {
    long long size = btf__resolve_size(b, id);
    if (size <= 8)
        return 1;
    return size <= 16 ? 2 : 0;
}

// A FUNC's page and folio arguments; false (with *why) when it has some but
// none can be read from a register.
bool page_args(const btf* b, const btf_type* proto, std::vector<FollowArg>* out,
               std::string_view* why) {
    const btf_param* p = btf_params(proto);
    unsigned reg = 0;
    bool on_stack = false;
    for (unsigned i = 0; i < btf_vlen(proto); i++) {
        if (p[i].type == 0) // "...": the named arguments before it are registers too
            break;
        unsigned n = registers_of(b, p[i].type);
        if (reg + n > kFollowMaxArg)
            n = 0; // the whole argument goes on the stack
        auto kind = page_holder(b, p[i].type);
        // an array needs its length in the next register
        if (kind == FollowArgKind::array &&
            !(n == 1 && reg + 2 <= kFollowMaxArg && i + 1 < btf_vlen(proto) && p[i + 1].type != 0 &&
              is_integer(b, p[i + 1].type)))
            kind.reset();
        if (kind) {
            if (n == 0)
                on_stack = true;
            else
                out->push_back({static_cast<uint8_t>(reg + 1), *kind});
        }
        reg += n;
    }
    if (on_stack && out->empty()) {
        *why = kFollowWhyStackArg;
        return false;
    }
    return true;
}

// Sorted by name, one per name: the same name with other page arguments in
// another FUNC (static functions of two files) is a conflict.
void dedup_by_name(std::vector<FollowFunc>& funcs, std::vector<FollowLeftOut>& unusable) {
    std::stable_sort(funcs.begin(), funcs.end(),
                     [](const FollowFunc& a, const FollowFunc& b) { return a.name < b.name; });
    std::vector<FollowFunc> out;
    for (std::size_t i = 0; i < funcs.size();) {
        std::size_t j = i + 1;
        bool same = true;
        for (; j < funcs.size() && funcs[j].name == funcs[i].name; j++)
            same = same && funcs[j].args == funcs[i].args;
        if (same)
            out.push_back(std::move(funcs[i]));
        else
            unusable.push_back({funcs[i].name, std::string(kFollowWhyBtfConflict)});
        i = j;
    }
    funcs = std::move(out);
}

bool matches_any(const std::vector<std::string>& globs, const std::string& name,
                 const std::string** which = nullptr) {
    for (const auto& g : globs)
        if (::fnmatch(g.c_str(), name.c_str(), 0) == 0) {
            if (which)
                *which = &g;
            return true;
        }
    return false;
}

// Why the filter leaves name out, "" if it does not.
std::string why_left_out(const FollowFilter& f, const std::string& name) {
    const std::string* glob = nullptr;
    if (matches_any(f.exclude, name, &glob))
        return "--follow-exclude " + *glob;
    if (auto w = f.watched.find(name); w != f.watched.end())
        return fmt::format("watched by the plan's {} step with a BPF trampoline (a kprobe "
                           "beside it would share its ftrace site)",
                           w->second);
    if (f.blacklist.contains(name))
        return std::string(kFollowWhyBlacklist);
    for (const auto& h : follow_hazards())
        if (::fnmatch(h.glob, name.c_str(), 0) == 0)
            return fmt::format("hazard {}: {}", h.glob, h.why);
    if (f.traceable) {
        auto t = f.traceable->find(name);
        if (t == f.traceable->end())
            return std::string(kFollowWhyNotrace);
        if (t->second > 1)
            return std::string(kFollowWhyAmbiguous);
    }
    return {};
}

} // namespace

std::string_view follow_arg_kind_name(FollowArgKind k) {
    switch (k) {
    case FollowArgKind::folio:
        return "folio";
    case FollowArgKind::batch:
        return "folio_batch";
    case FollowArgKind::array:
        return "page array";
    default:
        return "page";
    }
}

FollowCandidates follow_candidates(const btf* b) {
    FollowCandidates c;
    if (!b)
        return c;
    uint32_t n = btf__type_cnt(b);
    for (uint32_t id = 1; id < n; id++) {
        const btf_type* fn = btf__type_by_id(b, id);
        if (!fn || !btf_is_func(fn))
            continue;
        const btf_type* proto = btf__type_by_id(b, fn->type);
        if (!proto || !btf_is_func_proto(proto))
            continue;
        FollowFunc f{btf__name_by_offset(b, fn->name_off), {}};
        std::string_view why;
        if (!page_args(b, proto, &f.args, &why))
            c.unusable.push_back({f.name, std::string(why)});
        else if (!f.args.empty())
            c.funcs.push_back(std::move(f));
    }
    dedup_by_name(c.funcs, c.unusable);
    std::sort(c.unusable.begin(), c.unusable.end(),
              [](const auto& a, const auto& b) { return a.name < b.name; });
    c.unusable.erase(std::unique(c.unusable.begin(), c.unusable.end(),
                                 [](const auto& a, const auto& b) { return a.name == b.name; }),
                     c.unusable.end());
    return c;
}

// Kept short: each entry is a path the probes themselves run on or under, where
// a probe would recurse or fire in a context that cannot take it.
const std::vector<FollowHazard>& follow_hazards() {
    static const std::vector<FollowHazard> h = {
        {"bpf_*", "BPF's own: maps, the ring buffer, trampolines (the probes run on them)"},
        {"*ringbuf*", "the BPF ring buffer every record goes through"},
        {"ring_buffer_*", "ftrace's ring buffer (tracefs kprobe events write there)"},
        {"rb_*", "ftrace's ring buffer internals"},
        {"*text_poke*", "live kernel text patching: every attach and detach runs it"},
        {"*ftrace*", "the function-entry sites the probes sit on"},
        {"__bpf_trace_*",
         "raw tracepoints' BPF entry: the tracer's own tp_btf programs run inside"},
        {"trace_event_raw_event_*", "tracepoints' tracefs handlers (the tracer's tracepoints)"},
        {"__traceiter_*", "tracepoint dispatch: runs every probe of a tracepoint"},
        {"__probestub_*", "tracepoint stubs: no code of the page's path"},
        {"*printk*", "printk: the verifier's and libbpf's messages, NMI-time output"},
        {"perf_*", "perf events: the kprobe PMU and the ring of a probe's missed counts"},
        {"free_pcppages_bulk", "per-cpu page lists, drained under the zone lock with "
                               "interrupts off (also from NMI-unsafe drain paths)"},
        {"__free_one_page", "buddy merging under the zone lock, interrupts off"},
        {"*rmqueue*", "per-cpu and buddy allocation under the zone lock, interrupts off"},
    };
    return h;
}

FollowSet select_follow(const FollowCandidates& c, const FollowFilter& f) {
    FollowSet s;
    s.candidates = c.funcs.size() + c.unusable.size();
    for (const auto& u : c.unusable) {
        if (!f.globs.empty() && !matches_any(f.globs, u.name))
            s.not_matched++;
        else
            s.left_out.push_back(u);
    }
    for (const auto& fn : c.funcs) {
        if (!f.globs.empty() && !matches_any(f.globs, fn.name)) {
            s.not_matched++;
            continue;
        }
        if (std::string why = why_left_out(f, fn.name); !why.empty())
            s.left_out.push_back({fn.name, std::move(why)});
        else
            s.chosen.push_back(fn);
    }
    std::stable_sort(s.left_out.begin(), s.left_out.end(),
                     [](const auto& a, const auto& b) { return a.reason < b.reason; });
    return s;
}

void BtfDeleter::operator()(btf* b) const {
    btf__free(b);
}

Result<BtfPtr> load_follow_btf(const std::string& path) {
    errno = 0;
    btf* b = path.empty() ? btf__load_vmlinux_btf() : btf__parse(path.c_str(), nullptr);
    int err = libbpf_get_error(b);
    if (!b || err) {
        int e = err ? err : -errno;
        return Error{fmt::format("--follow needs the kernel's BTF ({}): {}",
                                 path.empty() ? "/sys/kernel/btf/vmlinux" : path,
                                 e ? errstr(e) : "not readable")};
    }
    return BtfPtr(b);
}

} // namespace kextrace
