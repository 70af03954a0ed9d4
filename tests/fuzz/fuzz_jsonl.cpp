// libFuzzer target: arbitrary text as a JSONL trace (kextrace report FILE.jsonl):
// header and event lines through the parser, then the correlation engine.
#include "kextrace/core.h"
#include "kextrace/jsonl.h"

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    std::istringstream in(text);
    kextrace::Correlator corr;
    (void)kextrace::read_jsonl(in, [&](kextrace::Event&& ev) { corr.feed(std::move(ev)); });
    (void)corr.finish();
    return 0;
}
