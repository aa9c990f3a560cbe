"""CPU scoring on a cluster (``score --cluster``): blocks of label rows as tasks, the model sent
once per worker; with ``--deterministic`` the predictions (and the per-sample file of an event
task) are the bytes of a one-process run, and the trajectories are the same rows."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from ehrfast.cli import main
from ehrfast.errors import InvalidInputError
from ehrfast.infer import ScoreOptions
from ehrfast.infer.blocks import MAX_BLOCK_ROWS, row_blocks
from ehrfast.infer.score import score_cohort
from ehrfast.labels import make_labels
from ehrfast.task import EventTask, Task, load_task

from .conftest import assert_same_files

T2D = Task(name="t2d_10y", target_all_of=("type 2 diabetes",), horizon_years=10, max_new_tokens=16, n_samples=3)
DETERMINISTIC = ScoreOptions(deterministic=True, seed=5)


def test_incidence_scoring_on_the_cluster_writes_the_same_bytes(scoring_run, client):
    root, d = scoring_run
    make_labels(root, T2D, d / "t2d.parquet", splits=("held_out",))
    args = (d / "run" / "model", d / "tok" / "held_out", d / "t2d.parquet", T2D)
    one = score_cohort(*args, d / "one" / "pred.parquet", DETERMINISTIC, meds_dir=root, trajectories_path=d / "one" / "traj.parquet",
                       progress=False)
    many = score_cohort(*args, d / "many" / "pred.parquet", DETERMINISTIC, meds_dir=root, trajectories_path=d / "many" / "traj.parquet",
                        progress=False, cluster=client)
    assert many.subjects == one.subjects > 8 and many.ranks == 2 and many.tokens_generated == one.tokens_generated
    assert_same_files(d / "one" / "pred.parquet", d / "many" / "pred.parquet")
    assert_same_files(d / "one" / "pred_strict.parquet", d / "many" / "pred_strict.parquet")
    # the futures are the same rows; one process writes them in its batches' order, the cluster by block
    key = ["subject_id", "prediction_time", "sample", "step"]
    a, b = (pq.read_table(d / w / "traj.parquet").to_pandas().sort_values(key, ignore_index=True) for w in ("one", "many"))
    assert len(a) == one.tokens_generated
    assert a.equals(b)
    assert not list((d / "many").glob(".*")), "a part or temporary file was left behind"


def test_event_scoring_with_the_cli_on_local_workers(scoring_run, tmp_path):
    root, d = scoring_run
    task = EventTask.from_dict({**load_task("hospital_mortality").to_dict(), "n_samples": 4, "max_new_tokens": 24})
    task_file = tmp_path / "hm.json"
    task_file.write_text(json.dumps(task.to_dict()))
    make_labels(root, task, tmp_path / "hm.parquet", splits=("held_out",))
    base = ["score", str(d / "run" / "model"), str(d / "tok" / "held_out"), str(tmp_path / "hm.parquet"), "--task", str(task_file),
            "--deterministic", "--seed", "3", "--quiet"]
    for where, extra in (("one", []), ("many", ["--cluster", "local:2"])):
        (tmp_path / where).mkdir()
        assert main([*base, "--out", str(tmp_path / where / "pred.parquet"), "--samples", str(tmp_path / where / "samples.parquet"),
                     *extra]) == 0
    assert pq.read_metadata(tmp_path / "one" / "pred.parquet").num_rows > 4
    assert_same_files(tmp_path / "one", tmp_path / "many")


def test_cluster_scoring_refuses_a_gpu_device(scoring_run, client, tmp_path):
    root, d = scoring_run
    make_labels(root, T2D, tmp_path / "t2d.parquet", splits=("held_out",))
    with pytest.raises(InvalidInputError, match="torchrun"):
        score_cohort(d / "run" / "model", d / "tok" / "held_out", tmp_path / "t2d.parquet", T2D, tmp_path / "p.parquet",
                     ScoreOptions(device="cuda"), cluster=client, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t2d.parquet"]


def test_row_blocks_cover_every_row_once():
    for n, workers in [(0, 2), (1, 2), (7, 2), (1000, 3), (50_000, 4)]:
        blocks = row_blocks(n, workers)
        joined = np.concatenate(blocks) if blocks else np.zeros(0, np.int64)
        np.testing.assert_array_equal(joined, np.arange(n))
        assert all(0 < len(b) <= MAX_BLOCK_ROWS for b in blocks)
