"""The console script: help, info, synth, validate, demo (subprocesses, as a user runs them)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

EHRFAST = shutil.which("ehrfast")


def run(*args, check=True):
    cmd = [EHRFAST, *args] if EHRFAST else [sys.executable, "-m", "ehrfast.cli", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_help_lists_commands():
    out = run("--help").stdout
    for command in ("info", "synth", "validate", "demo"):
        assert command in out


def test_info_reports_core():
    info = json.loads(run("info", "--json").stdout)
    assert set(info) >= {"version", "cpp_core", "cuda_kernels", "triton", "gpu"}
    assert "C++ core" in run("info").stdout


def test_synth_then_validate(tmp_path):
    out = tmp_path / "cohort"
    p = run("synth", "--subjects", "120", "--variants", "300", "--null-traits", "3", "--out", str(out), "--quiet")
    assert "subjects 120" in p.stdout
    assert (out / "genomics" / "genotypes.bed").exists()
    assert "valid MEDS" in run("validate", str(out)).stdout
    again = run("synth", "--subjects", "120", "--out", str(out), "--quiet", check=False)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_synth_prints_hospital_rates_and_can_leave_the_hospital_out(tmp_path):
    with_hospital = run("synth", "--subjects", "150", "--variants", "300", "--null-traits", "1", "--out", str(tmp_path / "a"), "--quiet")
    assert "in-hospital mortality" in with_hospital.stdout and "ED: admitted" in with_hospital.stdout
    assert json.loads((tmp_path / "a" / "cohort.json").read_text())["hospital"]["admissions"] > 0
    without = run("synth", "--subjects", "150", "--variants", "300", "--null-traits", "1", "--out", str(tmp_path / "b"), "--quiet",
                  "--no-hospital")
    assert "hospital world" not in without.stdout
    summary = json.loads((tmp_path / "b" / "cohort.json").read_text())
    assert summary["hospital"] == {} and summary["config"]["hospital"] is False
    assert not (tmp_path / "b" / "ground_truth" / "hospital_anchors.parquet").exists()


def test_label_with_a_catalog_task_name(shared_data, tmp_path):
    meds = shared_data / "mimic-iv-demo-meds"
    p = run("label", str(meds), "--task", "hospital_mortality", "--out", str(tmp_path / "hm.parquet"))
    assert "anchors labelled" in p.stdout and "first events: death" in p.stdout
    bad = run("label", str(meds), "--task", "hospital_mortalty", "--out", str(tmp_path / "x.parquet"), check=False)
    assert bad.returncode == 2 and "the catalog has" in bad.stderr and "Traceback" not in bad.stderr
    (tmp_path / "bad.yaml").write_text("anchor: {code_regex: '^HOSPITAL_ADMISSION//'}\nevents: {death: '^MEDS_DEATH$'}\n"
                                       "time_limit: 30\noutcomes: {d: {any_of: [{events: [death]}]}}\n")
    bad = run("label", str(meds), "--task", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "x.parquet"), check=False)
    assert bad.returncode == 2 and "time_limit" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "x.parquet").exists()


def test_validate_error_is_one_clear_line(tmp_path):
    p = run("validate", str(tmp_path), check=False)
    assert p.returncode == 2
    assert "no data/ directory" in p.stderr and "Traceback" not in p.stderr


def test_demo_runs_and_resumes(tmp_path, meds_evaluation):
    out = tmp_path / "demo"
    first = run("demo", "--out", str(out), "--subjects", "150", "--train-steps", "3", "--device", "cpu", "--quiet")
    assert "demo finished" in first.stdout and "step/s" not in first.stderr + first.stdout  # --quiet: no progress bars
    results = json.loads((out / "results.json").read_text())
    assert results["synth"]["n_subjects"] == 150 and results["validate"]["n_subjects"] == 150
    assert len(results["prs"]["traits"]) > 100 and (out / "prs" / "PRS.parquet").exists()
    assert results["tokenize"]["splits"]["train"]["subjects"] > 0 and (out / "tokens" / "train" / "tokens.npy").exists()
    assert {"auroc_ehr", "auroc_prs", "p_value"} <= set(results["evaluate"])
    assert (out / "evaluation" / "report.html").exists() and (out / "models" / "prs" / "model" / "model.safetensors").exists()
    assert "skipped" in results["transfer"] and "tasks" in results["report"]
    assert "ceiling" in (out / "report.md").read_text() and "<html>" in (out / "report.html").read_text()
    page = (out / "report.html").read_text()
    assert "<th>subjects</th><th>cases</th>" in page and "<a href='evaluation/report.html'>" in page  # counts; links, not text
    assert "Fewer than 10 cases" in page  # 150 subjects: every task has few held-out cases, and says so
    for report in out.rglob("report.md"):
        assert "nan%" not in report.read_text().lower(), report
    hospital = results["hospital"]["outcomes"]
    assert set(hospital) == {"hospital_mortality", "prolonged_stay", "icu_admission", "composite"}
    assert all(o["n"] > 0 for o in hospital.values()) and "In-hospital risk" in (out / "report.md").read_text()
    assert set(results["triage"]["tasks"]) == {"ed_hospitalization", "ed_critical_outcome", "ed_representation"}
    _every_output_parses(out)
    _meds_evaluation_reads_every_prediction_file(out, meds_evaluation)
    second = run("demo", "--out", str(out), "--subjects", "150", "--train-steps", "3")
    assert second.stdout.count("skipping") == 14


def _meds_evaluation_reads_every_prediction_file(root, meds_evaluation):
    """#22 item 1: every predictions file the demo writes has a meds-evaluation copy beside it,
    which the real meds-evaluation-cli reads, with the AUROC ehrfast computes on the same rows."""
    import pyarrow.parquet as pq

    from ehrfast.evaluate.metrics import auroc

    rich = [p for p in root.rglob("*.parquet") if not p.stem.endswith("_strict")
            and "predicted_boolean_probability" in pq.read_schema(p).names]
    assert len(rich) >= 10, rich
    for path in rich:
        strict = path.with_name(path.stem + "_strict.parquet")
        assert strict.exists(), f"{path} has no meds-evaluation copy"
        table = pq.read_table(path)
        table = table.filter(table.column("boolean_value").is_valid())
        labels = table.column("boolean_value").to_numpy(zero_copy_only=False)
        if labels.all() or not labels.any():
            continue  # one class: AUROC is undefined and meds-evaluation (scikit-learn) refuses it
        official = meds_evaluation(strict)["samples_equally_weighted"]
        ours = auroc(labels, table.column("predicted_boolean_probability").to_numpy().astype(float))
        assert abs(official["roc_auc_score"] - ours) < 1e-9, (path, official["roc_auc_score"], ours)


def _every_output_parses(root):
    """Every file the demo wrote opens as what its name says it is."""
    import csv

    import numpy as np
    import pyarrow.parquet as pq

    seen = set()
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        suffix = path.suffix
        seen.add(suffix)
        if suffix == ".json":
            json.loads(path.read_text())
        elif suffix == ".parquet":
            pq.read_table(path)
        elif suffix == ".npy":
            np.load(path, mmap_mode="r")
        elif suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
        elif suffix == ".csv":
            assert list(csv.reader(path.open())), path
        elif suffix == ".html":
            assert path.read_text().rstrip().endswith("</html>"), path
        elif suffix == ".safetensors":
            from safetensors.numpy import load_file

            assert load_file(path), path
        else:
            assert path.stat().st_size > 0, path
    assert {".json", ".parquet", ".npy", ".png", ".html", ".md", ".safetensors"} <= seen


def test_prs_and_tokenize_commands(tmp_path):
    cohort = tmp_path / "cohort"
    run("synth", "--subjects", "150", "--variants", "400", "--null-traits", "2", "--out", str(cohort), "--quiet")
    scores = sorted(str(p) for p in (cohort / "genomics" / "scores").glob("*.txt"))
    out = tmp_path / "prs" / "PRS.parquet"
    p = run("prs", "--genotypes", str(cohort / "genomics" / "genotypes"), "--scores", *scores, "--out", str(out),
            "--meds", str(cohort), "--min-overlap", "0.5", "--quiet")
    assert "traits" in p.stdout and out.exists() and (out.parent / "prs_meta.json").exists()
    t = run("tokenize", str(cohort), str(tmp_path / "tok"), "--quiet")
    assert "train" in t.stdout and (tmp_path / "tok" / "train" / "tokens.npy").exists()
    m = run("train", str(tmp_path / "tok"), "--prs", str(out), "--preset", "tiny", "--steps", "4", "--batch-size", "2",
            "--seq-len", "32", "--out", str(tmp_path / "run"), "--quiet")
    assert "validation loss" in m.stdout and (tmp_path / "run" / "model" / "model.safetensors").exists()


def test_every_option_has_help_with_its_default():
    """Every flag of every command says what it does and what it is when not given."""
    import argparse

    from ehrfast.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    missing = [f"{name} {'/'.join(a.option_strings)}" for name, sub in commands.items() for a in sub._actions
               if a.option_strings and not isinstance(a, argparse._HelpAction)
               and not (a.help and ("default" in a.help.lower() or "(required)" in a.help))]
    assert not missing, missing
    assert run("--version").stdout.startswith("ehrfast ")
