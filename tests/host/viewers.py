#!/usr/bin/python3
"""tests/host/viewers.py BUILD_DIR - the outputs opened where people look at
them, in Debian's headless Chromium (driven by python3-selenium):

- the study report (analysis/study.py on the committed runs of three
  kernels) as its self-contained study.html: every picture loaded (natural
  width > 0);
- the timeline of a committed real run (kextrace report --export) imported
  into speedscope (a trace viewer, from npm by scripts/setup): one profile
  per track, the rig's and each page's ("page N pfn 0x...").

Screenshots are kept in BUILD_DIR/viewers/. Each check is also run on a
broken input (a picture removed, the page tracks removed) and must fail
there. Exit 0 when every check passed.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = os.path.join(TOP, "analysis", "tests", "data", "drop-8")
SPEEDSCOPE = os.path.join(TOP, ".cache", "speedscope", "node_modules", "speedscope", "dist",
                          "release", "index.html")
failed = 0


def check(cond, what):
    global failed
    print(("ok: " if cond else "FAILED: ") + what)
    failed += 0 if cond else 1


def browser():
    o = Options()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900"):
        o.add_argument(a)
    o.binary_location = "/usr/bin/chromium"
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)


def images(d, html, shot=None):
    """[(alt, natural width)] of every <img> of html once the page loaded."""
    d.get("file://" + html)
    for _ in range(50):
        if d.execute_script("return document.readyState") == "complete":
            break
        time.sleep(0.1)
    if shot:
        d.save_screenshot(shot)
    return d.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete ? i.naturalWidth : 0])")


def profiles(d, timeline, shot=None):
    """The names of the profiles speedscope made of timeline, in its order."""
    d.get("file://" + SPEEDSCOPE)
    d.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(timeline)

    def title():
        m = re.search(r"\n(.*)\((\d+)/(\d+)\)", d.find_element(By.TAG_NAME, "body").text)
        return m and (m.group(1).strip(), int(m.group(2)), int(m.group(3)))

    for _ in range(100):
        if title():
            break
        time.sleep(0.1)
    first = title()
    if not first:
        return []
    if shot:
        d.save_screenshot(shot)
    names = []
    for _ in range(first[2]):  # "n": speedscope's next profile
        names.append(title()[0])
        ActionChains(d).send_keys("n").perform()
        time.sleep(0.2)
    return names


def main():
    build = sys.argv[1]
    shots = os.path.join(build, "viewers")
    os.makedirs(shots, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="kextrace-viewers-")
    d = browser()
    try:
        # the study report, self-contained
        study = os.path.join(tmp, "study")
        subprocess.run(["/usr/bin/python3", os.path.join(TOP, "analysis", "study.py"),
                        os.path.join(TOP, "analysis", "tests", "data", "study"), "--out", study],
                       check=True, stdout=subprocess.DEVNULL)
        html = os.path.join(study, "study.html")
        shutil.rmtree(os.path.join(tmp, "moved"), ignore_errors=True)
        os.makedirs(os.path.join(tmp, "moved"))
        alone = os.path.join(tmp, "moved", "study.html")  # away from its PNG files
        shutil.copy(html, alone)
        imgs = images(d, alone, os.path.join(shots, "study.png"))
        check(len(imgs) == 6 and all(w > 0 for _, w in imgs),
              f"study.html alone in Chromium: {len(imgs)} pictures, widths "
              f"{[w for _, w in imgs]}")
        with open(alone) as f:
            broken = re.sub(r'src="data:image/png;base64,[^"]*"', 'src="data:image/png;base64,AAAA"',
                            f.read(), count=1)
        bad = os.path.join(tmp, "moved", "broken.html")
        with open(bad, "w") as f:
            f.write(broken)
        imgs = images(d, bad)
        check(sum(1 for _, w in imgs if w == 0) == 1,
              "a study.html with one picture broken: the check sees exactly that one")

        # the timeline, in speedscope
        check(os.path.exists(SPEEDSCOPE), f"speedscope is in .cache ({SPEEDSCOPE})")
        timeline = os.path.join(tmp, "timeline.json")
        subprocess.run([os.path.join(build, "bin", "kextrace"), "report", RUN + ".jsonl",
                        "--export", timeline], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        with open(RUN + ".json") as f:
            pages = json.load(f)["pages"]
        want = sorted(f"page {p['index']} pfn {p['pfn']:#x}" for p in pages)
        names = profiles(d, timeline, os.path.join(shots, "timeline.png"))
        shown = sorted(m.group(0) for n in names for m in [re.search(r"page \d+ pfn 0x[0-9a-f]+", n)]
                       if m)
        check(len(names) == 9 and shown == want and any("rig" in n for n in names),
              f"the timeline in speedscope: {len(names)} profiles, the rig's and pages {shown}")
        with open(timeline) as f:
            tl = json.load(f)
        events = tl["traceEvents"] if isinstance(tl, dict) else tl
        # pages 0-3's tracks removed: the same check must see them missing
        gone = {e["tid"] for e in events if e.get("ph") == "M" and re.search(
            r"page [0-3] pfn", json.dumps(e.get("args", {})))}
        stripped = [e for e in events if e.get("tid") not in gone]
        nopages = os.path.join(tmp, "nopages.json")
        with open(nopages, "w") as f:
            json.dump({**tl, "traceEvents": stripped} if isinstance(tl, dict) else stripped, f)
        names = profiles(d, nopages)
        shown = sorted(m.group(0) for n in names for m in [re.search(r"page \d+ pfn 0x[0-9a-f]+", n)]
                       if m)
        check(len(gone) == 4 and len(names) == 5 and shown == want[4:],
              f"a timeline without pages 0-3's tracks: the check sees {len(names)} profiles, "
              f"pages {shown}")
    finally:
        d.quit()
        shutil.rmtree(tmp)
    print(f"viewers: {'all passed' if not failed else f'{failed} failed'}; screenshots in {shots}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
