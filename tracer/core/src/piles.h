// piles.h - the reorder buffer's arrival order cut into a few piles each in
// time order, so that a flush merges them instead of sorting.
//
// A drained per-CPU ring delivers each CPU's events in time order, in
// chunks from one CPU then another: the buffer is a few interleaved sorted
// sequences. Each event joins the pile it last joined when its time allows
// (not before that pile's last), else the pile whose last time is the
// latest not after it, else a new pile. A flush then merges the piles by
// (time, arrival): the order a sort of the whole buffer gives, without its
// keys (16 bytes an event, most of a large flush's fresh memory) or passes.
// Past kMaxPiles (events in no such order) the piles give up and the flush
// sorts (correlator.cpp). A pile keeps runs of consecutive arrivals, not an
// index an event.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace kextrace::corr {

class RunPiles {
  public:
    static constexpr std::size_t kMaxPiles = 16;

    // Arrival i (0, 1, 2, ... since the last reset) at time ts.
    void add(uint64_t ts, std::size_t i) {
        if (ts >= tail_ && i == end_) [[likely]] { // the open run goes on
            tail_ = ts;
            ++end_;
            return;
        }
        add_elsewhere(ts, i);
    }

    // False once the arrivals needed more than kMaxPiles piles.
    bool ok() const { return ok_; }

    // No arrivals; or arrivals 0..n-1 already in time order, the last at tail.
    void reset(std::size_t n = 0, uint64_t tail = 0) {
        piles_.clear();
        ok_ = true;
        last_ = 0;
        end_ = kNone;
        if (n) {
            piles_.push_back({tail, {}});
            first_ = 0;
            end_ = n;
            tail_ = tail;
        }
    }

    // f(e, i) for every arrival i, its element e, by (ts_of(e), i). Needs
    // ok(). seg_of(i): a span of the elements from arrival i on, as far as
    // they lie contiguous (at least e itself): a cursor steps through it by
    // pointer, asking again only where it ends (a chunk's end).
    template <class SegOf, class TsOf, class F> void merge(SegOf&& seg_of, TsOf&& ts_of, F&& f) {
        merge_until(UINT64_MAX, seg_of, ts_of, f, [](std::size_t, std::size_t) {});
    }

    // merge's f for the arrivals at times up to limit only. Every pile being
    // in time order, what is left is later than limit in all of them: it is
    // not merged but handed to keep(first, n), runs of consecutive arrivals
    // in arrival order, and the piles become those runs renumbered from 0 in
    // that order (the arrivals kept are arrivals 0.. of the next fill, each in
    // its pile, their order by (time, arrival) the same as before).
    template <class SegOf, class TsOf, class F, class Keep>
    void merge_until(uint64_t limit, SegOf&& seg_of, TsOf&& ts_of, F&& f, Keep&& keep) {
        close_run();
        using Elem =
            typename std::remove_reference_t<decltype(seg_of(std::size_t{}))>::element_type;
        Cursor<Elem> cur[kMaxPiles];
        std::size_t k = 0;
        auto seek = [&](Cursor<Elem>& c, std::size_t i) {
            const auto seg = seg_of(i);
            c.i = i;
            c.p = seg.data();
            c.seg_left = seg.size();
        };
        for (std::size_t p = 0; p < piles_.size(); ++p)
            if (!piles_[p].runs.empty()) {
                const Run* r = piles_[p].runs.data();
                Cursor<Elem>& c = cur[k++];
                seek(c, r->first);
                c.left = r->n;
                c.run = r;
                c.end = r + piles_[p].runs.size();
                c.pile = p;
                c.ts = ts_of(*c.p);
            }
        while (k) {
            std::size_t b = 0;
            for (std::size_t c = 1; c < k; ++c)
                if (cur[c].ts < cur[b].ts || (cur[c].ts == cur[b].ts && cur[c].i < cur[b].i))
                    b = c;
            Cursor<Elem>& c = cur[b];
            if (c.ts > limit)
                break;
            f(*c.p, c.i);
            if (--c.left) {
                ++c.i;
                if (--c.seg_left)
                    ++c.p;
                else
                    seek(c, c.i);
            } else if (++c.run != c.end) {
                seek(c, c.run->first);
                c.left = c.run->n;
            } else {
                c = cur[--k];
                continue;
            }
            c.ts = ts_of(*c.p);
        }
        keep_rest(cur, k, keep);
    }

  private:
    static constexpr std::size_t kNone = SIZE_MAX;
    struct Run {
        std::size_t first; // arrival index
        std::size_t n;
    };
    struct Pile {
        uint64_t tail; // its last arrival's time (before the open run)
        std::vector<Run> runs;
    };
    template <class Elem> struct Cursor {
        uint64_t ts;
        std::size_t i;
        Elem* p;              // arrival i's element
        std::size_t seg_left; // contiguous from p on, p included
        std::size_t left;     // in its run, this one included
        const Run* run;
        const Run* end;
        std::size_t pile;
    };

    // What the k cursors have left, to keep(first, n) in arrival order; the
    // piles become those runs, renumbered from 0 in that order.
    template <class Elem, class Keep>
    void keep_rest(const Cursor<Elem>* cur, std::size_t k, Keep&& keep) {
        struct Piece {
            std::size_t first, n, pile;
        };
        std::vector<Piece> left;
        for (std::size_t j = 0; j < k; ++j) {
            const Cursor<Elem>& c = cur[j];
            left.push_back({c.i, c.left, c.pile});
            for (const Run* r = c.run + 1; r != c.end; ++r)
                left.push_back({r->first, r->n, c.pile});
        }
        std::sort(left.begin(), left.end(),
                  [](const Piece& a, const Piece& b) { return a.first < b.first; });
        std::vector<Pile> kept(piles_.size());
        for (std::size_t p = 0; p < piles_.size(); ++p)
            kept[p].tail = piles_[p].tail;
        std::size_t at = 0;
        for (const Piece& q : left) {
            keep(q.first, q.n);
            std::vector<Run>& runs = kept[q.pile].runs;
            if (!runs.empty() && runs.back().first + runs.back().n == at)
                runs.back().n += q.n;
            else
                runs.push_back({at, q.n});
            at += q.n;
        }
        std::erase_if(kept, [](const Pile& p) { return p.runs.empty(); });
        piles_.swap(kept);
        ok_ = true;
        last_ = 0;
        end_ = kNone;
    }

    // The open run [first_, end_) of pile last_ into its runs.
    void close_run() {
        if (end_ == kNone)
            return;
        Pile& p = piles_[last_];
        if (!p.runs.empty() && p.runs.back().first + p.runs.back().n == first_)
            p.runs.back().n += end_ - first_;
        else
            p.runs.push_back({first_, end_ - first_});
        p.tail = tail_;
        end_ = kNone;
    }

    // Not after the open run: the pile whose last time is the latest not
    // after ts, else a new pile (past kMaxPiles: ok_ false), opens a run.
    void add_elsewhere(uint64_t ts, std::size_t i) {
        if (!ok_)
            return;
        close_run();
        std::size_t best = piles_.size();
        for (std::size_t p = 0; p < piles_.size(); ++p)
            if (piles_[p].tail <= ts &&
                (best == piles_.size() || piles_[p].tail > piles_[best].tail))
                best = p;
        if (best == piles_.size()) {
            if (piles_.size() == kMaxPiles) {
                ok_ = false;
                piles_.clear();
                return;
            }
            piles_.push_back({ts, {}});
        }
        last_ = best;
        first_ = i;
        end_ = i + 1;
        tail_ = ts;
    }

    std::vector<Pile> piles_;
    std::size_t last_ = 0;  // the open run's pile
    std::size_t first_ = 0; // the open run: arrivals [first_, end_), kNone: none
    std::size_t end_ = kNone;
    uint64_t tail_ = 0; // its last time
    bool ok_ = true;
};

} // namespace kextrace::corr
