// report_command.h - `kextrace report FILE.jsonl [--json OUT] [--export OUT]`:
// the correlation run again offline from a --jsonl file (no kernel, no root),
// printing the same text report as the live trace did.
#pragma once

namespace kextrace {

// argv[0] is "report". Returns the exit status: 0, 1 on errors (unreadable
// or malformed file: "kextrace: error: FILE:LINE: why"), 2 on usage errors.
int report_main(int argc, char** argv);

} // namespace kextrace
