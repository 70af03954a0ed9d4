// The timeline's building blocks (timeline.cpp): its JSON writer, one event
// and one track before they are written, the args builder, and the step
// names the probes really attached to.
#pragma once

#include <kextrace/output.h>

#include "json_buffer.h"

#include <array>
#include <charconv>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace kextrace::detail::timeline {

// The timeline's JSON text: the shared buffer, and microseconds.
class Writer : public detail::JsonBuffer {
  public:
    using JsonBuffer::JsonBuffer;
    // ns as microseconds with three decimals: exact, no double rounding.
    void us(uint64_t ns) {
        u64(ns / 1000);
        const unsigned frac = static_cast<unsigned>(ns % 1000);
        const char d[4] = {'.', static_cast<char>('0' + frac / 100),
                           static_cast<char>('0' + frac / 10 % 10),
                           static_cast<char>('0' + frac % 10)};
        buf_.append(d, 4);
    }
};

// One event of a track before it is written. Args are JSON object text in
// the track's arena.
struct Ev {
    uint64_t ts = 0;
    uint64_t dur = 0;
    char ph = 'X'; // 'X' or 'i'
    std::string_view name;
    std::string_view cat;
    uint32_t args_off = 0;
    uint32_t args_len = 0;
    uint32_t seq = 0;
    bool flow = false; // takes part in the track's flow chain
};

struct Track {
    uint32_t pid = 0;
    uint32_t tid = 0;
    std::vector<Ev> events;
    std::string arena;
    void clear() {
        events.clear();
        arena.clear();
    }
};

// Builds one event's args object in the track arena: begin(), field()..., end().
class Args {
  public:
    explicit Args(std::string& arena) : a_(arena), off_(arena.size()) { a_.push_back('{'); }
    Args& key(std::string_view k) {
        if (a_.size() > off_ + 1)
            a_.push_back(',');
        a_.push_back('"');
        a_.append(k);
        a_.append("\":");
        return *this;
    }
    Args& u(std::string_view k, uint64_t v) {
        key(k);
        char tmp[24];
        auto r = std::to_chars(tmp, tmp + sizeof(tmp), v);
        a_.append(tmp, r.ptr);
        return *this;
    }
    Args& i(std::string_view k, int64_t v) {
        key(k);
        char tmp[24];
        auto r = std::to_chars(tmp, tmp + sizeof(tmp), v);
        a_.append(tmp, r.ptr);
        return *this;
    }
    Args& count(std::string_view k, int32_t v) {
        if (v == kNoCount)
            return key(k), a_.append("null"), *this;
        return i(k, v);
    }
    Args& b(std::string_view k, bool v) {
        key(k);
        a_.append(v ? "true" : "false");
        return *this;
    }
    Args& hex(std::string_view k, uint64_t v) {
        key(k);
        a_.append("\"0x");
        char tmp[24];
        auto r = std::to_chars(tmp, tmp + sizeof(tmp), v, 16);
        a_.append(tmp, r.ptr);
        a_.push_back('"');
        return *this;
    }
    Args& null(std::string_view k) {
        key(k);
        a_.append("null");
        return *this;
    }
    // s must be plain ASCII without quotes or backslashes (our own words).
    Args& word(std::string_view k, std::string_view s) {
        key(k);
        a_.push_back('"');
        a_.append(s);
        a_.push_back('"');
        return *this;
    }
    Args& text(std::string_view k, std::string_view s) {
        key(k);
        a_.append(nlohmann::json(std::string(s))
                      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        return *this;
    }
    Args& raw(std::string_view k, std::string_view json_text) {
        key(k);
        a_.append(json_text);
        return *this;
    }
    void end(Ev& e) {
        a_.push_back('}');
        e.args_off = static_cast<uint32_t>(off_);
        e.args_len = static_cast<uint32_t>(a_.size() - off_);
    }

  private:
    std::string& a_;
    std::size_t off_;
};

// The real function names the probes attached to, for step names.
struct StepNames {
    std::array<std::string, kStepKinds> name;
    std::array<std::string_view, kStepKinds> cat;

    explicit StepNames(const RunInfo& run) {
        auto resolved = [&](std::string_view step, std::string_view dflt) {
            for (const ProbeStatus& p : run.probes)
                if (p.step == step && p.attached && !p.resolved.empty()) {
                    std::string r = p.resolved.substr(0, p.resolved.find(' '));
                    if (r.find(':') == std::string::npos && r.find('*') == std::string::npos)
                        return r;
                }
            return std::string(dflt);
        };
        auto set = [&](StepKind k, std::string n, std::string_view c) {
            name[static_cast<std::size_t>(k)] = std::move(n);
            cat[static_cast<std::size_t>(k)] = c;
        };
        set(StepKind::kmem_alloc, "kmem:mm_page_alloc", "alloc");
        set(StepKind::kex_alloc, "kex:kex_page_alloc", "alloc");
        set(StepKind::insert, resolved("insert", "insert_page_into_pte_locked"), "insert");
        set(StepKind::insert_ret, resolved("insert", "insert_page_into_pte_locked") + " (return)",
            "insert");
        set(StepKind::rmap_add, resolved("rmap add", "page_add_file_rmap"), "insert");
        set(StepKind::do_set_pte, resolved("fault install", "do_set_pte"), "fault");
        set(StepKind::pte_set, "set_pte_at (PTE written)", "insert");
        set(StepKind::kex_insert, "kex:kex_page_insert", "kex");
        set(StepKind::user_fault, "exceptions:page_fault_user", "fault");
        set(StepKind::set_dirty, resolved("dirty at zap", "set_page_dirty"), "unmap");
        set(StepKind::rmap_remove, resolved("zap (rmap remove)", "page_remove_rmap"), "unmap");
        set(StepKind::kex_free, "kex:kex_page_free", "kex");
        set(StepKind::page_free, "kmem:mm_page_free", "free");
        set(StepKind::page_free_batched, "kmem:mm_page_free_batched", "free");
        set(StepKind::pte_lookup, resolved("pfn PTE", "vm_normal_page"), "unmap");
    }
    std::string_view of(StepKind k) const { return name[static_cast<std::size_t>(k)]; }
    std::string_view cat_of(StepKind k) const { return cat[static_cast<std::size_t>(k)]; }
};

} // namespace kextrace::detail::timeline
