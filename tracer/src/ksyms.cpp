// ksyms.cpp - see ksyms.h.
#include "ksyms.h"
#include "lines.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <fstream>
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
    std::ifstream in(path);
    if (!in)
        return Error{fmt::format("cannot read {}: {}", path, std::strerror(errno))};
    std::stringstream ss;
    ss << in.rdbuf();
    Ksyms k = parse(ss.str());
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

// Sorts `idx` by (key(i), i): equal keys keep their index order.
template <class Key> void sort_by_key(std::vector<uint32_t>& idx, Key key) {
    std::sort(idx.begin(), idx.end(), [&](uint32_t a, uint32_t b) {
        auto ka = key(a), kb = key(b);
        return ka != kb ? ka < kb : a < b;
    });
}

// The [first, last) run of `idx` whose key equals `want` (idx sorted by key).
template <class Key, class T>
std::pair<std::vector<uint32_t>::const_iterator, std::vector<uint32_t>::const_iterator>
equal_run(const std::vector<uint32_t>& idx, const T& want, Key key) {
    auto lo =
        std::partition_point(idx.begin(), idx.end(), [&](uint32_t i) { return key(i) < want; });
    auto hi = std::partition_point(lo, idx.end(), [&](uint32_t i) { return !(want < key(i)); });
    return {lo, hi};
}

} // namespace

// One pass over the text with string_views, then sorted index vectors: a few
// allocations for the whole table instead of several per symbol (the guest
// reads ~150,000 symbols at every start, under emulation).
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
    std::stable_sort(k.syms_.begin(), k.syms_.end(),
                     [](const Ksym& a, const Ksym& b) { return a.addr < b.addr; });

    auto name_of = [&](uint32_t i) { return std::string_view(k.syms_[i].name); };
    for (uint32_t i = 0; i < k.syms_.size(); i++) {
        k.by_name_.push_back(i);
        const std::string& n = k.syms_[i].name;
        if (k.syms_[i].module.empty()) {
            k.by_base_.push_back(i);
            k.base_len_.push_back(static_cast<uint32_t>(
                n.find('.') == std::string::npos ? n.size() : split_clone_name(n).base.size()));
        }
    }
    sort_by_key(k.by_name_, name_of);
    // by_base_ and base_len_ sort together: sort positions, then permute
    std::vector<uint32_t> order(k.by_base_.size());
    for (uint32_t j = 0; j < order.size(); j++)
        order[j] = j;
    sort_by_key(order,
                [&](uint32_t j) { return name_of(k.by_base_[j]).substr(0, k.base_len_[j]); });
    std::vector<uint32_t> base(order.size()), len(order.size());
    for (std::size_t j = 0; j < order.size(); j++) {
        base[j] = k.by_base_[order[j]];
        len[j] = k.base_len_[order[j]];
    }
    k.by_base_ = std::move(base);
    k.base_len_ = std::move(len);

    for (uint32_t i = 0; i < k.others_.size(); i++) {
        k.other_by_name_.push_back(i);
        if (k.others_[i].addr)
            k.other_by_addr_.push_back(i);
    }
    sort_by_key(k.other_by_name_, [&](uint32_t i) { return std::string_view(k.others_[i].name); });
    sort_by_key(k.other_by_addr_, [&](uint32_t i) { return k.others_[i].addr; });
    return k;
}

const Ksym* Ksyms::find(std::string_view name) const {
    auto [lo, hi] =
        equal_run(by_name_, name, [&](uint32_t i) { return std::string_view(syms_[i].name); });
    const Ksym* best = nullptr;
    for (auto it = lo; it != hi; ++it) {
        if (syms_[*it].module.empty())
            return &syms_[*it];
        if (!best)
            best = &syms_[*it];
    }
    if (best)
        return best;
    auto [olo, ohi] = equal_run(other_by_name_, name,
                                [&](uint32_t i) { return std::string_view(others_[i].name); });
    return olo != ohi ? &others_[*olo] : nullptr;
}

std::vector<const Ksym*> Ksyms::find_function(std::string_view base) const {
    std::vector<const Ksym*> out;
    // positions into by_base_ (sorted by base, then address order)
    std::size_t lo = 0, hi = by_base_.size();
    auto base_at = [&](std::size_t j) {
        return std::string_view(syms_[by_base_[j]].name).substr(0, base_len_[j]);
    };
    while (lo < hi) {
        std::size_t mid = (lo + hi) / 2;
        if (base_at(mid) < base)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (std::size_t j = lo; j < by_base_.size() && base_at(j) == base; j++)
        out.push_back(&syms_[by_base_[j]]);
    std::stable_partition(out.begin(), out.end(), [&](const Ksym* s) { return s->name == base; });
    return out;
}

std::string Ksyms::symbolize(uint64_t addr) const {
    if (syms_.empty() || hidden_)
        return {};
    if (auto [lo, hi] =
            equal_run(other_by_addr_, addr, [&](uint32_t i) { return others_[i].addr; });
        lo != hi) {
        const Ksym& s = others_[*lo];
        return s.module.empty() ? fmt::format("{}+0x0", s.name)
                                : fmt::format("{}+0x0 [{}]", s.name, s.module);
    }
    auto it = std::upper_bound(syms_.begin(), syms_.end(), addr,
                               [](uint64_t a, const Ksym& s) { return a < s.addr; });
    if (it == syms_.begin())
        return {};
    const Ksym& s = *std::prev(it);
    std::string out = fmt::format("{}+{:#x}", s.name, addr - s.addr);
    if (!s.module.empty())
        out += fmt::format(" [{}]", s.module);
    return out;
}

} // namespace kextrace
