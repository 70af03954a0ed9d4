// EventsWriter (--events): every write error is caught with its errno and
// names the file; nothing is written after it.
#include "events_writer.h"
#include "session.h"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <unistd.h>

using namespace kextrace;

TEST(TracerEventsWriter, WritesLines) {
    char path[] = "/tmp/kextrace-events-XXXXXX";
    int fd = ::mkstemp(path);
    ASSERT_GE(fd, 0);
    ::close(fd);
    {
        auto w = EventsWriter::open(path);
        ASSERT_TRUE(w) << w.error().message;
        EXPECT_TRUE(w->write_line(R"({"type":"insert"})"));
        EXPECT_TRUE(w->write_line(R"({"type":"insert_ret"})"));
        EXPECT_TRUE(w->close().ok());
        EXPECT_EQ(w->lines(), 2u);
    }
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    EXPECT_EQ(ss.str(), "{\"type\":\"insert\"}\n{\"type\":\"insert_ret\"}\n");
    ::unlink(path);
}

TEST(TracerEventsWriter, FullFileSystemIsAnErrorNamingTheFile) {
    auto w = EventsWriter::open("/dev/full");
    ASSERT_TRUE(w) << w.error().message;
    EXPECT_TRUE(w->write_line("{}")); // buffered
    EXPECT_FALSE(w->failed());
    Status st = w->flush();
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().message, "writing events to /dev/full: No space left on device");
    EXPECT_TRUE(w->failed());
    EXPECT_FALSE(w->write_line("{}")); // nothing more
    EXPECT_FALSE(w->close().ok());
}

TEST(TracerEventsWriter, ClosedPipeIsEpipeNotADeath) {
    ignore_sigpipe(); // as kextrace does before it opens its outputs
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    ::close(p[0]); // the reader went away (`| head -1`)
    EventsWriter w = EventsWriter::adopt(p[1], "events.fifo");
    std::string line(1000, 'x');
    bool ok = true;
    // past the buffer: the write happens while the trace runs
    for (int i = 0; i < 100 && ok; i++)
        ok = w.write_line(line);
    EXPECT_FALSE(ok);
    Status st = w.close();
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().message, "writing events to events.fifo: Broken pipe");
    ::signal(SIGPIPE, SIG_DFL);
}

TEST(TracerEventsWriter, UnopenableIsAnError) {
    auto w = EventsWriter::open("/nonexistent-dir/ev.jsonl");
    ASSERT_FALSE(w);
    EXPECT_EQ(w.error().message,
              "cannot write /nonexistent-dir/ev.jsonl: No such file or directory");
}
