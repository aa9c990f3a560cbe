"""#22 item 3: a task file with a misspelled key, a wrong type, a number YAML reads as a string,
or broken JSON/YAML is refused by the command with one line naming the file and the key (and
the allowed keys), never a traceback; nothing is written."""

from __future__ import annotations

import subprocess
import sys

import pytest

CASES = [
    ("t.yaml", "target_regex: [E11]\nhorizon_year: 10\n", ["t.yaml", "horizon_year", "horizon_years"]),  # misspelled: the allowed keys
    ("t.yaml", "target_regex: [E11]\nhorizon_years: '10'\n", ["t.yaml", "horizon_years", "a number"]),  # YAML read a string
    ("t.yaml", "target_regex: [E11]\nn_samples: 2.5\n", ["t.yaml", "n_samples", "integer"]),
    ("t.yaml", "target_regex: [E11\nhorizon_years: 10\n", ["t.yaml", "not valid YAML"]),
    ("t.json", '{"target_regex": ["E11"], "horizon_years": }', ["t.json", "not valid JSON"]),
    ("t.yaml", "- just\n- a list\n", ["t.yaml", "one mapping"]),
    ("t.yaml", "anchor: {code_regex: '^X'}\nevents: {d: '^MEDS_DEATH$'}\ntime_limit: 30d\noutcome: {}\n", ["t.yaml", "outcome"]),
    ("t.yaml", "predicates: {a: {code: A}}\ntrigger: a\nwindows: {w: {start: trigger, end: start + 1d, label: a, index_timestamp: sart}}\n",
     ["t.yaml", "index_timestamp"]),
]


@pytest.mark.parametrize("name,text,expected", CASES)
def test_bad_task_files_are_one_line_naming_file_and_key(tmp_path, shared_data, name, text, expected):
    (tmp_path / name).write_text(text)
    out = tmp_path / "labels.parquet"
    done = subprocess.run([sys.executable, "-m", "ehrfast.cli", "label", str(shared_data / "synthea27-meds"), "--task", str(tmp_path / name),
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and all(e in done.stderr for e in expected), done.stderr
    assert not out.exists()
