// leak_context: is a kex file still open, which owners still run - read
// from a fake /sys and /proc.
#include "leak_context.h"

#include <kextrace/stream_builder.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

using namespace kextrace;
namespace fs = std::filesystem;

namespace {

struct FakeRoot {
    fs::path dir;
    FakeRoot() {
        char tmpl[] = "/tmp/leakctx.XXXXXX";
        dir = ::mkdtemp(tmpl);
    }
    ~FakeRoot() { fs::remove_all(dir); }
    std::string sys() const { return (dir / "sys").string(); }
    std::string proc() const { return (dir / "proc").string(); }
    void refcnt(const std::string& v) {
        fs::create_directories(dir / "sys/module/kex");
        std::ofstream(dir / "sys/module/kex/refcnt") << v;
    }
    void stat(int pid, char state) {
        fs::create_directories(dir / "proc" / std::to_string(pid));
        std::ofstream(dir / "proc" / std::to_string(pid) / "stat")
            << pid << " (mmap_test (x)) " << state << " 1 1 1";
    }
};

Report two_owners() {
    StreamBuilder b(100);
    b.map({.pages = 1});
    b.pid(200).map({.pages = 1, .vm_start = 0x7e0000000000, .pfn0 = 0x2000});
    Correlator c;
    for (const Event& e : b.events)
        c.feed(e);
    return c.finish();
}

} // namespace

TEST(TracerLeakContext, ModuleRefcount) {
    FakeRoot f;
    EXPECT_FALSE(module_loaded("kex", f.sys()));
    EXPECT_FALSE(module_refcount("kex", f.sys()));
    f.refcnt("3\n");
    EXPECT_TRUE(module_loaded("kex", f.sys()));
    EXPECT_EQ(module_refcount("kex", f.sys()), 3);
}

TEST(TracerLeakContext, ProcessAlive) {
    FakeRoot f;
    f.stat(100, 'S');
    f.stat(200, 'Z');
    EXPECT_TRUE(process_alive(100, f.proc()));
    EXPECT_FALSE(process_alive(200, f.proc())); // a zombie closed its files
    EXPECT_FALSE(process_alive(300, f.proc()));
}

TEST(TracerLeakContext, AStatThatCannotBeReadIsNotAliveAndThrowsNothing) {
    // A process that exits between the /proc scan and the read of its stat
    // makes read() fail (ESRCH): torture_6.1 saw kextrace --leaks --all
    // abort on an uncaught std::ios_base::failure there. A directory in
    // place of the stat file fails the same read (EISDIR).
    FakeRoot f;
    fs::create_directories(f.dir / "proc/400/stat");
    f.stat(100, 'S');
    f.refcnt("0");
    EXPECT_FALSE(process_alive(400, f.proc()));
    LeakOptions o = machine_state("kex", std::chrono::milliseconds(0), f.sys(), f.proc());
    EXPECT_EQ(o.alive, (std::vector<uint32_t>{100}));
}

TEST(TracerLeakContext, DeviceClosedAndAliveOwners) {
    const Report r = two_owners();
    FakeRoot f;
    f.stat(100, 'R');
    f.refcnt("0");
    LeakOptions o = leak_context(r, "kex", std::chrono::milliseconds(0), f.sys(), f.proc());
    EXPECT_TRUE(o.device_closed);
    EXPECT_EQ(o.alive, (std::vector<uint32_t>{100}));

    f.refcnt("2"); // someone still has it open
    o = leak_context(r, "kex", std::chrono::milliseconds(50), f.sys(), f.proc());
    EXPECT_FALSE(o.device_closed);

    fs::remove_all(f.dir / "sys/module/kex"); // unloaded
    o = leak_context(r, "kex", std::chrono::milliseconds(0), f.sys(), f.proc());
    EXPECT_TRUE(o.device_closed);
}

TEST(TracerLeakContext, MachineStateNeedsNoReport) {
    // Read while only the page frees are still traced, before the report
    // exists: every running process, zombies and non-pids left out.
    FakeRoot f;
    f.stat(300, 'S');
    f.stat(100, 'R');
    f.stat(200, 'Z');
    fs::create_directories(f.dir / "proc/self");
    fs::create_directories(f.dir / "proc/12ab");
    f.refcnt("1");
    LeakOptions o = machine_state("kex", std::chrono::milliseconds(0), f.sys(), f.proc());
    EXPECT_FALSE(o.device_closed);
    EXPECT_EQ(o.alive, (std::vector<uint32_t>{100, 300}));
    // leak_context: the same, narrowed to the report's owners (100, 200).
    o = leak_context(two_owners(), "kex", std::chrono::milliseconds(0), f.sys(), f.proc());
    EXPECT_EQ(o.alive, (std::vector<uint32_t>{100}));
}
