"""The report's figures: matplotlib drawings from arrays already in memory, each saved as a PNG at a given
path (atomically). Figures follow the paper: Fig. 7 (PCK curves), Fig. 4/10 (per-axis logit matrices M_lr,
M_tb, M_nf), Fig. 9 (1D lixel heatmaps and their outer product), plus text↔pose retrieval accuracy, training
curves and predictions drawn over the real photos. Matplotlib's object API is used (no pyplot state, no
display needed).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cliphand.hand.skeleton import BONES, FINGER_COLOURS, JOINT_NAMES
from cliphand.io import atomic_path
from cliphand.report.markdown import fmt

# (axis, logit matrix, direction) of the three per-axis prompts, in the order of the logits' first axis
AXES = (("x", "M_lr", "left → right"), ("y", "M_tb", "top → bottom"), ("z", "M_nf", "near → far"))


def _save(fig: Figure, path: Path) -> Path:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return path


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def fig_pck(curves: dict[str, dict[str, np.ndarray]], scores: dict[str, dict], path: Path) -> Path:
    """PCK curves (paper Fig. 7): Procrustes-aligned and root-relative joints, 0-50 mm, one line per benchmark.

    Args:
        curves: benchmark -> predictions.npz arrays (``curve_thresholds_mm`` (100,), ``curve_pa_pck_0_50``,
            ``curve_rr_pck_0_50`` fractions).
        scores: benchmark -> metrics.json (AUCs for the legend).
    """
    fig = Figure(figsize=(10, 4))
    for k, (key, auc_key, title) in enumerate((("curve_pa_pck_0_50", "auc_0_50", "after Procrustes (PA)"),
                                               ("curve_rr_pck_0_50", "rr_auc_0_50", "root-relative, no alignment"))):
        ax = fig.add_subplot(1, 2, k + 1)
        for bench, arrays in curves.items():
            if key in arrays and "curve_thresholds_mm" in arrays:
                auc = scores.get(bench, {}).get(auc_key)
                ax.plot(arrays["curve_thresholds_mm"], arrays[key], lw=2, label=f"{bench} (AUC {fmt(auc, 3)})")
        ax.set(xlabel="error threshold (mm)", ylabel="PCK (3D joints)", title=f"3D PCK, {title}", xlim=(0, 50),
               ylim=(0, 1.01))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    return _save(fig, path)


def retrieval_batch_sizes(retrieval: dict) -> list[int]:
    """The batch sizes B present in a ``retrieval`` dict (keys ``chance_b{B}``), ascending."""
    return sorted(int(m.group(1)) for k in retrieval if (m := re.fullmatch(r"chance_b(\d+)", k)))


def fig_retrieval(retrieval: dict, path: Path) -> Path:
    """Text↔pose top-1 retrieval accuracy vs in-batch size B, one panel per axis, chance 1/B dashed."""
    bs = retrieval_batch_sizes(retrieval)
    fig = Figure(figsize=(12, 4.2), layout="constrained")
    for a, (axis, name, desc) in enumerate(AXES):
        ax = fig.add_subplot(1, 3, a + 1)
        for key, style, colour, label in (("p2t_top1", "o-", "C0", "pose → text"), ("t2p_top1", "s-", "C1", "text → pose"),
                                          ("p2t_top1_strict", "o:", "C0", "pose → text, index must match"),
                                          ("t2p_top1_strict", "s:", "C1", "text → pose, index must match")):
            ys = [retrieval.get(f"{key}_{axis}_b{b}", np.nan) for b in bs]
            ax.plot(bs, ys, style, color=colour, label=label, alpha=1.0 if "strict" not in key else 0.55)
        ax.plot(bs, [retrieval[f"chance_b{b}"] for b in bs], "k--", label="chance 1/B")
        ax.set_xscale("log", base=2)
        ax.set_xticks(bs, [str(b) for b in bs])
        ax.set(xlabel="batch size B", ylabel="top-1 accuracy", title=f"{axis} ({desc}, {name})", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    fig.legend(*fig.axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=5, fontsize=8)
    return _save(fig, path)


def fig_logits(logits: np.ndarray, path: Path) -> Path:
    """Per-axis logit matrices M_lr, M_tb, M_nf (paper eq. 3, Fig. 4/10) as a softmax over prompts per image.

    Args:
        logits: (3, B, B), [a, i, j] = tau_a <pose_i, text_j> (rows images, columns prompts).
    """
    logits = np.asarray(logits, np.float64)
    b = logits.shape[1]
    fig = Figure(figsize=(14, 4.4), layout="constrained")
    for a, (axis, name, desc) in enumerate(AXES):
        ax = fig.add_subplot(1, 3, a + 1)
        prob = _softmax(logits[a], axis=1)
        im = ax.imshow(prob, cmap="viridis", vmin=0, vmax=1)
        hits = int((prob.argmax(1) == np.arange(b)).sum())
        ax.set(xlabel="prompt j", ylabel="image i", title=f"{name} ({desc})\nrow argmax on diagonal: {hits}/{b}")
        ticks = np.arange(0, b, max(1, b // 8))
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="softmax over prompts")
    return _save(fig, path)


def fig_heatmaps(images: np.ndarray, lixel_logits: np.ndarray, depth_range: float, path: Path,
                 joints: Sequence[int] = (0, 4, 8, 20), titles: Sequence[str] | None = None) -> Path:
    """Joint heatmaps (paper Fig. 9): per sample the image with the outer product p_y ⊗ p_x of a few joints
    overlaid, and the 1D lixel distributions along x (pixels), y (pixels) and z (mm from the root).

    Args:
        images: (k, S, S, 3) uint8 model inputs.
        lixel_logits: (k, 3, 21, Hm) lixel logits of the joint regressor (softmax over the last axis).
        depth_range: metres spanned by the depth lixels (centred on the root).
        joints: joint indices drawn (FreiHAND order).
        titles: one title per sample (default 'sample i').
    The overlay's opacity is the 2D probability relative to a uniform map (opaque at 25x uniform), so a
    flat, uninformed heatmap leaves the image visible.
    """
    from matplotlib.colors import to_rgb

    k, s, hm = len(images), images.shape[1], lixel_logits.shape[-1]
    prob = _softmax(np.asarray(lixel_logits, np.float64), axis=-1)          # (k, 3, 21, Hm)
    centres = (np.arange(hm) + 0.5) / hm
    colours = ["#ffe119", "#e6194b", "#3cb44b", "#42d4f4", "#f032e6", "#f58231"]
    fig = Figure(figsize=(15, 3.4 * k))
    for i in range(k):
        ax = fig.add_subplot(k, 4, 4 * i + 1)
        ax.imshow(images[i])
        for c, j in enumerate(joints):
            outer = prob[i, 1, j][:, None] * prob[i, 0, j][None, :]           # (rows y, cols x)
            rgba = np.zeros((hm, hm, 4))
            rgba[..., :3] = to_rgb(colours[c % len(colours)])
            rgba[..., 3] = 0.75 * np.clip(outer * hm * hm / 25.0, 0.0, 1.0)
            ax.imshow(rgba, extent=(0, s, s, 0), interpolation="bilinear")
        ax.set(title=f"{titles[i] if titles else f'sample {i}'}: p_y ⊗ p_x", xlim=(0, s), ylim=(s, 0))
        ax.axis("off")
        for a, (axis, xlabel, scale, shift) in enumerate((("x", "u (pixels)", s, 0.0), ("y", "v (pixels)", s, 0.0),
                                                           ("z", "depth − root (mm)", depth_range * 1000, 0.5))):
            ax = fig.add_subplot(k, 4, 4 * i + 2 + a)
            for c, j in enumerate(joints):
                ax.plot((centres - shift) * scale, prob[i, a, j], "-", color=colours[c % len(colours)], lw=1.8,
                        label=JOINT_NAMES[j])
            ax.set(xlabel=xlabel, ylabel="softmax probability", title=f"1D lixel heatmap along {axis}")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            if i == 0 and a == 0:
                ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def fig_training(histories: dict[str, list[dict]], path: Path) -> Path:
    """Training curves from the checkpoints' per-epoch histories: loss terms per phase (log scale) and the
    PA-MPJPE (mm) on the synthetic val split and the real-photo development subset over the whole schedule
    (pretrain then finetune)."""
    phases = [p for p in ("pretrain", "finetune") if histories.get(p)]
    fig = Figure(figsize=(5 * (len(phases) + 1), 4))
    for n, phase in enumerate(phases):
        ax = fig.add_subplot(1, len(phases) + 1, n + 1)
        hist = histories[phase]
        epochs = [h.get("epoch", i + 1) for i, h in enumerate(hist)]
        keys = sorted({k for h in hist for k in h if k.startswith("loss_")}, key=lambda k: (k != "loss_total", k))
        for key in keys:
            ys = [h.get(key, np.nan) for h in hist]
            ax.plot(epochs, ys, "o-", lw=2.5 if key == "loss_total" else 1.4, label=key[5:])
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(xlabel="epoch", ylabel="mean loss per step", title=f"{phase}: loss terms")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax = fig.add_subplot(1, len(phases) + 1, len(phases) + 1)
    offset = 0
    for phase in phases:
        hist = histories[phase]
        xs = [offset + h.get("epoch", i + 1) for i, h in enumerate(hist)]
        for key, label in (("val_pa_mpjpe_mm", "synthetic val"), ("real_dev_pa_mpjpe_mm", "real dev subset")):
            if any(key in h for h in hist):
                ax.plot(xs, [h.get(key, np.nan) for h in hist], "o-" if "val" in key else "s--",
                        label=f"{phase}: {label}")
        offset = xs[-1] if xs else offset
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch (pretrain, then finetune)", ylabel="PA-MPJPE (mm)",
           title="validation error after each epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _draw_skeleton(ax, uv: np.ndarray, coloured: bool, **kw) -> None:
    for b, (p, q) in enumerate(BONES):
        colour = FINGER_COLOURS[b // 4] if coloured else kw.get("color", "white")
        ax.plot(uv[[p, q], 0], uv[[p, q], 1], color=colour, **{k: v for k, v in kw.items() if k != "color"})


def fig_overlays(images: np.ndarray, pred_uv: np.ndarray, verts_uv: np.ndarray | None, faces: np.ndarray | None,
                 gt_uv: np.ndarray, titles: Sequence[str], path: Path, cols: int = 4) -> Path:
    """Predictions drawn over photos: predicted mesh (semi-transparent triangles), predicted skeleton
    (one colour per finger) and the ground-truth skeleton (white, dashed).

    Args:
        images: (k, S, S, 3) uint8. pred_uv, gt_uv: (k, 21, 2) pixels. verts_uv: (k, V, 2) pixels or None.
        faces: (F, 3) triangles of the template mesh or None. titles: k strings.
    """
    k, s = len(images), images.shape[1]
    cols = max(1, min(cols, k))
    rows = math.ceil(k / cols)
    fig = Figure(figsize=(3.4 * cols, 3.8 * rows))
    for i in range(k):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(images[i])
        if verts_uv is not None and faces is not None and len(faces):
            tris = verts_uv[i][np.asarray(faces, np.int64)]
            ax.add_collection(PolyCollection(tris, facecolor=(0.55, 0.75, 1.0, 0.18), edgecolor=(0.2, 0.4, 1.0, 0.25),
                                             linewidths=0.3))
        _draw_skeleton(ax, gt_uv[i], coloured=False, color="white", lw=1.3, ls="--")
        _draw_skeleton(ax, pred_uv[i], coloured=True, lw=2.0)
        ax.scatter(pred_uv[i, :, 0], pred_uv[i, :, 1], s=8, c="k", zorder=3)
        ax.set(xlim=(0, s), ylim=(s, 0), title=titles[i])
        ax.axis("off")
    fig.suptitle("predicted mesh (blue) and skeleton (finger colours); ground truth: white dashed", y=1.0)
    fig.tight_layout()
    return _save(fig, path)
