// ksyms.h - kernel symbols from a /proc/kallsyms-format file.
//
// Loads once into one sorted vector (libbpf-tools' ksyms approach): exact
// lookup by name, lookup of compiler clones of a function (GCC's .constprop.N,
// .isra.N, .part.N, LLVM's .llvm.N, and chains of them), and symbolization
// "func+0xoff [module]" by binary search for the largest address <= addr.
// Takes a path so tests run on fixture files.
#pragma once

#include "error.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kextrace {

struct Ksym {
    uint64_t addr = 0;
    char type = '?';    // nm-style: T/t text, D/d data, ...
    std::string name;   // "insert_page_into_pte_locked.constprop.0"
    std::string module; // "" for vmlinux, "kex" for [kex]
    bool is_text() const { return type == 't' || type == 'T' || type == 'w' || type == 'W'; }
};

// A symbol name split into the function it came from and its clone suffixes:
// "f.isra.0.constprop.1" -> {"f", {"isra.0", "constprop.1"}}.
struct CloneName {
    std::string base;
    std::vector<std::string> suffixes;
    bool is_clone() const { return !suffixes.empty(); }
    // Any suffix of this kind ("constprop", "isra", "part", "llvm", "cold").
    bool has(std::string_view kind) const;
};
CloneName split_clone_name(std::string_view name);

class Ksyms {
  public:
    static Result<Ksyms> load(const std::string& path);
    static Ksyms parse(std::string_view text);

    std::size_t size() const { return syms_.size(); }
    // All addresses read as 0: not root, or kptr_restrict hides them.
    bool addresses_hidden() const { return hidden_; }

    // Exact name, vmlinux first; nullptr if absent.
    const Ksym* find(std::string_view name) const;
    // Text symbols of vmlinux whose name is `base` or `base` plus clone
    // suffixes, exact name first, then in address order.
    std::vector<const Ksym*> find_function(std::string_view base) const;
    // "func+0x1a [module]"; "" when addr precedes every text symbol. A data
    // symbol's exact address (a file_operations, a vm_operations_struct)
    // gives "name+0x0 [module]" too.
    std::string symbolize(uint64_t addr) const;
    // The text symbol addr falls in (the last at or before it); nullptr if none.
    const Ksym* containing(uint64_t addr) const;

  private:
  public:
    // An index entry: a key (a hash of the name, or an address), the symbol's
    // index in syms_ / others_, and the length of its base name (by_base_).
    struct Entry {
        uint64_t key;
        uint32_t idx;
        uint32_t len;
    };

  private:
    std::vector<Ksym> syms_;   // sorted by address, text symbols only
    std::vector<Ksym> others_; // non-text symbols (data)
    // Each sorted by (key, idx).
    std::vector<Entry> by_name_;       // every text symbol, by name
    std::vector<Entry> by_base_;       // vmlinux text symbols, by name without clone suffixes
    std::vector<Entry> other_by_name_; // the data symbols, by name
    std::vector<Entry> other_by_addr_; // those with an address; the first at each address wins
    bool hidden_ = false;
};

} // namespace kextrace
