"""Speed of the training pipeline itself: data loader vs training step, and the text-embedding cache.

- **Loader**: :meth:`cliphand.data.loader.PreparedSet.batch` gathers a batch from the memory-mapped crops (no worker
  processes); its rate (images/s) is compared with the rate of one fine-tuning step on the same batch
  size (augmentation of two views, forward, losses of paper eq. 4-7, backward, AdamW). Both run in the
  training process one after the other, so the loader's share of a step is
  ``loader_ms / (loader_ms + step_ms)``: the loader is the bottleneck when that share is large.
- **Text cache**: the CLIP loss needs the frozen text features of each sample's three prompts (x, y, z).
  Encoding them on the fly costs the text encoder on ``3 B`` prompts per step; the embed_text stage's cache
  (``data/text``) replaces that by an indexed read. Both are timed per step.

The synthesize stage measures its own rate (``data/metrics/synthesize.json: images_per_s``).
"""

from __future__ import annotations

import numpy as np
import torch

from cliphand.bench.timing import time_call
from cliphand.data.loader import PreparedSet
from cliphand.distributed import model_device
from cliphand.train.loop import finetune_step, make_optimizer
from cliphand.train.settings import TrainRun


def _batches(n: int, batch_size: int, count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.choice(n, batch_size, replace=False) for _ in range(count)]


def loader_rate(dataset: PreparedSet, batch_size: int, warmup: int = 2, iters: int = 20) -> dict:
    """Time :meth:`PreparedSet.batch` on random batches (the training loader's work per step).

    Returns: :func:`cliphand.bench.timing.summarize_ms` per batch + ``images_per_s`` and ``batch``.
    """
    order = iter(_batches(len(dataset), batch_size, warmup + iters))
    stats = time_call(lambda: dataset.batch(next(order)), warmup, iters)
    return {**stats, "batch": batch_size, "images_per_s": round(1000 * batch_size / stats["median_ms"], 2)}


def train_step_rate(model, dataset: PreparedSet, run: TrainRun, faces: torch.Tensor, warmup: int = 1,
                    iters: int = 5) -> dict:
    """Time fine-tuning steps (:func:`cliphand.train.loop.finetune_step`, backward, optimizer step) on
    batches gathered beforehand, so the loader is not in the timing. ``model`` is trained in place.

    Args: run: the finetune run's settings (:func:`cliphand.train.settings.train_run`), its batch size included.
    Returns: per-step summary + ``images_per_s`` (input samples; each step sees two augmented views).
    """
    bs = run.batch_size
    batches = iter([dataset.batch(i) for i in _batches(len(dataset), bs, warmup + iters, seed=1)])
    opt, _ = make_optimizer(model, run, steps_per_epoch=warmup + iters)
    gen = torch.Generator().manual_seed(0)
    model.train()

    def step():
        terms = finetune_step(model, next(batches), run, gen, faces)
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        opt.step()

    stats = time_call(step, warmup, iters, device=model_device(model))  # waits for a GPU's queued work
    return {**stats, "batch": bs, "images_per_s": round(1000 * bs / stats["median_ms"], 2)}


def text_cache_effect(dataset: PreparedSet, encoder, batch_size: int, warmup: int = 1, iters: int = 5) -> dict:
    """Per-step cost of the text features: encode the batch's ``3 B`` prompts now vs read the cache.

    Args: dataset: a split with cached text (``dataset.prompts`` (n, 3) str, ``dataset.text``).
        encoder: the text encoder of params ``text`` (:func:`cliphand.text.encoders.build_encoder`).
    Returns: ``on_the_fly`` and ``cached`` per-step summaries, ``speedup`` (median ratio) and ``prompts_per_step``.
    Raises: ValueError when the split carries no text cache.
    """
    if dataset.text is None:
        raise ValueError(f"{dataset.dir}: no text cache to compare against")
    fly = iter(_batches(len(dataset), batch_size, warmup + iters, seed=2))
    cached = iter(_batches(len(dataset), batch_size, warmup + iters, seed=2))

    def encode():
        idx = np.sort(next(fly))
        return torch.as_tensor(encoder.encode([str(p) for p in np.asarray(dataset.prompts[idx]).reshape(-1)]))

    def read():
        idx = np.sort(next(cached))
        return torch.as_tensor(np.asarray(dataset.text[idx], dtype=np.float32))

    on_fly, from_cache = time_call(encode, warmup, iters), time_call(read, warmup, iters)
    return {"on_the_fly": on_fly, "cached": from_cache, "prompts_per_step": 3 * batch_size,
            "speedup": round(on_fly["median_ms"] / max(from_cache["median_ms"], 1e-6), 1)}
