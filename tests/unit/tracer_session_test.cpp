// Unit tests of tracer/src/session: the held child (released only when told,
// exec failures reported), PATH lookup, process trees. No BPF needed.
#include "session.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

using namespace kextrace;

TEST(TracerSession, HeldChildRunsOnlyAfterRelease) {
    char dir[] = "/tmp/kextrace-held.XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    std::string marker = std::string(dir) + "/ran";
    auto child = HeldChild::spawn({"sh", "-c", "touch " + marker + "; exit 7"});
    ASSERT_TRUE(child.ok());
    ::usleep(100000);
    EXPECT_NE(::access(marker.c_str(), F_OK), 0) << "ran before release";
    EXPECT_FALSE(child->poll_exit().has_value());
    ASSERT_TRUE(child->release().ok());
    int st = child->wait(std::chrono::seconds(5));
    EXPECT_TRUE(WIFEXITED(st));
    EXPECT_EQ(exit_code_of(st), 7);
    EXPECT_EQ(describe_wait_status(st), "exit status 7");
    EXPECT_EQ(::access(marker.c_str(), F_OK), 0);
    ::unlink(marker.c_str());
    ::rmdir(dir);
}

TEST(TracerSession, ExecFailureIsReported) {
    auto child = HeldChild::spawn({"/nonexistent/kextrace-no-such-command"});
    ASSERT_TRUE(child.ok());
    auto st = child->release();
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().message, "No such file or directory");
    EXPECT_EQ(exit_code_of(child->wait(std::chrono::seconds(5))), 127);
}

TEST(TracerSession, NeverReleasedChildIsReaped) {
    pid_t pid;
    {
        auto child = HeldChild::spawn({"true"});
        ASSERT_TRUE(child.ok());
        pid = child->pid();
    }
    EXPECT_EQ(::kill(pid, 0), -1) << "the held child outlived its owner";
}

TEST(TracerSession, KilledChildStatus) {
    auto child = HeldChild::spawn({"sleep", "10"});
    ASSERT_TRUE(child.ok());
    ASSERT_TRUE(child->release().ok());
    ::kill(child->pid(), SIGKILL);
    int st = child->wait(std::chrono::seconds(5));
    EXPECT_EQ(exit_code_of(st), 128 + SIGKILL);
    EXPECT_EQ(describe_wait_status(st), "killed by signal 9 (KILL)");
}

TEST(TracerSession, ResolvesOnPath) {
    EXPECT_EQ(resolve_on_path("/bin/sh"), "/bin/sh");
    EXPECT_NE(resolve_on_path("sh"), "");
    EXPECT_EQ(resolve_on_path("kextrace-no-such-command"), "");
    EXPECT_EQ(resolve_on_path("/nonexistent/x"), "");
}

TEST(TracerSession, ProcessTreeFindsChildren) {
    auto child = HeldChild::spawn({"sleep", "5"});
    ASSERT_TRUE(child.ok());
    auto tree = process_tree(::getpid());
    ASSERT_FALSE(tree.empty());
    EXPECT_EQ(tree.front(), ::getpid());
    EXPECT_NE(std::find(tree.begin(), tree.end(), child->pid()), tree.end());
}
