"""The generated report: ``reports/report.md`` and its PNG figures, from the pipeline's outputs only.

Every number of the report is read from a file the pipeline wrote (``data/metrics/*.json``,
``data/eval/<bench>/{metrics.json, predictions.npz}``, ``data/ablate/<row>/metrics.json``, the
checkpoints' histories, params.yaml) or computed from them (logit matrices, lixel heatmaps). The only
exceptions are the published figures below (:data:`PAPER_TABLE3` ...), which are labelled as such in
the report. A missing input never stops the report: its section says what is missing instead.

Figures follow the paper: Fig. 7 (PCK curves), Fig. 4/10 (per-axis logit matrices M_lr, M_tb, M_nf),
Fig. 9 (1D lixel heatmaps and their outer product), plus training curves and predictions drawn over
the real photos. Matplotlib's object API is used (no pyplot state, no display needed).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .checkpoint import load_checkpoint, load_weights
from .config import fingerprint, resolve_path
from .errors import DataError
from .io import atomic_path, read_json, read_npz, save_text
from .markdown import DASH, fmt, md_table
from .report_speed import realworld_vs_peer, speed_section
from .report_training import clip_claim_section, data_look_section, experiment_log_section, targets_section
from .skeleton import BONES, FINGER_COLOURS, JOINT_NAMES

# ---- published figures (NOTES §5 and §6); everything else in the report comes from pipeline files ----
PAPER = "paper (FreiHAND, ResNet-50)"
PAPER_TABLE3 = {8: 7.07, 16: 7.01, 32: 6.88}   # Table 3: batch size B -> PA-PJPE mm (FreiHAND validation)
PAPER_TABLE4 = {10: 7.16, 15: 6.94, 21: 6.88}  # Table 4: N joints per prompt -> PA-PJPE mm
# Table 5 (modules): AUC(0-30 mm), PJPE mm, median mm, PA-PJPE mm; rows absent here are not in our notes.
PAPER_TABLE5 = {"full model": (0.776, 13.95, 11.58, 6.88), "w/o CLIP loss": (0.763, 14.86, 12.27, 7.29)}
# NOTES §6: FreiHAND test, PA-MPJPE mm, PA-MPVPE mm, F@5, F@15 (single view unless noted).
PEERS_FREIHAND = [
    ("CLIP-Hand3D", "ResNet-50", 6.6, 6.7, 0.728, 0.981, ""),
    ("HandAR", "ResNet-50", 6.7, 6.7, 0.724, 0.981, ""),
    ("I2L-MeshNet", "ResNet-50", 7.4, 7.6, 0.681, 0.973, ""),
    ("MobRecon", "ResNet-50", 5.7, 5.8, 0.784, 0.986, ""),
    ("MeshGraphormer", "HRNet-W64", 5.9, 6.0, 0.764, 0.986, "95-view test-time augmentation"),
    ("SimpleHand", "FastViT", 5.7, 6.0, 0.772, 0.986, ""),
    ("HaMeR", "ViT-H", 6.0, 5.7, 0.785, 0.990, ""),
    ("WiLoR", "—", 5.5, 5.1, 0.825, 0.993, ""),
]

STAGES = ("download", "synthesize", "preprocess", "embed_text", "pretrain", "finetune", "benchmark", "peer_mediapipe")
AXES = (("x", "M_lr", "left → right"), ("y", "M_tb", "top → bottom"), ("z", "M_nf", "near → far"))
MODULE_SWITCHES = ("use_clip", "use_projection", "use_sparse_to_dense")


# ---------------------------------------------------------------------------------------------- helpers
def deviations_from_readme(readme: Path) -> str | None:
    """The text between ``<!-- deviations:start -->`` and ``<!-- deviations:end -->`` of README.md, or None."""
    if not Path(readme).is_file():
        return None
    m = re.search(r"<!--\s*deviations:start\s*-->(.*?)<!--\s*deviations:end\s*-->", Path(readme).read_text(), re.S)
    return m.group(1).strip() if m else None


def _save(fig: Figure, path: Path) -> Path:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return path


def _rel(path: Path, out_md: Path) -> str:
    return Path(os.path.relpath(path, out_md.parent)).as_posix()


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


# ---------------------------------------------------------------------------------------------- figures
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


# ------------------------------------------------------------------------------------ model-based inputs
def model_logits(model, prep_dir: Path, text_file: Path, k: int = 16) -> np.ndarray:
    """Logit matrices M_lr, M_tb, M_nf (3, k, k) of the first k = min(k, n) samples of a prepared split
    with their cached prompts (``model(images, text)`` then ``model.logits``).

    Raises:
        DataError: missing/invalid split or text cache (:class:`cliphand.data.loader.PreparedSet`), or a
            model without the CLIP head.
    """
    import torch

    from .data.augment import normalise
    from .data.loader import PreparedSet

    if getattr(model, "clip_head", None) is None:
        raise DataError("the finetuned model has no CLIP head (model.use_clip is false)")
    ds = PreparedSet(prep_dir, text_file)
    batch = ds.batch(np.arange(min(k, len(ds))))
    with torch.no_grad():
        out = model(normalise(batch["image"]), batch["text"])
        return model.logits(out).float().numpy()


def model_lixels(model, images: np.ndarray) -> np.ndarray:
    """Lixel logits (k, 3, 21, Hm) of the joint regressor for (k, S, S, 3) uint8 images."""
    import torch

    from .data.augment import normalise, to_tensor

    with torch.no_grad():
        return model.pose_features(normalise(to_tensor(np.ascontiguousarray(images))))["lixel_logits"].float().numpy()


# ----------------------------------------------------------------------------------------------- report
class _Doc:
    """Markdown lines plus the list of missing inputs."""

    def __init__(self, root: Path):
        self.root, self.lines, self.missing, self.figures = root, [], [], []

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def miss(self, what: str) -> None:
        self.missing.append(what)
        self.lines.append(f"*Missing: {what}.*")
        self.lines.append("")

    def rel(self, path: Path) -> str:
        try:
            return Path(path).resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path)


def _load_inputs(root: Path, params: dict) -> dict:
    stage_metrics = {s: read_json(root / "data" / "metrics" / f"{s}.json") for s in STAGES}
    benches = list((params.get("evaluate", {}).get("benchmarks") or {}).keys())
    evals = {b: read_json(root / "data" / "eval" / b / "metrics.json") for b in benches}
    preds = {b: read_npz(root / "data" / "eval" / b / "predictions.npz") for b in benches}
    rows = list((params.get("ablate", {}).get("runs") or {}).keys())
    ablate = {r: read_json(root / "data" / "ablate" / r / "metrics.json") for r in rows}
    return {"stages": stage_metrics, "evals": evals, "preds": preds, "ablate": ablate}


def _intro(doc: _Doc, params: dict, inp: dict, model, ckpt: dict | None) -> None:
    from .stage import environment

    env = environment()
    st = inp["stages"]
    doc.add("# cliphand report", "",
            "Reproduction of CLIP-Hand3D (Guo et al., ACM MM 2023) generated by the `report` stage from the "
            "pipeline's outputs; every number below is read from those files except the columns and tables "
            f"labelled **{PAPER}** or *published*, which quote the papers.", "")
    mcfg = model.cfg if model is not None else params.get("model", {})  # model.cfg: settings with defaults
    meta = (ckpt or {}).get("meta", {})
    size = meta.get("input_size", params.get("preprocess", {}).get("input_size"))
    n_train = ((st.get("preprocess") or {}).get("samples") or {}).get("train")
    source = (params.get("data") or {}).get("train", "synth")
    desc = (f"- **Model**: CLIP-Hand3D with a {mcfg.get('backbone', '?')} visual encoder at {size}×{size} pixels, "
            f"{mcfg.get('heatmap_size', '?')} lixels per axis, shared embedding size {mcfg.get('embed_dim', '?')}, "
            f"CLIP loss {'on' if mcfg.get('use_clip', True) else 'off'}, feature projection "
            f"{'on' if mcfg.get('use_projection', True) else 'off'}, sparse-to-dense mesh "
            f"{'on' if mcfg.get('use_sparse_to_dense', True) else 'off'}")
    if model is not None:
        n_params = sum(p.numel() for p in model.inference_modules().parameters())
        desc += f"; {n_params / 1e6:.2f} M parameters at inference"
    else:
        desc += " (from params.yaml: no `data/models/finetune.pt`)"
    doc.add(desc + ".")
    for phase in ("pretrain", "finetune"):
        m = st.get(phase)
        if m is None:
            doc.add(f"- **{phase}**: no `data/metrics/{phase}.json`.")
            doc.missing.append(f"`data/metrics/{phase}.json` ({phase} summary)")
            continue
        doc.add(f"- **{phase}**: {m.get('epochs', '?')} epochs on {n_train if n_train is not None else '?'} "
                f"training images ({source}), {m.get('total_steps', '?')} steps, final PA-MPJPE "
                f"{fmt(m.get('final_val_pa_mpjpe_mm'))} mm on the synthetic val split and "
                f"{fmt(m.get('final_real_dev_pa_mpjpe_mm'))} mm on the real-photo development subset, "
                f"{fmt(m.get('final_samples_per_s'), 1)} samples/s, {fmt(m.get('wall_s'), 1)} s wall "
                f"({_machine(m)}).")
    evals = [b for b, m in inp["evals"].items() if m is not None]
    on = ", ".join(f"{b} ({int(inp['evals'][b].get('n_samples', 0))} images)" for b in evals) or "nothing yet"
    doc.add(f"- **Evaluated on**: {on}.",
            f"- **Device**: params `device: {params.get('device', '?')}`; this report was generated on "
            f"{env.get('device')} with {env.get('cpu_threads')} torch threads.", "")


def _machine(metrics: dict | None) -> str:
    """'<CPU model>, <capability>' of a stage's metrics (``env``, written by the stage), or 'machine not recorded'."""
    env = (metrics or {}).get("env") or {}
    if not env:
        return "machine not recorded"
    return f"{env.get('cpu_model', '?')}, {env.get('cpu_capability', '?')}, {env.get('cpu_threads', '?')} threads"


def _data_section(doc: _Doc, params: dict, inp: dict, meta: dict) -> None:
    st = inp["stages"]
    doc.add("## Data", "")
    dl = st.get("download")
    if dl is None:
        doc.miss("`data/metrics/download.json` (sources)")
    else:
        rows = []
        for name, info in dl.items():
            if not isinstance(info, dict):
                continue
            sha = info.get("sha256")
            if isinstance(sha, dict):
                sha = "; ".join(f"{f}: `{h}`" for f, h in sha.items())
            elif sha:
                sha = f"`{sha}`"
            details = ", ".join(f"{k} {v}" for k, v in info.items()
                                if k not in ("route", "source", "sha256", "integrity") and isinstance(v, (int, float, str))
                                and not isinstance(v, bool) and len(str(v)) < 40)
            rows.append([name, info.get("route", DASH), f"`{info.get('source', DASH)}`", sha or DASH, details or DASH])
        doc.add(md_table(["source", "route", "from", "sha256", "details"], rows), "")
    syn, pre = st.get("synthesize"), st.get("preprocess")
    if syn is None and pre is None:
        doc.miss("`data/metrics/synthesize.json` and `data/metrics/preprocess.json` (sample counts)")
    else:
        syn_s, pre_s = (syn or {}).get("samples", {}), (pre or {}).get("samples", {})
        protos = (pre or {}).get("protocols", {})
        source = (params.get("data") or {}).get("train", "synth")
        rows = [[n, source, syn_s.get(n, DASH) if source == "synth" else DASH, pre_s.get(n, DASH),
                 protos.get(n, DASH)] for n in ("train", "val", "test")]
        rows += [[n, n, DASH, c, protos.get(n, DASH)] for n, c in pre_s.items() if n not in ("train", "val", "test")]
        doc.add(md_table(["split", "source", "rendered", "prepared", "protocol"], rows), "")
        if syn is not None:
            doc.add(f"Rendering speed: {fmt(syn.get('images_per_s'), 1)} images/s ({fmt(syn.get('wall_s'), 1)} s).")
    sp, pp = params.get("synth", {}), params.get("preprocess", {})
    doc.add(f"Render size {sp.get('render_size', '?')}×{sp.get('render_size', '?')} px; model input "
            f"{meta.get('input_size', pp.get('input_size', '?'))}×{meta.get('input_size', pp.get('input_size', '?'))} px "
            f"(square crop = {pp.get('pad', '?')} × the hand's 2D box); lixel depth axis spans "
            f"{meta.get('depth_range', pp.get('depth_range', '?'))} m around the wrist.", "")
    et, tp = st.get("embed_text"), params.get("text", {})
    if et is None:
        doc.miss("`data/metrics/embed_text.json` (text encoder)")
    else:
        doc.add(f"Text encoder: `{et.get('encoder', '?')}` (params: encoder `{tp.get('encoder', '?')}`, features "
                f"`{tp.get('features', '?')}`, template `{tp.get('template', '?')}`); prompts with N ∈ "
                f"{et.get('n_values', '?')} joints.", "")
        rows = [[k, v.get("samples", DASH), "×".join(str(x) for x in v.get("feature_shape", [])) or DASH]
                for k, v in et.items() if isinstance(v, dict)]
        if rows:
            doc.add(md_table(["cache", "samples", "features per prompt (L×D)"], rows), "")


MAIN_COLS = [("PA-MPJPE (mm)", "pa_mpjpe_mm", 2), ("PA-MPVPE (mm)", "pa_mpvpe_mm", 2),
             ("MPJPE root-rel. (mm)", "mpjpe_mm", 2), ("MPVPE root-rel. (mm)", "mpvpe_mm", 2),
             ("median PA-MPJPE (mm)", "pa_mpjpe_median_mm", 2), ("AUC 0-50 (PA)", "auc_0_50", 3),
             ("AUC 0-30 (PA)", "auc_0_30", 3), ("F@5", "f5", 3), ("F@15", "f15", 3), ("ms/image", "ms_per_image", 2)]
EXTRA_COLS = [("median MPJPE (mm)", "mpjpe_median_mm", 2), ("AUC 0-50 root-rel.", "rr_auc_0_50", 3),
              ("AUC 0-30 root-rel.", "rr_auc_0_30", 3), ("BiHand MPJPE (mm)", "bihand_mpjpe_mm", 2),
              ("BiHand AUC 20-50", "bihand_auc_20_50", 3), ("PA mesh AUC 0-50", "pa_mesh_auc_0_50", 3)]


def _main_section(doc: _Doc, inp: dict) -> None:
    doc.add("## Main results", "")
    doc.add("The finetuned model (`data/models/finetune.pt`) per benchmark; FreiHAND protocol (Procrustes per "
            "sample, PCK/AUC over 100 thresholds, F-scores on aligned vertices); MPJPE/MPVPE are root-relative "
            "(wrist) without alignment. The real photos carry no ground-truth mesh, so their mesh metrics are "
            f"'{DASH}'. ms/image: batched forward pass on the evaluation device.", "")
    rows, extra = [], []
    for bench, m in inp["evals"].items():
        if m is None:
            doc.miss(f"`data/eval/{bench}/metrics.json` (evaluate@{bench} not run)")
            continue
        rows.append([bench, m.get("protocol", "freihand"), int(m.get("n_samples", m.get("n", 0)))]
                    + [fmt(m.get(k), d) for _, k, d in MAIN_COLS])
        extra.append([bench] + [fmt(m.get(k), d) for _, k, d in EXTRA_COLS])
    if rows:
        doc.add(md_table(["benchmark", "protocol", "n"] + [c for c, _, _ in MAIN_COLS], rows), "")
        doc.add("Protocols (each benchmark's headline metrics): **freihand** — FreiHAND `eval.py` (PA-MPJPE, "
                "PA-MPVPE, AUC 0-50, F@5, F@15); **bihand** — RHD/STB as in the paper's Table 2 (root-relative "
                "prediction scaled to the GT wrist→middle-MCP bone plus the GT root, no rotation: BiHand MPJPE and "
                "AUC 20-50 below); **realworld** — Ge et al. CVPR 2019 (GT root added, no scale or alignment: the "
                "root-relative MPJPE column).", "")
        doc.add("Other conventions (same predictions):", "")
        doc.add(md_table(["benchmark"] + [c for c, _, _ in EXTRA_COLS], extra), "")
    realworld_vs_peer(doc, doc.root, inp["evals"], inp["preds"])
    doc.add("### Published figures (not comparable: other data)", "",
            "FreiHAND test set, quoted from the papers (NOTES §6); our models are trained on synthetic renders "
            "and tested on other images, so these are context only.", "")
    doc.add(md_table(["method (published, FreiHAND)", "backbone", "PA-MPJPE (mm)", "PA-MPVPE (mm)", "F@5", "F@15",
                      "note"],
                     [[n, b, fmt(a, 1), fmt(v, 1), fmt(f5, 3), fmt(f15, 3), note or DASH]
                      for n, b, a, v, f5, f15, note in PEERS_FREIHAND]), "")


def _retrieval_section(doc: _Doc, inp: dict, fig_dir: Path, out_md: Path) -> None:
    doc.add("## Text–pose retrieval", "")
    found = [(b, m["retrieval"]) for b, m in inp["evals"].items() if m and isinstance(m.get("retrieval"), dict)]
    if not found:
        doc.miss("a `retrieval` block in any `data/eval/<bench>/metrics.json` (needs evaluate on a split with text)")
        return
    for bench, r in found:
        bs = retrieval_batch_sizes(r)
        doc.add(f"Per-axis top-1 in-batch retrieval on **{bench}**: the split is cut into chunks of B items; "
                "an answer counts as right when its prompt equals the true prompt (poses with the same joint "
                "order share a prompt); 'strict' needs the exact item. dup. = share of items whose prompt occurs "
                "more than once in its chunk.", "")
        rows = []
        for axis, name, desc in AXES:
            for b in bs:
                rows.append([f"{axis} ({name})", b, fmt(r.get(f"p2t_top1_{axis}_b{b}"), 3),
                             fmt(r.get(f"t2p_top1_{axis}_b{b}"), 3), fmt(r.get(f"p2t_top1_strict_{axis}_b{b}"), 3),
                             fmt(r.get(f"t2p_top1_strict_{axis}_b{b}"), 3), fmt(r.get(f"chance_b{b}"), 3),
                             fmt(r.get(f"dup_frac_{axis}_b{b}"), 3), int(r.get(f"n_chunks_b{b}", 0))])
        doc.add(md_table(["axis", "B", "pose→text", "text→pose", "pose→text strict", "text→pose strict", "chance",
                          "dup.", "chunks"], rows), "")
        if bs:
            path = fig_retrieval(r, fig_dir / f"retrieval_{bench}.png")
            doc.figures.append(path)
            doc.add(f"![retrieval accuracy vs batch size, {bench}]({_rel(path, out_md)})", "")


def _row_kind(overrides: dict) -> str:
    keys = set(overrides)
    if not keys:
        return "full"
    if keys <= {"batch_size"}:
        return "batch"
    if keys <= {"n_joints"}:
        return "joints"
    if keys <= set(MODULE_SWITCHES):
        return "modules"
    return "other"


def module_label(settings: dict) -> str:
    """Paper Table 5 row name of a module configuration (ablation switches, default on)."""
    on = {k: bool(settings.get(k, True)) for k in MODULE_SWITCHES}
    if all(on.values()):
        return "full model"
    if not any(on.values()):
        return "baseline"
    off = [k for k, v in on.items() if not v]
    names = {"use_clip": "CLIP loss", "use_projection": "feature projection", "use_sparse_to_dense": "sparse-to-dense"}
    return "w/o " + " & ".join(names[k] for k in off)


ABL_COLS = [("AUC 0-30 (PA)", "auc_0_30", 3), ("MPJPE (mm)", "mpjpe_mm", 2), ("median (mm)", "mpjpe_median_mm", 2),
            ("PA-MPJPE (mm)", "pa_mpjpe_mm", 2)]


NOISE_SIGMAS = 2.0  # a row differs from the full model "within seed noise" below this many of its stds


def _ours_cells(m: dict | None, status: str, splits: Sequence[str], ref: dict | None = None) -> list[str]:
    """Ablation cells: the mean over seeds (``± std`` with more than one seed); with ``ref`` (the full
    model's metrics over several seeds) a trailing ``≈`` marks a difference within NOISE_SIGMAS stds of it."""
    cells = []
    multi = m is not None and len(m.get("seeds") or []) > 1
    ref_std = (ref or {}).get("std") or {}
    for split in splits:
        res = (m or {}).get(split)
        for _, k, d in ABL_COLS:
            if not isinstance(res, dict):
                cells.append(status)
                continue
            cell = fmt(res.get(k), d)
            std = ((m.get("std") or {}).get(split) or {}).get(k)
            if multi and std is not None:
                cell += f" ± {fmt(std, d)}"
            rs, rm = (ref_std.get(split) or {}).get(k), ((ref or {}).get(split) or {}).get(k)
            if ref is not None and ref is not m and rs and rm is not None and res.get(k) is not None \
                    and abs(res[k] - rm) <= NOISE_SIGMAS * rs:
                cell += " ≈"
            cells.append(cell)
    return cells


def _ablation_section(doc: _Doc, params: dict, inp: dict) -> None:
    doc.add("## Ablations", "")
    ab = params.get("ablate", {})
    runs = ab.get("runs") or {}
    if not runs:
        doc.miss("`ablate.runs` in params.yaml (no ablation rows configured)")
        return
    settings = {}
    for row, over in runs.items():
        base = {"epochs": ab.get("epochs"), "batch_size": ab.get("batch_size"), "n_joints": ab.get("n_joints"),
                "n_train": ab.get("n_train"), **(over or {})}
        m = inp["ablate"].get(row)
        settings[row] = {**base, **((m or {}).get("settings") or {})}
    present = [r for r in runs if inp["ablate"].get(r) is not None]
    absent = [r for r in runs if inp["ablate"].get(r) is None]
    ft = inp["stages"].get("finetune") or {}
    ft_epochs = ft.get("epochs", params.get("finetune", {}).get("epochs"))
    n_train = ((inp["stages"].get("preprocess") or {}).get("samples") or {}).get("train")
    ep = sorted({settings[r].get("epochs") for r in runs} - {None})
    nt = sorted({settings[r].get("n_train") for r in runs} - {None})
    frozen = sorted({bool(settings[r].get("freeze_backbone")) for r in runs})
    ft_n = ft.get("n_train", params.get("finetune", {}).get("n_train")) or n_train
    how = ("with the visual encoder frozen (only the joint regressor, the CLIP head and the mesh regressor learn)"
           if frozen == [True] else "end to end" if frozen == [False] else "with or without a frozen visual encoder")
    doc.add(f"**The ablation schedule is shorter than the main run**: each row is finetuned from the shared "
            f"pretrained checkpoint {how} for {', '.join(map(str, ep)) or '?'} epoch(s) on the first "
            f"{', '.join(map(str, nt)) or '?'} training images, while the main run finetunes for {ft_epochs} "
            f"epoch(s) on {ft_n if ft_n is not None else '?'} images; compare rows with each other, not with "
            "the main results. Ours: the splits of `ablate.eval_on` (the validation split aside); paper "
            "columns: FreiHAND validation (MPJPE/median: our root-relative errors vs. the paper's PJPE), where "
            "every row is a full 200-epoch training.", "")
    for r in absent:
        doc.miss(f"ablation row `{r}` (`data/ablate/{r}/metrics.json`; stage ablate@{r} not run)")
    splits = [x for x in (ab.get("eval_on") or []) if x != "val"] or list(ab.get("eval_on") or [])
    head = [f"ours {x}: {c}" for x in splits for c, _, _ in ABL_COLS]
    kinds = {r: _row_kind({k: v for k, v in (runs[r] or {}).items() if k != "seeds"}) for r in runs}
    full_row = next((r for r in runs if kinds[r] == "full" and inp["ablate"].get(r)), None)
    ref = inp["ablate"].get(full_row) if full_row else None
    ref = ref if ref is not None and len(ref.get("seeds") or []) > 1 else None
    _seed_noise(doc, full_row, ref, splits)

    def cells(r, st):
        return _ours_cells(inp["ablate"].get(r) if r else None, st, splits, ref)

    def status(r):
        return "missing" if inp["ablate"].get(r) is None else DASH

    # Table 3: batch size
    rows_by = {}
    for r in runs:
        if kinds[r] in ("full", "batch"):
            rows_by.setdefault(int(settings[r]["batch_size"]), r)
    doc.add("### Batch size B (paper Table 3)", "")
    rows = []
    for b in sorted(set(rows_by) | set(PAPER_TABLE3)):
        r = rows_by.get(b)
        rows.append([b, f"`{r}`" if r else "not run"] + cells(r, status(r) if r else "not run")
                    + [fmt(PAPER_TABLE3.get(b))])
    doc.add(md_table(["B", "row"] + head + [f"{PAPER}: PA-PJPE (mm)"], rows), "")
    # Table 4: N joints per prompt
    rows_by = {}
    for r in runs:
        if kinds[r] in ("full", "joints"):
            rows_by.setdefault(int(settings[r]["n_joints"]), r)
    doc.add("### Joints per prompt N (paper Table 4)", "")
    rows = []
    for n in sorted(set(rows_by) | set(PAPER_TABLE4)):
        r = rows_by.get(n)
        rows.append([n, f"`{r}`" if r else "not run"] + cells(r, status(r) if r else "not run")
                    + [fmt(PAPER_TABLE4.get(n))])
    doc.add(md_table(["N", "row"] + head + [f"{PAPER}: PA-PJPE (mm)"], rows), "")
    # Table 5: modules
    doc.add("### Modules (paper Table 5)", "")
    order = ["baseline", "w/o CLIP loss", "w/o feature projection", "w/o sparse-to-dense", "full model"]
    by_label = {}
    for r in runs:
        if kinds[r] in ("full", "modules"):
            by_label.setdefault(module_label(settings[r]), r)
    labels = [lab for lab in order if lab in by_label or lab in PAPER_TABLE5]
    labels += [lab for lab in by_label if lab not in labels]
    rows = []
    for lab in labels:
        r = by_label.get(lab)
        paper = PAPER_TABLE5.get(lab)
        pcells = [fmt(paper[0], 3), fmt(paper[1]), fmt(paper[2]), fmt(paper[3])] if paper else [DASH] * 4
        rows.append([lab, f"`{r}`" if r else "not run"] + cells(r, status(r) if r else "not run") + pcells)
    doc.add(md_table(["model", "row"] + head + [f"{PAPER}: AUC 0-30", f"{PAPER}: PJPE (mm)", f"{PAPER}: median (mm)",
                                                f"{PAPER}: PA-PJPE (mm)"], rows), "")
    doc.add(f"'{DASH}' in the paper columns: not in our notes. 'missing': the row is configured but its "
            "metrics file does not exist; 'not run': the row is not in `ablate.runs`. Cells are means over the "
            "row's seeds (± sample std with more than one seed); "
            + (f"**≈** marks a row whose difference to the full model is within {NOISE_SIGMAS:g} standard "
               f"deviations of the full model's seed noise ({len(ref['seeds'])} seeds): not a measured effect."
               if ref else "no seed noise is measured (the full model ran with one seed), so no difference is "
                           "marked as within noise."), "")
    clip_claim_section(doc, params, inp["ablate"])
    other = [r for r in runs if kinds[r] == "other"]
    if other:
        doc.add("### Other rows", "")
        doc.add(md_table(["row"] + head, [[f"`{r}`"] + cells(r, status(r)) for r in other]), "")
    if present:
        doc.add("Settings of the rows that ran:", "")
        rows = []
        for r in present:
            s = settings[r]
            rows.append([f"`{r}`", s.get("epochs", DASH), s.get("batch_size", DASH), s.get("n_joints", DASH),
                         s.get("n_train", DASH), "yes" if s.get("freeze_backbone") else "no", module_label(s),
                         ", ".join(map(str, inp["ablate"][r].get("seeds") or [])) or DASH,
                         fmt(inp["ablate"][r].get("train_seconds"), 1)])
        doc.add(md_table(["row", "epochs", "B", "N", "n_train", "frozen encoder", "modules", "seeds",
                          "train s (all seeds)"], rows), "")


def _seed_noise(doc: _Doc, row: str | None, ref: dict | None, splits: Sequence[str]) -> None:
    """The full model's per-seed scores, their mean ± std: the yardstick for every ablation difference."""
    doc.add("### Seed noise of the full model", "")
    if ref is None:
        doc.add("Not measured: the full-model row ran with one seed (set `ablate.runs.full.seeds` to several).", "")
        return
    per = ref.get("per_seed") or {}
    rows = [[f"seed {sd}"] + [fmt((res.get(x) or {}).get(k), d) for x in splits for _, k, d in ABL_COLS]
            for sd, res in per.items()]
    rows.append(["mean ± std"] + _ours_cells(ref, DASH, splits))
    doc.add(f"Row `{row}` trained with {len(per)} seeds (same data, schedule and pretrained start; the seed "
            "sets the new layers' initialisation, augmentation and batch order):", "")
    doc.add(md_table(["seed"] + [f"{x}: {c}" for x in splits for c, _, _ in ABL_COLS], rows), "")


def _figures_section(doc: _Doc, root: Path, params: dict, inp: dict, fig_dir: Path, out_md: Path,
                     model, ckpt: dict | None) -> None:
    doc.add("## Figures", "")

    def show(path: Path, caption: str) -> None:
        doc.figures.append(path)
        doc.add(f"**{caption}**", "", f"![{caption}]({_rel(path, out_md)})", "")

    # PCK curves (paper Fig. 7)
    curves = {b: p for b, p in inp["preds"].items() if p is not None and "curve_pa_pck_0_50" in p}
    for b, p in inp["preds"].items():
        if p is None:
            doc.miss(f"PCK curves of {b} (`data/eval/{b}/predictions.npz` not found)")
        elif b not in curves:
            doc.miss(f"PCK curves of {b} (`data/eval/{b}/predictions.npz` holds no curve_* arrays)")
    if curves:
        show(fig_pck(curves, {b: m for b, m in inp["evals"].items() if m}, fig_dir / "pck_curves.png"),
             "3D PCK curves, 0-50 mm (paper Fig. 7)")
    meta = (ckpt or {}).get("meta", {})
    # logit matrices (paper Fig. 4/10)
    bench_text = {b: v for b, v in (params.get("evaluate", {}).get("benchmarks") or {}).items()
                  if isinstance(v, dict) and v.get("text")}
    if model is None:
        doc.miss("`data/models/finetune.pt` (logit matrices, joint heatmaps)")
    else:
        spec = bench_text.get("test") or next(iter(bench_text.values()), None)
        if spec is None:
            doc.miss("a benchmark with text in `evaluate.benchmarks` (logit matrices)")
        else:
            n_joints = int(meta.get("n_joints", params.get("text", {}).get("n_joints", 21)))
            prep = resolve_path(f"data/prep/{spec['data']}", root)
            text = resolve_path(f"data/text/{spec['text']}_n{n_joints}.npz", root)
            try:
                logits = model_logits(model, prep, text, 16)
            except DataError as exc:
                doc.miss(f"logit matrices: {exc}")
            else:
                show(fig_logits(logits, fig_dir / "logit_matrices.png"),
                     f"Logit matrices M_lr, M_tb, M_nf of the first {logits.shape[1]} {spec['data']} images and "
                     "their prompts, softmax over prompts per image (paper Fig. 4/10)")
    # joint heatmaps (paper Fig. 9) on real photos
    real_dir = resolve_path("data/prep/realworld", root)
    real = None
    if (real_dir / "images.npy").is_file():
        from .data.preprocess import load_prepared
        real = load_prepared(real_dir, mmap=True)
    else:
        doc.miss("`data/prep/realworld` (joint heatmaps, prediction overlays)")
    if model is not None and real is not None:
        n = len(real["images"])
        idx = np.unique(np.linspace(0, n - 1, min(3, n)).round().astype(int))
        lix = model_lixels(model, real["images"][idx])
        dr = float(meta.get("depth_range", params.get("preprocess", {}).get("depth_range", 0.3)))
        show(fig_heatmaps(np.asarray(real["images"][idx]), lix, dr, fig_dir / "joint_heatmaps.png",
                          titles=[f"photo {i}" for i in idx]),
             f"1D lixel heatmaps along x, y, z and their outer product p_y ⊗ p_x on real photos {idx.tolist()} "
             "(wrist, thumb tip, index tip, little tip; paper Fig. 9)")
    # training curves
    hist = {}
    for phase in ("pretrain", "finetune"):
        path = resolve_path(f"data/models/{phase}.pt", root)
        if phase == "finetune" and ckpt is not None:
            hist[phase] = ckpt.get("meta", {}).get("history", [])
        elif path.is_file():
            try:
                hist[phase] = load_weights(path).get("meta", {}).get("history", [])
            except Exception as exc:  # noqa: BLE001 - a corrupt checkpoint is reported, not fatal here
                doc.miss(f"`{doc.rel(path)}` is not readable ({type(exc).__name__})")
        else:
            doc.miss(f"`{doc.rel(path)}` (training curves of {phase})")
    if any(hist.values()):
        show(fig_training(hist, fig_dir / "training_curves.png"), "Training curves (per-epoch means, checkpoint history)")
    # predictions over the real photos
    pred = inp["preds"].get("realworld")
    k = int(params.get("report", {}).get("overlays", 8))
    if pred is None:
        doc.miss("`data/eval/realworld/predictions.npz` (prediction overlays)")
    elif real is not None and k > 0:
        from .geometry import project
        from .metrics import procrustes_align_batch

        index = np.asarray(pred.get("index", np.arange(len(pred["joints"]))), np.int64)
        sel = np.unique(np.linspace(0, len(index) - 1, min(k, len(index))).round().astype(int))
        rows_ = index[sel]
        K = real["K"][rows_].astype(np.float64)
        pj = pred["joints"][sel].astype(np.float64)
        gj = real["joints"][rows_].astype(np.float64)
        verts_uv = project(pred["verts"][sel].astype(np.float64), K) if "verts" in pred else None
        faces = (ckpt or {}).get("template", {}).get("faces")
        pa = np.linalg.norm(procrustes_align_batch(pj, gj) - gj, axis=-1).mean(1) * 1000
        titles = [f"photo {int(i)}: PA-MPJPE {fmt(e, 1)} mm" for i, e in zip(rows_, pa)]
        show(fig_overlays(np.asarray(real["images"][rows_]), project(pj, K), verts_uv, faces, project(gj, K), titles,
                          fig_dir / "realworld_overlays.png"),
             f"Predictions on {len(sel)} real photos (evenly spaced over the set)")
        if faces is None:
            doc.add("*(no template faces: mesh not drawn)*", "")


def total_wall_s(inp: dict) -> float | None:
    """Sum of the stage wall times (s) over every stage metrics file, or None when any is missing."""
    ms = list(inp["stages"].values()) + list(inp["evals"].values()) + list(inp["ablate"].values())
    if not ms or any(m is None or not isinstance(m.get("wall_s"), (int, float)) for m in ms):
        return None
    return float(sum(m["wall_s"] for m in ms))


def _walltime_section(doc: _Doc, inp: dict) -> None:
    doc.add("## Stage wall time", "")
    rows, total = [], 0.0
    entries = [(s, f"data/metrics/{s}.json", m) for s, m in inp["stages"].items()]
    entries += [(f"evaluate@{b}", f"data/eval/{b}/metrics.json", m) for b, m in inp["evals"].items()]
    entries += [(f"ablate@{r}", f"data/ablate/{r}/metrics.json", m) for r, m in inp["ablate"].items()]
    absent = []
    for name, path, m in entries:
        if m is None or not isinstance(m.get("wall_s"), (int, float)):
            absent.append(name)
            rows.append([name, "missing", DASH, f"`{path}`"])
            continue
        total += float(m["wall_s"])
        rows.append([name, fmt(m["wall_s"], 1), _machine(m), f"`{path}`"])
    rows.append(["**total**", f"**{fmt(total, 1)}** ({fmt(total / 60, 1)} min)", DASH, "sum of the rows above"])
    doc.add(md_table(["stage", "wall s", "machine (CPU, torch capability)", "from"], rows), "")
    if absent:
        doc.add(f"Not in the total (no metrics file): {', '.join(absent)}.", "")


def _environment_section(doc: _Doc, root: Path, params: dict) -> None:
    from .stage import environment
    from .tracking import git_revision

    doc.add("## Environment", "")
    rows = [[k, f"`{v}`"] for k, v in environment().items()]
    rows += [["git revision", f"`{git_revision(root)}`"], ["params fingerprint", f"`{fingerprint(params)}`"]]
    doc.add(md_table(["item", "value"], rows), "")


def build_report(root: Path, params: dict, out_md: Path, fig_dir: Path) -> dict:
    """Write the report (markdown, atomically) and its PNG figures from the pipeline's outputs.

    Args:
        root: repository root (inputs are read under ``data/``, the deviations from ``README.md``).
        params: params.yaml content (benchmarks, ablation rows, ``report.overlays``...).
        out_md: the markdown file (``reports/report.md``). fig_dir: folder of the figures.
    Returns:
        ``{'figures': [paths], 'missing': [what is missing], 'n_figures', 'n_missing', 'n_ablation_rows'}``.
    Raises:
        DataError: an input exists but is unreadable (corrupt JSON/npz/prepared split). Missing inputs are
            not errors: the report says what is missing.
    """
    root, out_md, fig_dir = Path(root), Path(out_md), Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    for old in fig_dir.glob("*.png"):  # figures of inputs that have since disappeared must not linger
        old.unlink()
    doc = _Doc(root)
    inp = _load_inputs(root, params)
    model = ckpt = None
    ft = resolve_path("data/models/finetune.pt", root)
    if ft.is_file():
        model, ckpt = load_checkpoint(ft)
    _intro(doc, params, inp, model, ckpt)
    after_intro = len(doc.lines)
    _data_section(doc, params, inp, (ckpt or {}).get("meta", {}))

    def show(path: Path, caption: str) -> None:
        doc.figures.append(path)
        doc.add(f"**{caption}**", "", f"![{caption}]({_rel(path, out_md)})", "")

    targets_section(doc, root, inp, total_wall_s(inp))
    data_look_section(doc, root, params, fig_dir, show)
    _main_section(doc, inp)
    _retrieval_section(doc, inp, fig_dir, out_md)
    _ablation_section(doc, params, inp)
    experiment_log_section(doc, root)
    speed_section(doc, root)
    _figures_section(doc, root, params, inp, fig_dir, out_md, model, ckpt)
    _walltime_section(doc, inp)
    _environment_section(doc, root, params)
    doc.add("## Deviations from the paper", "")
    dev = deviations_from_readme(root / "README.md")
    if dev is None:
        doc.miss("the deviations list of README.md (between `<!-- deviations:start -->` and `<!-- deviations:end -->`)")
    else:
        doc.add("Copied from README.md (its single source):", "", dev, "")
    if doc.missing:  # one list up front; each section also says what it lacks
        doc.lines[after_intro:after_intro] = [f"**Missing inputs ({len(doc.missing)})**, the report is partial:", "",
                                              *[f"- {m}" for m in doc.missing], ""]
    save_text(out_md, "\n".join(doc.lines).rstrip() + "\n")
    return {"figures": [str(p) for p in doc.figures], "missing": list(doc.missing), "n_figures": len(doc.figures),
            "n_missing": len(doc.missing), "n_ablation_rows": sum(m is not None for m in inp["ablate"].values())}
