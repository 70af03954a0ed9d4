// ksyms.cpp - see ksyms.h.
#include "ksyms.h"
#include "lines.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <sstream>

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

Ksyms Ksyms::parse(std::string_view text) {
    Ksyms k;
    bool any_nonzero = false;
    for (std::string_view line : Lines(text)) {
        // "ffffffff81000000 T _text" or "ffffffffc0a01000 t kex_mmap\t[kex]"
        std::istringstream ls{std::string(line)};
        std::string addr_s, type_s, name, mod;
        if (!(ls >> addr_s >> type_s >> name) || type_s.size() != 1)
            continue;
        ls >> mod;
        Ksym s;
        s.addr = std::strtoull(addr_s.c_str(), nullptr, 16);
        s.type = type_s[0];
        s.name = std::move(name);
        if (mod.size() > 2 && mod.front() == '[' && mod.back() == ']')
            s.module = mod.substr(1, mod.size() - 2);
        any_nonzero |= s.addr != 0;
        if (s.is_text())
            k.syms_.push_back(std::move(s));
        else
            k.others_.push_back(std::move(s));
    }
    k.hidden_ = !any_nonzero && !k.syms_.empty();
    std::stable_sort(k.syms_.begin(), k.syms_.end(),
                     [](const Ksym& a, const Ksym& b) { return a.addr < b.addr; });
    for (std::size_t i = 0; i < k.syms_.size(); i++) {
        k.by_name_[k.syms_[i].name].push_back(i);
        if (k.syms_[i].module.empty())
            k.by_base_[split_clone_name(k.syms_[i].name).base].push_back(i);
    }
    for (std::size_t i = 0; i < k.others_.size(); i++) {
        k.other_by_name_.emplace(k.others_[i].name, i);
        if (k.others_[i].addr)
            k.other_by_addr_.emplace(k.others_[i].addr, i);
    }
    return k;
}

const Ksym* Ksyms::find(std::string_view name) const {
    if (auto it = by_name_.find(std::string(name)); it != by_name_.end()) {
        const Ksym* best = nullptr;
        for (std::size_t i : it->second) {
            if (syms_[i].module.empty())
                return &syms_[i];
            if (!best)
                best = &syms_[i];
        }
        return best;
    }
    if (auto it = other_by_name_.find(std::string(name)); it != other_by_name_.end())
        return &others_[it->second];
    return nullptr;
}

std::vector<const Ksym*> Ksyms::find_function(std::string_view base) const {
    std::vector<const Ksym*> out;
    auto it = by_base_.find(std::string(base));
    if (it == by_base_.end())
        return out;
    for (std::size_t i : it->second)
        out.push_back(&syms_[i]);
    std::stable_partition(out.begin(), out.end(), [&](const Ksym* s) { return s->name == base; });
    return out;
}

std::string Ksyms::symbolize(uint64_t addr) const {
    if (syms_.empty() || hidden_)
        return {};
    if (auto d = other_by_addr_.find(addr); d != other_by_addr_.end()) {
        const Ksym& s = others_[d->second];
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
