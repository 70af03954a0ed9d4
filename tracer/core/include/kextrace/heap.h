// heap.h - the process's malloc policy for the correlation engine's memory.
//
// The engine's buffers come and go in blocks of hundreds of KiB (a reorder
// buffer's chunks, a life slab's). glibc serves blocks that large with mmap
// and gives freed memory back to the kernel whenever the heap's top exceeds
// a few hundred KiB, so a flush that frees chunks and a fill that takes new
// ones fault the same memory in again, page by page. Keeping freed memory in
// the heap costs nothing the process did not already hold at its peak, and
// made correlator_bench's buffer_all 1.5-2.3x faster (bench/README.md).
// Called once, at the start of main (kextrace's and correlator_bench's).
#pragma once

#include <malloc.h>

namespace kextrace {

inline void keep_freed_heap() {
    // Blocks up to 32 MiB (glibc's limit for this setting) from the heap,
    // and the heap's free top kept up to 1 GiB.
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

} // namespace kextrace
