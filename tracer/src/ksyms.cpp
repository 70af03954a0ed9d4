// ksyms.cpp - see ksyms.h.
#include "ksyms.h"
#include "lines.h"
#include "text_file.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <functional>
#include <span>
#include <sstream>
#include <utility>

#include <fmt/format.h>

namespace kextrace {

namespace {

bool all_digits(std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

constexpr std::string_view kCloneKinds[] = {"constprop", "isra", "part",
                                            "llvm",      "cold", "lto_priv"};

bool is_clone_kind(std::string_view s) {
    return std::find(std::begin(kCloneKinds), std::end(kCloneKinds), s) != std::end(kCloneKinds);
}

} // namespace

bool CloneName::has(std::string_view kind) const {
    return std::any_of(suffixes.begin(), suffixes.end(), [&](const std::string& s) {
        return std::string_view(s).substr(0, s.find('.')) == kind;
    });
}

CloneName split_clone_name(std::string_view name) {
    // Split on '.', then peel "<kind>.<digits>" pairs (or a bare "cold") from the end.
    std::vector<std::string_view> parts;
    std::size_t pos = 0;
    while (true) {
        std::size_t dot = name.find('.', pos);
        parts.push_back(name.substr(pos, dot == std::string_view::npos ? dot : dot - pos));
        if (dot == std::string_view::npos)
            break;
        pos = dot + 1;
    }
    std::vector<std::string> suffixes;
    std::size_t end = parts.size();
    while (end > 1) {
        if (end >= 3 && all_digits(parts[end - 1]) && is_clone_kind(parts[end - 2])) {
            suffixes.insert(suffixes.begin(),
                            std::string(parts[end - 2]) + "." + std::string(parts[end - 1]));
            end -= 2;
        } else if (parts[end - 1] == "cold") {
            suffixes.insert(suffixes.begin(), "cold");
            end -= 1;
        } else {
            break;
        }
    }
    CloneName out;
    std::size_t base_len = 0;
    for (std::size_t i = 0; i < end; i++)
        base_len += parts[i].size() + (i ? 1 : 0);
    out.base = std::string(name.substr(0, base_len));
    out.suffixes = std::move(suffixes);
    return out;
}

Result<Ksyms> Ksyms::load(const std::string& path) {
    auto text = read_text_file(path);
    if (!text)
        return Error{fmt::format("cannot read {}: {}", path, std::strerror(errno))};
    Ksyms k = parse(*text);
    if (k.size() == 0)
        return Error{fmt::format("{}: no text symbols", path)};
    return k;
}

namespace {

// The next whitespace-separated field of `line` from `pos`; "" at the end.
std::string_view next_field(std::string_view line, std::size_t& pos) {
    while (pos < line.size() && (line[pos] == ' ' || line[pos] == '\t'))
        pos++;
    std::size_t start = pos;
    while (pos < line.size() && line[pos] != ' ' && line[pos] != '\t')
        pos++;
    return line.substr(start, pos - start);
}

uint64_t name_key(std::string_view s) {
    return std::hash<std::string_view>{}(s);
}

// Sorted by (key, idx): a key's run keeps index (address) order.
void sort_entries(std::vector<Ksyms::Entry>& v) {
    std::sort(v.begin(), v.end(), [](const Ksyms::Entry& a, const Ksyms::Entry& b) {
        return a.key != b.key ? a.key < b.key : a.idx < b.idx;
    });
}

// The entries with this key (a hash may be shared: callers compare names).
std::span<const Ksyms::Entry> with_key(const std::vector<Ksyms::Entry>& v, uint64_t key) {
    auto lo = std::partition_point(v.begin(), v.end(),
                                   [&](const Ksyms::Entry& e) { return e.key < key; });
    auto hi =
        std::partition_point(lo, v.end(), [&](const Ksyms::Entry& e) { return e.key == key; });
    return {lo, hi};
}

} // namespace

// One pass over the text with string_views, then index vectors sorted by a
// hash of the name (integer compares): a few allocations for the whole table
// instead of several per symbol, and no string compares while sorting (the
// guest reads ~150,000 symbols at every start, under emulation, where a
// name-sorted index still cost seconds).
Ksyms Ksyms::parse(std::string_view text) {
    Ksyms k;
    bool any_nonzero = false;
    for (std::string_view line : Lines(text)) {
        // "ffffffff81000000 T _text" or "ffffffffc0a01000 t kex_mmap\t[kex]"
        std::size_t pos = 0;
        std::string_view addr_s = next_field(line, pos), type_s = next_field(line, pos),
                         name = next_field(line, pos), mod = next_field(line, pos);
        if (name.empty() || type_s.size() != 1)
            continue;
        Ksym s;
        // strtoull semantics: hex digits up to the first other character
        std::from_chars(addr_s.data(), addr_s.data() + addr_s.size(), s.addr, 16);
        s.type = type_s[0];
        s.name = std::string(name);
        if (mod.size() > 2 && mod.front() == '[' && mod.back() == ']')
            s.module = std::string(mod.substr(1, mod.size() - 2));
        any_nonzero |= s.addr != 0;
        (s.is_text() ? k.syms_ : k.others_).push_back(std::move(s));
    }
    k.hidden_ = !any_nonzero && !k.syms_.empty();
    auto by_addr = [](const Ksym& a, const Ksym& b) { return a.addr < b.addr; };
    if (!std::is_sorted(k.syms_.begin(), k.syms_.end(), by_addr)) // kallsyms mostly is
        std::stable_sort(k.syms_.begin(), k.syms_.end(), by_addr);

    k.by_name_.reserve(k.syms_.size());
    for (uint32_t i = 0; i < k.syms_.size(); i++) {
        const std::string& n = k.syms_[i].name;
        k.by_name_.push_back({name_key(n), i, 0});
        if (k.syms_[i].module.empty()) {
            const std::size_t len =
                n.find('.') == std::string::npos ? n.size() : split_clone_name(n).base.size();
            k.by_base_.push_back(
                {name_key(std::string_view(n).substr(0, len)), i, static_cast<uint32_t>(len)});
        }
    }
    for (uint32_t i = 0; i < k.others_.size(); i++) {
        k.other_by_name_.push_back({name_key(k.others_[i].name), i, 0});
        if (k.others_[i].addr)
            k.other_by_addr_.push_back({k.others_[i].addr, i, 0});
    }
    for (auto* v : {&k.by_name_, &k.by_base_, &k.other_by_name_, &k.other_by_addr_})
        sort_entries(*v);
    return k;
}

const Ksym* Ksyms::find(std::string_view name) const {
    const uint64_t key = name_key(name);
    const Ksym* best = nullptr;
    for (const Entry& e : with_key(by_name_, key)) {
        const Ksym& s = syms_[e.idx];
        if (s.name != name)
            continue;
        if (s.module.empty())
            return &s;
        if (!best)
            best = &s;
    }
    if (best)
        return best;
    for (const Entry& e : with_key(other_by_name_, key))
        if (others_[e.idx].name == name)
            return &others_[e.idx];
    return nullptr;
}

std::vector<const Ksym*> Ksyms::find_function(std::string_view base) const {
    std::vector<const Ksym*> out;
    for (const Entry& e : with_key(by_base_, name_key(base)))
        if (std::string_view(syms_[e.idx].name).substr(0, e.len) == base)
            out.push_back(&syms_[e.idx]);
    std::stable_partition(out.begin(), out.end(), [&](const Ksym* s) { return s->name == base; });
    return out;
}

const Ksym* Ksyms::containing(uint64_t addr) const {
    auto it = std::upper_bound(syms_.begin(), syms_.end(), addr,
                               [](uint64_t a, const Ksym& s) { return a < s.addr; });
    return it == syms_.begin() ? nullptr : &*std::prev(it);
}

std::string Ksyms::symbolize(uint64_t addr) const {
    if (syms_.empty() || hidden_)
        return {};
    if (auto at = with_key(other_by_addr_, addr); !at.empty()) {
        const Ksym& s = others_[at.front().idx];
        return s.module.empty() ? fmt::format("{}+0x0", s.name)
                                : fmt::format("{}+0x0 [{}]", s.name, s.module);
    }
    const Ksym* found = containing(addr);
    if (!found)
        return {};
    const Ksym& s = *found;
    std::string out = fmt::format("{}+{:#x}", s.name, addr - s.addr);
    if (!s.module.empty())
        out += fmt::format(" [{}]", s.module);
    return out;
}

} // namespace kextrace
