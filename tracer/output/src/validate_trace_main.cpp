// kextrace-validate-trace FILE.json...: checks a Trace Event Format file
// against the rules viewers depend on (kextrace::validate_trace_events) and
// prints a one-line summary per file; with --json, the summary as JSON
// (events per ph, tracks, flow arrows, thread names) for scripts.
// Exit status: 0 all valid, 1 a file is invalid, 2 usage or unreadable file.
#include <kextrace/timeline.h>

#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <iostream>

namespace {

int usage() {
    fmt::print(stderr, "usage: kextrace-validate-trace [--json] [--max-problems N] FILE...\n");
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    bool as_json = false;
    std::size_t max_problems = 20;
    std::vector<std::string> files;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--json"))
            as_json = true;
        else if (!std::strcmp(argv[i], "--max-problems") && i + 1 < argc)
            max_problems = std::strtoul(argv[++i], nullptr, 10);
        else if (!std::strcmp(argv[i], "-h") || !std::strcmp(argv[i], "--help") ||
                 argv[i][0] == '-')
            return usage();
        else
            files.emplace_back(argv[i]);
    }
    if (files.empty())
        return usage();
    int status = 0;
    for (const std::string& path : files) {
        std::ifstream in(path);
        if (!in) {
            fmt::print(stderr, "kextrace-validate-trace: cannot read {}: {}\n", path,
                       std::strerror(errno));
            return 2;
        }
        nlohmann::json doc = nlohmann::json::parse(in, nullptr, false);
        if (doc.is_discarded()) {
            fmt::print(stderr, "{}: not valid JSON\n", path);
            status = 1;
            continue;
        }
        const kextrace::TraceCheck c = kextrace::validate_trace_events(doc, max_problems);
        if (as_json) {
            nlohmann::json j = {{"file", path},
                                {"valid", c.ok()},
                                {"problems", c.problems},
                                {"problems_dropped", c.problems_dropped},
                                {"events", c.events},
                                {"phases", c.phases},
                                {"tracks", c.tracks},
                                {"flow_arrows", c.flow_arrows},
                                {"thread_names", c.thread_names}};
            std::cout << j.dump() << '\n';
        } else {
            std::string phases;
            for (const auto& [ph, n] : c.phases)
                phases += fmt::format("{}{} {}", phases.empty() ? "" : ", ", ph, n);
            fmt::print("{}: {}: {} events ({}), {} tracks, {} flow arrows\n", path,
                       c.ok() ? "valid" : "INVALID", c.events, phases, c.tracks, c.flow_arrows);
            for (const std::string& p : c.problems)
                fmt::print("  {}\n", p);
            if (c.problems_dropped)
                fmt::print("  ... and {} more\n", c.problems_dropped);
        }
        if (!c.ok())
            status = 1;
    }
    return status;
}
