// Unit tests of tracer/src/ksyms: kallsyms parsing, clone names, symbolization,
// on excerpts of the lab guests' /proc/kallsyms (tests/unit/fixtures).
#include "ksyms.h"

#include <gtest/gtest.h>

using namespace kextrace;

namespace {

Ksyms load_fixture(const char* name) {
    auto k = Ksyms::load(std::string(KEX_FIXTURES) + "/" + name);
    EXPECT_TRUE(k.ok()) << (k.ok() ? "" : k.error().message);
    return k.ok() ? std::move(*k) : Ksyms{};
}

} // namespace

TEST(TracerKsyms, SplitsCloneSuffixes) {
    auto c = split_clone_name("insert_page_into_pte_locked.constprop.0");
    EXPECT_EQ(c.base, "insert_page_into_pte_locked");
    ASSERT_EQ(c.suffixes.size(), 1u);
    EXPECT_EQ(c.suffixes[0], "constprop.0");
    EXPECT_TRUE(c.has("constprop"));
    EXPECT_FALSE(c.has("isra"));

    c = split_clone_name("f.isra.0.constprop.12");
    EXPECT_EQ(c.base, "f");
    EXPECT_EQ(c.suffixes, (std::vector<std::string>{"isra.0", "constprop.12"}));

    c = split_clone_name("do_softirq.part.0");
    EXPECT_TRUE(c.has("part"));
    c = split_clone_name("foo.cold");
    EXPECT_EQ(c.base, "foo");
    EXPECT_TRUE(c.has("cold"));
    c = split_clone_name("bar.llvm.123456");
    EXPECT_EQ(c.base, "bar");
    EXPECT_TRUE(c.has("llvm"));

    // dots that are not clone suffixes stay in the name
    c = split_clone_name("_note_10");
    EXPECT_EQ(c.base, "_note_10");
    EXPECT_FALSE(c.is_clone());
    c = split_clone_name("a.b");
    EXPECT_EQ(c.base, "a.b");
    EXPECT_FALSE(c.is_clone());
}

TEST(TracerKsyms, FindsTheInsertCloneOn61And612) {
    Ksyms k61 = load_fixture("kallsyms-6.1");
    auto f = k61.find_function("insert_page_into_pte_locked");
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0]->name, "insert_page_into_pte_locked.constprop.0");
    EXPECT_EQ(f[0]->type, 't');

    Ksyms k612 = load_fixture("kallsyms-6.12");
    f = k612.find_function("insert_page_into_pte_locked");
    ASSERT_EQ(f.size(), 1u) << "the __pfx_ padding symbol is not a clone";
    EXPECT_EQ(f[0]->name, "insert_page_into_pte_locked.isra.0");
    EXPECT_EQ(f[0]->addr, 0xffffffff8eb88310ull);
}

TEST(TracerKsyms, ExactNameComesFirst) {
    Ksyms k = Ksyms::parse("ffffffff81000100 t foo.constprop.0\n"
                           "ffffffff81000200 T foo\n"
                           "ffffffff81000300 t foo.part.0\n");
    auto f = k.find_function("foo");
    ASSERT_EQ(f.size(), 3u);
    EXPECT_EQ(f[0]->name, "foo");
    EXPECT_EQ(f[1]->name, "foo.constprop.0");
}

TEST(TracerKsyms, FindsDataSymbolsByName) {
    Ksyms k = load_fixture("kallsyms-6.1");
    const Ksym* v = k.find("vmemmap_base");
    ASSERT_NE(v, nullptr);
    EXPECT_EQ(v->type, 'D');
    EXPECT_FALSE(v->is_text());
    EXPECT_EQ(k.find("no_such_symbol"), nullptr);
    EXPECT_NE(k.find("page_add_file_rmap"), nullptr);
    EXPECT_EQ(k.find("folio_add_file_rmap_ptes"), nullptr);
}

TEST(TracerKsyms, SymbolizesWithOffsetAndModule) {
    Ksyms k = load_fixture("kallsyms-6.1");
    EXPECT_EQ(k.symbolize(0xffffffffb48c9e10ull), "insert_page_into_pte_locked.constprop.0+0x0");
    EXPECT_EQ(k.symbolize(0xffffffffb48c9e5aull), "insert_page_into_pte_locked.constprop.0+0x4a");
    EXPECT_EQ(k.symbolize(0xffffffffb48e79d0ull + 0x10), "page_add_file_rmap+0x10");
    EXPECT_EQ(k.symbolize(0xffffffffc0444050ull), "v9fs_set_super+0x10 [9p]");
    EXPECT_EQ(k.symbolize(0x1000), "") << "below every text symbol";
}

TEST(TracerKsyms, HiddenAddresses) {
    Ksyms k = Ksyms::parse("0000000000000000 T _text\n0000000000000000 t foo\n");
    EXPECT_TRUE(k.addresses_hidden());
    EXPECT_EQ(k.symbolize(0x10), "");
}

TEST(TracerKsyms, MissingFileIsAnError) {
    auto k = Ksyms::load("/nonexistent/kallsyms");
    ASSERT_FALSE(k.ok());
    EXPECT_NE(k.error().message.find("/nonexistent/kallsyms"), std::string::npos);
}
