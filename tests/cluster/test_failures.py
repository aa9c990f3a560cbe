"""Failures on the cluster: a worker killed mid-run is replaced and the output is still the same
bytes; a task's own error names its shard and leaves nothing behind; a bad --cluster spelling is
refused before any work; and without --cluster Dask is never imported."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import cloudpickle
import pytest
from distributed.diagnostics.plugin import WorkerPlugin

from ehrfast.cluster import check_cluster, connect, map_tasks
from ehrfast.errors import EhrfastError, InvalidInputError
from ehrfast.genomics import PRSOptions, compute_prs
from ehrfast.tokenize import tokenize_dataset

from .conftest import assert_same_files

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module


class KillAtThirdBlock(WorkerPlugin):
    """Kills its worker process (SIGKILL: no clean-up, as the OOM killer does) when the worker
    starts its third PRS block — once in the whole run (the marker file says it happened)."""

    def __init__(self, marker: str):
        self.marker = marker
        self.started = 0

    def transition(self, key, start, finish, **kwargs):
        if finish == "executing" and str(key).startswith("prs-"):
            self.started += 1
            if self.started == 3 and not os.path.exists(self.marker):
                open(self.marker, "w").close()
                os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_killed_mid_run_is_replaced_and_the_scores_are_the_same(cohort, tmp_path):
    import logging

    import distributed

    scores = sorted(glob.glob(str(cohort / "genomics" / "scores" / "*")))
    options = PRSOptions(variant_block=40)  # ~30 blocks: the kill comes with most still to run
    args = (cohort / "genomics" / "genotypes", scores)
    compute_prs(*args, tmp_path / "one" / "PRS.parquet", options, meds_dir=cohort, progress=False)
    marker = tmp_path / "killed"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                  silence_logs=logging.CRITICAL) as cluster, distributed.Client(cluster) as client:
        client.register_plugin(KillAtThirdBlock(str(marker)))
        pids_before = set(client.run(os.getpid).values())
        compute_prs(*args, tmp_path / "two" / "PRS.parquet", options, meds_dir=cohort, progress=False, cluster=client)
        pids_after = set(client.run(os.getpid).values())
    assert marker.exists(), "no worker was killed: the test did not test anything"
    assert pids_before - pids_after, "the killed worker's process is gone (its nanny started a new one)"
    assert_same_files(tmp_path / "one", tmp_path / "two")


def test_a_failing_shard_is_named_and_nothing_is_left(cohort, tmp_path, client):
    meds = tmp_path / "meds"
    shutil.copytree(cohort / "data", meds / "data")
    shutil.copytree(cohort / "metadata", meds / "metadata")
    bad = sorted((meds / "data" / "held_out").glob("*.parquet"))[-1]
    bad.write_bytes(b"PAR1 this is not a parquet file")
    with pytest.raises(EhrfastError) as err:
        tokenize_dataset(meds, tmp_path / "tokens", progress=False, cluster=client)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meds"], "no output and no temporary directory left"


def _fails_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three is not allowed")
    return x * x


def test_results_come_in_task_order_and_errors_name_their_task(client):
    from ehrfast.cluster import Cluster

    cluster = Cluster(client)
    assert map_tasks(cluster, _fails_on_three, [5, 1, 4, 2], labels=list("abcd"), name="t") == [25, 1, 16, 4]
    assert map_tasks(None, _fails_on_three, [5, 1], labels=list("ab"), name="t") == [25, 1]
    with pytest.raises(ValueError, match="three") as err:
        map_tasks(cluster, _fails_on_three, [1, 3], labels=["shard one", "shard three"], name="t")
    assert any("shard three" in note for note in getattr(err.value, "__notes__", []))


def test_an_ehrfast_error_in_a_task_gets_the_task_name(client):
    from ehrfast.cluster import Cluster

    with pytest.raises(InvalidInputError, match="^shard x: bad value"):
        map_tasks(Cluster(client), _raise_invalid, [0], labels=["shard x"], name="t")


def _raise_invalid(_):
    raise InvalidInputError("bad value")


@pytest.mark.parametrize("spelling", ["local:0", "local", "local:two", "nowhere"])
def test_bad_cluster_spellings_are_refused(spelling):
    with pytest.raises(InvalidInputError, match="cluster"):
        check_cluster(spelling)
    with pytest.raises(InvalidInputError), connect(spelling):
        pass


def test_without_cluster_dask_is_never_imported(scoring_run, tmp_path):
    """``import ehrfast`` and the four commands run without --cluster in a fresh interpreter."""
    cohort, d = scoring_run
    scores = sorted(glob.glob(str(cohort / "genomics" / "scores" / "*")))
    script = textwrap.dedent(f"""
        import sys
        import ehrfast
        from ehrfast.cli import main
        assert main(["tokenize", {str(cohort)!r}, {str(tmp_path / "tok")!r}, "--quiet"]) == 0
        assert main(["prs", "--genotypes", {str(cohort / "genomics" / "genotypes")!r}, "--scores", *{scores!r},
                     "--out", {str(tmp_path / "prs.parquet")!r}, "--quiet"]) == 0
        task = {str(tmp_path / "t.yaml")!r}
        open(task, "w").write("name: t\\ntarget_regex: ['MEDS_DEATH']\\nn_samples: 2\\nmax_new_tokens: 8\\n")
        assert main(["label", {str(cohort)!r}, "--task", task, "--out", {str(tmp_path / "labels.parquet")!r},
                     "--splits", "held_out"]) == 0
        assert main(["score", {str(d / "run" / "model")!r}, {str(d / "tok" / "held_out")!r}, {str(tmp_path / "labels.parquet")!r},
                     "--task", task, "--out", {str(tmp_path / "pred.parquet")!r}, "--quiet"]) == 0
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))
        assert not loaded, loaded
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
