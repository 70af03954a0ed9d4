// Unit tests of RecordQueue (tracer/src/record_queue.h), the hand-over between the
// ring's drain thread and the consumer: order and bytes kept, nothing lost
// across threads, marks, peaks, the debugging limit. No BPF needed.
#include "record_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

using namespace kextrace;
using namespace std::chrono_literals;

namespace {

// A record of n bytes whose content says which one it is.
std::vector<std::byte> record(uint32_t seq, std::size_t n) {
    std::vector<std::byte> r(std::max<std::size_t>(n, sizeof(seq)));
    for (std::size_t i = 0; i < r.size(); i++)
        r[i] = static_cast<std::byte>(seq + i);
    std::memcpy(r.data(), &seq, sizeof(seq));
    return r;
}

// Checks every record handed over is the next one, intact.
struct Checker {
    uint32_t next = 0;
    bool ok = true;
    void operator()(std::span<const std::byte> rec) {
        uint32_t seq;
        std::memcpy(&seq, rec.data(), sizeof(seq));
        auto want = record(next, 4 + next % 300);
        if (seq != next || rec.size() != want.size() ||
            std::memcmp(rec.data(), want.data(), want.size()) != 0)
            ok = false;
        next++;
    }
};

} // namespace

TEST(TracerRecordQueue, KeepsOrderAndBytes) {
    RecordQueue q(0, 1024); // small chunks: many hand-overs
    for (uint32_t i = 0; i < 1000; i++)
        ASSERT_TRUE(q.push(record(i, 4 + i % 300)));
    ASSERT_TRUE(q.flush());
    Checker c;
    EXPECT_EQ(q.consume_for(std::ref(c), 0ms), 1000u);
    EXPECT_TRUE(c.ok);
    EXPECT_EQ(c.next, 1000u);
    RecordQueue::Stats s = q.stats();
    EXPECT_EQ(s.records, 1000u);
    EXPECT_EQ(s.peak_records, 1000u);
    EXPECT_GT(s.peak_bytes, 0u);
    EXPECT_EQ(s.peak_bytes, s.bytes);
    EXPECT_EQ(q.consume_for(std::ref(c), 0ms), 0u);
}

TEST(TracerRecordQueue, UnflushedRecordsWaitForTheFlush) {
    RecordQueue q;
    ASSERT_TRUE(q.push(record(0, 4)));
    Checker c;
    EXPECT_EQ(q.consume_for(std::ref(c), 0ms), 0u);
    ASSERT_TRUE(q.flush());
    EXPECT_EQ(q.consume_for(std::ref(c), 0ms), 1u);
    EXPECT_TRUE(c.ok);
}

TEST(TracerRecordQueue, RecordLargerThanAChunk) {
    RecordQueue q(0, 64);
    ASSERT_TRUE(q.push(record(0, 4)));
    ASSERT_TRUE(q.push(record(1, 500)));
    ASSERT_TRUE(q.push(record(2, 6)));
    ASSERT_TRUE(q.flush());
    std::vector<std::size_t> sizes;
    q.consume_for([&](std::span<const std::byte> r) { sizes.push_back(r.size()); }, 0ms);
    EXPECT_EQ(sizes, (std::vector<std::size_t>{4, 500, 6}));
}

// One producer thread, one consumer: every record arrives, in order, and the
// mark protocol (drain(0)) and close (finish) hand over everything before them.
TEST(TracerRecordQueue, ThreadsLoseNothing) {
    for (std::size_t limit : {std::size_t{0}, std::size_t{4096}}) {
        RecordQueue q(limit, 4096);
        constexpr uint32_t kRecords = 200000;
        std::atomic<uint32_t> marked{0};
        std::jthread producer([&] {
            for (uint32_t i = 0; i < kRecords; i++) {
                ASSERT_TRUE(q.push(record(i, 4 + i % 300)));
                if (i % 1000 == 999) {
                    ASSERT_TRUE(q.mark(i / 1000 + 1));
                    marked = i + 1;
                }
            }
            q.flush();
            q.close();
        });
        Checker c;
        // up to mark 50 every record before it (50,000) has been handed over
        q.consume_until(50, std::ref(c));
        EXPECT_GE(c.next, 50000u);
        while (q.consume_for(std::ref(c), 1ms) || !q.closed())
            ;
        q.consume_until(RecordQueue::kClosed, std::ref(c));
        producer.join();
        EXPECT_TRUE(c.ok) << "limit " << limit;
        EXPECT_EQ(c.next, kRecords) << "limit " << limit;
        EXPECT_EQ(q.stats().records, kRecords);
        if (limit) {
            EXPECT_LE(q.stats().peak_bytes, limit + 4096) << "the limit bounds the queue";
        }
    }
}

// With a limit, a producer facing a stalled consumer waits (that is how a
// slow consumer backs up into the ring), and a stop request releases it.
TEST(TracerRecordQueue, LimitHoldsTheProducerUntilStopped) {
    RecordQueue q(100, 64);
    std::stop_source stop;
    std::atomic<bool> returned{false};
    std::atomic<bool> result{true};
    std::jthread producer([&] {
        bool ok = true;
        for (uint32_t i = 0; ok && i < 1000; i++)
            ok = q.push(record(i, 40), stop.get_token());
        result = ok;
        returned = true;
    });
    std::this_thread::sleep_for(100ms);
    EXPECT_FALSE(returned) << "the producer went past the limit";
    EXPECT_GE(q.stats().limit_waits, 1u);
    stop.request_stop();
    producer.join();
    EXPECT_TRUE(returned);
    EXPECT_FALSE(result);
}

// may_wait = false (the consumer is the producer's thread) ignores the limit.
TEST(TracerRecordQueue, NoWaitIgnoresTheLimit) {
    RecordQueue q(1, 64);
    for (uint32_t i = 0; i < 100; i++)
        ASSERT_TRUE(q.push(record(i, 4 + i % 300), {}, false));
    ASSERT_TRUE(q.flush({}, false));
    Checker c;
    EXPECT_EQ(q.consume_for(std::ref(c), 0ms), 100u);
    EXPECT_TRUE(c.ok);
}

TEST(TracerRecordQueue, ConsumeForReturnsAfterItsWait) {
    RecordQueue q;
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(q.consume_for([](std::span<const std::byte>) {}, 30ms), 0u);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 25ms);
    q.close();
    EXPECT_EQ(q.consume_until(RecordQueue::kClosed, [](std::span<const std::byte>) {}), 0u);
}
