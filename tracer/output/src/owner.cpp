// owner.cpp - see kextrace/owner.h.
#include <kextrace/owner.h>

#include "format.h"

#include <array>

namespace kextrace {

namespace {

// Functions of the kernel's own insert and fault paths, between the driver
// and the PTE: the owner is whoever called them (on the fault path nobody
// did: the driver's fault handler returned its page before the install).
// remap_pfn_range covers 7.2's remap_pfn_range_track, on top of its stacks.
bool core_insert_path(std::string_view fn) {
    constexpr std::array<std::string_view, 24> prefixes = {
        "insert_page",        "vm_insert_page", "__vm_insert",        "vmf_insert",
        "remap_pfn_range",    "io_remap_pfn",   "remap_vmalloc",      "validate_page",
        "__get_locked_pte",   "vm_map_pages",   "do_set_pte",         "set_pte_range",
        "finish_fault",       "do_read_fault",  "do_shared_fault",    "do_cow_fault",
        "do_fault",           "__do_fault",     "__handle_mm_fault",  "handle_mm_fault",
        "do_user_addr_fault", "exc_page_fault", "asm_exc_page_fault", "do_page_mkwrite",
    };
    for (std::string_view p : prefixes)
        if (fn.starts_with(p))
            return true;
    return false;
}

// The page allocator's own functions and its thin wrappers, between the
// allocation tracepoint and whoever asked for the pages.
bool page_allocator(std::string_view fn) {
    constexpr std::array<std::string_view, 12> prefixes = {
        "__alloc_pages",      "alloc_pages",   "__get_free_pages", "get_free_pages",
        "get_zeroed_page",    "__folio_alloc", "folio_alloc",      "__alloc_frozen_pages",
        "alloc_frozen_pages", "__vmalloc",     "vmalloc",          "__kmalloc_large",
    };
    for (std::string_view p : prefixes)
        if (fn.starts_with(p))
            return true;
    return false;
}

// The first frame of stack outside the functions skip names, as symbolized.
std::string first_frame_outside(std::span<const uint64_t> stack, const Symbolizer& symbolize,
                                bool (*skip)(std::string_view)) {
    for (uint64_t a : stack) {
        std::string s = symbolize ? symbolize(a) : std::string();
        const std::string fn = split_symbol(s).first;
        if (!fn.empty() && !skip(fn))
            return s;
    }
    return {};
}

std::string strip_suffix(std::string s, std::initializer_list<std::string_view> suffixes) {
    for (std::string_view x : suffixes)
        if (s.size() > x.size() && s.ends_with(x))
            return s.substr(0, s.size() - x.size());
    return s;
}

} // namespace

std::pair<std::string, std::string> split_symbol(std::string_view sym) {
    std::string mod;
    if (auto b = sym.find(" ["); b != std::string_view::npos && sym.ends_with(']')) {
        mod = std::string(sym.substr(b + 2, sym.size() - b - 3));
        sym = sym.substr(0, b);
    }
    if (auto plus = sym.find('+'); plus != std::string_view::npos)
        sym = sym.substr(0, plus);
    return {std::string(sym), mod};
}

DriverOwner driver_owner(const VmaInfo& v, std::span<const uint64_t> stack,
                         const Symbolizer& symbolize) {
    auto sym = [&](uint64_t a) {
        return a && symbolize ? split_symbol(symbolize(a)) : std::pair<std::string, std::string>{};
    };
    DriverOwner o;
    o.file = vma_file_name(v);
    auto [handler, handler_mod] = sym(v.mmap);
    auto [fop, fop_mod] = sym(v.f_op);
    auto [vmops, vmops_mod] = sym(v.vm_ops);
    auto [fault, fault_mod] = sym(v.fault);
    o.handler = handler;
    o.f_op = fop;
    o.vm_ops = vmops;
    o.fault = fault;
    o.caller = first_frame_outside(stack, symbolize, core_insert_path);
    std::string caller_mod = split_symbol(o.caller).second;
    // The file operations first: a driver on a framework (DRM's GEM helpers,
    // videobuf2) has the framework's mmap handler and fault helper, but its
    // own file_operations (vgem: vgem_driver_fops [vgem], drm_gem_mmap [drm]).
    for (const std::string* m : {&fop_mod, &handler_mod, &caller_mod, &vmops_mod, &fault_mod})
        if (!m->empty()) {
            o.name = *m;
            o.module = true;
            return o;
        }
    // Built in: name it after its file operations ("bpf_map_fops" ->
    // "bpf_map"), or a socket's handler ("unix_mmap" -> "unix").
    // A socket family is named as its module would be ("packet_mmap" ->
    // "af_packet", the name of net/packet/af_packet.c built as a module).
    if (!fop.empty() && v.magic != kSockfsMagic)
        o.name = strip_suffix(fop, {"_fops", "_file_operations", "_file_ops", "_ops"});
    else if (!handler.empty() && v.magic == kSockfsMagic)
        o.name = "af_" + strip_suffix(handler, {"_mmap"});
    else if (!handler.empty())
        o.name = strip_suffix(handler, {"_mmap"});
    else if (!o.caller.empty())
        o.name = split_symbol(o.caller).first;
    return o;
}

DriverOwner mapping_owner(const Report& r, const Mapping& m, const Symbolizer& symbolize) {
    if (!m.vma) {
        DriverOwner o;
        o.name = "?";
        return o;
    }
    DriverOwner o = driver_owner(*m.vma, r.stack(m.stack_id), symbolize);
    o.allocated_by = first_frame_outside(r.stack(m.alloc_stack_id), symbolize, page_allocator);
    return o;
}

nlohmann::json owner_json(const Report& r, const Mapping& m, const Symbolizer& symbolize) {
    using nlohmann::json;
    const DriverOwner o = mapping_owner(r, m, symbolize);
    auto str = [](const std::string& v) { return v.empty() ? json(nullptr) : json(v); };
    return {{"name", o.name},
            {"module", o.module},
            {"file", str(o.file)},
            {"mmap", str(o.handler)},
            {"f_op", str(o.f_op)},
            {"vm_ops", str(o.vm_ops)},
            {"fault", str(o.fault)},
            {"mapped_by", m.by_fault ? "fault" : "insert"},
            {"inserted_by", str(o.caller)},
            {"allocated_by", str(o.allocated_by)},
            {"allocs_seen", m.allocs_seen},
            {"vm_flags", detail::hex(m.vm_flags)},
            {"flags", vm_flags_name(m.vm_flags)},
            {"stack", m.stack_id ? json(m.stack_id) : json(nullptr)}};
}

nlohmann::json pfnmaps_json(const Mapping& m) {
    using nlohmann::json;
    json a = json::array();
    for (const Mapping::PfnMap& p : m.pfnmaps)
        a.push_back({{"pfn", p.pfn},
                     {"pages", (p.bytes + kPageSize - 1) / kPageSize},
                     {"addr", detail::hex(p.addr)},
                     {"ts", p.ts},
                     {"via", p.at_fault ? "vmf_insert_pfn_prot" : "remap_pfn_range"},
                     {"ret", p.ret ? json(*p.ret) : json(nullptr)}});
    return a;
}

std::string pfnmap_text(const Mapping::PfnMap& p) {
    // include/linux/mm_types.h: VM_FAULT_NOPAGE, a pfn fault handler's success
    constexpr int64_t kFaultNoPage = 0x100;
    const uint64_t n = (p.bytes + kPageSize - 1) / kPageSize;
    std::string s = n == 1 ? "pfn " + detail::hex(p.pfn)
                           : "pfns " + detail::hex(p.pfn) + "-" +
                                 detail::hex(p.pfn + (n ? n - 1 : 0)) + " (" + std::to_string(n) +
                                 " pages)";
    s += " at " + detail::hex(p.addr) +
         (p.at_fault ? ", vmf_insert_pfn_prot at a fault " : ", remap_pfn_range ");
    if (!p.ret)
        return s + "return not seen";
    if (*p.ret == (p.at_fault ? kFaultNoPage : 0))
        return s + "ok";
    return s + (p.at_fault ? "vm_fault_t " + detail::hex(static_cast<uint64_t>(*p.ret))
                           : std::to_string(*p.ret));
}

} // namespace kextrace
