// stack_sites.h - StackSites: the stacks of --stacks=sites records.
//
// Under --stacks=sites (bpf/events.h, kex_event.stack_site) the BPF side walks a
// call site's kernel stack once: that record carries the stack and defines
// the site's number; later records of the site carry no stack, only the
// number. StackSites gives every record its stack back, in the order the
// ring buffer delivered them (a site's defining record always comes first),
// so everything downstream sees whole stacks whatever the mode. Pure: no
// I/O, no libbpf.
#pragma once

#include <kextrace/core.h>

#include <cstdint>
#include <unordered_map>
#include <vector>

namespace kextrace {

class StackSites {
  public:
    struct Stats {
        uint64_t walked = 0;     // records that carried a stack they defined a site with
        uint64_t reused = 0;     // records given their site's stack
        uint64_t unresolved = 0; // records naming a site no earlier record defined
        uint64_t checked = 0;    // KEX_SITE_CHECK records: reused a site, walked anyway
        uint64_t mismatched = 0; // ... whose walk differs from the site's stack
    };

    // Records a defining record's stack, or gives a using record its site's
    // stack. False for a site nobody defined (its record keeps no stack). A
    // check record (KEX_SITE_CHECK) keeps its walked stack and is compared.
    bool resolve(Event& ev);
    const Stats& stats() const { return stats_; }
    std::size_t sites() const { return stacks_.size(); }

  private:
    std::unordered_map<uint32_t, std::vector<uint64_t>> stacks_;
    Stats stats_;
};

} // namespace kextrace
