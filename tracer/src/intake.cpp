// intake.cpp - see intake.h.
#include "intake.h"

#include <array>
#include <cstring>
#include <string>

#include <spdlog/spdlog.h>

namespace kextrace {

int Intake::take(std::span<const std::byte> rec) {
    rec = trim_record(rec);
    if (auto head = record_header(rec); head && head->type == KEX_EV_LIFE) {
        // a life read from the map after the trace did not come through the ring
        if (!(head->arg1 & KEX_LIFE_OPEN)) {
            ++ring_records;
            ++received[KEX_EV_LIFE];
        }
        take_life(rec);
        return 0;
    }
    ++ring_records;
    take_record(rec);
    return 0;
}

namespace {

// The KEX_EV_PAGE_ALLOC a kex_page_alloc record carries (bpf/events.h: addr
// is its ts, ret its order and cpu), as BPF sent it alone before: the
// claim's task, pfn, index and counts, no stack. nullopt when it carries none.
std::optional<kex_event> held_alloc(const kex_event& claim) {
    if (claim.type != KEX_EV_KEX_PAGE_ALLOC || claim.addr == 0)
        return std::nullopt;
    kex_event a = claim;
    const auto packed = static_cast<uint64_t>(claim.ret);
    a.ts = claim.addr;
    a.type = KEX_EV_PAGE_ALLOC;
    a.cpu = static_cast<uint32_t>(packed >> 32);
    a.addr = 0;
    a.arg0 = static_cast<uint32_t>(packed);
    a.arg1 = claim.arg0;
    a.ret = 0;
    a.probe = KEX_P_MM_PAGE_ALLOC;
    a.stack_len = 0;
    a.stack_site = 0;
    return a;
}

} // namespace

void Intake::take_record(std::span<const std::byte> rec) {
    // one record from BPF, the two the correlator and every stream know
    std::array<std::byte, KEX_RECORD_SIZE(KEX_EV_KEX_PAGE_ALLOC, KEX_STACK_DEPTH)> buf;
    if (auto head = record_header(rec); head && rec.size() <= buf.size()) {
        if (auto alloc = held_alloc(*head)) {
            take_one(std::as_bytes(std::span(&*alloc, 1)));
            kex_event claim = *head;
            claim.addr = 0;
            claim.ret = 0;
            std::memcpy(buf.data(), rec.data(), rec.size());
            std::memcpy(buf.data(), &claim, sizeof(claim));
            take_one(std::span<const std::byte>(buf.data(), rec.size()));
            return;
        }
    }
    take_one(rec);
}

void Intake::take_one(std::span<const std::byte> rec) {
    if (auto head = record_header(rec))
        ++received[head->type < KEX_LOSS_SLOTS ? head->type : 0];
    std::string why;
    if (auto ev = decode_event(rec, &why)) {
        // a record naming a stack site nobody defined lost its stack:
        // counted with the undecodable (the ring keeps definers first)
        if (!sites.resolve(*ev) && decode_errors++ < 5)
            spdlog::warn("a {} record names stack site {}, which no earlier record defined: "
                         "its stack is lost",
                         event_type_name(ev->type), ev->stack_site);
        tramp_.complete(*ev);
        if (streams_.events && !streams_.events->failed())
            streams_.events->write_line(event_json(*ev, ksyms_).dump());
        if (streams_.jsonl)
            streams_.jsonl->add(*ev);
        correlator.feed(std::move(*ev));
    } else if (decode_errors++ < 5)
        spdlog::warn("undecodable record ({} bytes): {}", rec.size(), why);
}

// --watch: a page's records, sent together
void Intake::take_life(std::span<const std::byte> rec) {
    std::string why;
    auto records = life_records(rec, &why);
    if (!records) {
        if (decode_errors++ < 5)
            spdlog::warn("undecodable life record ({} bytes): {}", rec.size(), why);
        return;
    }
    for (std::span<const std::byte> r : *records)
        take_record(r);
}

} // namespace kextrace
