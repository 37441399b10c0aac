"""Running a trained model over a prepared split (eval mode, in order) and turning its normalised uvd
output into camera-frame metres: what evaluation, validation during training, the benchmarks and the
report's figures share; and the raw outputs the report draws (per-axis logit matrices, lixel logits)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from cliphand.data.augment import normalise, to_tensor
from cliphand.data.loader import PreparedSet, iterate
from cliphand.distributed import model_device
from cliphand.errors import DataError
from cliphand.evaluate.test_time import rotated_passes
from cliphand.hand.geometry import uvd_to_xyz


@torch.no_grad()
def predict_split(model, dataset: PreparedSet, batch_size: int = 64, with_mesh: bool = True, text: bool = False,
            progress: bool = False, rotations: Sequence[float] = ()) -> dict[str, np.ndarray]:
    """Run the model (eval mode) over a split in order.

    Args:
        rotations: test-time rotation offsets in degrees (:mod:`cliphand.evaluate.test_time`); empty: one
            forward pass per image (the paper).
    Returns NumPy arrays: ``uvd`` (n, 21, 3), ``verts`` (n, V, 3) normalised uvd when ``with_mesh``, and
    with ``text`` (the split must carry cached text features) ``pose_emb``/``text_emb`` (n, 3, E); with
    ``rotations``, ``uvd``/``verts`` average the views and ``uvd_one_pass``/``verts_one_pass`` are the first pass's.
    """
    was_training = model.training
    model.eval()
    out: dict[str, list] = {}
    batches = iterate(dataset, batch_size)
    if progress:
        batches = tqdm(batches, total=math.ceil(len(dataset) / batch_size), desc="predict", leave=False)
    dev = model_device(model)
    for batch in batches:
        x = normalise(batch["image"]).to(dev, non_blocking=True)
        res = (model(x, batch["text"].to(dev) if text else None) if with_mesh or text else model.pose_features(x))
        if rotations:
            res = {**res, **{f"{k}_one_pass": res[k] for k in ("uvd", "verts") if k in res}}
            res = rotated_passes(model if with_mesh else model.pose_features, x, res, rotations)
        for key in ("uvd", "verts", "pose_emb", "text_emb", "uvd_one_pass", "verts_one_pass"):
            if key in res and (not key.startswith("verts") or with_mesh):
                out.setdefault(key, []).append(res[key].float().cpu().numpy())
    model.train(was_training)
    return {k: np.concatenate(v) for k, v in out.items()}


def to_camera(uvd: np.ndarray, dataset: PreparedSet, input_size: int, depth_range: float) -> np.ndarray:
    """Normalised uvd predictions → camera-frame metres with the split's crop intrinsics and the
    ground-truth root depth (root-relative protocols: the absolute depth is not predicted)."""
    return uvd_to_xyz(uvd.astype(np.float64), dataset.labels["K"].astype(np.float64),
                      dataset.labels["root_depth"].astype(np.float64), input_size, depth_range)


def validation_metrics(model, dataset: PreparedSet, input_size: int, depth_range: float) -> dict[str, float]:
    """Joint errors of the model on a prepared split, in mm: ``pa_mpjpe_mm`` (per-sample Procrustes, the
    FreiHAND protocol) and ``mpjpe_mm`` (root-relative, no alignment), over the split's samples."""
    from cliphand.evaluate.metrics import procrustes_align_batch

    pred = predict_split(model, dataset, with_mesh=False)
    xyz = to_camera(pred["uvd"], dataset, input_size, depth_range)
    gt = dataset.labels["joints"].astype(np.float64)
    pa = np.linalg.norm(procrustes_align_batch(xyz, gt) - gt, axis=-1).mean()
    rel = np.linalg.norm((xyz - xyz[:, :1]) - (gt - gt[:, :1]), axis=-1).mean()
    return {"pa_mpjpe_mm": float(pa * 1000), "mpjpe_mm": float(rel * 1000)}


@torch.no_grad()
def model_logits(model, prep_dir: Path, text_file: Path, k: int = 16) -> np.ndarray:
    """Logit matrices M_lr, M_tb, M_nf (3, k, k) of the first k = min(k, n) samples of a prepared split
    with their cached prompts (``model(images, text)`` then ``model.logits``).

    Raises:
        DataError: missing/invalid split or text cache (:class:`cliphand.data.loader.PreparedSet`), or a
            model without the CLIP head.
    """
    if getattr(model, "clip_head", None) is None:
        raise DataError("the finetuned model has no CLIP head (model.use_clip is false)")
    ds = PreparedSet(prep_dir, text_file)
    batch = ds.batch(np.arange(min(k, len(ds))))
    out = model(normalise(batch["image"]), batch["text"])
    return model.logits(out).float().numpy()


@torch.no_grad()
def model_lixels(model, images: np.ndarray) -> np.ndarray:
    """Lixel logits (k, 3, 21, Hm) of the joint regressor for (k, S, S, 3) uint8 images."""
    return model.pose_features(normalise(to_tensor(np.ascontiguousarray(images))))["lixel_logits"].float().numpy()
