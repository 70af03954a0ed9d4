// kextrace --driver / --file: the names and files checked, and which
// mappings the filter follows.
#include "driver_filter.h"

#include <gtest/gtest.h>

using namespace kextrace;

namespace {

const Ksyms& ksyms() {
    static const Ksyms k = Ksyms::parse("ffffffff81c00200 t packet_mmap\n"
                                        "ffffffff82a00100 d socket_file_ops\n"
                                        "ffffffff82a00200 d bpf_map_fops\n"
                                        "ffffffffc0a01000 t mydrv_mmap\t[mydrv]\n"
                                        "ffffffffc0a02000 d mydrv_fops\t[mydrv]\n");
    return k;
}

const char* kModules = "mydrv 16384 1 - Live 0xffffffffc0a00000\n"
                       "kex 24576 0 - Live 0xffffffffc0b00000 (O)\n";

Symbolizer sym() {
    return [](uint64_t a) { return ksyms().symbolize(a); };
}

VmaInfo packet_socket(uint64_t ino) {
    VmaInfo v;
    v.f_op = 0xffffffff82a00100;
    v.mmap = 0xffffffff81c00200;
    v.ino = ino;
    v.magic = kSockfsMagic;
    return v;
}

VmaInfo mydrv_node(uint32_t rdev) {
    VmaInfo v;
    v.f_op = 0xffffffffc0a02000;
    v.mmap = 0xffffffffc0a01000;
    v.rdev = rdev;
    v.flags = KEX_VMA_NAME_ROOT;
    v.name = {"mydrv"};
    return v;
}

} // namespace

TEST(TracerDriverFilter, NamesAreModulesOrBuiltInOwners) {
    auto f = make_driver_filter({"mydrv", "af_packet", "bpf_map"}, {}, ksyms(), kModules);
    ASSERT_TRUE(f) << f.error().message;
    EXPECT_EQ(f->drivers.size(), 3u);

    auto bad = make_driver_filter({"nosuch"}, {}, ksyms(), kModules);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("--driver 'nosuch'"), std::string::npos);
    EXPECT_NE(bad.error().message.find("loaded modules: mydrv, kex"), std::string::npos)
        << bad.error().message;
    EXPECT_FALSE(make_driver_filter({""}, {}, ksyms(), kModules));
}

TEST(TracerDriverFilter, MissingFileIsAnError) {
    auto bad = make_driver_filter({}, {"/nonexistent/dev/mydrv"}, ksyms(), kModules);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("--file '/nonexistent/dev/mydrv'"), std::string::npos);
    EXPECT_NE(bad.error().message.find("No such file"), std::string::npos);
}

TEST(TracerDriverFilter, FollowsByOwnerName) {
    auto f = make_driver_filter({"af_packet"}, {}, ksyms(), kModules);
    ASSERT_TRUE(f);
    EXPECT_TRUE(f->follows(packet_socket(7), sym()));
    EXPECT_FALSE(f->follows(mydrv_node(0x103), sym()));
    auto m = make_driver_filter({"mydrv"}, {}, ksyms(), kModules);
    ASSERT_TRUE(m);
    EXPECT_TRUE(m->follows(mydrv_node(0x103), sym()));
    EXPECT_FALSE(m->follows(packet_socket(7), sym()));
}

TEST(TracerDriverFilter, FollowsByFile) {
    // a socket as /proc/PID/maps names it
    auto s = make_driver_filter({}, {"socket:[7]"}, ksyms(), kModules);
    ASSERT_TRUE(s);
    EXPECT_TRUE(s->follows(packet_socket(7), sym()));
    EXPECT_FALSE(s->follows(packet_socket(8), sym()));
    // a device node, by its number: /dev/null is char 1:3
    auto d = make_driver_filter({}, {"/dev/null"}, ksyms(), kModules);
    ASSERT_TRUE(d) << d.error().message;
    ASSERT_EQ(d->files.size(), 1u);
    EXPECT_EQ(d->files[0].rdev, 0x103u);
    EXPECT_TRUE(d->follows(mydrv_node(0x103), sym()));
    EXPECT_FALSE(d->follows(mydrv_node(0x104), sym()));
}
