"""Data-parallel training over processes: ``torchrun`` + DistributedDataParallel, the engine PyTorch ships.

One process per device. ``torchrun --nproc-per-node N`` (one machine) or ``--nnodes M --node-rank i
--rdzv-endpoint host:port`` (several) sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in every process;
:func:`setup` joins the process group (NCCL on CUDA, gloo on CPU). In :func:`cliphand.train.loop.train` each
process takes its share ``B / N`` of every global batch of ``B`` (a :class:`torch.utils.data.DistributedSampler`
over one permutation, so the global batches are those of a one-process run), DDP averages the gradients,
and rank 0 alone writes checkpoints, metrics and MLflow runs.

The CLIP loss (eq. 7) needs the whole global batch for its in-batch negatives: :func:`gather_features`
concatenates every rank's embeddings with their gradients, as open_clip's ``gather_features`` does with
``gather_with_grad=True``. Every rank then computes the same B x B loss; the gather's backward sums the
gradients of each rank's own rows, so after DDP's averaging the update equals a one-process step on the
global batch (``tests/test_distributed.py`` checks both).

Batch-norm statistics are per process (B / N samples): PyTorch's SyncBatchNorm runs on CUDA only;
``distributed.sync_batchnorm`` turns it on there. This is the one difference from a one-process run
(README, deviations).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from cliphand.config import Distributed
from cliphand.errors import TrainingError


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (``size`` 1: no process group)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """True on rank 0, the process that writes files and logs."""
        return self.rank == 0


def world() -> World:
    """The current :class:`World`: from the joined process group, else one process."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return World()


def launched() -> bool:
    """True in a process started by ``torchrun`` (it sets ``LOCAL_RANK`` and ``WORLD_SIZE``)."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def backend_for(backend: str, device: str) -> str:
    """``auto`` → ``nccl`` for a CUDA device (``cuda``, ``cuda:N``, ``auto`` with CUDA present), else ``gloo``.

    Raises:
        TrainingError: NCCL without CUDA (the schema allows only auto, gloo and nccl).
    """
    cuda = str(device).startswith("cuda") or (str(device) == "auto" and torch.cuda.is_available())
    if backend == "auto":
        return "nccl" if cuda else "gloo"
    if backend == "nccl" and not cuda:
        raise TrainingError("distributed.backend nccl needs device cuda (params.yaml: device); use gloo on CPU")
    return backend


def setup(backend: str = "auto", device: str = "cpu") -> World:
    """Join the process group when started by ``torchrun`` with ``WORLD_SIZE`` > 1 (rendezvous from the
    environment it sets); on CUDA, bind this process to GPU ``LOCAL_RANK``. A no-op otherwise.

    Returns:
        :func:`world` after joining.
    """
    if launched() and int(os.environ["WORLD_SIZE"]) > 1 and not dist.is_initialized():
        name = backend_for(backend, device)
        if name == "nccl":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group(name)
    return world()


def teardown() -> None:
    """Leave the process group (if joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def gather_features(x: torch.Tensor) -> torch.Tensor:
    """Every rank's ``x`` (b, ...) concatenated in rank order → (N b, ...), differentiable: the backward sums,
    over ranks, the gradients of this rank's rows (``torch.distributed.nn.functional.all_gather``).
    Identity with one process. All ranks must call it with the same shape."""
    if world().size == 1:
        return x
    import warnings

    from torch.distributed.nn.functional import all_gather

    with warnings.catch_warnings():  # deprecated for a private successor (_functional_collectives) in torch 2.9+
        warnings.simplefilter("ignore", FutureWarning)
        parts = all_gather(x.contiguous())
    for part in parts:
        # gloo's all-to-all in the backward sends a tensor's storage as it lies: a gradient that arrives as a
        # strided view (e.g. through a transpose in the loss) would be scrambled (measured: wrong InfoNCE
        # gradients on every row but the first), so hand it over contiguous
        part.register_hook(torch.Tensor.contiguous)
    return torch.cat(parts, dim=0)


def mean_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """The mean of each value over the ranks (for logging per-rank loss averages); unchanged with one process."""
    if world().size == 1 or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / world().size for k, v in zip(keys, t.tolist())}


def broadcast(obj):
    """Rank 0's ``obj`` on every rank (pickled through the process group); unchanged with one process."""
    if world().size == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank; ``[obj]`` with one process."""
    if world().size == 1:
        return [obj]
    out = [None] * world().size
    dist.all_gather_object(out, obj)
    return out


def torchrun_argv(script: str, d: Distributed) -> list[str]:
    """The ``torchrun`` command line that runs ``script`` with the ``distributed`` settings: ``nproc_per_node``
    processes here; with ``nnodes`` > 1 this machine's ``node_rank`` and the rendezvous at ``rdzv_endpoint``
    (``host:port`` of node 0)."""
    argv = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={d.nproc_per_node}"]
    if d.nnodes > 1:
        argv += [f"--nnodes={d.nnodes}", f"--node-rank={d.node_rank}", "--rdzv-backend=c10d",
                 f"--rdzv-endpoint={d.rdzv_endpoint}", "--rdzv-id=cliphand"]
    else:
        argv.append("--standalone")
    return [*argv, script]


def relaunch(script: str, d: Distributed) -> int | None:
    """Run ``script`` under ``torchrun`` when the settings ask for more than one process and this process was
    not started by it; returns torchrun's exit status, or None when the caller should do the work itself."""
    if launched() or d.nproc_per_node * d.nnodes == 1:
        return None
    argv = torchrun_argv(script, d)
    print("[distributed] torchrun " + " ".join(argv[3:]), flush=True)
    return subprocess.call(argv)


def resolve_device(name: str | None) -> torch.device:
    """``cpu`` | ``cuda`` | ``cuda:N`` | ``auto`` (CUDA when present) → a torch device; plain ``cuda`` in a
    process of a data-parallel run is GPU ``LOCAL_RANK`` (one GPU per process).

    Raises:
        TrainingError: CUDA was asked for but is not available.
    """
    name = str(name or "cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(f"device {name!r} requested (params.yaml: device) but CUDA is not available here; "
                            f"use 'cpu' or 'auto'")
    if name == "cuda" and world().size > 1:
        name = f"cuda:{world().local_rank}"
    return torch.device(name)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's parameters."""
    return next(model.parameters()).device
