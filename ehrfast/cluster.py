"""The CPU stages' tasks on a Dask cluster (``--cluster ADDRESS|local:N``), or in this process.

A stage splits its work into independent tasks (tokenize: MEDS shards; prs: blocks of
variants; label: shards; CPU scoring: blocks of subjects), maps a function over them with
``map_tasks`` and reduces the results in task order on the client, so that a cluster run and a
one-process run add the same partials in the same order and write the same bytes.

``cluster`` is ``None`` (this process, the default: Dask is never imported), ``"local:N"`` (a
``distributed.LocalCluster`` of N single-threaded worker processes on loopback, closed at the
end), a scheduler address (``tcp://host:8786``) or a ``distributed.Client`` (the caller's; left
open). Workers must see the inputs and the output directory at the same paths as the client
(the usual shared filesystem of a cluster); tasks write only inside the stage's temporary output
directory, so a failed run leaves nothing behind. A task whose worker dies is rerun elsewhere
by Dask (up to ``distributed.scheduler.allowed-failures`` times); the results do not depend on
where a task ran.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ehrfast.errors import EhrfastError, InvalidInputError

T = TypeVar("T")
R = TypeVar("R")

_LOCAL = re.compile(r"^local:(\d+)$")
STOP_WAIT_S = 600.0  # after a failure, how long the client waits for the tasks still running
_log = logging.getLogger(__name__)


class ClusterTaskError(EhrfastError, RuntimeError):
    """A task failed on the cluster (its worker died too often, or it raised an error of its own)."""


def check_cluster(cluster: Any, what: str = "cluster (--cluster)") -> None:
    """Refuses a spelling that is neither ``local:N`` (N >= 1) nor a scheduler address, nor a Client."""
    if cluster is None or not isinstance(cluster, str):
        return
    m = _LOCAL.match(cluster)
    if cluster.startswith("local") and (m is None or int(m.group(1)) < 1):
        raise InvalidInputError(f"{what}: {cluster!r} — write local:N with N >= 1 worker processes (e.g. local:4)")
    if m is None and "://" not in cluster and ":" not in cluster:
        raise InvalidInputError(f"{what}: {cluster!r} is neither local:N nor a scheduler address (tcp://host:8786)")


def _distributed():
    try:
        import distributed
    except ImportError as exc:  # the optional extra
        raise InvalidInputError("--cluster needs Dask distributed: pip install 'ehrfast[dask]'") from exc
    return distributed


@dataclass
class Cluster:
    """A connected Dask client and what the stages ask of it."""

    client: Any  # distributed.Client

    @property
    def n_workers(self) -> int:
        return max(1, len(self.client.scheduler_info(n_workers=-1).get("workers", {})))

    def broadcast(self, value: Any) -> Any:
        """``value`` sent once to every worker (a model, a fitted tokenizer); pass the returned
        future as a task argument and the task receives the value."""
        return self.client.scatter(value, broadcast=True, hash=False)


@contextlib.contextmanager
def connect(cluster: Any) -> Iterator[Cluster | None]:
    """The ``Cluster`` for a ``cluster`` argument (see the module docstring), or None."""
    if cluster is None:
        yield None
        return
    check_cluster(cluster)
    distributed = _distributed()
    if isinstance(cluster, distributed.Client):
        yield Cluster(cluster)
        return
    with contextlib.ExitStack() as stack:
        m = _LOCAL.match(cluster)
        if m:
            # one thread per worker: a task's C++ kernel then runs on one core (Dask sets
            # OMP_NUM_THREADS=1 in its workers) and N workers use N cores; the dashboard on a free
            # loopback port (None would still take :8787, and warn when two runs share a machine)
            local = stack.enter_context(distributed.LocalCluster(
                n_workers=int(m.group(1)), threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0",
                silence_logs=logging.ERROR))
            client = stack.enter_context(distributed.Client(local))
        else:
            try:
                client = stack.enter_context(distributed.Client(cluster, timeout="30s"))
            except OSError as exc:
                raise InvalidInputError(f"--cluster {cluster}: cannot reach the Dask scheduler ({exc})") from exc
        yield Cluster(client)


def map_tasks(cluster: Cluster | None, fn: Callable[..., R], items: Sequence[T], *, labels: Sequence[str], name: str,
              progress: Callable[[int], None] | None = None, sizes: Sequence[int] | None = None, args: tuple = ()) -> list[R]:
    """``[fn(item, *args) for item in items]``: see ``results_in_order``."""
    return list(results_in_order(cluster, fn, items, labels=labels, name=name, progress=progress, sizes=sizes, args=args))


def results_in_order(cluster: Cluster | None, fn: Callable[..., R], items: Sequence[T], *, labels: Sequence[str], name: str,
                     progress: Callable[[int], None] | None = None, sizes: Sequence[int] | None = None,
                     args: tuple = ()) -> Iterator[R]:
    """Yields ``fn(item, *args)`` for each item, in the order of ``items`` — in this process, one
    at a time, when ``cluster`` is None; else as one Dask task per item (``args``: the same for
    every task, e.g. broadcast futures; each item travels inside its own task, so that the
    scheduler can rerun a task lost with its worker), a result held back until those before it are yielded,
    so that a caller reducing them adds in the same order either way. ``progress(sizes[i])``
    (default 1) is called as task i finishes. A failing task stops the run: its error is raised
    naming the task (``labels[i]``)."""
    sizes = list(sizes) if sizes is not None else [1] * len(items)
    if cluster is None:
        for item, label, size in zip(items, labels, sizes, strict=True):
            result = _run_one(fn, item, args, label)
            if progress:
                progress(size)
            yield result
        return
    distributed = _distributed()
    import dask

    with dask.config.set({"distributed.admin.large-graph-warning-threshold": "2GB"}):  # task data is in the graph on purpose (above)
        futures = [cluster.client.submit(_run_one, fn, item, args, label, key=f"{name}-{i}-{os.urandom(4).hex()}", pure=False)
                   for i, (item, label) in enumerate(zip(items, labels, strict=True))]
    index = {f.key: i for i, f in enumerate(futures)}
    done: dict[int, Any] = {}
    next_out = 0
    try:
        for future in distributed.as_completed(futures):
            i = index[future.key]
            if future.status == "error":
                raise _task_error(future.exception(), labels[i], distributed)
            done[i] = future.result()
            future.release()
            if progress:
                progress(sizes[i])
            while next_out in done:
                yield done.pop(next_out)
                next_out += 1
    finally:
        _stop(cluster.client, futures)


def _stop(client, futures) -> None:
    """Cancels the tasks not yet run and waits for those still running (after a failure, or a
    caller that stopped early): the stage removes its temporary output next, and a task that
    ran on would write into it again. Dask cannot interrupt a running task; at most one per
    worker thread runs."""
    pending = [f for f in futures if not f.done()]
    if not pending:
        return
    client.cancel(pending)
    keys = {f.key for f in pending}
    deadline = time.monotonic() + STOP_WAIT_S
    quiet = 0
    while quiet < 2 and time.monotonic() < deadline:  # twice idle: none was starting in between
        # {worker: {key: stack}} of every task executing now (asking by key fails for a key already forgotten)
        running = {key for stacks in client.call_stack().values() for key in stacks}
        quiet = 0 if running & keys else quiet + 1
        time.sleep(0.05)
    if quiet < 2:
        _log.warning("cluster tasks still running %.0f s after a failure; their partial output may be left", STOP_WAIT_S)


def _run_one(fn, item, args, label):
    """One task; an error a user can act on (an EhrfastError or OSError) names its task."""
    try:
        return fn(item, *args)
    except (EhrfastError, OSError) as exc:
        if label in str(exc):
            raise
        raise _relabelled(exc, label) from exc


def _relabelled(exc: BaseException, label: str) -> BaseException:
    message = f"{label}: {exc}"
    try:
        return type(exc)(message)
    except Exception:  # an exception class with its own constructor
        return ClusterTaskError(message)


def _task_error(exc: BaseException, label: str, distributed) -> BaseException:
    if isinstance(exc, distributed.KilledWorker):
        return ClusterTaskError(f"{label}: its worker died {exc.args[1] if len(exc.args) > 1 else ''} — the task was retried and its "
                                f"worker died each time (out of memory? see the worker logs); nothing written")
    if isinstance(exc, EhrfastError | OSError):
        return exc
    exc.add_note(f"in the cluster task {label}")
    return exc


# ---- what a task opens once per worker -------------------------------------------------------

_opened: dict[tuple, Any] = {}
_OPENED_MAX = 4


def opened(key: tuple, factory: Callable[[], R]) -> R:
    """``factory()``, kept for later tasks of this process under ``key`` (a genotype file, a
    checkpoint): each worker opens an input once, not once per task."""
    if key not in _opened:
        if len(_opened) >= _OPENED_MAX:
            _opened.pop(next(iter(_opened)))
        _opened[key] = factory()
    return _opened[key]
