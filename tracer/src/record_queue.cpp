// record_queue.cpp - see record_queue.h.
#include "record_queue.h"

#include <algorithm>
#include <cstring>
#include <new>

namespace kextrace {

namespace {

// A record in a chunk: its size (u32), 4 bytes of padding, its bytes, padded
// to 8 so the next one is aligned too.
constexpr std::size_t kFrame = 8;
constexpr std::size_t kKeepSpare = 16; // chunks kept for reuse (4 MiB at the default size)

std::size_t framed(std::size_t n) {
    return kFrame + ((n + 7) & ~std::size_t{7});
}

using QueueClock = std::chrono::steady_clock;

} // namespace

RecordQueue::RecordQueue(std::size_t limit_bytes, std::size_t chunk_bytes)
    : limit_bytes_(limit_bytes), chunk_bytes_(std::max<std::size_t>(chunk_bytes, 64)) {}

bool RecordQueue::push(std::span<const std::byte> rec, std::stop_token stop, bool may_wait) {
    const std::size_t need = framed(rec.size());
    if (open_.cap - open_.used < need) {
        if (open_.records && !hand_over(stop, may_wait))
            return false;
        if (open_.cap < need) { // none, or too small for this record
            std::unique_lock lk(m_);
            if (!spare_.empty() && spare_.back().cap >= need) {
                open_ = std::move(spare_.back());
                spare_.pop_back();
            } else {
                lk.unlock();
                std::size_t cap = std::max(chunk_bytes_, need);
                Chunk c;
                c.data.reset(new (std::nothrow) std::byte[cap]);
                if (!c.data)
                    return false;
                c.cap = cap;
                open_ = std::move(c);
                lk.lock();
                stats_.chunks++;
            }
        }
    }
    std::byte* p = open_.data.get() + open_.used;
    const auto n = static_cast<uint32_t>(rec.size());
    std::memcpy(p, &n, sizeof(n));
    std::memcpy(p + kFrame, rec.data(), rec.size());
    open_.used += need;
    open_.records++;
    open_.payload += rec.size();
    return true;
}

bool RecordQueue::hand_over(std::stop_token stop, bool may_wait) {
    std::unique_lock lk(m_);
    if (limit_bytes_ && may_wait && queued_bytes_ >= limit_bytes_) {
        stats_.limit_waits++;
        if (!cv_.wait(lk, stop, [&] { return queued_bytes_ < limit_bytes_; }))
            return false;
    }
    queued_records_ += open_.records;
    queued_bytes_ += open_.payload;
    stats_.records += open_.records;
    stats_.bytes += open_.payload;
    stats_.peak_records = std::max(stats_.peak_records, queued_records_);
    stats_.peak_bytes = std::max(stats_.peak_bytes, queued_bytes_);
    full_.push_back(std::move(open_));
    open_ = Chunk{};
    lk.unlock();
    cv_.notify_all();
    return true;
}

bool RecordQueue::flush(std::stop_token stop, bool may_wait) {
    return !open_.records || hand_over(stop, may_wait);
}

bool RecordQueue::mark(uint64_t m, std::stop_token stop) {
    if (!flush(stop))
        return false;
    {
        std::lock_guard lk(m_);
        mark_ = std::max(mark_, m);
    }
    cv_.notify_all();
    return true;
}

void RecordQueue::close() {
    {
        std::lock_guard lk(m_);
        closed_ = true;
    }
    cv_.notify_all();
}

void RecordQueue::reopen() {
    std::lock_guard lk(m_);
    closed_ = false;
}

bool RecordQueue::closed() const {
    std::lock_guard lk(m_);
    return closed_;
}

void RecordQueue::set_limit(std::size_t limit_bytes) {
    std::lock_guard lk(m_);
    limit_bytes_ = limit_bytes;
}

std::size_t RecordQueue::take_one(std::unique_lock<std::mutex>& lk, const RecordFn& fn) {
    Chunk c = std::move(full_.front());
    full_.pop_front();
    queued_records_ -= c.records;
    queued_bytes_ -= c.payload;
    lk.unlock();
    cv_.notify_all(); // room for a producer held at the limit
    for (std::size_t off = 0; off < c.used;) {
        uint32_t n;
        std::memcpy(&n, c.data.get() + off, sizeof(n));
        fn(std::span<const std::byte>(c.data.get() + off + kFrame, n));
        off += framed(n);
    }
    const std::size_t records = c.records;
    c.used = c.records = c.payload = 0;
    lk.lock();
    if (spare_.size() < kKeepSpare && c.cap == chunk_bytes_)
        spare_.push_back(std::move(c));
    return records;
}

std::size_t RecordQueue::consume_for(const RecordFn& fn, std::chrono::milliseconds wait,
                                     std::chrono::milliseconds budget) {
    std::unique_lock lk(m_);
    if (wait.count() > 0)
        cv_.wait_for(lk, wait, [&] { return !full_.empty() || closed_; });
    const auto t0 = QueueClock::now();
    std::size_t n = 0;
    while (!full_.empty()) {
        n += take_one(lk, fn);
        if (budget.count() > 0 && QueueClock::now() - t0 >= budget)
            break;
    }
    return n;
}

std::size_t RecordQueue::consume_until(uint64_t m, const RecordFn& fn) {
    std::unique_lock lk(m_);
    std::size_t n = 0;
    while (true) {
        cv_.wait(lk, [&] { return !full_.empty() || mark_ >= m || closed_; });
        if (full_.empty())
            return n; // the mark reached (or the producer gone), nothing before it left
        n += take_one(lk, fn);
    }
}

RecordQueue::Stats RecordQueue::stats() const {
    std::lock_guard lk(m_);
    return stats_;
}

} // namespace kextrace
