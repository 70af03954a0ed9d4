// intake.cpp - see intake.h.
#include "intake.h"

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

void Intake::take_record(std::span<const std::byte> rec) {
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
