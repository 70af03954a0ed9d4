// kextrace/owner.h - who owns a driver's mapping: the module (or built-in
// subsystem) that implements its mmap, named from kernel symbols.
//
// Input: the KEX_EV_DRIVER_VMA payload (file, f_op, the mmap handler, vm_ops)
// and the call chain that inserted its first page; a Symbolizer turns the
// pointers into "name+0xoff [module]". Pure: tests pass a table.
#pragma once

#include <kextrace/core.h>
#include <kextrace/output.h>

#include <span>
#include <string>

namespace kextrace {

struct DriverOwner {
    std::string name;         // "af_packet" (a module), or a built-in's name ("bpf_map", "perf")
    bool module = false;      // name is a loadable module's
    std::string handler;      // the mmap handler: "packet_mmap"
    std::string f_op;         // the file's file_operations: "socket_file_ops"
    std::string vm_ops;       // vma->vm_ops at the first insert: "" when not set yet
    std::string fault;        // its fault handler: "perf_mmap_fault", "" = none
    std::string caller;       // the first frame of the inserting chain outside the core insert
                              // and fault paths: "packet_mmap+0x1a4 [af_packet]" ("" on the
                              // fault path: the fault handler had returned)
    std::string file;         // "socket:[1234]", "/dev/kex", "anon_inode:bpf-map"
    std::string allocated_by; // the first frame of its pages' allocating chain outside the
                              // page allocator: "packet_set_ring+0x1e6" ("" when unseen)
};

// "name+0x1a [mod]" -> {"name", "mod"}; "" parts when absent.
std::pair<std::string, std::string> split_symbol(std::string_view sym);

DriverOwner driver_owner(const VmaInfo& vma, std::span<const uint64_t> stack,
                         const Symbolizer& symbolize);
// The owner of a driver mapping of a report (Mapping::driver), from its VMA
// record and the stack of its first insert; name "?" when the VMA record was lost.
DriverOwner mapping_owner(const Report& r, const Mapping& m, const Symbolizer& symbolize);
// The "owner" object of a driver mapping in the JSON report (docs/json-schema.md).
nlohmann::json owner_json(const Report& r, const Mapping& m, const Symbolizer& symbolize);
// Its "pfn_maps" array: the remap_pfn_range calls into it.
nlohmann::json pfnmaps_json(const Mapping& m);
// One pfn map as the text report says it: "pfns 0xf0-0xff (16 pages) at
// 0x7f..., remap_pfn_range ok".
std::string pfnmap_text(const Mapping::PfnMap& p);

} // namespace kextrace
