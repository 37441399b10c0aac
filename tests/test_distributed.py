"""Data-parallel training (issue 10, item 2): two gloo processes under torchrun train to the weights of one
process on the same global batches (the CLIP loss over the gathered global batch), and a data-parallel run
interrupted after an epoch resumes to the same weights."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cliphand import distributed
from cliphand.config import Distributed
from cliphand.errors import TrainingError
from ddp_worker import Stop, model_without_batchnorm, run
from helpers import tiny_template, write_tiny_split

WORKER = Path(__file__).resolve().parent / "ddp_worker.py"
# Tolerance on the relative difference of the weight updates, |dw_two - dw_one| / |dw_one| over every weight.
# Measured: float sums in another order (two processes, the gradient all-reduce) give 1.2e-4 after 4 AdamW
# steps of pretraining and 7e-3 of finetuning (Adam turns the rounding noise of exactly-zero gradients, e.g.
# of the biases before a soft-argmax, into steps of the full learning rate, and the CLIP logits at scale 100
# amplify it); a step on the wrong samples or a wrong CLIP gradient gives ~1 (measured: 1.35).
RTOL = 0.03


def _torchrun(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           str(WORKER), *map(str, args)], capture_output=True, text=True, env=env, timeout=300)


def _update(weights: dict, init: dict) -> torch.Tensor:
    return torch.cat([(weights[k] - init[k]).flatten() for k in init if init[k].is_floating_point()])


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    write_tiny_split(root / "train", tiny_template(), n=32, text_path=root / "train_text.npz")
    return root


def test_two_gloo_processes_match_one_process_and_resume(data, tmp_path):
    # one process, global batch 8: pretrain, then finetune with the CLIP loss (2 epochs x 2 steps each)
    (tmp_path / "one").mkdir()
    for phase in ("pretrain", "finetune"):
        run(data, tmp_path / "one" / f"{phase}.pt", phase)
    # two processes, 4 samples each: pretrain in one go; finetune stopped after epoch 1, then resumed
    two = tmp_path / "two"
    two.mkdir()
    stopped = _torchrun(data, two, "pretrain,finetune", 1)
    assert stopped.returncode != 0 and Stop.__name__ in stopped.stderr, stopped.stderr[-3000:]
    assert (two / "pretrain.pt").exists() and not (two / "finetune.pt").exists()
    assert (two / "finetune.resume.pt").exists()
    resumed = _torchrun(data, two, "finetune")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stdout and "after epoch 1/2" in resumed.stdout

    init = model_without_batchnorm().state_dict()
    for phase in ("pretrain", "finetune"):
        one = _update(torch.load(tmp_path / "one" / f"{phase}.pt", weights_only=True), init)
        two = _update(torch.load(tmp_path / "two" / f"{phase}.pt", weights_only=True), init)
        assert float(one.abs().max()) > 1e-3, phase                     # the weights did move
        assert float((two - one).norm() / one.norm()) < RTOL, phase


def test_world_of_one_and_launch_command():
    assert distributed.world() == distributed.World() and distributed.world().main
    x = torch.randn(3, 2)
    assert distributed.gather_features(x) is x
    def settings(**kw):
        return Distributed(**{"nproc_per_node": 1, "nnodes": 1, "node_rank": 0, "rdzv_endpoint": "localhost:29400",
                              "backend": "auto", "sync_batchnorm": True, **kw})

    assert distributed.relaunch("stages/pretrain.py", settings()) is None
    one_node = distributed.torchrun_argv("stages/pretrain.py", settings(nproc_per_node=4))
    assert one_node[1:] == ["-m", "torch.distributed.run", "--nproc-per-node=4", "--standalone", "stages/pretrain.py"]
    two = distributed.torchrun_argv("s.py", settings(nproc_per_node=8, nnodes=2, node_rank=1, rdzv_endpoint="node0:29400"))
    assert "--nnodes=2" in two and "--node-rank=1" in two and "--rdzv-endpoint=node0:29400" in two
    with pytest.raises(TrainingError, match="nccl needs device cuda"):
        distributed.backend_for("nccl", "cpu")
    assert distributed.backend_for("auto", "cpu") == "gloo"
