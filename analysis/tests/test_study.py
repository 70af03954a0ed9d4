#!/usr/bin/python3
"""Tests of analysis/study.py on committed real runs (tests/data/study/: what
scripts/guest/study traced on the 6.1, 6.12 and sid (7.2) guests, 8 pages per
run; the --json reports re-written compact, the repository's path in the USDT
probe's row replaced by /src/kextrace).

  /usr/bin/python3 -m unittest discover -s analysis/tests -v
"""

import json
import os
import re
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data", "study")
sys.path.insert(0, os.path.dirname(HERE))

import study  # noqa: E402


def row(md, title):
    """The cells of the Markdown table row that starts with title."""
    for line in md.splitlines():
        if line.startswith(f"| {title} |"):
            return [c.strip() for c in re.split(r"(?<!\\)\|", line)[2:-1]]
    raise AssertionError(f"no row {title!r}")


class StudyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="kextrace-study-")
        assert study.main([DATA, "--out", cls.tmp, "--wall-s", "321"]) == 0
        with open(os.path.join(cls.tmp, "study.md")) as f:
            cls.md = f.read()
        with open(os.path.join(cls.tmp, "study.html")) as f:
            cls.html = f.read()
        cls.runs = study.load_runs(DATA)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def test_kernels_in_version_order_with_wall_time(self):
        self.assertEqual([k["release"] for k in self.runs.values()],
                         ["6.1.0-57-amd64", "6.12.118+deb12-amd64", "7.2.13+deb14-amd64"])
        self.assertIn("21 traced runs on 3 guest kernels", self.md)
        self.assertIn("0 events lost in all", self.md)
        self.assertIn("`scripts/study` took 321 s", self.md)

    def test_write_fault_installs_a_dirty_writable_pte(self):
        bits = row(self.md, "PTE bits at install")
        # insert, batch, fault write first, fault read first, pfn
        self.assertEqual(bits[2], "P RW U A D NX (8/8 pages)")
        self.assertEqual(bits[3], "P RW U A - NX (8/8 pages)")
        fw = row(self.md, "first write")
        self.assertEqual(fw[2], "faulted (write fault, error code 0x6) (8/8 pages)")
        self.assertEqual(fw[3], "no fault (8/8 pages)")
        self.assertEqual(row(self.md, "the first fault on the page")[3],
                         "read (error code 0x4) (8/8 pages)")
        self.assertIn("`do_set_pte` installed 8/8 PTEs already dirty and writable", self.md)
        self.assertIn("the read faults installed 8/8 clean PTEs", self.md)
        dirty = row(self.md, "Dirty came from")
        self.assertTrue(dirty[2].startswith("the fault path"))
        self.assertTrue(dirty[3].startswith("the MMU"))

    def test_pfn_takes_no_reference_and_no_rmap(self):
        self.assertEqual(row(self.md, "refcount trail (all pages)")[4], "1→0 (8/8 pages)")
        self.assertEqual(row(self.md, "rmap (mapcount)")[4], "max 0 (8/8 pages)")
        self.assertIn("8/8 pages had no rmap add and no rmap remove", self.md)

    def test_pfn_ptes_are_special(self):
        # the zap's vm_normal_page was given special PTEs, written to by the rig
        self.assertEqual(row(self.md, "PTE bits at install")[4],
                         "P RW U A D NX S at the zap (8/8 pages)")
        self.assertIn("8/8 pages' PTEs were special (bit 9, `_PAGE_SPECIAL`: P RW U A D NX S "
                      "(8/8 pages)) when the munmap's zap gave them to `vm_normal_page`", self.md)
        self.assertTrue(row(self.md, "PTE at install (page 0)")[4].endswith(
            " P RW U A D NX S (at the zap, given to `vm_normal_page`)"))
        self.assertEqual(row(self.md, "Dirty came from")[4],
                         "the MMU: dirty at the zap, no fault (8/8 pages)")
        self.assertEqual(row(self.md, "a pfn map's PTE, given to the page lookup at the zap"),
                         ["`vm_normal_page`"] * 3)

    def test_a_pfn_run_without_its_pte_says_so(self):
        # a run without the pte_lookup events: what kextrace could not show is said
        k = study.load_runs(DATA)["6.1"]
        for p in k["pfn"]["pages"]:
            p["pte"] = None
        self.assertEqual(study.pte_text(k["pfn"]["pages"][0]),
                         "not read: no event carries a pfn map's PTE")
        self.assertIn("kextrace read no PTE of this pfn map", "".join(study.pfn_text(k)))

    def test_batch_makes_fewer_calls_than_pages(self):
        calls = row(self.md, "driver calls")
        self.assertEqual(calls[1], "1 `vm_insert_pages` call for 8 pages (8 inserts)")
        self.assertEqual(calls[0], "8 `vm_insert_page` inserts for 8 pages")
        batch = self.runs["6.1"]["batch"]
        self.assertEqual(batch["mappings"][0]["vm_insert_pages"], 1)

    def test_refcount_steps_down_at_kexs_put(self):
        self.assertEqual(row(self.md, "refcount after each step (page 0)")[0],
                         "1 (kmem_alloc) → 2 (insert) → 1 (kex_free) → 0 (rmap_remove)")

    def test_every_step_names_its_function_on_every_kernel(self):
        self.assertEqual(row(self.md, "rmap add (mapcount +1)"),
                         ["`page_add_file_rmap`", "`folio_add_file_rmap_ptes`",
                          "`folio_add_file_rmap_ptes`"])
        self.assertEqual(row(self.md, "the fault path's PTE install"),
                         ["`do_set_pte`", "`set_pte_range`", "`set_pte_range`"])
        self.assertEqual(row(self.md, "munmap's unmap"),
                         ["`unmap_region`", "`vms_complete_munmap_vmas`",
                          "`vms_complete_munmap_vmas`"])
        self.assertEqual(row(self.md, "the pfn map"),
                         ["`remap_pfn_range`", "`remap_pfn_range`", "`remap_pfn_range_track`"])
        for step, _ in study.KERNEL_STEPS:
            self.assertNotIn("not attached", row(self.md, _), step)

    def test_af_packet_beside_kex(self):
        for k in self.runs.values():
            r = k["af_packet"]
            self.assertEqual(len(r["pages"]), 8)
            self.assertEqual(r["mappings"][0]["owner"]["name"], "af_packet")
        cells = row(self.md, "`6.1.0-57-amd64`")
        self.assertIn("af_packet (socket:[", cells[0])
        self.assertTrue(cells[1].startswith("8/8 before the mmap, by `packet_set_ring"))
        self.assertIn("8/8 after the zap", cells[3])
        self.assertIn("`packet_release`", cells[3])

    def test_the_path_discovered(self):
        md = self.md.split("## 4. The path, discovered")[1].split("## 5.")[0]
        for n, k in self.runs.items():
            f = k["follow"]["follow"]
            self.assertEqual(f["followed_pages"], 8, n)
            self.assertEqual(k["follow"]["losses"]["total"], 0, n)
        # 6.1 has no fprobe: single kprobes, and says why
        self.assertRegex(md, r"\| `6\.1\.0-57-amd64` \| \d+ via kprobe \(kprobe.multi refused: .*CONFIG_FPROBE")
        self.assertRegex(md, r"\| `7\.2\.13\+deb14-amd64` \| \d+ via kprobe.multi \|")
        # after the zap, the free path of each kernel, in order, on every page
        rows = {line.split("|")[1].strip(): line for line in md.splitlines()
                if line.startswith("| `") and "→" in line}
        self.assertRegex(rows["`6.1.0-57-amd64`"],
                         r"`free_pages_and_swap_cache`.*`release_pages`.*\| `free_unref_page_list` \|")
        for k in ("`6.12.118+deb12-amd64`", "`7.2.13+deb14-amd64`"):
            self.assertRegex(rows[k], r"`free_pages_and_swap_cache`.*`folios_put_refs`.*`free_unref_folios`")
        # the curated steps sit among the discovered functions
        self.assertRegex(md, r"\[rmap_add\] → `folio_add_file_rmap_ptes`")

    def test_pictures_and_self_contained_html(self):
        with open(os.path.join(self.tmp, "pte-appearance.data.json")) as f:
            pte = json.load(f)
        modes = {m["run"]: m for m in pte["modes"]}
        self.assertEqual(len(modes["insert"]["t_ms"]), 8)
        # insert: every PTE before mmap returns; fault: every PTE after it
        self.assertLess(max(modes["insert"]["t_ms"]), modes["insert"]["mmap_end_ms"])
        self.assertGreater(min(modes["fault"]["t_ms"]), modes["fault"]["mmap_end_ms"])
        self.assertNotIn('src="pte-appearance.png"', self.html)
        self.assertEqual(self.html.count('src="data:image/png;base64,'), 6)
        self.assertIn("<table>", self.html)

    def test_no_runs(self):
        self.assertEqual(study.main([self.tmp + "/nothing-here"]), 1)


if __name__ == "__main__":
    unittest.main()
