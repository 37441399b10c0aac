"""Evaluation of a trained model on one prepared split: predictions in the camera frame, the field's
metrics (:mod:`cliphand.evaluate.metrics`), text↔pose retrieval and inference time.

Every split is scored with all metrics; its benchmark's own protocol (``meta.json`` of the prepared
split) names the headline ones (:data:`PROTOCOLS`):

- ``freihand``: FreiHAND's ``eval.py`` (per-sample similarity alignment of joints and of vertices,
  PA-MPJPE / PA-MPVPE, AUC over 0-50 mm in 100 steps, F@5 / F@15 strict ``<``).
- ``bihand``: RHD and STB as in the paper's Table 2 (BiHand's convention: the root-relative prediction
  scaled to the ground-truth wrist→middle-MCP bone, the ground-truth root added, no rotation; PJPE in mm,
  AUC over 20-50 mm in 20 steps).
- ``realworld``: Ge et al. CVPR 2019 (``RealWorldTestSet.evaluate_pose`` of hand-graph-cnn): the
  root-relative prediction plus the ground-truth root, no scale (their ``pose_scale`` is a constant
  5 cm) and no alignment; mean 3D joint error in mm = our root-relative ``mpjpe_mm``.

Joints and vertices are predicted as normalised uvd and lifted to the camera frame with the crop
intrinsics and the ground-truth root depth (the absolute root depth is not predicted; every metric
here is root-relative or Procrustes-aligned, so it does not depend on it).
"""

from __future__ import annotations

import time

import numpy as np

from cliphand.evaluate import metrics as M
from cliphand.data.loader import PreparedSet
from cliphand.distributed import resolve_device
from cliphand.evaluate.inference import predict_split, to_camera

#: headline metrics of each benchmark protocol (module docstring)
PROTOCOLS = {
    "freihand": ("pa_mpjpe_mm", "pa_mpvpe_mm", "auc_0_50", "f5", "f15"),
    "bihand": ("bihand_mpjpe_mm", "bihand_auc_20_50"),
    "realworld": ("mpjpe_mm", "pa_mpjpe_mm", "auc_0_50"),
}


def evaluate_split(model, dataset: PreparedSet, input_size: int, depth_range: float, batch_size: int = 64,
                   retrieval_batch_sizes=(16, 32, 64, 128, 256), protocol: str = "freihand",
                   device: str = "cpu", rotations=()) -> tuple[dict, dict[str, np.ndarray]]:
    """Run ``model`` over ``dataset`` (on ``device``) and score it.

    Args:
        protocol: the benchmark's protocol (:data:`PROTOCOLS`), recorded with its headline metric names.
        rotations: test-time rotation offsets, degrees (:mod:`cliphand.evaluate.test_time`); empty: one forward
            pass (the paper). With them the metrics score the averaged views, and ``one_pass`` holds the same
            metrics (no curves) of the first pass alone.
    Raises:
        ValueError: an unknown protocol.

    Returns:
        metrics: plain floats (mm, AUC, F-scores; ``retrieval`` per axis and batch size when the split
            carries text features; ``ms_per_image`` of the batched inference on this device, every
            forward pass included);
        predictions: ``joints`` (n, 21, 3) and ``verts`` (n, V, 3) metres camera frame, ``uvd`` (n, 21, 3),
            ``index`` (n,), and the PCK curve (``pck_thresholds_m``, ``pck``); with ``rotations`` also
            ``joints_one_pass`` (n, 21, 3) metres.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {sorted(PROTOCOLS)}")
    model.to(resolve_device(device))
    with_text = dataset.text is not None and model.clip_head is not None
    t0 = time.perf_counter()
    pred = predict_split(model, dataset, batch_size=batch_size, with_mesh=True, text=with_text, progress=True,
                         rotations=rotations)
    ms = (time.perf_counter() - t0) * 1000 / len(dataset)
    joints = to_camera(pred["uvd"], dataset, input_size, depth_range)
    verts = to_camera(pred["verts"], dataset, input_size, depth_range)
    gt_j = dataset.labels["joints"].astype(np.float64)
    gt_v = dataset.labels["verts"].astype(np.float64) if dataset.has_mesh else None
    scores = M.evaluate(joints, gt_j, verts if gt_v is not None else None, gt_v)
    curves = scores.pop("curves", {}) if isinstance(scores.get("curves"), dict) else {}
    scores["test_rotations_deg"] = [float(r) for r in rotations]
    scores["forward_passes"] = 1 + len(rotations)
    out = {}
    if rotations:
        joints_one = to_camera(pred["uvd_one_pass"], dataset, input_size, depth_range)
        verts_one = to_camera(pred["verts_one_pass"], dataset, input_size, depth_range)
        out["joints_one_pass"] = joints_one.astype(np.float32)
        scores["one_pass"] = M.evaluate(joints_one, gt_j, verts_one if gt_v is not None else None, gt_v,
                                        with_curves=False)
    scores["ms_per_image"] = round(ms, 3)
    scores["n_samples"] = int(len(dataset))
    scores["protocol"] = protocol
    scores["headline"] = list(PROTOCOLS[protocol])
    if with_text:
        scores["retrieval"] = M.retrieval_top1(pred["pose_emb"], pred["text_emb"], list(retrieval_batch_sizes),
                                               prompts=np.asarray(dataset.prompts))
    out.update({"joints": joints.astype(np.float32), "verts": verts.astype(np.float32), "uvd": pred["uvd"],
                "index": np.arange(len(dataset))})
    for k, v in curves.items():
        out[f"curve_{k}"] = np.asarray(v)
    return scores, out

