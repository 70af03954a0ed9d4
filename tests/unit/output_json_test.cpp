// to_json: schema kextrace.report/1 (docs/json-schema.md).
#include <kextrace/output.h>
#include <kextrace/stream_builder.h>

#include "report_of.h"

#include <gtest/gtest.h>

using namespace kextrace;
using kextrace::test::report_of;
using kextrace::test::run_info;
using nlohmann::json;

TEST(OutputJson, RoundTripsTheKeyFields) {
    StreamBuilder b;
    b.story({.pages = 8, .page_table_alloc = true});
    const Report r = report_of(b);
    const Symbolizer sym = [](uint64_t a) {
        return a == 0xffffffff81300000 ? std::string("free_unref_page_list+0x1f") : std::string();
    };
    // Through text and back, as a consumer would read it.
    const json j = json::parse(to_json(r, run_info(), sym).dump());

    EXPECT_EQ(j["schema"], "kextrace.report/1");
    EXPECT_EQ(j["run"]["kernel_release"], "6.12.117+deb12-amd64");
    EXPECT_EQ(j["run"]["probes"][0]["resolved"], "insert_page_into_pte_locked.isra.0");
    EXPECT_EQ(j["run"]["probes"][0]["nmissed"], 2);
    EXPECT_EQ(j["trace"]["events"], b.events.size());
    EXPECT_EQ(j["trace"]["tgids"], json::array({100}));
    EXPECT_EQ(j["trace"]["other_allocations"], 1);
    EXPECT_EQ(j["counts"]["kex_page_alloc"], 8);
    EXPECT_FALSE(j["counts"].contains("user_fault")); // zero counts are left out
    EXPECT_EQ(j["losses"]["total"], 0);

    ASSERT_EQ(j["phases"].size(), 3u);
    EXPECT_EQ(j["phases"][0]["name"], "mmap");
    EXPECT_EQ(j["phases"][0]["counts"]["kex_page_alloc"], 8);
    EXPECT_TRUE(j["phases"][2]["closed"]);

    ASSERT_EQ(j["mappings"].size(), 1u);
    EXPECT_EQ(j["mappings"][0]["vm_start"], "0x7f0000000000");
    EXPECT_EQ(j["mappings"][0]["policy"], "drop");
    EXPECT_EQ(j["mappings"][0]["mapped"], 8);
    EXPECT_EQ(j["mappings"][0]["other_allocations"], 1);

    ASSERT_EQ(j["pages"].size(), 8u);
    const json& p = j["pages"][3];
    EXPECT_EQ(p["life"], 3);
    EXPECT_EQ(p["index"], 3);
    EXPECT_EQ(p["pfn"], 0x1003);
    EXPECT_EQ(p["uaddr"], "0x7f0000003000");
    EXPECT_EQ(p["owner"], 100);
    EXPECT_EQ(p["policy"], "drop");
    EXPECT_EQ(p["pte"]["value"], "0x8000000001003027");
    EXPECT_EQ(p["pte"]["pfn"], 0x1003);
    EXPECT_EQ(p["pte"]["source"], "insert_ret");
    EXPECT_TRUE(p["pte"]["present"]);
    EXPECT_FALSE(p["pte"]["dirty"]);
    EXPECT_TRUE(p["pte"]["nx"]);
    EXPECT_EQ(p["pte"]["flags"], "P RW U A - NX");
    EXPECT_EQ(p["first_write"]["kind"], "no_fault");
    EXPECT_EQ(p["zap"]["context"], "munmap");
    EXPECT_TRUE(p["zap"]["dirty"]);
    EXPECT_EQ(p["kex_free_reason"], "after-insert");
    EXPECT_TRUE(p["free"]["batched"]);
    EXPECT_TRUE(p["complete"]);
    EXPECT_TRUE(p["missing"].empty());
    EXPECT_EQ(p["refcount_trail"], json::array({1, 2, 1, 0}));
    EXPECT_EQ(p["mapcount_trail"], json::array({0, 1, 0}));
    ASSERT_EQ(p["steps"].size(), r.pages[3].steps.size());
    EXPECT_EQ(p["steps"][0]["kind"], "kmem_alloc");
    EXPECT_EQ(p["steps"][0]["dt"], 0);
    EXPECT_EQ(p["steps"][4]["kind"], "insert_ret");
    EXPECT_EQ(p["steps"][4]["value"], 0);
    EXPECT_EQ(p["steps"][5]["kind"], "pte_set");
    EXPECT_EQ(p["steps"][5]["flags"], json::array({"via_insert_ret"}));
    EXPECT_EQ(p["steps"][11]["kind"], "page_free_batched");
    EXPECT_TRUE(p["steps"][11]["refcount"].is_null()); // KEX_NO_COUNT

    // Stacks: interned, symbolized where the symbolizer knows the address.
    const auto free_stack = p["steps"][10]["stack"].get<std::size_t>();
    ASSERT_LT(free_stack, j["stacks"].size());
    EXPECT_EQ(j["stacks"][free_stack][0]["addr"], "0xffffffff81300000");
    EXPECT_EQ(j["stacks"][free_stack][0]["sym"], "free_unref_page_list+0x1f");
    EXPECT_TRUE(j["stacks"][free_stack][1]["sym"].is_null());
    EXPECT_TRUE(j["stacks"][0].empty());

    EXPECT_TRUE(j["anomalies"].empty());
    EXPECT_EQ(j["summary"]["pages"], 8);
    EXPECT_EQ(j["summary"]["complete"], 8);
    EXPECT_EQ(j["summary"]["refcount_as_expected"], 8);
    EXPECT_EQ(j["summary"]["first_write_no_fault"], 8);
}

TEST(OutputJson, IncompleteAndLostAreNamed) {
    StreamBuilder b;
    b.story({.pages = 2});
    b.drop_if([](const Event& e) { return e.type == KEX_EV_KEX_PAGE_FREE && e.pfn == 0x1001; });
    Losses l;
    l.per_type[KEX_EV_KEX_PAGE_FREE] = 1;
    l.ring = 2;
    const json j = to_json(report_of(b, l), run_info(), {});
    const json& p = j["pages"][1];
    EXPECT_FALSE(p["complete"]);
    EXPECT_EQ(p["missing"], json::array({"kex_free"}));
    EXPECT_EQ(p["missing_lost"], json::array({"kex_free"}));
    EXPECT_TRUE(p["kex_free_reason"].is_null());
    EXPECT_EQ(j["losses"]["per_type"]["kex_page_free"], 1);
    EXPECT_EQ(j["losses"]["ring"], 2);
    EXPECT_EQ(j["losses"]["total"], 3);
    EXPECT_EQ(j["summary"]["incomplete"], 1);
}

TEST(OutputJson, AnomaliesPointAtTheirPage) {
    StreamBuilder b;
    b.story({.pages = 2});
    for (Event& e : b.events)
        if (e.type == KEX_EV_INSERT_RET && e.pfn == 0x1001)
            e.arg0 = StreamBuilder::pte_for(0x4242);
    const json j = to_json(report_of(b), run_info(), {});
    ASSERT_EQ(j["anomalies"].size(), 1u);
    EXPECT_EQ(j["anomalies"][0]["life"], 1);
    EXPECT_NE(j["anomalies"][0]["message"].get<std::string>().find("maps pfn 0x4242"),
              std::string::npos);
    EXPECT_EQ(j["pages"][1]["anomalies"], 1);
    EXPECT_EQ(j["pages"][1]["pte"]["pfn"], 0x4242);
}

TEST(OutputJson, FaultIsReportedWithItsErrorCode) {
    StreamBuilder b;
    const StreamBuilder::Story s{.pages = 1};
    b.map(s);
    b.phase(KEX_PHASE_WRITE_BEGIN, s.vm_start, 1);
    b.user_fault(s.vm_start, 0x7);
    b.phase(KEX_PHASE_WRITE_END, s.vm_start, 1);
    b.unmap(s);
    const json j = to_json(report_of(b), run_info(), {});
    EXPECT_EQ(j["pages"][0]["first_write"]["kind"], "fault");
    EXPECT_EQ(j["pages"][0]["first_write"]["error_code"], 7);
    EXPECT_EQ(j["phases"][1]["user_faults"], 1);
}
