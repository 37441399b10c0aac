"""The report's '## Figures' section: gathers each figure's inputs (evaluation curves, the finetuned model
run on a prepared split and on the real photos, the checkpoints' histories, predictions on the real photos),
draws it with :mod:`cliphand.report.figures` and links it, or says which input is missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cliphand.errors import DataError
from cliphand.evaluate.inference import model_lixels, model_logits
from cliphand.model.checkpoint import load_weights
from cliphand.config import Params
from cliphand.paths import Paths
from cliphand.report.document import Document
from cliphand.report.figures import fig_heatmaps, fig_logits, fig_overlays, fig_pck, fig_training
from cliphand.report.markdown import fmt


def figures_section(doc: Document, p: Params, paths: Paths, inp: dict, fig_dir: Path, model,
                    ckpt: dict | None) -> None:
    """Draw the figures into ``fig_dir`` and add them to ``doc``; ``model``/``ckpt``: the finetuned model and
    its checkpoint (None when ``data/models/finetune.pt`` is absent)."""
    doc.add("## Figures", "")
    # PCK curves (paper Fig. 7)
    curves = {b: pr for b, pr in inp["preds"].items() if pr is not None and "curve_pa_pck_0_50" in pr}
    for b, pr in inp["preds"].items():
        if pr is None:
            doc.miss(f"PCK curves of {b} (`data/eval/{b}/predictions.npz` not found)")
        elif b not in curves:
            doc.miss(f"PCK curves of {b} (`data/eval/{b}/predictions.npz` holds no curve_* arrays)")
    if curves:
        doc.show(fig_pck(curves, {b: m for b, m in inp["evals"].items() if m}, fig_dir / "pck_curves.png"),
                 "3D PCK curves, 0-50 mm (paper Fig. 7)")
    meta = (ckpt or {}).get("meta", {})
    # logit matrices (paper Fig. 4/10)
    bench_text = {b: v for b, v in p.evaluate.benchmarks.items() if v.text}
    if model is None:
        doc.miss("`data/models/finetune.pt` (logit matrices, joint heatmaps)")
    else:
        spec = bench_text.get("test") or next(iter(bench_text.values()), None)
        if spec is None:
            doc.miss("a benchmark with text in `evaluate.benchmarks` (logit matrices)")
        else:
            n_joints = int(meta.get("n_joints", p.text.n_joints))
            prep, text = paths.prep_split(spec.data), paths.text_cache(spec.text, n_joints)
            try:
                logits = model_logits(model, prep, text, 16)
            except DataError as exc:
                doc.miss(f"logit matrices: {exc}")
            else:
                doc.show(fig_logits(logits, fig_dir / "logit_matrices.png"),
                         f"Logit matrices M_lr, M_tb, M_nf of the first {logits.shape[1]} {spec.data} images and "
                         "their prompts, softmax over prompts per image (paper Fig. 4/10)")
    # joint heatmaps (paper Fig. 9) on real photos
    real_dir = paths.prep_split("realworld")
    real = None
    if (real_dir / "images.npy").is_file():
        from cliphand.data.preprocess import load_prepared
        real = load_prepared(real_dir, mmap=True)
    else:
        doc.miss("`data/prep/realworld` (joint heatmaps, prediction overlays)")
    if model is not None and real is not None:
        n = len(real["images"])
        idx = np.unique(np.linspace(0, n - 1, min(3, n)).round().astype(int))
        lix = model_lixels(model, real["images"][idx])
        dr = float(meta.get("depth_range", p.preprocess.depth_range))
        doc.show(fig_heatmaps(np.asarray(real["images"][idx]), lix, dr, fig_dir / "joint_heatmaps.png",
                              titles=[f"photo {i}" for i in idx]),
                 f"1D lixel heatmaps along x, y, z and their outer product p_y ⊗ p_x on real photos {idx.tolist()} "
                 "(wrist, thumb tip, index tip, little tip; paper Fig. 9)")
    # training curves
    hist = {}
    for phase, path in (("pretrain", paths.pretrain_model), ("finetune", paths.finetune_model)):
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
        doc.show(fig_training(hist, fig_dir / "training_curves.png"),
                 "Training curves (per-epoch means, checkpoint history)")
    # predictions over the real photos
    pred = inp["preds"].get("realworld")
    k = p.report.overlays
    if pred is None:
        doc.miss("`data/eval/realworld/predictions.npz` (prediction overlays)")
    elif real is not None and k > 0:
        from cliphand.hand.geometry import project
        from cliphand.evaluate.metrics import procrustes_align_batch

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
        doc.show(fig_overlays(np.asarray(real["images"][rows_]), project(pj, K), verts_uv, faces, project(gj, K),
                              titles, fig_dir / "realworld_overlays.png"),
                 f"Predictions on {len(sel)} real photos (evenly spaced over the set)")
        if faces is None:
            doc.add("*(no template faces: mesh not drawn)*", "")
