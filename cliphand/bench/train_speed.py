"""Training throughput on one device, a GPU where there is one: ``python -m cliphand.bench.train_speed``.

On the prepared training split (``data/prep/train`` with its text cache, from ``dvc repro`` or a subset under
``--root``) and the model of ``params.yaml`` (random weights: they do not change the arithmetic), it measures

- the fine-tuning step alone (:func:`cliphand.bench.throughput.train_step_rate`: two augmented views,
  forward, the losses of paper eq. 4-7, backward, AdamW; batches gathered beforehand) at each batch size, in
  float32 and, on CUDA, with bfloat16 autocast, with the peak GPU memory of each;
- the loader (:func:`cliphand.bench.throughput.loader_rate`) at the same batch sizes, on the CPU;
- the whole training loop (:func:`cliphand.train.loop.train`: loader, augmentation, step and the resume
  checkpoint at each epoch's end) for a few short epochs at the fine-tuning batch size ``clip.batch_size``;
  the later epochs' samples/s is the figure (the first pays for start-up).

It writes one JSON (``--out``). It is not a DVC stage: the benchmark stage times this machine's CPU
(``data/metrics/benchmark.json``); this is for the GPU a user has (README, "GPU profile").
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cliphand.bench.throughput import loader_rate, train_step_rate
from cliphand.config import validate
from cliphand.data.loader import PreparedSet
from cliphand.distributed import resolve_device
from cliphand.hand.template import read_template
from cliphand.io import atomic_path
from cliphand.model.checkpoint import build_model
from cliphand.paths import Paths, repo_root
from cliphand.profiles import load_params
from cliphand.train.loop import train
from cliphand.train.settings import model_settings, train_run


def _model(p, data: PreparedSet, template: dict, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = model_settings(p, text_dim=data.text.shape[3]).model_copy(update={"pretrained": None})
    return build_model(cfg, template).to(device)


def measure(p, paths: Paths, device: str, batch_sizes: list[int], iters: int, loop_steps: int,
            loop_epochs: int = 2) -> dict:
    """The measurements of the module docstring.

    Args:
        p: the settings (:class:`cliphand.config.Params`); paths: where ``data/prep`` and ``data/text`` are.
        device: ``cuda``, ``cpu`` or ``auto``; batch_sizes: of the step and loader timings;
        iters: timed steps per configuration; loop_steps, loop_epochs: steps per epoch and epochs of the
            training-loop timing.
    Returns:
        ``device``, ``gpu``, ``torch``, ``steps`` (one row per batch size and precision: ``median_ms``,
        ``images_per_s``, ``peak_gpu_mib``), ``loader`` (per batch size) and ``loop`` (the training loop's
        epochs: seconds, samples/s, mean loss).
    Raises:
        DataError: a missing prepared split or text cache; TrainingError: CUDA asked for but absent.
    """
    dev = resolve_device(device)
    base = train_run(p, "finetune", device=str(dev))
    data = PreparedSet(paths.prep_split("train"), paths.text_cache("train", base.n_joints))
    template = read_template(paths.template)
    faces = torch.as_tensor(np.asarray(template["faces"]), dtype=torch.long)
    cuda = dev.type == "cuda"
    out = {"device": str(dev), "gpu": torch.cuda.get_device_name(dev) if cuda else None, "torch": torch.__version__,
           "n_train": len(data), "input_size": base.input_size, "steps": [], "loader": []}
    for bs in batch_sizes:
        if bs > len(data):
            continue
        out["loader"].append(loader_rate(data, bs, iters=iters))
        for amp in ((False, True) if cuda else (False,)):
            run = train_run(p, "finetune", device=str(dev), batch_size=bs, amp=amp)
            if cuda:
                torch.cuda.reset_peak_memory_stats(dev)
            row = train_step_rate(_model(p, data, template, dev), data, run, faces, warmup=2, iters=iters)
            row["amp_bf16"] = amp
            row["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(dev) / 2 ** 20) if cuda else None
            out["steps"].append(row)
            print(f"step  batch {bs:4d}  bf16 {amp!s:5}  {row['median_ms']:8.2f} ms  {row['images_per_s']:9.1f} img/s")
    run = train_run(p, "finetune", device=str(dev), epochs=loop_epochs, max_steps_per_epoch=loop_steps, warmup_steps=1)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        history = train(_model(p, data, template, dev), data, run, work_path=Path(tmp) / "resume.pt", faces=faces)
        wall = time.perf_counter() - t0
    out["loop"] = {"batch": run.batch_size, "amp_bf16": run.amp and cuda, "wall_s": round(wall, 2), "epochs": history}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cliphand.bench.train_speed", description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", help="cuda | cpu | auto (default: CUDA when present)")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 512])
    ap.add_argument("--iters", type=int, default=10, help="timed steps per batch size and precision")
    ap.add_argument("--loop-steps", type=int, default=50, help="steps per epoch of the training-loop timing")
    ap.add_argument("--loop-epochs", type=int, default=2, help="epochs of the training-loop timing")
    ap.add_argument("--params", type=Path, default=None, help="settings file (default: the repository's params.yaml)")
    ap.add_argument("--root", type=Path, default=None, help="folder holding data/prep and data/text (default: the repository)")
    ap.add_argument("--out", type=Path, default=Path("train_speed.json"))
    a = ap.parse_args(argv)
    params = a.params or repo_root() / "params.yaml"
    p = validate(load_params(params), str(params))
    res = measure(p, Paths(a.root or repo_root()), a.device, a.batch_sizes, a.iters, a.loop_steps, a.loop_epochs)
    with atomic_path(a.out, suffix=".json") as tmp:
        tmp.write_text(json.dumps(res, indent=2))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
