// kextrace/steps.h - a page life's steps (part of kextrace/core.h): what a
// step is, and StepList, the compact list a PageLife keeps them in.
#pragma once

#include <linux/types.h>

#include "events.h"

#include <bit>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace kextrace {

// One thing that happened to a page, in time order. 32 bytes as a value; a
// StepList holds it in about 6 (see below).
enum class StepKind : uint8_t {
    kmem_alloc,        // kmem:mm_page_alloc; value = order
    kex_alloc,         // kex:kex_page_alloc; value = index; stack
    insert,            // insert_page_into_pte_locked entry; value = user address (0 on 6.1:
                       // the .constprop clone has no addr argument)
    insert_ret,        // its return; value = ret (as int64)
    rmap_add,          // page_add_file_rmap / folio_add_file_rmap_ptes
    do_set_pte,        // do_set_pte / set_pte_range entry (fault path); value = user address
    pte_set,           // PTE read back after set_pte_at; value = PTE. set_pte_at is inline on
                       // x86: observed at the return of the caller (flags: kStepViaInsertRet or
                       // kStepViaDoSetPteRet)
    kex_insert,        // kex:kex_page_insert; value = ret (as int64)
    user_fault,        // exceptions:page_fault_user on the page; value = error code
    set_dirty,         // set_page_dirty / folio_mark_dirty (at zap)
    rmap_remove,       // page_remove_rmap / folio_remove_rmap_ptes: the zap
    kex_free,          // kex:kex_page_free; value = enum kex_free_reason; stack
    page_free,         // kmem:mm_page_free; value = order; stack
    page_free_batched, // kmem:mm_page_free_batched
    pte_lookup,        // vm_normal_page on a pfn map's PTE (mode pfn); value = the PTE it was
                       // given: the zap's, a write fault's or a page-table walker's
    followed,          // --follow: the page passed a function; value = KEX_EV_FOLLOW's arg0
                       // (function id into Report::follow_functions, argument, folio)
};
inline constexpr std::size_t kStepKinds = 16;
std::string_view step_kind_name(StepKind k); // "kex_alloc", ...

inline constexpr uint8_t kStepViaInsertRet = 1 << 0;   // pte_set from insert_ret arg0
inline constexpr uint8_t kStepViaDoSetPteRet = 1 << 1; // pte_set from do_set_pte_ret arg0
inline constexpr uint8_t kStepInWritePhase = 1 << 2;   // user_fault inside the rig's write phase
// kex_free after the page_free that closed the life (kex traced after __free_page)
inline constexpr uint8_t kStepAfterFree = 1 << 3;
inline constexpr uint8_t kStepLate = 1 << 4; // arrived after the reorder window had passed it

struct Step {
    uint64_t ts = 0;
    uint64_t value = 0;              // kind-specific, see StepKind
    int32_t refcount = KEX_NO_COUNT; // page->_refcount at the event
    int32_t mapcount = KEX_NO_COUNT; // page_mapcount() at the event
    uint32_t stack_id = 0;           // index into Report::stacks; 0 = none
    StepKind kind = StepKind::kex_alloc;
    uint8_t flags = 0; // kStep*
    int64_t ret() const { return static_cast<int64_t>(value); }
    bool operator==(const Step&) const = default;
};

// StepList's encoding (below), for its inline reader.
namespace step_format {

// The header byte: the kind's low bits, then which parts follow.
inline constexpr uint8_t kKindBits = 0x0f;
inline constexpr uint8_t kHasFlags = 1 << 4;
inline constexpr uint8_t kHasStack = 1 << 5;
inline constexpr uint8_t kHasValue = 1 << 6;
inline constexpr uint8_t kHasExt = 1 << 7;
// The extension byte, when kHasExt: what is rare.
inline constexpr uint8_t kExtBefore = 1 << 0;    // the time is before the first step's
inline constexpr uint8_t kExtKind = 1 << 1;      // the whole kind follows (a value over 15)
inline constexpr uint8_t kExtWideCount = 1 << 2; // the counts as two varints, not one byte

inline constexpr uint8_t kNoCountNibble = 15;

inline std::byte* put_varint(std::byte* p, uint64_t v) {
    while (v >= 0x80) {
        *p++ = static_cast<std::byte>(v | 0x80);
        v >>= 7;
    }
    *p++ = static_cast<std::byte>(v);
    return p;
}

inline uint64_t get_varint(const std::byte*& p) {
    uint64_t v = 0;
    for (unsigned shift = 0;; shift += 7) {
        const auto b = static_cast<uint8_t>(*p++);
        v |= uint64_t{b & 0x7fu} << shift;
        if (!(b & 0x80))
            return v;
    }
}

inline uint64_t zigzag(int64_t v) {
    return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
inline int64_t unzigzag(uint64_t v) {
    return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}

// A count in a nibble: -1..13 and unknown; 16 when it does not fit.
inline uint8_t count_nibble(int32_t c) {
    if (c == KEX_NO_COUNT)
        return kNoCountNibble;
    return c >= -1 && c <= 13 ? static_cast<uint8_t>(c + 1) : 16;
}
inline int32_t nibble_count(uint8_t n) {
    return n == kNoCountNibble ? KEX_NO_COUNT : static_cast<int32_t>(n) - 1;
}

// The value as stored: a PTE's NX bit (63) moved to bit 0, a return value
// zigzagged, so that the common ones take few varint bytes. A bijection.
enum class ValueCode : uint8_t { plain, pte, ret };
inline ValueCode value_code(StepKind k) {
    switch (k) {
    case StepKind::pte_set:
    case StepKind::pte_lookup:
        return ValueCode::pte;
    case StepKind::insert_ret:
    case StepKind::kex_insert:
        return ValueCode::ret;
    default:
        return ValueCode::plain;
    }
}
inline uint64_t pack_value(StepKind k, uint64_t v) {
    const ValueCode c = value_code(k);
    return c == ValueCode::pte ? std::rotl(v, 1) : c == ValueCode::ret ? zigzag(int64_t(v)) : v;
}
inline uint64_t unpack_value(StepKind k, uint64_t v) {
    const ValueCode c = value_code(k);
    return c == ValueCode::pte ? std::rotr(v, 1) : c == ValueCode::ret ? uint64_t(unzigzag(v)) : v;
}

} // namespace step_format

// A life's steps, in order, encoded: a header byte (kind, which fields
// follow), the time as a varint delta from the first step's (the first
// step's time whole), both counts in one byte when they are small (-1..13
// or unknown), then the stack id and the value as varints when not 0 (a PTE
// rotated so that its NX bit is low, a return value zigzagged). A 12-step
// life takes about 70 bytes instead of 384 (bench/: bytes a page). Any Step
// round-trips.
//
// Reading yields Step values (iterators, front(), back(), operator[]),
// decoding from the start: operator[] and back() cost O(size()), so loops
// over a list iterate it, or decode it once (to_vector). Writing appends
// (push_back); anything else decodes, edits and re-encodes (insert, assign).
//
// The room is the list's own heap block, or borrowed: the correlator lends
// each life a room in one arena, which the Report it finishes keeps
// (Report::step_arena), instead of a heap block a life. A list that
// outgrows borrowed room moves into a block of its own; a copy always owns
// its bytes. Borrowed room is valid as long as its arena: move a Report
// whole, not its lives out of it.
class StepList {
  public:
    // The most bytes one step can take.
    static constexpr std::size_t kMaxStepBytes = 1 + 1 + 1 + 1 + 10 + 2 * 5 + 5 + 10;
    // The bytes of a room's header (its capacity).
    static constexpr std::size_t kRoomHeader = 4;

    class const_iterator {
      public:
        using iterator_category = std::input_iterator_tag;
        using iterator_concept = std::forward_iterator_tag;
        using value_type = Step;
        using difference_type = std::ptrdiff_t;
        using pointer = const Step*;
        using reference = Step;

        const_iterator() = default;
        Step operator*() const { return cur_; }
        const Step* operator->() const { return &cur_; }
        const_iterator& operator++() {
            if (--left_)
                p_ = decode(p_, base_, cur_);
            return *this;
        }
        const_iterator operator++(int) {
            const_iterator old = *this;
            ++*this;
            return old;
        }
        bool operator==(const const_iterator& o) const { return left_ == o.left_; }

      private:
        friend class StepList;
        const_iterator(const std::byte* p, uint32_t n) : left_(n) {
            if (n) {
                p_ = decode(p, 0, cur_);
                base_ = cur_.ts;
            }
        }
        const std::byte* p_ = nullptr; // the next step's bytes
        uint64_t base_ = 0;            // the first step's time
        uint32_t left_ = 0;            // steps from this one to the end
        Step cur_{};
    };
    using iterator = const_iterator;
    using value_type = Step;
    using size_type = std::size_t;

    StepList() = default;
    StepList(const StepList& o) { copy_from(o); }
    StepList(StepList&& o) noexcept
        : data_(std::exchange(o.data_, nullptr)), count_(std::exchange(o.count_, 0)),
          used_(std::exchange(o.used_, 0)) {}
    StepList& operator=(const StepList& o) {
        if (this != &o) {
            StepList tmp(o);
            swap(tmp);
        }
        return *this;
    }
    StepList& operator=(StepList&& o) noexcept {
        StepList tmp(std::move(o));
        swap(tmp);
        return *this;
    }
    ~StepList() { release(); }

    std::size_t size() const { return count_ & ~kBorrowed; }
    bool empty() const { return size() == 0; }
    // Encoded bytes, and the room for them.
    std::size_t bytes() const { return used_; }
    std::size_t capacity() const;

    const_iterator begin() const { return {data_, static_cast<uint32_t>(size())}; }
    const_iterator end() const { return {}; }
    Step operator[](std::size_t i) const;
    Step front() const { return *begin(); }
    Step back() const { return (*this)[size() - 1]; }
    std::vector<Step> to_vector() const;

    void push_back(const Step& s);
    // push_back from a writer that keeps the first step's time (front().ts;
    // ignored while empty), so that the list need not decode it.
    void push_back(const Step& s, uint64_t first_ts) { append(s, empty() ? 0 : first_ts); }
    // Before pos (an iterator of this list, or end()).
    void insert(const const_iterator& pos, const Step& s);
    // The list becomes steps (in their order).
    void assign(std::span<const Step> steps);
    void clear() { release(); }
    void swap(StepList& o) noexcept {
        std::swap(data_, o.data_);
        std::swap(count_, o.count_);
        std::swap(used_, o.used_);
    }

    // The encoded bytes (bytes() of them).
    const std::byte* data() const { return data_; }
    // True while the room is borrowed (an arena's), not the list's own.
    bool borrowed() const { return count_ & kBorrowed; }
    // Takes room_bytes at room, owned elsewhere (an arena that outlives the
    // list; kRoomHeader of them are the room's header), empty; what the list
    // owned is freed.
    void borrow(std::byte* room, std::size_t room_bytes);

  private:
    static constexpr uint32_t kBorrowed = 1u << 31;
    // One step's bytes at p, its time relative to base; returns the next step's.
    static const std::byte* decode(const std::byte* p, uint64_t base, Step& out);
    // One step's bytes at out (kMaxStepBytes of room), relative to base; returns the end.
    static std::byte* encode(std::byte* out, const Step& s, uint64_t base);
    uint64_t base() const;
    void append(const Step& s, uint64_t base);
    void copy_from(const StepList& o);
    void grow(std::size_t min_bytes);
    void release();

    std::byte* data_ = nullptr; // the steps' bytes; the room's header before them
    uint32_t count_ = 0;        // | kBorrowed: the room is not ours
    uint32_t used_ = 0;
};

inline const std::byte* StepList::decode(const std::byte* p, uint64_t base, Step& out) {
    using namespace step_format;
    const auto head = static_cast<uint8_t>(*p++);
    const uint8_t ext = head & kHasExt ? static_cast<uint8_t>(*p++) : 0;
    out.flags = head & kHasFlags ? static_cast<uint8_t>(*p++) : 0;
    out.kind =
        static_cast<StepKind>(ext & kExtKind ? static_cast<uint8_t>(*p++) : head & kKindBits);
    const uint64_t dt = get_varint(p);
    out.ts = ext & kExtBefore ? base - dt : base + dt;
    if (ext & kExtWideCount) {
        out.refcount = static_cast<int32_t>(unzigzag(get_varint(p)));
        out.mapcount = static_cast<int32_t>(unzigzag(get_varint(p)));
    } else {
        const auto c = static_cast<uint8_t>(*p++);
        out.refcount = nibble_count(c & 0x0f);
        out.mapcount = nibble_count(c >> 4);
    }
    out.stack_id = head & kHasStack ? static_cast<uint32_t>(get_varint(p)) : 0;
    out.value = head & kHasValue ? unpack_value(out.kind, get_varint(p)) : 0;
    return p;
}

} // namespace kextrace
