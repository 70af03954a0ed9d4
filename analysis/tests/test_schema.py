#!/usr/bin/python3
"""The --json reports of committed real runs (drop-8, and every mode and
kernel of tests/data/study/) against docs/kextrace.report.schema.json, with
Debian's python3-jsonschema; and reports the schema must refuse.

  /usr/bin/python3 -m unittest discover -s analysis/tests -v
"""

import copy
import glob
import json
import os
import unittest

import jsonschema

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
SCHEMA = os.path.join(TOP, "docs", "kextrace.report.schema.json")
RUNS = [os.path.join(HERE, "data", "drop-8.json")] + sorted(
    glob.glob(os.path.join(HERE, "data", "study", "*", "*.json")))


def load(path):
    with open(path) as f:
        return json.load(f)


class SchemaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        schema = load(SCHEMA)
        jsonschema.Draft202012Validator.check_schema(schema)
        cls.validator = jsonschema.Draft202012Validator(schema)

    def errors(self, report):
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                for e in self.validator.iter_errors(report)]

    def test_real_runs_are_valid(self):
        self.assertEqual(len(RUNS), 22)  # drop-8, 7 runs x 3 kernels
        for path in RUNS:
            with self.subTest(run=os.path.relpath(path, HERE)):
                self.assertEqual(self.errors(load(path)), [])

    def test_broken_reports_are_refused(self):
        good = load(RUNS[0])
        cases = {
            "a step without its kind": lambda r: r["pages"][0]["steps"][0].pop("kind"),
            "an unknown step kind": lambda r: r["pages"][0]["steps"][0].update(kind="zapp"),
            "a PTE value that is not hex": lambda r: r["pages"][0]["pte"].update(value="123"),
            "a count that is a string": lambda r: r["pages"][0]["steps"][0].update(refcount="1"),
            "a field the schema does not know": lambda r: r["pages"][0].update(color="red"),
            "another schema": lambda r: r.update(schema="kextrace.report/2"),
            "no pages": lambda r: r.pop("pages"),
        }
        for what, breaks in cases.items():
            with self.subTest(what=what):
                bad = copy.deepcopy(good)
                breaks(bad)
                self.assertNotEqual(self.errors(bad), [], what)


if __name__ == "__main__":
    unittest.main()
