// stack_sites.cpp - see kextrace/stack_sites.h.
#include <kextrace/stack_sites.h>

namespace kextrace {

bool StackSites::resolve(Event& ev) {
    if (!ev.stack_site)
        return true;
    const bool check = ev.stack_site & KEX_SITE_CHECK;
    ev.stack_site &= ~KEX_SITE_CHECK;
    if (!check && !ev.stack.empty()) {
        // A site number given out again (the BPF side forgot the site, or
        // its counter wrapped) names the newer stack from here on.
        stacks_[ev.stack_site] = ev.stack;
        ++stats_.walked;
        return true;
    }
    auto it = stacks_.find(ev.stack_site);
    if (it == stacks_.end()) {
        ++stats_.unresolved;
        return false;
    }
    if (check) { // the record keeps its own walk, compared with the site's
        ++stats_.checked;
        stats_.mismatched += it->second != ev.stack;
    } else {
        ev.stack = it->second;
        ++stats_.reused;
    }
    return true;
}

} // namespace kextrace
