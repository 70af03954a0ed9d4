// report_command.cpp - see report_command.h.
#include "report_command.h"

#include "trace_files.h"

#include <kextrace/follow_output.h>
#include <kextrace/output.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <iostream>

namespace kextrace {

int report_main(int argc, char** argv) {
    std::string input, json_path, export_path, export_format;
    TextOptions topts;
    CLI::App app{"kextrace report: correlate a --jsonl event file again, offline (no kernel, no "
                 "root), and print the same report as the live trace",
                 "kextrace report"};
    app.add_option("FILE", input, "events file written by kextrace --jsonl")->required();
    app.add_option("--json", json_path, "also write the report as JSON to FILE (atomically)");
    app.add_option("--export", export_path,
                   "also write a timeline (Perfetto, chrome://tracing) to FILE: Perfetto protobuf "
                   "if FILE ends in .pftrace or .perfetto-trace, else Trace Event Format JSON");
    app.add_option("--export-format", export_format,
                   "the --export timeline's format whatever FILE's name: json or perfetto")
        ->check(CLI::IsMember({"json", "perfetto"}));
    app.add_flag("--full", topts.full, "print every page row");
    app.add_flag("--show-stacks", topts.stacks, "print the kernel stacks of the first page");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2; // usage errors are 2, as for kextrace itself
    }
    try {
        Replay r = replay_jsonl(input).take_or_die();
        const Symbolizer sym = symbolizer_of(r.header);
        render_text(r.report, r.header.run, std::cout, sym, topts);
        nlohmann::json extra = nlohmann::json::object();
        if (!r.report.follow_functions.empty()) { // a --follow run
            const FollowSummary fs = follow_summary(r.report, curated_functions_of(r.header.run));
            std::cout << '\n';
            render_follow_text(r.report, fs, std::cout, topts.full);
            extra["follow"] = follow_json(r.report, fs);
        }
        std::cout.flush();
        if (!json_path.empty())
            write_report_json_atomically(json_path, r.report, r.header.run, sym, extra);
        if (!export_path.empty()) {
            auto st = write_timeline(export_path, r.report, r.header.run, sym, export_format)
                          .take_or_die();
            fmt::print(stderr, "kextrace: timeline {}: {} events, {} tracks, {} flow arrows\n",
                       export_path, st.events, st.tracks, st.flow_arrows);
        }
    } catch (const FatalError& e) {
        std::fflush(stdout);
        fmt::print(stderr, "kextrace: error: {}\n", e.what());
        return e.status();
    }
    return 0;
}

} // namespace kextrace
