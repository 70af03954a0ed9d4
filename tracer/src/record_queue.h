// record_queue.h - RecordQueue: raw ring-buffer records handed from the
// drain thread (ring_drain.h) to the thread that decodes them.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <stop_token>
#include <vector>

namespace kextrace {

// Raw ring-buffer records on their way from the drain thread (the one
// producer) to the thread that decodes them (the one consumer): copied into
// chunks of bytes (no allocation per record; chunks are recycled), a chunk
// handed over under a mutex when it is full or a drain pass ends. Records
// come out in the order they went in. Unbounded unless limit_bytes > 0, a
// debugging aid: the producer then waits while that many record bytes are
// queued, so a stalled consumer backs up into the ring again (and the BPF
// side counts the losses), as when the consumer drained the ring itself.
class RecordQueue {
  public:
    using RecordFn = std::function<void(std::span<const std::byte>)>;
    struct Stats {
        uint64_t records = 0;      // copied in, in all
        uint64_t bytes = 0;        // their bytes
        uint64_t peak_records = 0; // most records handed over and not yet taken, at once
        uint64_t peak_bytes = 0;   // most record bytes handed over and not yet taken
        uint64_t chunks = 0;       // chunks allocated
        uint64_t limit_waits = 0;  // times the producer waited for the limit
    };
    static constexpr std::size_t kChunkBytes = 256 << 10;
    static constexpr uint64_t kClosed = UINT64_MAX; // consume_until(kClosed): until close()

    explicit RecordQueue(std::size_t limit_bytes = 0, std::size_t chunk_bytes = kChunkBytes);
    RecordQueue(const RecordQueue&) = delete;
    RecordQueue& operator=(const RecordQueue&) = delete;

    // Producer (one thread at a time). Copies rec; a full chunk is handed over.
    // may_wait = false ignores the limit (the consumer is this thread). false:
    // stop requested while waiting for the limit, or out of memory; rec was not kept.
    bool push(std::span<const std::byte> rec, std::stop_token stop = {}, bool may_wait = true);
    // Hands the open chunk over, if it holds records.
    bool flush(std::stop_token stop = {}, bool may_wait = true);
    // flush(), then marks m as reached: consume_until(m) returns once it took
    // every record pushed before.
    bool mark(uint64_t m, std::stop_token stop = {});
    // The producer is done: waiting consumers return once the queue is empty.
    void close();
    // Undoes close() for a new producer.
    void reopen();
    bool closed() const;
    // 0: unbounded. Set while no producer runs.
    void set_limit(std::size_t limit_bytes);

    // Consumer (one thread). Waits up to `wait` for a chunk, then hands the
    // queued records to fn, in order, until none is left or `budget` (0: no
    // limit) has passed. Returns the records handed.
    std::size_t consume_for(const RecordFn& fn, std::chrono::milliseconds wait,
                            std::chrono::milliseconds budget = {});
    // Hands records to fn until the producer reached mark m (or closed the
    // queue) and nothing pushed before that is left.
    std::size_t consume_until(uint64_t m, const RecordFn& fn);

    Stats stats() const;

  private:
    struct Chunk {
        std::unique_ptr<std::byte[]> data;
        std::size_t cap = 0, used = 0; // bytes of data, framing included
        std::size_t records = 0, payload = 0;
    };
    bool hand_over(std::stop_token stop, bool may_wait);
    std::size_t take_one(std::unique_lock<std::mutex>& lk, const RecordFn& fn);

    std::size_t limit_bytes_;
    const std::size_t chunk_bytes_;
    Chunk open_; // the producer's, not under the mutex
    mutable std::mutex m_;
    std::condition_variable_any cv_; // data for the consumer, room for the producer
    std::deque<Chunk> full_;
    std::vector<Chunk> spare_;
    uint64_t queued_records_ = 0, queued_bytes_ = 0, mark_ = 0;
    bool closed_ = false;
    Stats stats_;
};

} // namespace kextrace
