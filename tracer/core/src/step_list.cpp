// step_list.cpp - StepList's encoding and storage (kextrace/steps.h): a block
// of its own, or a room in a Report's step arena.
#include <kextrace/steps.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <memory>
#include <type_traits>

namespace kextrace {

using namespace step_format;

namespace {

uint32_t load_cap(const std::byte* data) {
    uint32_t cap;
    std::memcpy(&cap, data - StepList::kRoomHeader, sizeof cap);
    return cap;
}

} // namespace

static_assert(std::is_trivially_copyable_v<Step> && std::is_trivially_destructible_v<Step>);

std::byte* StepList::encode(std::byte* out, const Step& s, uint64_t base) {
    const auto kind = static_cast<uint8_t>(s.kind);
    const uint8_t rc = count_nibble(s.refcount), mc = count_nibble(s.mapcount);
    uint8_t ext = 0;
    if (s.ts < base)
        ext |= kExtBefore;
    if (kind > kKindBits)
        ext |= kExtKind;
    if (rc > kNoCountNibble || mc > kNoCountNibble)
        ext |= kExtWideCount;
    std::byte* p = out + 1;
    uint8_t head = kind & kKindBits;
    if (ext) {
        head |= kHasExt;
        *p++ = static_cast<std::byte>(ext);
    }
    if (s.flags) {
        head |= kHasFlags;
        *p++ = static_cast<std::byte>(s.flags);
    }
    if (ext & kExtKind)
        *p++ = static_cast<std::byte>(kind);
    p = put_varint(p, s.ts < base ? base - s.ts : s.ts - base);
    if (ext & kExtWideCount) {
        p = put_varint(p, zigzag(s.refcount));
        p = put_varint(p, zigzag(s.mapcount));
    } else {
        *p++ = static_cast<std::byte>(rc | mc << 4);
    }
    if (s.stack_id) {
        head |= kHasStack;
        p = put_varint(p, s.stack_id);
    }
    if (s.value) {
        head |= kHasValue;
        p = put_varint(p, pack_value(s.kind, s.value));
    }
    *out = static_cast<std::byte>(head);
    return p;
}

// The first step's time: the base of the others'.
uint64_t StepList::base() const {
    const std::byte* p = data_;
    const auto head = static_cast<uint8_t>(*p++);
    const uint8_t ext = head & kHasExt ? static_cast<uint8_t>(*p++) : 0;
    p += (head & kHasFlags ? 1 : 0) + (ext & kExtKind ? 1 : 0);
    return get_varint(p); // the first step's is whole
}

std::size_t StepList::capacity() const {
    return data_ ? load_cap(data_) : 0;
}

Step StepList::operator[](std::size_t i) const {
    auto it = begin();
    while (i--)
        ++it;
    return *it;
}

std::vector<Step> StepList::to_vector() const {
    std::vector<Step> v;
    v.reserve(size());
    for (const Step& s : *this)
        v.push_back(s);
    return v;
}

void StepList::release() {
    if (data_ && !borrowed())
        std::allocator<std::byte>().deallocate(data_ - kRoomHeader, kRoomHeader + capacity());
    data_ = nullptr;
    count_ = used_ = 0;
}

void StepList::copy_from(const StepList& o) {
    if (o.empty())
        return;
    grow(o.used_);
    std::memcpy(data_, o.data_, o.used_);
    used_ = o.used_;
    count_ = static_cast<uint32_t>(o.size());
}

void StepList::borrow(std::byte* room, std::size_t room_bytes) {
    release();
    if (room_bytes <= kRoomHeader)
        return;
    const auto cap = static_cast<uint32_t>(room_bytes - kRoomHeader);
    std::memcpy(room, &cap, sizeof cap);
    data_ = room + kRoomHeader;
    count_ = kBorrowed;
}

// Room for min_bytes; when there is too little, in a block of the list's
// own (out of borrowed room).
void StepList::grow(std::size_t min_bytes) {
    if (min_bytes <= capacity())
        return;
    const auto cap = static_cast<uint32_t>(std::max(min_bytes, 2 * capacity()));
    std::byte* block = std::allocator<std::byte>().allocate(kRoomHeader + cap);
    std::memcpy(block, &cap, sizeof cap);
    if (used_)
        std::memcpy(block + kRoomHeader, data_, used_);
    const uint32_t n = static_cast<uint32_t>(size()), used = used_;
    release();
    data_ = block + kRoomHeader;
    count_ = n;
    used_ = used;
}

void StepList::append(const Step& s, uint64_t base) {
    if (capacity() - used_ >= kMaxStepBytes) { // in place
        used_ = static_cast<uint32_t>(encode(data_ + used_, s, base) - data_);
        ++count_;
        return;
    }
    std::byte buf[kMaxStepBytes];
    const auto n = static_cast<uint32_t>(encode(buf, s, base) - buf);
    if (used_ + n > capacity())
        grow(std::max<std::size_t>(used_ + n, 64));
    std::memcpy(data_ + used_, buf, n);
    used_ += n;
    ++count_;
}

void StepList::push_back(const Step& s) {
    append(s, empty() ? 0 : base());
}

void StepList::insert(const const_iterator& pos, const Step& s) {
    if (pos == end()) {
        push_back(s);
        return;
    }
    std::vector<Step> v = to_vector();
    v.insert(v.end() - pos.left_, s);
    assign(v);
}

void StepList::assign(std::span<const Step> steps) {
    const uint32_t borrowed_flag = count_ & kBorrowed;
    used_ = 0;
    count_ = borrowed_flag;
    if (steps.empty())
        return;
    append(steps.front(), 0);
    for (const Step& s : steps.subspan(1))
        append(s, steps.front().ts);
}

} // namespace kextrace
