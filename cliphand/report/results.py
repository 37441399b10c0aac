"""Report sections on the finetuned model's scores: the main results per benchmark (with the peer on the
real photos and the published FreiHAND figures for context) and the per-axis text↔pose retrieval accuracy
with its figure. Inputs: ``data/eval/<bench>/{metrics.json, predictions.npz}``."""

from __future__ import annotations

from pathlib import Path

from cliphand.report.document import Document
from cliphand.report.figures import AXES, fig_retrieval, retrieval_batch_sizes
from cliphand.report.markdown import DASH, fmt, md_table
from cliphand.report.published import PEERS_FREIHAND
from cliphand.report.speed import realworld_vs_peer

MAIN_COLS = [("PA-MPJPE (mm)", "pa_mpjpe_mm", 2), ("PA-MPVPE (mm)", "pa_mpvpe_mm", 2),
             ("MPJPE root-rel. (mm)", "mpjpe_mm", 2), ("MPVPE root-rel. (mm)", "mpvpe_mm", 2),
             ("median PA-MPJPE (mm)", "pa_mpjpe_median_mm", 2), ("AUC 0-50 (PA)", "auc_0_50", 3),
             ("AUC 0-30 (PA)", "auc_0_30", 3), ("F@5", "f5", 3), ("F@15", "f15", 3), ("ms/image", "ms_per_image", 2)]
EXTRA_COLS = [("median MPJPE (mm)", "mpjpe_median_mm", 2), ("AUC 0-50 root-rel.", "rr_auc_0_50", 3),
              ("AUC 0-30 root-rel.", "rr_auc_0_30", 3), ("BiHand MPJPE (mm)", "bihand_mpjpe_mm", 2),
              ("BiHand AUC 20-50", "bihand_auc_20_50", 3), ("PA mesh AUC 0-50", "pa_mesh_auc_0_50", 3)]


def main_section(doc: Document, inp: dict) -> None:
    """The '## Main results' section: scores per benchmark, the peer on the real photos, published figures."""
    doc.add("## Main results", "")
    doc.add("The finetuned model (`data/models/finetune.pt`) per benchmark; FreiHAND protocol (Procrustes per "
            "sample, PCK/AUC over 100 thresholds, F-scores on aligned vertices); MPJPE/MPVPE are root-relative "
            "(wrist) without alignment. The real photos carry no ground-truth mesh, so their mesh metrics are "
            f"'{DASH}'. ms/image: the evaluate stage's batched inference on the evaluation device, every forward pass "
            "included.", "")
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
        one = [(b, m) for b, m in inp["evals"].items() if m is not None and m.get("one_pass")]
        if one:
            passes = int(one[0][1].get("forward_passes", 1))
            doc.add(f"These rows are with test-time rotation ({passes} forward passes per image: the crop turned "
                    "upright after the first pass, the views averaged; README deviations). One forward pass, the "
                    "paper's protocol: " + "; ".join(
                        f"{b} PA-MPJPE {fmt(m['one_pass'].get('pa_mpjpe_mm'))} mm"
                        + (f", PA-MPVPE {fmt(m['one_pass'].get('pa_mpvpe_mm'))} mm" if "pa_mpvpe_mm" in m["one_pass"] else "")
                        + f", MPJPE root-rel. {fmt(m['one_pass'].get('mpjpe_mm'))} mm"
                        + f", AUC 0-50 {fmt(m['one_pass'].get('auc_0_50'), 3)}"
                        + (f", F@15 {fmt(m['one_pass'].get('f15'), 3)}" if "f15" in m["one_pass"] else "")
                        for b, m in one) + ".", "")
        doc.add("Protocols (each benchmark's headline metrics): **freihand** — FreiHAND `eval.py` (PA-MPJPE, "
                "PA-MPVPE, AUC 0-50, F@5, F@15); **bihand** — RHD/STB as in the paper's Table 2 (root-relative "
                "prediction scaled to the GT wrist→middle-MCP bone plus the GT root, no rotation: BiHand MPJPE and "
                "AUC 20-50 below); **realworld** — Ge et al. CVPR 2019 (GT root added, no scale or alignment: the "
                "root-relative MPJPE column).", "")
        doc.add("Other conventions (same predictions):", "")
        doc.add(md_table(["benchmark"] + [c for c, _, _ in EXTRA_COLS], extra), "")
    realworld_vs_peer(doc, doc.paths, inp["evals"], inp["preds"])
    doc.add("### Published figures (not comparable: other data)", "",
            "FreiHAND test set, quoted from the papers (NOTES §6); our models are trained on synthetic renders "
            "and tested on other images, so these are context only.", "")
    doc.add(md_table(["method (published, FreiHAND)", "backbone", "PA-MPJPE (mm)", "PA-MPVPE (mm)", "F@5", "F@15",
                      "note"],
                     [[n, b, fmt(a, 1), fmt(v, 1), fmt(f5, 3), fmt(f15, 3), note or DASH]
                      for n, b, a, v, f5, f15, note in PEERS_FREIHAND]), "")


def retrieval_section(doc: Document, inp: dict, fig_dir: Path) -> None:
    """The '## Text–pose retrieval' section: per-axis top-1 accuracy per batch size, table and figure."""
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
            doc.add(f"![retrieval accuracy vs batch size, {bench}]({doc.link(path)})", "")
