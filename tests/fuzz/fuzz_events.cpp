// libFuzzer target: arbitrary bytes as a stream of ring-buffer records, through
// the decoder, the correlation engine and every renderer. Each record is a
// 1-byte length (in 8-byte words) followed by that many bytes, so the fuzzer
// can shape whole records as easily as garbage.
#include "kextrace/core.h"
#include "kextrace/output.h"

#include <cstddef>
#include <cstdint>
#include <span>
#include <sstream>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    kextrace::CorrelatorOptions opts;
    opts.reorder_window_ns = (size & 1) ? 1000 : 0; // both buffering modes
    kextrace::Correlator corr(opts);
    corr.trace_tgid(1);
    size_t at = 0;
    while (at < size) {
        size_t len = size_t(data[at++]) * 8;
        if (len > size - at)
            len = size - at;
        auto rec = std::as_bytes(std::span(data + at, len));
        if (auto ev = kextrace::decode_event(rec))
            corr.feed(std::move(*ev));
        at += len;
    }
    kextrace::Report report = corr.finish();
    kextrace::RunInfo info;
    auto sym = [](uint64_t a) { return std::to_string(a); };
    std::ostringstream out;
    kextrace::render_text(report, info, out, sym);
    (void)kextrace::to_json(report, info, sym).dump();
    return 0;
}
