"""Run by ``tests/test_distributed.py`` under ``torchrun`` (and in-process as the one-process reference):
train the tiny model on the tiny split for one phase and save its weights.

    torchrun --standalone --nproc-per-node 2 tests/ddp_worker.py DATA_DIR OUT_DIR PHASES [STOP_AFTER_EPOCH]

PHASES: ``pretrain``, ``finetune`` or both, comma-separated, each from the same initial weights, saved as
``OUT_DIR/<phase>.pt``; STOP_AFTER_EPOCH stops the last phase after that epoch with :class:`Stop`.

The model's batch norms are replaced by per-sample group norms (batch statistics are per process by design,
see cliphand/distributed.py), it has no dropout, and augmentation is off (each process draws its own stream), so a data-parallel run and a
one-process run of the same global batches do the same arithmetic up to the order of float sums.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cliphand import distributed# noqa: E402
from cliphand.model.checkpoint import build_model  # noqa: E402
from cliphand.data.loader import PreparedSet  # noqa: E402
from cliphand.train.loop import train  # noqa: E402
from helpers import NO_AUG, TINY_MODEL, tiny_run, tiny_template  # noqa: E402

#: no augmentation, 2 steps per epoch (both runs must see the same samples and noise-free gradients)
CFG = {"augment": NO_AUG, "warmup_steps": 1, "max_steps_per_epoch": 2}


class Stop(Exception):
    """Raised after an epoch to simulate a kill between epochs."""


def model_without_batchnorm():
    """The tiny model (seed 0), no dropout, every batch norm replaced by a group norm of one group (statistics
    per sample, so independent of how the batch is split)."""
    torch.manual_seed(0)
    model = build_model({**TINY_MODEL, "adapter_dropout": 0.0, "mesh_dropout": 0.0}, tiny_template())
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.modules.batchnorm._BatchNorm):
                setattr(module, name, torch.nn.GroupNorm(1, child.num_features))
    return model


def run(data: Path, out: Path, phase: str, stop_after: int | None = None) -> None:
    """Train ``phase`` on ``data/train`` (with ``data/train_text.npz``); rank 0 saves the weights to ``out``."""
    model = model_without_batchnorm()
    faces = torch.as_tensor(tiny_template()["faces"], dtype=torch.long)

    def log(record, epoch):
        if stop_after is not None and epoch >= stop_after:
            raise Stop(f"stopped after epoch {epoch}")

    train(model, PreparedSet(data / "train", data / "train_text.npz"), tiny_run(phase, **CFG),
          work_path=out.with_suffix(".resume.pt"), faces=faces, log=log)
    if distributed.world().main:
        torch.save(model.state_dict(), out)


if __name__ == "__main__":
    distributed.setup("gloo")
    try:
        phases, out = sys.argv[3].split(","), Path(sys.argv[2])
        for i, phase in enumerate(phases):
            stop = int(sys.argv[4]) if len(sys.argv) > 4 and i == len(phases) - 1 else None
            run(Path(sys.argv[1]), out / f"{phase}.pt", phase, stop)
    finally:
        distributed.teardown()
