// Events: the record contract of bpf/events.h, typed; and PTE decoding.
#include <kextrace/core.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>

namespace kextrace {

namespace {

struct TypeName {
    uint32_t type;
    std::string_view name;
};

// Names as they appear in JSON and text output. Keep in enum order.
constexpr TypeName kTypeNames[] = {
    {KEX_EV_RIG_PHASE, "rig_phase"},
    {KEX_EV_SYS_MMAP, "sys_mmap"},
    {KEX_EV_SYS_MUNMAP, "sys_munmap"},
    {KEX_EV_SYS_MUNMAP_RET, "sys_munmap_ret"},
    {KEX_EV_PROC_FORK, "proc_fork"},
    {KEX_EV_PROC_EXIT, "proc_exit"},
    {KEX_EV_USER_FAULT, "user_fault"},
    {KEX_EV_KEX_MMAP, "kex_mmap"},
    {KEX_EV_KEX_MMAP_DONE, "kex_mmap_done"},
    {KEX_EV_KEX_PAGE_ALLOC, "kex_page_alloc"},
    {KEX_EV_KEX_PAGE_INSERT, "kex_page_insert"},
    {KEX_EV_KEX_PAGE_FREE, "kex_page_free"},
    {KEX_EV_KEX_VMA_OPEN, "kex_vma_open"},
    {KEX_EV_KEX_VMA_CLOSE, "kex_vma_close"},
    {KEX_EV_KEX_RELEASE, "kex_release"},
    {KEX_EV_PAGE_ALLOC, "page_alloc"},
    {KEX_EV_PAGE_FREE, "page_free"},
    {KEX_EV_PAGE_FREE_BATCHED, "page_free_batched"},
    {KEX_EV_INSERT, "insert"},
    {KEX_EV_INSERT_RET, "insert_ret"},
    {KEX_EV_RMAP_ADD, "rmap_add"},
    {KEX_EV_DO_SET_PTE, "do_set_pte"},
    {KEX_EV_DO_SET_PTE_RET, "do_set_pte_ret"},
    {KEX_EV_UNMAP_REGION, "unmap_region"},
    {KEX_EV_UNMAP_REGION_RET, "unmap_region_ret"},
    {KEX_EV_EXIT_MMAP, "exit_mmap"},
    {KEX_EV_EXIT_MMAP_RET, "exit_mmap_ret"},
    {KEX_EV_RMAP_REMOVE, "rmap_remove"},
    {KEX_EV_SET_DIRTY, "set_dirty"},
    {KEX_EV_PTE_LOOKUP, "pte_lookup"},
    {KEX_EV_KEX_MMAP_MODE, "kex_mmap_mode"},
    {KEX_EV_KEX_BATCH, "kex_batch"},
    {KEX_EV_KEX_FAULT, "kex_fault"},
    {KEX_EV_VM_INSERT_PAGES, "vm_insert_pages"},
    {KEX_EV_REMAP_PFN, "remap_pfn"},
    {KEX_EV_REMAP_PFN_RET, "remap_pfn_ret"},
    {KEX_EV_DRIVER_VMA, "driver_vma"},
    {KEX_EV_DRIVER_PAGE, "driver_page"},
    {KEX_EV_DRIVER_PFNMAP, "driver_pfnmap"},
    {KEX_EV_DRIVER_PFNMAP_RET, "driver_pfnmap_ret"},
    {KEX_EV_DRIVER_ALLOC, "driver_alloc"},
    {KEX_EV_LIFE, "life"},
    {KEX_EV_FOLLOW, "follow"},
};

// type value -> index into kTypeNames + 1 (0 = unknown); built at compile time.
constexpr std::array<uint8_t, kTypeSlots> make_type_index() {
    std::array<uint8_t, kTypeSlots> idx{};
    for (std::size_t i = 0; i < std::size(kTypeNames); ++i)
        idx[kTypeNames[i].type] = static_cast<uint8_t>(i + 1);
    return idx;
}
constexpr auto kTypeIndex = make_type_index();

} // namespace

bool is_known_event_type(uint32_t type) {
    return type < kTypeSlots && kTypeIndex[type] != 0;
}

std::string_view event_type_name(uint32_t type) {
    if (!is_known_event_type(type))
        return "unknown";
    return kTypeNames[kTypeIndex[type] - 1].name;
}

namespace {
constexpr std::array<std::string_view, KEX_TRACK_COUNT> kTrackNames = {
    "traced",         "pages",        "pfns",          "mmap_window",
    "pending_allocs", "insert_calls", "set_pte_calls", "mmap_calls",
    "in_unmap",       "in_exit_mmap", "remap_calls",   "pfn_unknown",
    "driver_vmas",    "insert_sites", "driver_allocs", "stack_sites",
};
static_assert(KEX_TRACK_COUNT <= KEX_TRACK_SLOTS);
static_assert(sizeof(kex_event) == 80, "struct kex_event: the record header both sides share");
} // namespace

std::string_view track_slot_name(uint32_t slot) {
    return slot < kTrackNames.size() ? kTrackNames[slot] : std::string_view();
}

std::optional<uint32_t> track_slot_from_name(std::string_view name) {
    for (uint32_t i = 0; i < kTrackNames.size(); i++)
        if (kTrackNames[i] == name)
            return i;
    return std::nullopt;
}

std::optional<uint32_t> event_type_from_name(std::string_view name) {
    for (const auto& t : kTypeNames)
        if (t.name == name)
            return t.type;
    return std::nullopt;
}

std::optional<Event> decode_event(std::span<const std::byte> rec, std::string* why) {
    auto fail = [why](std::string reason) -> std::optional<Event> {
        if (why)
            *why = std::move(reason);
        return std::nullopt;
    };
    if (rec.size() < sizeof(kex_event))
        return fail("record of " + std::to_string(rec.size()) + " bytes, shorter than the " +
                    std::to_string(sizeof(kex_event)) + "-byte header");
    kex_event raw;
    std::memcpy(&raw, rec.data(), sizeof(raw));
    const uint32_t len = raw.stack_len;
    if (len > KEX_STACK_DEPTH)
        return fail("stack_len " + std::to_string(len) + " > " + std::to_string(KEX_STACK_DEPTH));
    if (!is_known_event_type(raw.type))
        return fail("unknown event type " + std::to_string(raw.type));
    if (raw.type == KEX_EV_LIFE)
        return fail("a life record carries records: life_records() takes it apart");
    const std::size_t payload = KEX_PAYLOAD_SIZE(raw.type);
    if (rec.size() != KEX_RECORD_SIZE(raw.type, len))
        return fail("record of " + std::to_string(rec.size()) + " bytes, stack_len " +
                    std::to_string(len) + " needs " +
                    std::to_string(KEX_RECORD_SIZE(raw.type, len)));

    Event ev;
    ev.ts = raw.ts;
    ev.type = raw.type;
    ev.cpu = raw.cpu;
    ev.pid = raw.pid;
    ev.tid = raw.tid;
    ev.pfn = raw.pfn;
    ev.addr = raw.addr;
    ev.arg0 = raw.arg0;
    ev.arg1 = raw.arg1;
    ev.ret = raw.ret;
    ev.refcount = raw.refcount;
    ev.mapcount = raw.mapcount;
    ev.probe = raw.probe;
    ev.stack_site = raw.stack_site;
    if (raw.type == KEX_EV_DRIVER_VMA) {
        kex_vma_info vi;
        std::memcpy(&vi, rec.data() + sizeof(kex_event), sizeof(vi));
        auto v = std::make_shared<VmaInfo>();
        v->vma = vi.vma;
        v->f_op = vi.f_op;
        v->mmap = vi.mmap;
        v->vm_ops = vi.vm_ops;
        v->fault = vi.fault;
        v->ino = vi.ino;
        v->magic = vi.magic;
        v->rdev = vi.rdev;
        v->flags = vi.flags;
        for (uint32_t i = 0; i < std::min<uint32_t>(vi.parts, KEX_NAME_PARTS); i++)
            v->name.emplace_back(vi.name[i], strnlen(vi.name[i], KEX_NAME_LEN));
        ev.vma = std::move(v);
    }
    if (len) {
        ev.stack.resize(len);
        std::memcpy(ev.stack.data(), rec.data() + sizeof(kex_event) + payload,
                    len * sizeof(uint64_t));
    }
    return ev;
}

std::optional<std::vector<std::span<const std::byte>>> life_records(std::span<const std::byte> rec,
                                                                    std::string* why) {
    auto fail = [why](std::string msg) {
        if (why)
            *why = std::move(msg);
        return std::nullopt;
    };
    const auto head = record_header(rec);
    if (!head)
        return fail("life record of " + std::to_string(rec.size()) +
                    " bytes, shorter than its header");
    if (head->type != KEX_EV_LIFE)
        return fail("type " + std::to_string(head->type) + " is not a life record");
    if (head->arg0 > KEX_LIFE_STEPS || rec.size() != KEX_LIFE_SIZE(head->arg0))
        return fail("life record of " + std::to_string(rec.size()) + " bytes with " +
                    std::to_string(head->arg0) + " records");
    std::vector<std::span<const std::byte>> out;
    out.reserve(head->arg0);
    for (uint64_t i = 1; i <= head->arg0; ++i)
        out.push_back(rec.subspan(i * sizeof(kex_event), sizeof(kex_event)));
    return out;
}

std::optional<kex_event> record_header(std::span<const std::byte> rec) {
    if (rec.size() < sizeof(kex_event))
        return std::nullopt;
    kex_event head;
    std::memcpy(&head, rec.data(), sizeof(head));
    return head;
}

std::span<const std::byte> trim_record(std::span<const std::byte> sample) {
    const auto head = record_header(sample);
    if (!head)
        return sample;
    if (head->type == KEX_EV_LIFE) { // reserved for KEX_LIFE_STEPS: see life_records()
        if (head->arg0 <= KEX_LIFE_STEPS && sample.size() > KEX_LIFE_SIZE(head->arg0))
            return sample.first(KEX_LIFE_SIZE(head->arg0));
        return sample;
    }
    const uint32_t type = head->type, len = head->stack_len;
    if (len <= KEX_STACK_DEPTH && sample.size() > KEX_RECORD_SIZE(type, len))
        return sample.first(KEX_RECORD_SIZE(type, len));
    return sample;
}

std::string vma_file_name(const VmaInfo& v) {
    if (!v.f_op)
        return "";
    const std::string first = v.name.empty() ? std::string() : v.name.front();
    if (v.magic == kSockfsMagic)
        return "socket:[" + std::to_string(v.ino) + "]";
    if (v.magic == kAnonInodeFsMagic)
        return "anon_inode:" + first;
    std::string path;
    for (auto it = v.name.rbegin(); it != v.name.rend(); ++it)
        path += "/" + *it;
    if (!(v.flags & KEX_VMA_NAME_ROOT))
        path = "..." + path;
    return path.empty() ? "/" : path;
}

std::string vm_flags_name(uint64_t f) {
    // include/linux/mm.h: VM_READ 1, VM_WRITE 2, VM_EXEC 4, VM_SHARED 8, VM_PFNMAP
    // 0x400, VM_IO 0x4000, VM_DONTEXPAND 0x40000, VM_DONTDUMP 0x4000000, VM_MIXEDMAP
    // 0x10000000 (the same on 6.1 .. 7.2)
    std::string s = {f & 1 ? 'r' : '-', f & 2 ? 'w' : '-', f & 4 ? 'x' : '-', f & 8 ? 's' : 'p'};
    constexpr std::pair<uint64_t, const char*> kinds[] = {{0x10000000, "mixedmap"},
                                                          {0x400, "pfnmap"},
                                                          {0x4000, "io"},
                                                          {0x40000, "dontexpand"},
                                                          {0x4000000, "dontdump"}};
    for (const auto& [bit, name] : kinds)
        if (f & bit)
            s += std::string(" ") + name;
    return s;
}

std::vector<std::byte> encode_event(const Event& ev) {
    const std::size_t n = std::min<std::size_t>(ev.stack.size(), KEX_STACK_DEPTH);
    kex_event raw{};
    raw.ts = ev.ts;
    raw.type = ev.type;
    raw.cpu = ev.cpu;
    raw.pid = ev.pid;
    raw.tid = ev.tid;
    raw.pfn = ev.pfn;
    raw.addr = ev.addr;
    raw.arg0 = ev.arg0;
    raw.arg1 = ev.arg1;
    raw.ret = ev.ret;
    raw.refcount = ev.refcount;
    raw.mapcount = ev.mapcount;
    raw.probe = static_cast<uint16_t>(ev.probe);
    raw.stack_len = static_cast<uint16_t>(n);
    raw.stack_site = ev.stack_site;
    const std::size_t payload = KEX_PAYLOAD_SIZE(ev.type);
    std::vector<std::byte> out(KEX_RECORD_SIZE(ev.type, n));
    std::memcpy(out.data(), &raw, sizeof(raw));
    if (payload) {
        kex_vma_info vi{};
        if (ev.vma) {
            vi.vma = ev.vma->vma;
            vi.f_op = ev.vma->f_op;
            vi.mmap = ev.vma->mmap;
            vi.vm_ops = ev.vma->vm_ops;
            vi.fault = ev.vma->fault;
            vi.ino = ev.vma->ino;
            vi.magic = ev.vma->magic;
            vi.rdev = ev.vma->rdev;
            vi.flags = ev.vma->flags;
            vi.parts =
                static_cast<uint32_t>(std::min<std::size_t>(ev.vma->name.size(), KEX_NAME_PARTS));
            for (uint32_t i = 0; i < vi.parts; i++)
                std::memcpy(vi.name[i], ev.vma->name[i].data(),
                            std::min<std::size_t>(ev.vma->name[i].size(), KEX_NAME_LEN - 1));
        }
        std::memcpy(out.data() + sizeof(raw), &vi, sizeof(vi));
    }
    if (n)
        std::memcpy(out.data() + sizeof(raw) + payload, ev.stack.data(), n * sizeof(uint64_t));
    return out;
}

PteBits decode_pte(uint64_t pte) {
    PteBits b;
    b.pfn = (pte & 0x000ffffffffff000ULL) >> 12;
    b.present = pte & (1ULL << 0);
    b.rw = pte & (1ULL << 1);
    b.user = pte & (1ULL << 2);
    b.accessed = pte & (1ULL << 5);
    b.dirty = pte & (1ULL << 6);
    b.special = pte & (1ULL << 9);
    b.nx = pte & (1ULL << 63);
    return b;
}

std::string pte_flags(uint64_t pte) {
    const PteBits b = decode_pte(pte);
    std::string s;
    s.reserve(13);
    s += b.present ? "P" : "-";
    s += b.rw ? " RW" : "  -";
    s += b.user ? " U" : " -";
    s += b.accessed ? " A" : " -";
    s += b.dirty ? " D" : " -";
    s += b.nx ? " NX" : "  -";
    if (b.special)
        s += " S";
    return s;
}

} // namespace kextrace
