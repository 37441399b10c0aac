"""Evaluation metrics of the field: MPJPE/MPVPE, PA-MPJPE/PA-MPVPE, PCK/AUC, F@5/F@15, retrieval top-1.

Protocol: FreiHAND's official ``eval.py`` (lmb-freiburg/freihand), see NOTES §4:

- Procrustes alignment per sample and separately for joints and vertices: centre each point set on
  its mean, divide by its Frobenius norm (+1e-8, as the script), ``R, s =
  scipy.linalg.orthogonal_procrustes(gt_t, pred_t)``, aligned = ``pred_t @ R.T * s * norm_gt + mean_gt``.
  Reflections are allowed, as in the script.
- Per-point error = Euclidean distance. Mean and median are taken per keypoint over samples, then
  averaged over keypoints (FreiHAND's ``EvalUtil``); with all points valid the mean equals the plain mean.
- PCK(t) = fraction of distances ``<= t`` per keypoint; AUC = trapezoid area under PCK over the
  thresholds divided by the threshold range, averaged over keypoints.
- F-score per sample on aligned vertices, strict ``<``: ``d_pred`` = distance of each predicted vertex
  to its nearest GT vertex, ``d_gt`` = distance of each GT vertex to its nearest prediction;
  recall = mean(d_pred < th), precision = mean(d_gt < th) (the script's naming), F = 2PR/(P+R), 0 when
  P+R = 0; averaged over samples.

Root convention of the unaligned errors (MPJPE, MPVPE): root-relative, root = joint 0 (the wrist) of
the *same* prediction / ground truth: joints ``J - J[0]``; vertices ``V - J[0]`` (the mesh moves with its
own predicted wrist). No scale or rotation alignment.

All inputs are NumPy arrays in metres; keys ending in ``_mm`` are millimetres, AUC / PCK / F are
fractions in [0, 1].
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.integrate import trapezoid
from scipy.linalg import orthogonal_procrustes
from scipy.spatial import cKDTree

# Thresholds (metres) of the three AUC conventions.
THRESH_0_50 = np.linspace(0.0, 0.05, 100)  # FreiHAND eval.py
THRESH_0_30 = np.linspace(0.0, 0.03, 100)  # CLIP-Hand3D Tables 3-5 "AUC(0-30 mm)"; 100 steps chosen like FreiHAND's
THRESH_20_50 = np.linspace(0.02, 0.05, 20)  # BiHand RHD/STB convention (paper Table 2)
F_THRESHOLDS = {"f5": 0.005, "f15": 0.015}  # FreiHAND F@5 mm, F@15 mm


def _check_points(pred: np.ndarray, gt: np.ndarray, ndim: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != ndim or pred.shape[-1] != 3:
        want = "(N,3)" if ndim == 2 else "(B,N,3)"
        raise ValueError(f"{name}: pred {pred.shape} and gt {gt.shape} must both be {want}")
    return pred, gt


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Similarity-align one predicted point set to its ground truth, exactly as FreiHAND's ``align_w_scale``.

    Args:
        pred: (N, 3) predicted points, metres.
        gt: (N, 3) ground-truth points, metres.
    Returns:
        (N, 3) aligned prediction, metres (float64). A degenerate (constant) prediction maps to the GT
        centroid (scale 0).
    Raises:
        ValueError: shapes differ or are not (N, 3).
    """
    pred, gt = _check_points(pred, gt, 2, "procrustes_align")
    mean_gt, mean_pred = gt.mean(0), pred.mean(0)
    gt_t, pred_t = gt - mean_gt, pred - mean_pred
    norm_gt = np.linalg.norm(gt_t) + 1e-8
    norm_pred = np.linalg.norm(pred_t) + 1e-8
    gt_t, pred_t = gt_t / norm_gt, pred_t / norm_pred
    R, s = orthogonal_procrustes(gt_t, pred_t)
    return pred_t @ R.T * s * norm_gt + mean_gt


def procrustes_align_batch(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Batched :func:`procrustes_align` (same maths, vectorised SVD; equal to the loop to ~1e-12).

    ``orthogonal_procrustes(A, B)`` is ``U, w, Vt = svd(A.T @ B); R = U @ Vt; s = w.sum()``.

    Args:
        pred, gt: (B, N, 3) metres.
    Returns:
        (B, N, 3) aligned predictions, metres (float64).
    """
    pred, gt = _check_points(pred, gt, 3, "procrustes_align_batch")
    mean_gt, mean_pred = gt.mean(1, keepdims=True), pred.mean(1, keepdims=True)
    gt_t, pred_t = gt - mean_gt, pred - mean_pred
    norm_gt = np.linalg.norm(gt_t, axis=(1, 2), keepdims=True) + 1e-8
    norm_pred = np.linalg.norm(pred_t, axis=(1, 2), keepdims=True) + 1e-8
    gt_t, pred_t = gt_t / norm_gt, pred_t / norm_pred
    u, w, vt = np.linalg.svd(np.swapaxes(gt_t, 1, 2) @ pred_t)
    R = u @ vt
    s = w.sum(-1)[:, None, None]
    return pred_t @ np.swapaxes(R, 1, 2) * s * norm_gt + mean_gt


def point_distances(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-point Euclidean distances, (B, N, 3) x2 -> (B, N), same units as the input."""
    pred, gt = _check_points(pred, gt, 3, "point_distances")
    return np.linalg.norm(pred - gt, axis=-1)


def root_relative(points: np.ndarray, joints: np.ndarray, root: int = 0) -> np.ndarray:
    """Subtract the root joint: (B, N, 3) points, (B, 21, 3) joints -> (B, N, 3)."""
    return np.asarray(points, np.float64) - np.asarray(joints, np.float64)[:, root:root + 1]


def epe_mean_median(dist: np.ndarray) -> tuple[float, float]:
    """FreiHAND's EvalUtil: per-keypoint mean and median over samples, each averaged over keypoints.

    Args:
        dist: (B, N) distances. Returns: (mean, median) in the units of ``dist``.
    """
    return float(np.mean(dist.mean(0))), float(np.mean(np.median(dist, axis=0)))


def pck_curve(dist: np.ndarray, thresholds: np.ndarray = THRESH_0_50) -> np.ndarray:
    """PCK per threshold: fraction of distances ``<= t`` per keypoint, averaged over keypoints.

    Args:
        dist: (B, N) distances, metres. thresholds: (T,) metres.
    Returns:
        (T,) fractions in [0, 1].
    """
    dist = np.asarray(dist, np.float64)
    if dist.ndim != 2:
        raise ValueError(f"pck_curve: dist must be (B,N), got {dist.shape}")
    per_kp = (dist[None] <= np.asarray(thresholds)[:, None, None]).mean(1)  # (T, N)
    return per_kp.mean(1)


def pck_auc(dist: np.ndarray, thresholds: np.ndarray = THRESH_0_50) -> float:
    """AUC of the PCK curve: trapezoid per keypoint divided by the threshold range, averaged (FreiHAND).

    Args:
        dist: (B, N) distances, metres. thresholds: (T,) increasing, metres.
    Returns:
        AUC in [0, 1] (1 = every distance is 0 or below the first threshold).
    """
    dist = np.asarray(dist, np.float64)
    if dist.ndim != 2:
        raise ValueError(f"pck_auc: dist must be (B,N), got {dist.shape}")
    thresholds = np.asarray(thresholds, np.float64)
    per_kp = (dist[None] <= thresholds[:, None, None]).mean(1)  # (T, N)
    norm = trapezoid(np.ones_like(thresholds), thresholds)
    return float(np.mean(trapezoid(per_kp, thresholds, axis=0) / norm))


def fscore(pred: np.ndarray, gt: np.ndarray, th: float) -> tuple[float, float, float]:
    """F-score of one aligned prediction, FreiHAND ``calculate_fscore`` (strict ``<``).

    Args:
        pred: (N, 3) aligned predicted vertices, metres. gt: (M, 3) GT vertices, metres. th: metres.
    Returns:
        (f, precision, recall) with recall = mean(d_pred < th), precision = mean(d_gt < th).
    """
    d_gt = cKDTree(pred).query(gt)[0]  # each GT vertex -> nearest prediction
    d_pred = cKDTree(gt).query(pred)[0]  # each predicted vertex -> nearest GT vertex
    recall = float(np.mean(d_pred < th))
    precision = float(np.mean(d_gt < th))
    f = 2 * recall * precision / (recall + precision) if recall + precision > 0 else 0.0
    return f, precision, recall


def bihand_align(pred_joints: np.ndarray, gt_joints: np.ndarray, ref_bone: tuple[int, int] = (0, 9)) -> np.ndarray:
    """BiHand / RHD-STB convention: root-relative prediction rescaled to the GT reference bone, GT root added.

    ``out = (pred - pred[0]) * |gt[a]-gt[b]| / |pred[a]-pred[b]| + gt[0]`` (no rotation). The reference
    bone defaults to wrist -> middle MCP (BiHand's ``ref_bone_link = (0, 9)``).

    Args:
        pred_joints, gt_joints: (B, 21, 3) metres.
    Returns:
        (B, 21, 3) metres.
    """
    pred, gt = _check_points(pred_joints, gt_joints, 3, "bihand_align")
    a, b = ref_bone
    scale = np.linalg.norm(gt[:, a] - gt[:, b], axis=-1) / (np.linalg.norm(pred[:, a] - pred[:, b], axis=-1) + 1e-12)
    return (pred - pred[:, :1]) * scale[:, None, None] + gt[:, :1]


def evaluate(pred_joints: np.ndarray, gt_joints: np.ndarray, pred_verts: np.ndarray | None = None,
             gt_verts: np.ndarray | None = None, with_curves: bool = True) -> dict:
    """All hand metrics for one benchmark (FreiHAND protocol, NOTES §4).

    Args:
        pred_joints, gt_joints: (B, 21, 3) metres, camera frame, FreiHAND joint order.
        pred_verts, gt_verts: optional (B, V, 3) metres; both or neither. F-scores and PA-MPVPE need them.
        with_curves: add the PCK curves for plotting under the key ``curves``.
    Returns:
        dict of plain floats:
          ``n``; ``mpjpe_mm``, ``mpjpe_median_mm`` (root-relative, root = joint 0, no alignment);
          ``pa_mpjpe_mm``, ``pa_mpjpe_median_mm`` (Procrustes-aligned joints);
          ``auc_0_50``, ``auc_0_30`` (aligned joints, FreiHAND protocol, 0-50 / 0-30 mm, 100 thresholds);
          ``rr_auc_0_50``, ``rr_auc_0_30`` (same on root-relative unaligned joints);
          ``bihand_mpjpe_mm``, ``bihand_auc_20_50`` (root-relative, scaled by GT wrist->middle-MCP bone,
          GT root added; 20 thresholds over 20-50 mm);
          with vertices also ``mpvpe_mm`` (root-relative to each set's joint 0), ``pa_mpvpe_mm``,
          ``pa_mpvpe_median_mm``, ``pa_mesh_auc_0_50`` (aligned vertices, aligned separately from the
          joints), ``f5``, ``f15`` (F@5 mm / F@15 mm, averaged over samples).
        With ``with_curves`` one more key, ``curves``: a dict of lists of floats: ``thresholds_mm``
        (0-50 mm, 100 values), ``pa_pck_0_50``, ``rr_pck_0_50``, ``thresholds_0_30_mm``, ``pa_pck_0_30``,
        ``thresholds_20_50_mm``, ``bihand_pck_20_50`` and with vertices ``pa_mesh_pck_0_50`` (PCK fractions).
    Raises:
        ValueError: shapes do not match (B, 21, 3) / (B, V, 3), or only one of the vertex arrays is given.
    """
    pred_j, gt_j = _check_points(pred_joints, gt_joints, 3, "evaluate(joints)")
    if pred_j.shape[1] != 21:
        raise ValueError(f"evaluate: joints must be (B,21,3), got {pred_j.shape}")
    if (pred_verts is None) != (gt_verts is None):
        raise ValueError("evaluate: give both pred_verts and gt_verts, or neither")

    d_rr = point_distances(root_relative(pred_j, pred_j), root_relative(gt_j, gt_j))
    d_pa = point_distances(procrustes_align_batch(pred_j, gt_j), gt_j)
    d_bh = point_distances(bihand_align(pred_j, gt_j), gt_j)
    mm = 1000.0
    out: dict[str, float] = {"n": float(len(pred_j))}
    mean, med = epe_mean_median(d_rr)
    out["mpjpe_mm"], out["mpjpe_median_mm"] = mean * mm, med * mm
    mean, med = epe_mean_median(d_pa)
    out["pa_mpjpe_mm"], out["pa_mpjpe_median_mm"] = mean * mm, med * mm
    out["auc_0_50"] = pck_auc(d_pa, THRESH_0_50)
    out["auc_0_30"] = pck_auc(d_pa, THRESH_0_30)
    out["rr_auc_0_50"] = pck_auc(d_rr, THRESH_0_50)
    out["rr_auc_0_30"] = pck_auc(d_rr, THRESH_0_30)
    out["bihand_mpjpe_mm"] = epe_mean_median(d_bh)[0] * mm
    out["bihand_auc_20_50"] = pck_auc(d_bh, THRESH_20_50)
    curves = {
        "thresholds_mm": (THRESH_0_50 * mm).tolist(),
        "pa_pck_0_50": pck_curve(d_pa, THRESH_0_50).tolist(),
        "rr_pck_0_50": pck_curve(d_rr, THRESH_0_50).tolist(),
        "thresholds_0_30_mm": (THRESH_0_30 * mm).tolist(),
        "pa_pck_0_30": pck_curve(d_pa, THRESH_0_30).tolist(),
        "thresholds_20_50_mm": (THRESH_20_50 * mm).tolist(),
        "bihand_pck_20_50": pck_curve(d_bh, THRESH_20_50).tolist(),
    }

    if pred_verts is not None:
        pred_v, gt_v = _check_points(pred_verts, gt_verts, 3, "evaluate(verts)")
        if len(pred_v) != len(pred_j):
            raise ValueError(f"evaluate: {len(pred_v)} vertex sets for {len(pred_j)} joint sets")
        out["mpvpe_mm"] = float(point_distances(root_relative(pred_v, pred_j), root_relative(gt_v, gt_j)).mean()) * mm
        aligned_v = procrustes_align_batch(pred_v, gt_v)
        d_pv = point_distances(aligned_v, gt_v)
        mean, med = epe_mean_median(d_pv)
        out["pa_mpvpe_mm"], out["pa_mpvpe_median_mm"] = mean * mm, med * mm
        out["pa_mesh_auc_0_50"] = pck_auc(d_pv, THRESH_0_50)
        curves["pa_mesh_pck_0_50"] = pck_curve(d_pv, THRESH_0_50).tolist()
        for key, th in F_THRESHOLDS.items():
            out[key] = float(np.mean([fscore(p, g, th)[0] for p, g in zip(aligned_v, gt_v)]))
    result: dict = {k: float(v) for k, v in out.items()}
    if with_curves:
        result["curves"] = curves
    return result


def retrieval_top1(pose_emb: np.ndarray, text_emb: np.ndarray, batch_sizes: Sequence[int] = (16, 32, 64, 128, 256),
                   prompts: np.ndarray | None = None) -> dict[str, float]:
    """Per-axis in-batch top-1 retrieval between pose and text embeddings (the proper "zero-shot" measure).

    The held-out set is cut into consecutive chunks of ``B`` items (the remainder is dropped; batch
    sizes larger than ``n`` are skipped). Per chunk and axis the cosine logit matrix
    ``L[i, j] = <pose_i, text_j>`` (both L2-normalised) is formed; pose->text retrieves
    ``argmax_j L[i, j]`` for each pose, text->pose ``argmax_i L[i, j]`` for each text.
    A retrieval is correct when the retrieved item is the true one **or** (with ``prompts``) when its
    prompt text equals the true prompt text: two poses with the same joint order have the same prompt,
    so picking either is right. Without prompts only the index counts.

    Args:
        pose_emb: (n, 3, E) pose embeddings per axis x, y, z.
        text_emb: (n, 3, E) text embeddings per axis.
        batch_sizes: chunk sizes B.
        prompts: optional (n, 3) prompt strings per item and axis.
    Returns:
        flat dict of floats, for each B used and axis a in x, y, z:
        ``p2t_top1_{a}_b{B}``, ``t2p_top1_{a}_b{B}`` (prompt-equality rule when prompts are given),
        ``p2t_top1_strict_{a}_b{B}``, ``t2p_top1_strict_{a}_b{B}`` (index must match),
        ``dup_frac_{a}_b{B}`` (with prompts: fraction of items whose prompt occurs more than once in
        their chunk), plus ``chance_b{B}`` = 1/B and ``n_chunks_b{B}``.
    Raises:
        ValueError: shapes mismatch.
    """
    pose_emb = np.asarray(pose_emb, np.float64)
    text_emb = np.asarray(text_emb, np.float64)
    if pose_emb.shape != text_emb.shape or pose_emb.ndim != 3 or pose_emb.shape[1] != 3:
        raise ValueError(f"retrieval_top1: pose_emb {pose_emb.shape} and text_emb {text_emb.shape} must be (n,3,E)")
    n = len(pose_emb)
    if prompts is not None:
        prompts = np.asarray(prompts)
        if prompts.shape != (n, 3):
            raise ValueError(f"retrieval_top1: prompts must be ({n},3), got {prompts.shape}")
    pose_n = pose_emb / (np.linalg.norm(pose_emb, axis=-1, keepdims=True) + 1e-12)
    text_n = text_emb / (np.linalg.norm(text_emb, axis=-1, keepdims=True) + 1e-12)
    out: dict[str, float] = {}
    for B in batch_sizes:
        B = int(B)
        if B > n or B < 1:
            continue
        n_chunks = n // B
        out[f"chance_b{B}"] = 1.0 / B
        out[f"n_chunks_b{B}"] = float(n_chunks)
        for a, axis in enumerate("xyz"):
            p = pose_n[: n_chunks * B, a].reshape(n_chunks, B, -1)
            t = text_n[: n_chunks * B, a].reshape(n_chunks, B, -1)
            logits = p @ np.swapaxes(t, 1, 2)  # (chunks, B, B)
            p2t = logits.argmax(2)  # retrieved text per pose
            t2p = logits.argmax(1)  # retrieved pose per text
            idx = np.arange(B)[None]
            out[f"p2t_top1_strict_{axis}_b{B}"] = float((p2t == idx).mean())
            out[f"t2p_top1_strict_{axis}_b{B}"] = float((t2p == idx).mean())
            if prompts is None:
                out[f"p2t_top1_{axis}_b{B}"] = out[f"p2t_top1_strict_{axis}_b{B}"]
                out[f"t2p_top1_{axis}_b{B}"] = out[f"t2p_top1_strict_{axis}_b{B}"]
                continue
            pr = prompts[: n_chunks * B, a].reshape(n_chunks, B)
            same = pr[:, :, None] == pr[:, None, :]  # (chunks, B, B)
            rows = np.arange(n_chunks)[:, None]
            out[f"p2t_top1_{axis}_b{B}"] = float(same[rows, idx, p2t].mean())
            out[f"t2p_top1_{axis}_b{B}"] = float(same[rows, t2p, idx].mean())
            out[f"dup_frac_{axis}_b{B}"] = float((same.sum(2) > 1).mean())
    return out
