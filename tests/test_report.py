"""The report stage's library (cliphand.report.build) on a tiny fake pipeline output built in tmp_path:
every heading, numbers equal to the metrics files, labelled paper numbers, PNG figures, missing inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cliphand.config import validate
from cliphand.evaluate import metrics as M
from cliphand.model.checkpoint import build_model, save_checkpoint
from cliphand.data.preprocess import write_prepared
from cliphand.hand.geometry import xyz_to_uvd
from cliphand.io import save_json, save_npz
from cliphand.paths import Paths
from cliphand.profiles import deep_merge, load_yaml
from cliphand.report.build import build_report
from cliphand.report.markdown import fmt, md_table
from cliphand.report.published import PAPER
from cliphand.text.cache import save_text_cache

HEADINGS = ["# cliphand report", "## Data", "## Main results", "## Text–pose retrieval", "## Ablations",
            "## Figures", "## Stage wall time", "## Environment", "## Deviations from the paper"]
CFG = {"input_size": 64, "heatmap_size": 16, "deconv_channels": 32, "embed_dim": 32, "adapter_ff": 64,
       "mesh_levels": [30, 60], "mesh_dims": [32, 16, 16], "mesh_fj_channels": 8, "text_dim": 384}
S, V, DR = 64, 120, 0.3
PARAMS = {
    "seed": 0, "device": "cpu",
    "synth": {"render_size": 96},
    "preprocess": {"input_size": S, "pad": 1.3, "depth_range": DR},
    "text": {"encoder": "minilm", "features": "joints", "template": "auto", "n_joints": 21},
    "model": CFG,
    "finetune": {"epochs": 3},
    "evaluate": {"retrieval_batch_sizes": [4, 8],
                 "benchmarks": {"test": {"data": "test", "text": "test"},
                                "realworld": {"data": "realworld", "text": None}}},
    "ablate": {"epochs": 1, "batch_size": 32, "n_joints": 21, "n_train": 48, "eval_on": ["val", "test", "realworld"],
               "seeds": [0],
               "runs": {"__replace__": True, "full": {"seeds": [0, 1, 2]}, "bs8": {"batch_size": 8}, "bs16": {"batch_size": 16}, "n10": {"n_joints": 10},
                        "baseline": {"use_clip": False, "use_projection": False, "use_sparse_to_dense": False},
                        "no_clip": {"use_clip": False}}},
    "report": {"overlays": 4},
}
#: the settings the report is built with: params.yaml with the overrides above
SETTINGS = validate(deep_merge(load_yaml(Path(__file__).resolve().parents[1] / "params.yaml"), PARAMS), "test settings")
DEVIATIONS = "- **Training data**: synthetic renders (test deviation line)."


def _hands(rng, n):
    """(n, 21, 3) joints and (n, V, 3) vertices around 0.5 m in front of the camera, and K (n, 3, 3)."""
    joints = np.array([0.0, 0.0, 0.5]) + rng.normal(0, 0.03, (n, 21, 3))
    verts = joints[:, rng.integers(0, 21, V)] + rng.normal(0, 0.005, (n, V, 3))
    K = np.tile(np.array([[90.0, 0, S / 2], [0, 90.0, S / 2], [0, 0, 1]]), (n, 1, 1))
    return joints, verts, K


def _prepared(path: Path, rng, n: int, mesh: bool) -> dict:
    joints, verts, K = _hands(rng, n)
    rd = joints[:, 0, 2]
    arrays = {"images": rng.integers(0, 255, (n, S, S, 3), dtype=np.uint8), "K": K.astype(np.float32),
              "joints": joints.astype(np.float32), "uvd": xyz_to_uvd(joints, K, rd, S, DR).astype(np.float32),
              "root_depth": rd.astype(np.float32), "ids": np.arange(n)}
    if mesh:
        arrays["verts"] = verts.astype(np.float32)
        arrays["verts_uvd"] = xyz_to_uvd(verts, K, rd, S, DR).astype(np.float32)
    write_prepared(path, arrays)
    return arrays


def _evaluate(root: Path, bench: str, arrays: dict, rng, with_text: bool) -> dict:
    pj = arrays["joints"] + rng.normal(0, 0.008, arrays["joints"].shape)
    pv = arrays["verts"] + rng.normal(0, 0.008, arrays["verts"].shape) if "verts" in arrays else None
    scores = M.evaluate(pj, arrays["joints"], pv, arrays.get("verts"))
    curves = scores.pop("curves")
    scores.update(ms_per_image=3.217, n_samples=len(pj), wall_s=5.5)
    if with_text:
        emb = rng.normal(size=(len(pj), 3, 8))
        scores["retrieval"] = M.retrieval_top1(emb, emb + rng.normal(0, 1.0, emb.shape), [4, 8],
                                               prompts=np.array([[f"p{i % 7}{a}" for a in "xyz"] for i in range(len(pj))]))
    save_json(root / f"data/eval/{bench}/metrics.json", scores)
    verts = pv if pv is not None else np.repeat(pj.mean(1, keepdims=True), V, 1) + rng.normal(0, 0.02, (len(pj), V, 3))
    save_npz(root / f"data/eval/{bench}/predictions.npz", joints=pj.astype(np.float32), verts=verts.astype(np.float32),
             uvd=arrays["uvd"], index=np.arange(len(pj)), **{f"curve_{k}": np.asarray(v) for k, v in curves.items()})
    return scores


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    """A tiny pipeline output (all inputs of the report, except the ablation row bs16) and its report."""
    root = tmp_path_factory.mktemp("repo")
    rng = np.random.default_rng(0)
    import torch
    torch.manual_seed(0)
    template = {"verts": rng.normal(0, 0.03, (V, 3)).astype(np.float32),
                "joints": rng.normal(0, 0.03, (21, 3)).astype(np.float32),
                "faces": rng.integers(0, V, (200, 3)).astype(np.int32)}
    model = build_model(CFG, template)
    hist = [{"epoch": e, "loss_joint": 0.1 / e, "loss_vert": 0.2 / e, "loss_clip": 2.0 / e, "loss_total": 0.5 / e,
             "val_mpjpe_mm": 40.0 / e, "seconds": 3.0} for e in (1, 2, 3)]
    for phase in ("pretrain", "finetune"):
        save_checkpoint(root / f"data/models/{phase}.pt", model, template,
                        {"phase": phase, "history": hist, "n_joints": 21, "input_size": S, "depth_range": DR})
    test = _prepared(root / "data/prep/test", rng, 16, mesh=True)
    real = _prepared(root / "data/prep/realworld", rng, 10, mesh=False)
    n = len(test["joints"])
    orders = np.argsort(test["joints"], axis=1).transpose(0, 2, 1).astype(np.int16)  # (n, 3, 21)
    save_text_cache(root / "data/text/test_n21.npz", {
        "feats": rng.normal(size=(n, 3, 22, 384)).astype(np.float16), "orders": orders,
        "subsets": np.tile(np.arange(21, dtype=np.int16), (n, 1)), "prompts": np.full((n, 3), "a prompt"),
        "fingerprint": "fake-encoder", "template": "paper", "seed": 0, "n_joints": 21})
    evals = {"test": _evaluate(root, "test", test, rng, True),
             "realworld": _evaluate(root, "realworld", real, rng, False)}
    stage = {"download": {"webxr": {"route": "npm", "source": "npm:x", "sha256": "ab" * 32, "bytes": 94004},
                          "realworld": {"route": "local", "source": "/x", "n_images": 10,
                                        "sha256": {"pose_gt.mat": "cd" * 32}}, "wall_s": 1.25},
             "synthesize": {"samples": {"train": 40, "val": 8, "test": 16}, "images_per_s": 12.5, "wall_s": 10.0},
             "preprocess": {"samples": {"train": 40, "val": 8, "test": 16, "realworld": 10},
                            "protocols": {"train": "freihand", "val": "freihand", "test": "freihand",
                                          "realworld": "realworld"}, "wall_s": 2.0},
             "embed_text": {"encoder": "fake-encoder", "n_values": [10, 21], "test_n21": {"samples": 16, "feature_shape": [22, 384]},
                            "wall_s": 3.0},
             "pretrain": {"epochs": 3, "final_val_mpjpe_mm": 13.3, "final_samples_per_s": 50.0, "wall_s": 20.0},
             "finetune": {"epochs": 3, "final_val_mpjpe_mm": 12.1, "final_samples_per_s": 25.0, "wall_s": 30.0}}
    for name, m in stage.items():
        save_json(root / f"data/metrics/{name}.json", m)
    ab = PARAMS["ablate"]
    ablate = {}
    for i, (row, over) in enumerate((k, v) for k, v in ab["runs"].items() if k != "__replace__"):
        if row == "bs16":
            continue  # configured but not run: must be reported missing
        over = {k: v for k, v in over.items() if k != "seeds"}
        seeds = ab["runs"][row].get("seeds", ab["seeds"])
        res = {"settings": {"epochs": 1, "batch_size": 32, "n_joints": 21, "n_train": 12, **over}, "train_seconds": 7.0,
               "wall_s": 9.0 + i, "seeds": seeds}
        for split in ("val", "test", "realworld"):
            res[split] = {k: v * (1 + 0.01 * i) for k, v in evals["test" if split != "realworld" else split].items()
                          if isinstance(v, float)}
        if len(seeds) > 1:  # the full row: per-seed scores spread by +-2 % and their summary
            per = {str(sd): {sp: {k: v * (1 + 0.02 * (j - 1)) for k, v in res[sp].items()} for sp in ("val", "test", "realworld")}
                   for j, sd in enumerate(seeds)}
            res["per_seed"] = per
            res["std"] = {sp: {k: float(np.std([per[str(sd)][sp][k] for sd in seeds], ddof=1)) for k in res[sp]}
                          for sp in ("val", "test", "realworld")}
        save_json(root / f"data/ablate/{row}/metrics.json", res)
        ablate[row] = res
    (root / "README.md").write_text(f"# x\n<!-- deviations:start -->\n{DEVIATIONS}\n<!-- deviations:end -->\n")
    out_md, fig_dir = root / "reports/report.md", root / "reports/figures"
    summary = build_report(SETTINGS, Paths(root), out_md, fig_dir)
    return {"root": root, "md": out_md.read_text(), "figs": fig_dir, "summary": summary, "evals": evals,
            "ablate": ablate, "stage": stage}


def _table_row(md: str, first_cell: str, after: str) -> list[str]:
    """Cells of the first table row whose first cell is ``first_cell`` after the line containing ``after``."""
    text = md[md.index(after):]
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} after {after!r}")


def test_headings_in_order(fake):
    md = fake["md"]
    pos = [md.index(h + "\n") for h in HEADINGS]
    assert pos == sorted(pos)
    assert md.startswith("# cliphand report\n")


def test_main_table_numbers_come_from_metrics(fake):
    md, ev = fake["md"], fake["evals"]
    header = _table_row(md, "benchmark", "## Main results")
    for bench in ("test", "realworld"):
        row = dict(zip(header, _table_row(md, bench, "## Main results")))
        assert row["PA-MPJPE (mm)"] == fmt(ev[bench]["pa_mpjpe_mm"], 2)
        assert row["MPJPE root-rel. (mm)"] == fmt(ev[bench]["mpjpe_mm"], 2)
        assert row["AUC 0-50 (PA)"] == fmt(ev[bench]["auc_0_50"], 3)
        assert row["ms/image"] == "3.22"
        assert row["n"] == str(len(np.load(fake["root"] / f"data/eval/{bench}/predictions.npz")["joints"]))
    synth = dict(zip(header, _table_row(md, "test", "## Main results")))
    real = dict(zip(header, _table_row(md, "realworld", "## Main results")))
    assert synth["F@15"] == fmt(ev["test"]["f15"], 3) and synth["PA-MPVPE (mm)"] == fmt(ev["test"]["pa_mpvpe_mm"], 2)
    assert real["PA-MPVPE (mm)"] == "—"  # no GT mesh for the real photos
    # no peer or benchmark stage ran in this fake repository: the report says so instead of showing a row
    assert "Missing: `data/metrics/peer_mediapipe.json` (peer_mediapipe stage not run)" in md
    assert "| MediaPipe Hands (" not in md


def test_retrieval_table_matches(fake):
    r = fake["evals"]["test"]["retrieval"]
    row = _table_row(fake["md"], "y (M_tb)", "## Text–pose retrieval")
    assert row[1] == "4" and row[2] == fmt(r["p2t_top1_y_b4"], 3) and row[6] == fmt(0.25, 3)


def test_ablation_tables_paper_labelled_and_missing_row(fake):
    md = fake["md"]
    abl = md[md.index("## Ablations"):md.index("## Figures")]
    assert "shorter than the main run" in abl and "1 epoch(s)" in abl and "3 epoch(s)" in abl
    header = _table_row(abl, "B", "Table 3")
    assert f"{PAPER}: PA-PJPE (mm)" in header
    b8 = dict(zip(header, _table_row(abl, "8", "Table 3")))
    assert b8[f"{PAPER}: PA-PJPE (mm)"] == "7.07"
    assert b8["ours test: PA-MPJPE (mm)"].removesuffix(" ≈") == fmt(fake["ablate"]["bs8"]["test"]["pa_mpjpe_mm"], 2)
    b16 = dict(zip(header, _table_row(abl, "16", "Table 3")))
    assert b16["ours test: PA-MPJPE (mm)"] == "missing" and b16[f"{PAPER}: PA-PJPE (mm)"] == "7.01"
    assert "ablation row `bs16`" in md and any("bs16" in m for m in fake["summary"]["missing"])
    b32 = dict(zip(header, _table_row(abl, "32", "Table 3")))
    assert b32["row"] == "`full`" and b32[f"{PAPER}: PA-PJPE (mm)"] == "6.88"
    n15 = dict(zip(_table_row(abl, "N", "Table 4"), _table_row(abl, "15", "Table 4")))
    assert n15["row"] == "not run" and n15[f"{PAPER}: PA-PJPE (mm)"] == "6.94"
    t5 = _table_row(abl, "model", "Table 5")
    full = dict(zip(t5, _table_row(abl, "full model", "Table 5")))
    assert [full[f"{PAPER}: {c}"] for c in ("AUC 0-30", "PJPE (mm)", "median (mm)", "PA-PJPE (mm)")] == \
        ["0.776", "13.95", "11.58", "6.88"]
    full_m = fake["ablate"]["full"]
    assert full["ours realworld: AUC 0-30 (PA)"] == (f'{fmt(full_m["realworld"]["auc_0_30"], 3)} ± '
                                                      f'{fmt(full_m["std"]["realworld"]["auc_0_30"], 3)}')
    noclip = dict(zip(t5, _table_row(abl, "w/o CLIP loss", "Table 5")))
    assert noclip["row"] == "`no_clip`" and noclip[f"{PAPER}: PA-PJPE (mm)"] == "7.29"
    base = dict(zip(t5, _table_row(abl, "baseline", "Table 5")))
    assert base[f"{PAPER}: PA-PJPE (mm)"] == "—" and base["row"] == "`baseline`"


def test_figures_are_png_and_linked(fake):
    figs = fake["figs"]
    names = {p.name for p in figs.glob("*.png")}
    assert {"pck_curves.png", "retrieval_test.png", "logit_matrices.png", "joint_heatmaps.png",
            "training_curves.png", "realworld_overlays.png"} <= names
    for name in names:
        assert (figs / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"(figures/{name})" in fake["md"]
    assert fake["summary"]["n_figures"] == len(names)


def test_wall_time_total_environment_and_deviations(fake):
    md, stage, ablate = fake["md"], fake["stage"], fake["ablate"]
    total = sum(m["wall_s"] for m in stage.values()) + 2 * 5.5 + sum(m["wall_s"] for m in ablate.values())
    assert f"**{fmt(total, 1)}**" in md
    assert _table_row(md, "ablate@bs16", "## Stage wall time")[1] == "missing"
    assert _table_row(md, "evaluate@realworld", "## Stage wall time")[1] == "5.5"
    assert "git revision" in md and "params fingerprint" in md
    assert md.rstrip().endswith(DEVIATIONS)
    assert "ab" * 32 in md and "pose_gt.mat" in md  # sources with sha256


def test_empty_root_reports_what_is_missing(tmp_path):
    summary = build_report(SETTINGS, Paths(tmp_path), tmp_path / "r.md", tmp_path / "f")
    md = (tmp_path / "r.md").read_text()
    for h in HEADINGS:
        assert h + "\n" in md
    assert summary["n_figures"] == 0 and not list((tmp_path / "f").glob("*.png"))
    assert "data/eval/test/metrics.json" in md and "data/models/finetune.pt" in md
    assert "Missing inputs" in md and summary["n_missing"] >= 10


def test_md_table():
    assert md_table(["a", "b"], [[1, "x|y"]]) == "| a | b |\n| --- | --- |\n| 1 | x\\|y |"
    with pytest.raises(ValueError):
        md_table(["a", "b"], [[1]])
    assert fmt(None) == "—" and fmt(float("nan")) == "—" and fmt(1.005, 1) == "1.0" and fmt(True) == "—"


def test_seed_noise_mean_std_and_within_noise_marks(fake):
    """The full row's 3 seeds give mean ± std cells and a seed table; rows within 2 std of it are marked ≈."""
    md, full = fake["md"], fake["ablate"]["full"]
    assert "### Seed noise of the full model" in md
    mean, std = full["test"]["pa_mpjpe_mm"], full["std"]["test"]["pa_mpjpe_mm"]
    assert f"{fmt(mean, 2)} ± {fmt(std, 2)}" in md
    for sd in ("0", "1", "2"):
        assert fmt(full["per_seed"][sd]["test"]["pa_mpjpe_mm"], 2) in md
    header = _table_row(md, "B", "### Batch size B (paper Table 3)")
    b8 = dict(zip(header, _table_row(md, "8", "### Batch size B (paper Table 3)")))
    cell, other = b8["ours test: PA-MPJPE (mm)"], fake["ablate"]["bs8"]["test"]["pa_mpjpe_mm"]
    within = abs(other - mean) <= 2 * std
    assert cell.endswith(" ≈") == within
    # every row: marked exactly when its mean is within 2 std of the full model's
    for row, res in fake["ablate"].items():
        if row == "full":
            continue
        d = abs(res["test"]["pa_mpjpe_mm"] - mean)
        assert (d <= 2 * std) == (f"{fmt(res['test']['pa_mpjpe_mm'], 2)} ≈" in md)
