"""Evaluation of a trained model on one prepared split: predictions in the camera frame, the field's
metrics (:mod:`cliphand.metrics`, FreiHAND protocol), text↔pose retrieval and inference time.

Joints and vertices are predicted as normalised uvd and lifted to the camera frame with the crop
intrinsics and the ground-truth root depth (the absolute root depth is not predicted; every metric
here is root-relative or Procrustes-aligned, so it does not depend on it).
"""

from __future__ import annotations

import time

import numpy as np

from . import metrics as M
from .data.loader import PreparedSet
from .training import predict, to_camera


def evaluate_split(model, dataset: PreparedSet, input_size: int, depth_range: float, batch_size: int = 64,
                   retrieval_batch_sizes=(16, 32, 64, 128, 256)) -> tuple[dict, dict[str, np.ndarray]]:
    """Run ``model`` over ``dataset`` and score it.

    Returns:
        metrics: plain floats (mm, AUC, F-scores; ``retrieval`` per axis and batch size when the split
            carries text features; ``ms_per_image`` of the batched forward pass on this device);
        predictions: ``joints`` (n, 21, 3) and ``verts`` (n, V, 3) metres camera frame, ``uvd`` (n, 21, 3),
            ``index`` (n,), and the PCK curve (``pck_thresholds_m``, ``pck``).
    """
    with_text = dataset.text is not None and model.clip_head is not None
    t0 = time.perf_counter()
    pred = predict(model, dataset, batch_size=batch_size, with_mesh=True, text=with_text, progress=True)
    ms = (time.perf_counter() - t0) * 1000 / len(dataset)
    joints = to_camera(pred["uvd"], dataset, input_size, depth_range)
    verts = to_camera(pred["verts"], dataset, input_size, depth_range)
    gt_j = dataset.labels["joints"].astype(np.float64)
    gt_v = dataset.labels["verts"].astype(np.float64) if dataset.has_mesh else None
    scores = M.evaluate(joints, gt_j, verts if gt_v is not None else None, gt_v)
    curves = scores.pop("curves", {}) if isinstance(scores.get("curves"), dict) else {}
    scores["ms_per_image"] = round(ms, 3)
    scores["n_samples"] = int(len(dataset))
    if with_text:
        scores["retrieval"] = M.retrieval_top1(pred["pose_emb"], pred["text_emb"], list(retrieval_batch_sizes),
                                               prompts=np.asarray(dataset.prompts))
    out = {"joints": joints.astype(np.float32), "verts": verts.astype(np.float32), "uvd": pred["uvd"],
           "index": np.arange(len(dataset))}
    for k, v in curves.items():
        out[f"curve_{k}"] = np.asarray(v)
    return scores, out

