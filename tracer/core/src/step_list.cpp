// step_list.cpp - StepList's storage (kextrace/core.h): a block of its own,
// or a view into a Report's step arena.
#include <kextrace/core.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <type_traits>

namespace kextrace {

static_assert(std::is_trivially_copyable_v<Step> && std::is_trivially_destructible_v<Step>);

void StepList::release() {
    if (cap_ && !borrowed())
        std::allocator<Step>().deallocate(data_, cap_);
    data_ = nullptr;
    size_ = cap_ = 0;
}

void StepList::copy_from(const Step* p, uint32_t n) {
    if (!n)
        return;
    data_ = std::allocator<Step>().allocate(n);
    cap_ = n;
    size_ = n;
    std::memcpy(static_cast<void*>(data_), p, n * sizeof(Step));
}

void StepList::borrow(Step* room, uint32_t size, uint32_t cap) {
    release();
    if (!cap)
        return;
    data_ = room;
    size_ = size;
    cap_ = cap | kBorrowed;
}

// Room for min_cap steps; when there is too little, in a block of the
// list's own (out of borrowed room).
void StepList::grow(std::size_t min_cap) {
    if (min_cap <= capacity())
        return;
    const auto cap = static_cast<uint32_t>(std::max(min_cap, 2 * capacity()));
    Step* p = std::allocator<Step>().allocate(cap);
    if (size_)
        std::memcpy(static_cast<void*>(p), data_, size_ * sizeof(Step));
    const uint32_t n = size_;
    release();
    data_ = p;
    size_ = n;
    cap_ = cap;
}

void StepList::reserve(std::size_t n) {
    grow(std::max<std::size_t>(n, size_));
}

void StepList::push_back(const Step& s) {
    if (size_ == capacity()) {
        const Step copy = s; // s may be one of ours
        grow(std::max<std::size_t>(size_ + 1, 4));
        data_[size_++] = copy;
        return;
    }
    data_[size_++] = s;
}

Step* StepList::insert(const Step* pos, const Step& s) {
    const auto at = static_cast<std::size_t>(pos - data_);
    const Step copy = s;
    if (size_ == capacity())
        grow(std::max<std::size_t>(size_ + 1, 4));
    std::memmove(static_cast<void*>(data_ + at + 1), data_ + at, (size_ - at) * sizeof(Step));
    data_[at] = copy;
    ++size_;
    return data_ + at;
}

} // namespace kextrace
