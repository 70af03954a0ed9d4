// text_file.h - a whole small file (/proc, /sys, tracefs, kallsyms) as text.
#pragma once

#include <optional>
#include <string>

namespace kextrace {

// Reads a whole (small) file with read(2); nullopt, errno set, if it cannot
// be opened or read (a /proc file of a process that just exited fails with
// ESRCH). Never throws for I/O: std::ifstream read through an
// istreambuf_iterator does, and aborted kextrace --leaks once.
std::optional<std::string> read_text_file(const std::string& path);

} // namespace kextrace
