"""Multi-process training under ``torchrun`` (DDP): joining the process group, each rank's
disjoint shard of subjects, and the few collective operations the loop needs.

``torchrun --nproc_per_node 8 -m ehrfast.cli train ...`` sets WORLD_SIZE / RANK / LOCAL_RANK;
without them everything here is a no-op and training runs in one process. CUDA ranks use NCCL
and one GPU each (LOCAL_RANK); CPU ranks use gloo (what the tests run).
"""

from __future__ import annotations

import atexit
import os
import sys
from dataclasses import dataclass

import numpy as np
import torch

_failed = False  # set by mark_failed: the exit hook then leaves the process group alone


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def join(device: str) -> tuple[Ranks, str]:
    """Joins the torchrun process group when WORLD_SIZE > 1; returns the ranks and this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks(), device
    import torch.distributed as dist

    cuda = str(device).startswith("cuda")
    if cuda:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
        atexit.register(_leave)
    return Ranks(dist.get_rank(), dist.get_world_size()), device


def _leave() -> None:
    """Destroys the process group we joined while the interpreter is still whole: left to the
    interpreter's teardown, gloo's worker threads can be destroyed joinable and the rank dies with
    SIGABRT ("terminate called without an active exception") after its work is done. Not after
    a failure: destroying an NCCL group waits for collectives that the other ranks may never
    join, and the failure is what the launcher must see."""
    import torch.distributed as dist

    if dist.is_initialized() and not _failed and getattr(sys, "last_value", None) is None:
        dist.destroy_process_group()


def mark_failed() -> None:
    """Records that this rank stops on an error it handled (the CLI prints it and exits 2), so
    that the exit hook leaves the process group alone."""
    global _failed
    _failed = True


def _collective_device() -> torch.device:
    """NCCL reduces CUDA tensors only; gloo CPU tensors."""
    import torch.distributed as dist

    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def shard(subjects: np.ndarray, ranks: Ranks) -> np.ndarray:
    """This rank's subjects: every world-th one, so shards are disjoint and cover all subjects."""
    return subjects[ranks.rank :: ranks.world]


def total(value: float, ranks: Ranks) -> float:
    """Sum of ``value`` over the ranks."""
    if not ranks.distributed:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)
    return float(t)


def gather(obj, ranks: Ranks) -> list:
    """Every rank's ``obj``, in rank order (picklable objects)."""
    if not ranks.distributed:
        return [obj]
    import torch.distributed as dist

    out = [None] * ranks.world
    dist.all_gather_object(out, obj)
    return out


def check_in_sync(model: torch.nn.Module, ranks: Ranks) -> None:
    """Raises when the replicas' parameters differ (a DDP desynchronization would otherwise
    surface only as a silently wrong checkpoint)."""
    if not ranks.distributed:
        return
    import torch.distributed as dist

    checksum = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1).to(_collective_device())
    spread = torch.cat([checksum, -checksum])
    dist.all_reduce(spread, op=dist.ReduceOp.MAX)
    if float(spread[0] + spread[1]) > 0:
        raise RuntimeError(f"DDP replicas diverged: parameter checksums differ by {float(spread[0] + spread[1]):.3g}")


def barrier(ranks: Ranks) -> None:
    if ranks.distributed:
        import torch.distributed as dist

        dist.barrier()
