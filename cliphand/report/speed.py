"""Report sections on speed and on the peer: ours vs MediaPipe Hands on the real photos (accuracy and
ms per image on this machine), Table 6 (per-module latency, throughput, parameters, FLOPs) of our models in
PyTorch and ONNX Runtime, and the speed of the pipeline itself.

Inputs (all written by the pipeline): ``data/metrics/benchmark.json`` (benchmark stage),
``data/metrics/peer_mediapipe.json`` and ``data/peers/mediapipe/predictions.npz`` (peer_mediapipe stage),
``data/eval/realworld/{metrics.json, predictions.npz}``, ``data/prep/realworld/labels.npz``,
``data/metrics/synthesize.json``. The published Table 6 split is labelled as such.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cliphand.evaluate import metrics as M
from cliphand.io import read_json, read_npz
from cliphand.paths import Paths
from cliphand.report.markdown import DASH, fmt, md_table

PAPER_TABLE6_MS = {"pose_features": 6.59, "mesh_regressor": 6.31}  # NOTES §5: RTX 2080 Ti, no synchronize
MODULE_LABELS = {"pose_features": "pose feature generation (backbone + joint regressor)",
                 "mesh_regressor": "mesh regressor", "whole": "whole model (inference path)"}


def _spread(stats: dict | None) -> str:
    if not stats:
        return DASH
    return f"{fmt(stats.get('median_ms'), 2)} [{fmt(stats.get('p10_ms'), 1)}–{fmt(stats.get('p90_ms'), 1)}]"


def _ours_on_subset(paths: Paths, preds: dict | None, peer_preds: dict | None) -> dict | None:
    """Our real-world metrics restricted to the images MediaPipe found a hand in (matched by label id)."""
    labels = read_npz(paths.prep_split("realworld") / "labels.npz")
    if preds is None or peer_preds is None or labels is None or "ids" not in labels:
        return None
    found = set(np.asarray(peer_preds["ids"])[np.asarray(peer_preds["detected"], bool)].tolist())
    ids = np.asarray(labels["ids"])[np.asarray(preds["index"])]
    keep = np.array([i in found for i in ids.tolist()])
    if not keep.any():
        return None
    gt = np.asarray(labels["joints"], np.float64)[np.asarray(preds["index"])]
    scores = M.evaluate(np.asarray(preds["joints"], np.float64)[keep], gt[keep])
    return {k: v for k, v in scores.items() if k != "curves"}


REAL_COLS = [("PA-MPJPE (mm)", "pa_mpjpe_mm", 2), ("MPJPE root-rel. (mm), Ge et al.", "mpjpe_mm", 2),
             ("AUC 0-50 (PA)", "auc_0_50", 3)]


def realworld_vs_peer(doc, paths: Paths, evals: dict, preds: dict) -> None:
    """The main comparison on Ge et al.'s real photos: our model (PyTorch and ONNX Runtime; one forward pass, and
    with test-time rotation when the evaluate stage used it) and MediaPipe Hands, each with accuracy and ms per
    image (batch 1) on this machine."""
    bench = read_json(paths.metrics("benchmark"))
    peer = read_json(paths.metrics("peer_mediapipe"))
    ours = evals.get("realworld")
    doc.add("### Main table on the real photos: ours vs MediaPipe Hands (accuracy and ms/image on this machine)", "")
    if ours is None:
        doc.miss("`data/eval/realworld/metrics.json` (evaluate@realworld not run)")
        return
    default = (bench or {}).get("models", {}).get("default", {})
    torch_ms = default.get("torch", {}).get("latency", {}).get("whole")
    onnx = default.get("onnx", {})
    device = default.get("torch", {}).get("device", DASH)
    one = ours.get("one_pass")             # present when the evaluate stage ran test-time rotation
    passes = int(ours.get("forward_passes", 1))
    tta = default.get("test_time") or {}
    rows = [["ours, PyTorch, one pass (the paper)", "dataset crop (no detector)", int(ours.get("n_samples", 0))]
            + [fmt((one or ours).get(k), d) for _, k, d in REAL_COLS] + [_spread(torch_ms)]]
    if onnx.get("realworld"):
        rows.append(["ours, ONNX Runtime, one pass (same weights)", "dataset crop (no detector)",
                     int(onnx["realworld"].get("n", 0))] + [fmt(onnx["realworld"].get(k), d) for _, k, d in REAL_COLS]
                    + [_spread(onnx.get("latency", {}).get("whole"))])
    if one is not None:
        label = f"test-time rotation, {passes} passes"
        rows.append([f"**ours, PyTorch, {label}** (the evaluate stage)", "dataset crop (no detector)",
                     int(ours.get("n_samples", 0))] + [fmt(ours.get(k), d) for _, k, d in REAL_COLS]
                    + [_spread((tta.get("torch") or {}).get("latency", {}).get("whole"))])
        if (tta.get("onnx") or {}).get("realworld"):
            rows.append([f"ours, ONNX Runtime, {label}", "dataset crop (no detector)",
                         int(tta["onnx"]["realworld"].get("n", 0))]
                        + [fmt(tta["onnx"]["realworld"].get(k), d) for _, k, d in REAL_COLS]
                        + [_spread(tta["onnx"].get("latency", {}).get("whole"))])
    if bench is None:
        doc.miss("`data/metrics/benchmark.json` (benchmark stage not run): no ms/image for our rows")
    subset = None
    if peer and peer.get("status") == "run":
        rows.append([f"MediaPipe Hands ({peer.get('version', '?')})", "full photo (palm detector + landmarks)",
                     f"{peer.get('n_detected')}/{peer.get('n_images')} detected"]
                    + [fmt(peer.get(k), d) for _, k, d in REAL_COLS] + [_spread(peer.get("ms"))])
        subset = _ours_on_subset(paths, preds.get("realworld"), read_npz(paths.peer_mediapipe / "predictions.npz"))
    doc.add(md_table(["method", "input", "n scored"] + [c for c, _, _ in REAL_COLS]
                     + ["ms/image, batch 1: median [p10–p90]"], rows), "")
    if peer is None:
        doc.miss("`data/metrics/peer_mediapipe.json` (peer_mediapipe stage not run)")
    elif peer.get("status") != "run":
        doc.add(f"**MediaPipe Hands row: not run** — {peer.get('reason', 'MediaPipe is not installed')}. "
                "Install the extra and re-run `dvc repro -f -s peer_mediapipe report`.", "")
    notes = [f"Device: {device}. Accuracy is over the images each method scored (realworld protocol: PA-MPJPE and "
             "AUC after per-sample Procrustes; root-relative MPJPE = Ge et al.'s protocol, GT root added, no "
             "alignment). Our model sees the dataset's hand crop (given box, mirrored to a right hand) and its time "
             "is the model alone; MediaPipe runs on the whole 256×256 photo and its time includes palm detection "
             f"(static image mode, model_complexity 1, min_detection_confidence 0.3, NOTES §3)."]
    if one is not None:
        notes.append(f"Test-time rotation (ours, not the paper's; README deviations): after the first pass the crop "
                     f"is turned so that the predicted wrist→middle-MCP bone points up, run again at the offsets "
                     f"{ours.get('test_rotations_deg')}° from upright, and the turned-back predictions are averaged "
                     f"with the first ({passes} forward passes per image).")
    if subset is not None:
        notes.append(f"Ours{' (test-time rotation)' if one is not None else ''} on the same {int(subset['n'])} "
                     f"images MediaPipe detected: PA-MPJPE "
                     f"{fmt(subset.get('pa_mpjpe_mm'))} mm, root-relative MPJPE {fmt(subset.get('mpjpe_mm'))} mm, "
                     f"AUC {fmt(subset.get('auc_0_50'), 3)}.")
    doc.add(" ".join(notes), "")


def speed_section(doc, paths: Paths) -> None:
    """Table 6 on this machine for each benchmarked model, ONNX parity and latency, and pipeline speed."""
    bench = read_json(paths.metrics("benchmark"))
    doc.add("## Speed (Table 6 on this machine)", "")
    if bench is None:
        doc.miss("`data/metrics/benchmark.json` (benchmark stage not run)")
        return
    doc.add("Batch-1 latency after warm-up (median [10th–90th percentile] ms, each call timed alone; "
            "`torch.cuda.synchronize()` before each clock read on a GPU), throughput at batch 32, parameters and "
            "FLOPs (a multiply-add = 2). Pose feature generation = backbone + joint regressor; the mesh regressor "
            "is timed on precomputed pose features; the whole model is both in one call (no text branch: it is "
            "training-only). Published split (paper Table 6, RTX 2080 Ti, timed without synchronize): pose "
            f"features {PAPER_TABLE6_MS['pose_features']} ms, mesh regressor {PAPER_TABLE6_MS['mesh_regressor']} ms.",
            "")
    for name, res in bench.get("models", {}).items():
        t = res.get("torch", {})
        doc.add(f"**{name} model** ({res.get('note', '')}; input {t.get('input_size')} px, {t.get('vertices')} "
                f"vertices; {t.get('device', DASH)}):", "")
        rows = []
        for mod, label in MODULE_LABELS.items():
            lat, thr = t.get("latency", {}).get(mod), t.get("throughput", {}).get(mod)
            params = t.get("params", {}).get("inference" if mod == "whole" else mod)
            rows.append([label, "PyTorch", fmt(params / 1e6 if params is not None else None, 2),
                         fmt(t.get("gflops", {}).get(mod), 2), _spread(lat), fmt((lat or {}).get("fps"), 1),
                         fmt((thr or {}).get("images_per_s"), 1)])
        onnx = res.get("onnx")
        if onnx:
            lat, thr = onnx.get("latency", {}).get("whole"), onnx.get("throughput", {}).get("whole")
            rows.append([MODULE_LABELS["whole"], "ONNX Runtime (CPU)", DASH, DASH, _spread(lat),
                         fmt((lat or {}).get("fps"), 1), fmt((thr or {}).get("images_per_s"), 1)])
        doc.add(md_table(["module", "runtime", "params (M)", "GFLOPs / image", "latency ms, batch 1", "FPS",
                          "images/s, batch 32"], rows), "")
        par = res.get("parity")
        text = t.get("params", {}).get("text_branch")
        extra = [f"Training-only text branch: {fmt(text / 1e6 if text is not None else None, 2)} M parameters."]
        if par:
            extra.append(f"ONNX export (opset {onnx.get('opset')}, {fmt(onnx.get('bytes', 0) / 2**20, 1)} MiB, "
                         f"exported in {fmt(onnx.get('seconds'), 1)} s) vs PyTorch on {par['n']} real-world crops: "
                         f"max |Δ| joints {par['joints_max_abs_m']:.2e} m, vertices {par['verts_max_abs_m']:.2e} m "
                         f"({'within' if par['joints_max_abs_m'] <= 1e-4 else 'NOT within'} the 1e-4 m target)."
                         + (f" Saved as `{Path(onnx['path']).name}` in `data/bench/`." if onnx.get("kept") else ""))
        doc.add(" ".join(extra), "")
    _pipeline_table(doc, bench.get("pipeline"))


def _pipeline_table(doc, p: dict | None) -> None:
    doc.add("### Speed of the pipeline itself", "")
    if not p:
        doc.miss("the pipeline section of `data/metrics/benchmark.json`")
        return
    lo, st, tc = p.get("loader", {}), p.get("train_step", {}), p.get("text_cache", {})
    rows = [["synthesize (render + labels), all workers", fmt(p.get("synthesize_images_per_s"), 1), DASH,
             "`data/metrics/synthesize.json`"],
            [f"data loader: gather a batch of {p.get('batch')} from the memory-mapped crops",
             fmt(lo.get("images_per_s"), 1), _spread(lo), "per batch"],
            [f"fine-tuning step, batch {p.get('batch')} (2 augmented views, forward, losses, backward, AdamW)",
             fmt(st.get("images_per_s"), 1), _spread(st), "per step, CPU"],
            [f"text features on the fly ({tc.get('prompts_per_step')} prompts through the text encoder)", DASH,
             _spread(tc.get("on_the_fly")), "per step"],
            ["text features from the embed_text cache", DASH, _spread(tc.get("cached")), "per step"]]
    doc.add(md_table(["work", "images/s", "ms: median [p10–p90]", "unit"], rows), "")
    share = p.get("loader_share")
    verdict = (DASH if share is None else "so it is not the bottleneck" if share < 0.1
               else "**so it slows training down**")
    doc.add(f"The loader takes {fmt(100 * share if share is not None else None, 2)} % of a training step, {verdict}; "
            f"the cache makes the text features {fmt(tc.get('speedup'), 0)}× cheaper per step than encoding the "
            "prompts on the fly.", "")
