#!/usr/bin/python3
"""Tests of analysis/ on a checked-in real run (tests/data/drop-8.*: kextrace
on 6.1.0-56-amd64, mmap_test /dev/kex 8 --no-wait, ref_policy=drop; the
.json is `kextrace report drop-8.jsonl --json drop-8.json` of its events).

  /usr/bin/python3 -m unittest discover -s analysis/tests -v
Set KEXTRACE_VALIDATE to build/bin/kextrace-validate-trace to also check that
the sample's JSONL replays into a valid timeline, and into a Perfetto
protobuf one with a track per page (done by ctest).
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ANALYSIS = os.path.dirname(HERE)
DATA = os.path.join(HERE, "data")
REPORT = os.path.join(DATA, "drop-8.json")
EVENTS = os.path.join(DATA, "drop-8.jsonl")
sys.path.insert(0, ANALYSIS)

import kexreport  # noqa: E402
import plot  # noqa: E402
import report  # noqa: E402


def read_json(path):
    with open(path) as f:
        return json.load(f)


def read_text(path):
    with open(path) as f:
        return f.read()


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return list(struct.unpack(">II", head[16:24]))


SMAPS = """7f5ed7ab0000-7f5ed7ac2000 r--p 00000000 00:1f 123 /usr/lib/libc.so.6
Size:                 72 kB
Rss:                  60 kB
Shared_Dirty:          0 kB
Private_Dirty:         0 kB
7f5ed7ac2000-7f5ed7aca000 rw-s 00000000 00:05 7 /dev/kex
Size:                 32 kB
Rss:                  32 kB
Shared_Clean:          0 kB
Shared_Dirty:          0 kB
Private_Clean:         0 kB
Private_Dirty:        {dirty} kB
VmFlags: rd wr sh mr mw me ms io de dd
7f5ed7aca000-7f5ed7acc000 rw-p 00000000 00:00 0
Size:                  8 kB
Private_Dirty:         8 kB
"""


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="kextrace-analysis-")
        self.report = kexreport.load_report(REPORT)
        self.pfns = [p["pfn"] for p in kexreport.pages_by_index(self.report)]

    def tearDown(self):
        shutil.rmtree(self.tmp)


class PlotTest(Base):
    def test_pictures_have_their_size_and_the_runs_pfns(self):
        rc = plot.main([REPORT, "--jsonl", EVENTS, "--out", self.tmp])
        self.assertEqual(rc, 0)
        for what in ("swimlane", "counts", "physvirt"):
            png = os.path.join(self.tmp, f"drop-8-{what}.png")
            data = read_json(os.path.join(self.tmp, f"drop-8-{what}.data.json"))
            self.assertGreater(os.path.getsize(png), 10000, what)
            self.assertEqual(png_size(png), data["size_px"], what)
            self.assertEqual(data["figure"], what)
        sw = read_json(os.path.join(self.tmp, "drop-8-swimlane.data.json"))
        self.assertEqual([p["pfn"] for p in sw["pages"]], self.pfns)
        self.assertEqual(sw["size_px"], [1400, 220 + 32 * 9])  # 8 pages + the process row
        self.assertEqual([ph["name"] for ph in sw["phases"]], ["mmap", "write", "munmap"])
        kinds = {s["kind"] for p in sw["pages"] for s in p["steps"]}
        self.assertLessEqual({"kex_alloc", "insert", "rmap_add", "pte_set", "rmap_remove",
                              "page_free"}, kinds)
        self.assertTrue(any(w["type"] == "sys_munmap" for w in sw["windows"]))
        pv = read_json(os.path.join(self.tmp, "drop-8-physvirt.data.json"))
        self.assertEqual(pv["pfn"], self.pfns)
        self.assertEqual(pv["size_px"], [1200, 500])
        addrs = [int(a, 16) for a in pv["uaddr"]]
        self.assertEqual({b - a for a, b in zip(addrs, addrs[1:])}, {4096})
        counts = read_json(os.path.join(self.tmp, "drop-8-counts.data.json"))
        self.assertEqual(counts["source"], "after")
        for p in counts["pages"]:
            self.assertEqual(p["refcount"]["value"][0], 1)
            self.assertIn(2, p["refcount"]["value"])
            self.assertEqual(p["refcount"]["value"][-1], 0)

    def test_counts_step_down_at_kexs_put(self):
        """The refcount plot changes at the step whose action changed it: kex's
        put (kex_page_free reads 2 before it) is drawn as 2 -> 1 at the put,
        as the reference ledger books it (the report's refcount_after; the
        unit test OutputLeaks.CountsAfterAreTheLedgerOnARealRun checks those
        against the ledger of this run). The old plot held 2 until the zap."""
        self.assertEqual(plot.main([REPORT, "--out", self.tmp]), 0)
        counts = read_json(os.path.join(self.tmp, "drop-8-counts.data.json"))
        t0 = counts["t0_ns"]
        lives = {p["life"]: p for p in self.report["pages"]}
        for drawn in counts["pages"]:
            page = lives[drawn["life"]]
            series = list(zip(drawn["refcount"]["t_ms"], drawn["refcount"]["value"]))
            steps = [s for s in page["steps"] if s["refcount_after"] is not None]
            self.assertEqual([v for _, v in series], [s["refcount_after"] for s in steps])
            puts = [s for s in page["steps"] if s["kind"] == "kex_free"]
            self.assertEqual(len(puts), 1)
            t_put = (puts[0]["ts"] - t0) / 1e6
            before = [v for t, v in series if t < t_put]
            at = [v for t, v in series if t == t_put]
            self.assertEqual(puts[0]["refcount"], 2)  # read before the put
            self.assertEqual(before[-1], 2)
            self.assertEqual(at[-1], 1, f"life {drawn['life']}: the put is not drawn at the put")
            self.assertEqual(drawn["mapcount"]["value"][-1], 0)

    def test_large_run_is_sampled_and_says_so(self):
        """65,536 pages: the swimlane and the counts plot draw an even sample
        over the whole run, and the picture and its data say which."""
        base = self.report["pages"]
        big = dict(self.report)
        big["pages"] = [dict(base[i % len(base)], life=i, index=i, pfn=0x100000 + i)
                        for i in range(65536)]
        sw = read_json(os.path.splitext(plot.swimlane(
            big, None, os.path.join(self.tmp, "big-swimlane.png")))[0] + ".data.json")
        self.assertEqual(sw["pages_total"], 65536)
        self.assertLessEqual(sw["pages_drawn"], plot.MAX_LANES)
        idx = [p["index"] for p in sw["pages"]]
        self.assertEqual(idx[0], 0)
        self.assertEqual(idx[-1], 65535)
        self.assertEqual(idx[1] - idx[0], 1024)
        self.assertIn("every 1024th page", sw["sample"])
        counts = read_json(os.path.splitext(plot.counts(
            big, os.path.join(self.tmp, "big-counts.png")))[0] + ".data.json")
        self.assertEqual([p["index"] for p in counts["pages"]], idx)
        self.assertEqual(counts["sample"], sw["sample"])
        small = read_json(os.path.splitext(plot.swimlane(
            self.report, None, os.path.join(self.tmp, "small-swimlane.png")))[0] + ".data.json")
        self.assertEqual(small["sample"], "all 8 pages")

    def test_svg(self):
        self.assertEqual(plot.main([REPORT, "--svg", "--out", self.tmp, "--name", "x"]), 0)
        with open(os.path.join(self.tmp, "x-physvirt.svg")) as f:
            self.assertIn("<svg", f.read(2000))
        self.assertTrue(os.path.exists(os.path.join(self.tmp, "x-swimlane.data.json")))

    def test_not_a_report(self):
        bad = os.path.join(self.tmp, "bad.json")
        with open(bad, "w") as f:
            f.write('{"schema": "something/else"}')
        self.assertEqual(plot.main([bad, "--out", self.tmp]), 1)


class ReportTest(Base):
    def run_report(self, *extra):
        rc = report.main([REPORT, "--jsonl", EVENTS, "--out", self.tmp, *extra])
        self.assertEqual(rc, 0)
        with open(os.path.join(self.tmp, "report.md")) as f:
            return f.read()

    def test_report_holds_the_runs_pfns_and_ptes(self):
        md = self.run_report()
        for p in self.report["pages"]:
            self.assertIn(f"`{p['pfn']:#x}`", md)
            self.assertIn(p["pte"]["value"], md)
            self.assertIn(p["uaddr"], md)
        self.assertIn("insert_page_into_pte_locked.constprop.0", md)
        self.assertIn("**Physically disjoint:**", md)
        self.assertIn("**Virtually contiguous:**", md)
        self.assertIn("set by the **MMU**", md)
        self.assertIn("`release_pages`", md)
        self.assertIn("1→2→1→0", md)
        self.assertIn("no keep run was given", md)
        self.assertIn("No smaps snapshots were given", md)
        for pic in ("drop-8-swimlane.png", "drop-8-counts.png", "drop-8-physvirt.png"):
            self.assertIn(f"]({pic})", md)
            self.assertTrue(os.path.exists(os.path.join(self.tmp, pic)))

    def test_smaps_before_and_after(self):
        before, after = (os.path.join(self.tmp, n) for n in ("before", "after"))
        for path, dirty in ((before, 0), (after, 32)):
            with open(path, "w") as f:
                f.write(SMAPS.replace("{dirty}", str(dirty)))
        md = self.run_report("--smaps-before", before, "--smaps-after", after)
        self.assertIn("Dirty went from 0 kB to 32 kB", md)
        self.assertIn("| after the write | 32 kB | 32 kB | 0 kB | 32 kB | 32 kB |", md)

    def test_missing_events_are_said_not_invented(self):
        r = read_json(REPORT)
        for p in r["pages"]:
            p["steps"] = [s for s in p["steps"] if s["kind"] not in ("page_free",
                                                                   "page_free_batched")]
            p["zap"]["dirty"] = False
        r["phases"] = [ph for ph in r["phases"] if ph["name"] != "write"]
        path = os.path.join(self.tmp, "cut.json")
        with open(path, "w") as f:
            json.dump(r, f)
        self.assertEqual(report.main([path, "--out", self.tmp]), 0)
        md = read_text(os.path.join(self.tmp, "report.md"))
        self.assertIn("The run has no write phase", md)
        self.assertIn("does not by itself prove", md)
        self.assertIn("The run shows no `mm_page_free` for this page", md)
        self.assertNotIn("set by the **MMU**", md)
        self.assertNotIn("munmap does not call `free_page()`", md)

    def test_keep_run(self):
        md = self.run_report("--keep-json", REPORT)  # a drop run stands in: the section renders
        self.assertIn("**With `ref_policy=keep`**", md)


class SmapsTest(unittest.TestCase):
    def test_parse(self):
        e = kexreport.parse_smaps(SMAPS.replace("{dirty}", "12"), vma_start=0x7f5ed7ac2000)
        self.assertEqual(e["name"], "/dev/kex")
        self.assertEqual(e["Size"], 32)
        self.assertEqual(kexreport.smaps_dirty_kb(e), 12)
        self.assertIsNone(kexreport.parse_smaps(SMAPS, vma_start=0x1000))
        self.assertEqual(kexreport.parse_smaps(SMAPS.replace("{dirty}", "4"),
                                               name_contains="kex")["Private_Dirty"], 4)


@unittest.skipUnless(os.environ.get("KEXTRACE_VALIDATE"), "KEXTRACE_VALIDATE not set")
class ReplayTest(Base):
    """kextrace report on the sample JSONL: the same pages, a valid timeline."""

    def test_replay(self):
        validate = os.environ["KEXTRACE_VALIDATE"]
        kextrace = os.path.join(os.path.dirname(validate), "kextrace")
        out_json = os.path.join(self.tmp, "replay.json")
        out_tl = os.path.join(self.tmp, "timeline.json")
        subprocess.run([kextrace, "report", EVENTS, "--json", out_json, "--export", out_tl],
                       check=True, stdout=subprocess.DEVNULL)
        replay = read_json(out_json)
        self.assertEqual([p["pfn"] for p in replay["pages"]],
                         [p["pfn"] for p in self.report["pages"]])
        res = subprocess.run([validate, "--json", out_tl], capture_output=True, text=True)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        v = json.loads(res.stdout)
        self.assertTrue(v["valid"])
        self.assertEqual(v["tracks"], 9)
        names = set(v["thread_names"].values())
        for p in self.report["pages"]:
            self.assertIn(f"page {p['index']} pfn {p['pfn']:#x}", names)

    def test_replay_to_perfetto(self):
        """--export FILE.pftrace: Perfetto protobuf, a track per page of the run."""
        kextrace = os.path.join(os.path.dirname(os.environ["KEXTRACE_VALIDATE"]), "kextrace")
        out = os.path.join(self.tmp, "timeline.pftrace")
        subprocess.run([kextrace, "report", EVENTS, "--export", out],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(out, "rb") as f:
            data = f.read()
        packets = list(proto_fields(data))
        self.assertTrue(packets and all(n == 1 and isinstance(v, bytes) for n, v in packets))
        # TracePacket.track_descriptor (60): its name (2) or thread's (4) thread_name (5)
        names = []
        for _, pk in packets:
            for n, desc in proto_fields(pk):
                if n == 60:
                    names += [v.decode() for m, v in proto_fields(desc) if m == 2]
        for p in self.report["pages"]:
            self.assertIn(f"page {p['index']} pfn {p['pfn']:#x}", names)
        self.assertLess(len(data), os.path.getsize(EVENTS))


def proto_fields(buf):
    """(field number, int or bytes) of one protobuf message, by the wire format."""
    def varint(i):
        v = shift = 0
        while True:
            b = buf[i]
            v |= (b & 0x7F) << shift
            i, shift = i + 1, shift + 7
            if b < 0x80:
                return v, i
    i = 0
    while i < len(buf):
        tag, i = varint(i)
        wire = tag & 7
        if wire == 0:
            v, i = varint(i)
        elif wire == 1:
            v, i = int.from_bytes(buf[i:i + 8], "little"), i + 8
        elif wire == 2:
            n, i = varint(i)
            v, i = buf[i:i + n], i + n
        else:
            raise ValueError(f"wire type {wire}")
        yield tag >> 3, v


if __name__ == "__main__":
    unittest.main()
