// Any driver's pages: the KEX_EV_DRIVER_VMA payload (decode, encode, JSONL),
// the file name it gives, and the owner named from kernel symbols.
#include <kextrace/core.h>
#include <kextrace/jsonl.h>
#include <kextrace/owner.h>

extern "C" {
#include <linux/types.h>
}
#include "kextrace.h"

#include <gtest/gtest.h>

#include <map>

using namespace kextrace;

namespace {

Event vma_event(VmaInfo v, std::vector<uint64_t> stack) {
    Event e;
    e.ts = 42;
    e.type = KEX_EV_DRIVER_VMA;
    e.pid = 7;
    e.tid = 7;
    e.addr = 0x7f0000000000;
    e.arg0 = 0x7f0000008000;
    e.arg1 = 0x10000fb; // VM_MIXEDMAP | VM_SHARED | ...
    e.probe = KEX_P_INSERT;
    e.stack = std::move(stack);
    e.vma = std::make_shared<VmaInfo>(std::move(v));
    return e;
}

VmaInfo packet_socket() {
    VmaInfo v;
    v.vma = 0xffff888003a1b000;
    v.f_op = 0xffffffff82a00100; // socket_file_ops
    v.mmap = 0xffffffffc0400200; // packet_mmap [af_packet]
    v.ino = 12345;
    v.magic = kSockfsMagic;
    v.flags = KEX_VMA_NAME_ROOT;
    v.name = {"PACKET"};
    return v;
}

Symbolizer table(std::map<uint64_t, std::string> t) {
    return [t = std::move(t)](uint64_t a) {
        auto it = t.find(a);
        return it == t.end() ? std::string() : it->second;
    };
}

} // namespace

TEST(DriverVma, RecordCarriesThePayloadBetweenEventAndStack) {
    const Event in = vma_event(packet_socket(), {0xffffffff81001000, 0xffffffffc0400300});
    const auto rec = encode_event(in);
    ASSERT_EQ(rec.size(), KEX_RECORD_SIZE(KEX_EV_DRIVER_VMA, 2));
    ASSERT_EQ(rec.size(), sizeof(kex_event) + sizeof(kex_vma_info) + 16);
    std::string why;
    auto out = decode_event({rec.data(), rec.size()}, &why);
    ASSERT_TRUE(out) << why;
    EXPECT_EQ(out->stack, in.stack);
    ASSERT_TRUE(out->vma);
    EXPECT_EQ(*out->vma, *in.vma);
    // a sample reserved at full depth is trimmed to the record
    auto sample = rec;
    sample.resize(KEX_RECORD_SIZE(KEX_EV_DRIVER_VMA, KEX_STACK_DEPTH));
    EXPECT_EQ(trim_record({sample.data(), sample.size()}).size(), rec.size());
    // a record without room for its payload is refused
    auto cut = rec;
    cut.resize(KEX_EVENT_SIZE(2));
    EXPECT_FALSE(decode_event({cut.data(), cut.size()}, &why));
    EXPECT_NE(why.find("needs"), std::string::npos) << why;
}

TEST(DriverVma, JsonlRoundTripKeepsThePayload) {
    const Event in = vma_event(packet_socket(), {0xffffffff81001000});
    const std::string line = jsonl_event_line(in);
    std::string why;
    auto out = parse_jsonl_event(line, &why);
    ASSERT_TRUE(out) << why << "\n" << line;
    ASSERT_TRUE(out->vma);
    EXPECT_EQ(*out->vma, *in.vma);
    // events without a payload have no "vma" key
    Event plain = in;
    plain.type = KEX_EV_DRIVER_PAGE;
    plain.vma.reset();
    EXPECT_EQ(jsonl_event_line(plain).find("\"vma\""), std::string::npos);
    // a broken payload is refused with a reason
    std::string bad = line;
    bad.replace(bad.find("\"name\":["), 8, "\"name\":[1,");
    EXPECT_FALSE(parse_jsonl_event(bad, &why));
    EXPECT_NE(why.find("name"), std::string::npos) << why;
}

TEST(DriverVma, FileNamesAsProcMapsShowsThem) {
    VmaInfo v = packet_socket();
    EXPECT_EQ(vma_file_name(v), "socket:[12345]");
    v.magic = kAnonInodeFsMagic;
    v.name = {"bpf-map"};
    EXPECT_EQ(vma_file_name(v), "anon_inode:bpf-map");
    v.magic = 0x1021994; // tmpfs (devtmpfs)
    v.name = {"kex", "dev"};
    EXPECT_EQ(vma_file_name(v), "/dev/kex");
    v.flags = 0; // the walk stopped before the root
    v.name = {"card0", "dri", "dev", "x"};
    EXPECT_EQ(vma_file_name(v), ".../x/dev/dri/card0");
    v.f_op = 0;
    EXPECT_EQ(vma_file_name(v), "");
}

TEST(DriverOwnerTest, ModuleOfTheMmapHandler) {
    const VmaInfo v = packet_socket();
    const auto sym = table({{0xffffffff82a00100, "socket_file_ops+0x0"},
                            {0xffffffffc0400200, "packet_mmap+0x0 [af_packet]"},
                            {0xffffffff81001000, "insert_page_into_pte_locked.isra.0+0x4"},
                            {0xffffffff81001100, "vm_insert_page+0x99"},
                            {0xffffffffc0400300, "packet_mmap+0x1a4 [af_packet]"}});
    const DriverOwner o = driver_owner(
        v, std::vector<uint64_t>{0xffffffff81001000, 0xffffffff81001100, 0xffffffffc0400300}, sym);
    EXPECT_EQ(o.name, "af_packet");
    EXPECT_TRUE(o.module);
    EXPECT_EQ(o.handler, "packet_mmap");
    EXPECT_EQ(o.f_op, "socket_file_ops");
    EXPECT_EQ(o.vm_ops, "");
    EXPECT_EQ(o.caller, "packet_mmap+0x1a4 [af_packet]");
    EXPECT_EQ(o.file, "socket:[12345]");
}

// vgem on DRM's GEM shmem helpers (a 6.1 guest): the mmap handler is drm's,
// the fault helper drm_shmem_helper's, the file operations vgem's own.
TEST(DriverOwnerTest, DriverOnAFrameworkNamedAfterItsFileOperations) {
    VmaInfo v;
    v.f_op = 0xffffffffc0500000;
    v.mmap = 0xffffffffc0400000;
    v.vm_ops = 0xffffffffc0600000;
    v.flags = KEX_VMA_NAME_ROOT | KEX_VMA_PFNMAP;
    v.name = {"card0", "dri", "dev"};
    const auto sym = table({{0xffffffffc0500000, "vgem_driver_fops+0x0 [vgem]"},
                            {0xffffffffc0400000, "drm_gem_mmap+0x0 [drm]"},
                            {0xffffffffc0600000, "drm_gem_shmem_vm_ops+0x0 [drm_shmem_helper]"},
                            {0xffffffffc0600100, "drm_gem_shmem_fault+0x82 [drm_shmem_helper]"}});
    const DriverOwner o = driver_owner(v, std::vector<uint64_t>{0xffffffffc0600100}, sym);
    EXPECT_EQ(o.name, "vgem");
    EXPECT_TRUE(o.module);
    EXPECT_EQ(o.handler, "drm_gem_mmap");
    EXPECT_EQ(o.caller, "drm_gem_shmem_fault+0x82 [drm_shmem_helper]");
    EXPECT_EQ(o.file, "/dev/dri/card0");
}

TEST(DriverOwnerTest, BuiltInNamedAfterItsFileOperations) {
    VmaInfo v;
    v.f_op = 0x1000;
    v.mmap = 0x2000;
    v.vm_ops = 0x3000;
    v.magic = kAnonInodeFsMagic;
    v.name = {"bpf-map"};
    const auto sym = table({{0x1000, "bpf_map_fops+0x0"},
                            {0x2000, "bpf_map_mmap+0x0"},
                            {0x3000, "bpf_map_default_vmops+0x0"},
                            {0x4000, "remap_vmalloc_range_partial+0x8d"},
                            {0x5000, "ringbuf_map_mmap_kern+0x30"}});
    const DriverOwner o = driver_owner(v, std::vector<uint64_t>{0x4000, 0x5000}, sym);
    EXPECT_EQ(o.name, "bpf_map");
    EXPECT_FALSE(o.module);
    EXPECT_EQ(o.caller, "ringbuf_map_mmap_kern+0x30");
    EXPECT_EQ(o.vm_ops, "bpf_map_default_vmops");
    EXPECT_EQ(split_symbol("kex_mmap+0x2a6 [kex]"),
              (std::pair<std::string, std::string>{"kex_mmap", "kex"}));
}

TEST(DriverOwnerTest, BuiltInSocketNamedAsItsModuleWouldBe) {
    const VmaInfo v = packet_socket();
    const auto sym = table({{0xffffffff82a00100, "socket_file_ops+0x0"},
                            {0xffffffffc0400200, "packet_mmap+0x0"},
                            {0xffffffff81001000, "insert_page_into_pte_locked.constprop.0+0x4"},
                            {0xffffffffc0400300, "packet_mmap+0x1a4"}});
    const DriverOwner o =
        driver_owner(v, std::vector<uint64_t>{0xffffffff81001000, 0xffffffffc0400300}, sym);
    EXPECT_EQ(o.name, "af_packet");
    EXPECT_FALSE(o.module);
    EXPECT_EQ(o.caller, "packet_mmap+0x1a4");
}

TEST(DriverVma, FlagsNamedAsTheKernelDefinesThem) {
    EXPECT_EQ(vm_flags_name(0x1 | 0x2 | 0x8 | 0x10000000 | 0x4000000), "rw-s mixedmap dontdump");
    EXPECT_EQ(vm_flags_name(0x1), "r--p");
    EXPECT_EQ(vm_flags_name(0x1 | 0x4 | 0x400 | 0x4000), "r-xp pfnmap io");
}

// A page mapped on fault: the stack is the fault path's, with no driver
// frame (the fault handler returned before the install): the handler and
// the owner come from vm_ops->fault and the file's operations.
TEST(DriverOwnerTest, FaultPathNamesTheFaultHandler) {
    VmaInfo v;
    v.f_op = 0x1000;
    v.mmap = 0x2000;
    v.vm_ops = 0x3000;
    v.fault = 0x4000;
    v.magic = kAnonInodeFsMagic;
    v.flags = KEX_VMA_NAME_ROOT | KEX_VMA_BY_FAULT;
    v.name = {"[perf_event]"};
    const auto sym = table({{0x1000, "perf_fops+0x0"},
                            {0x2000, "perf_mmap+0x0"},
                            {0x3000, "perf_mmap_vmops+0x0"},
                            {0x4000, "perf_mmap_fault+0x0"},
                            {0x5000, "set_pte_range+0x5"},
                            {0x6000, "finish_fault+0x1c2"},
                            {0x7000, "do_shared_fault+0x3d"},
                            {0x8000, "handle_mm_fault+0xf0"},
                            {0x9000, "exc_page_fault+0x7c"}});
    const DriverOwner o =
        driver_owner(v, std::vector<uint64_t>{0x5000, 0x6000, 0x7000, 0x8000, 0x9000}, sym);
    EXPECT_EQ(o.name, "perf");
    EXPECT_FALSE(o.module);
    EXPECT_EQ(o.fault, "perf_mmap_fault");
    EXPECT_EQ(o.caller, "");
    EXPECT_EQ(o.file, "anon_inode:[perf_event]");
}
