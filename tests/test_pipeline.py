"""End to end: the DVC pipeline on the smoke profile in a throw-away copy of the repository.

Checks that `dvc repro` runs every stage and writes the report, that a second `dvc repro` does
nothing, that `dvc exp run -S clip.batch_size=8` reruns only what depends on it and shows up in
`dvc exp show` and in MLflow beside the baseline runs.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cliphand.config import deep_merge, load_yaml

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def _find_rev(node, name: str):
    """The revision entry named ``name`` in ``dvc exp show --json`` output (with its params/metrics)."""
    if isinstance(node, dict):
        if node.get("name") == name and isinstance(node.get("data"), dict):
            return node
        node = list(node.values())
    if isinstance(node, list):
        for child in node:
            found = _find_rev(child, name)
            if found is not None:
                return found
    return None


def _run(cmd: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-6000:]}"
    return out


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory, repo_root, shared_data):
    dst = tmp_path_factory.mktemp("pipeline") / "repo"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=repo_root,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, files):
        if rel.startswith(("data/", "reports/", "dvc.lock")):  # the last run's results stay behind
            continue
        src = repo_root / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    params = deep_merge(load_yaml(repo_root / "params.yaml"), load_yaml(repo_root / "configs/smoke.yaml"))
    params["download"]["webxr"]["local_dir"] = str(shared_data / "webxr_generic_hand")
    params["download"]["realworld"]["local_dir"] = str(shared_data / "realworld_testset")
    params["download"]["gestures"]["local_dir"] = str(shared_data / "ge_synthetic_gestures")
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "CLIPHAND_TRACKING": "1",
           "MLFLOW_TRACKING_URI": f"sqlite:///{dst / 'mlflow.db'}", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "smoke"]):
        _run(cmd, dst, env)
    out = _run(["dvc", "repro"], dst, env)
    return dst, env, out, params


def test_repro_runs_every_stage_and_writes_report(smoke_repo):
    repo, _, out, params = smoke_repo
    for stage in ("download", "synthesize", "preprocess", "embed_text", "pretrain", "finetune", "benchmark",
                  "peer_mediapipe", "report"):
        assert f"Running stage '{stage}'" in out
    for bench in params["evaluate"]["benchmarks"]:
        m = json.loads((repo / f"data/eval/{bench}/metrics.json").read_text())
        assert m["n_samples"] > 0 and m["pa_mpjpe_mm"] > 0
        # each benchmark is scored under its source's protocol (README: protocols table)
        assert m["protocol"] == {"test": "freihand", "realworld": "realworld"}[bench]
    for row in params["ablate"]["runs"]:
        assert (repo / f"data/ablate/{row}/metrics.json").exists()
    bench = json.loads((repo / "data/metrics/benchmark.json").read_text())
    for name in ("default", "paper"):  # Table 6 split, ONNX parity and latency for both models
        res = bench["models"][name]
        assert set(res["torch"]["latency"]) == {"pose_features", "mesh_regressor", "whole"}
        assert res["parity"]["joints_max_abs_m"] <= 1e-4 and res["onnx"]["latency"]["whole"]["median_ms"] > 0
    assert bench["models"]["paper"]["torch"]["vertices"] == 778
    # the trained model's export is kept for deployment; the random-weight paper model's is not
    assert [p.name for p in (repo / "data/bench").iterdir()] == ["default.onnx"]
    assert bench["pipeline"]["loader"]["images_per_s"] > 0 and bench["pipeline"]["text_cache"]["speedup"] > 0
    peer = json.loads((repo / "data/metrics/peer_mediapipe.json").read_text())
    report = (repo / "reports/report.md").read_text()
    for heading in ("Main results", "Ablation", "Speed (Table 6", "Stage wall time", "Environment", "Deviations"):
        assert heading in report
    if peer["status"] == "run":  # `pip install .[peers]` (make setup installs it)
        assert peer["n_detected"] >= 0.95 * peer["n_images"] and "MediaPipe Hands (mediapipe" in report
    else:
        assert "MediaPipe Hands row: not run" in report
    assert list((repo / "reports/figures").glob("*.png"))


def test_second_repro_does_nothing(smoke_repo):
    repo, env, _, _ = smoke_repo
    out = _run(["dvc", "repro"], repo, env)
    assert "Running stage" not in out


def test_exp_run_reruns_only_dependants_and_is_tracked(smoke_repo):
    repo, env, _, _ = smoke_repo
    out = _run(["dvc", "exp", "run", "-S", "clip.batch_size=8", "-n", "bs8"], repo, env)
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    assert "finetune" in ran and "report" in ran
    assert not ran & {"download", "synthesize", "preprocess", "embed_text", "pretrain"}
    assert not any(s.startswith("ablate@") for s in ran)
    shown = json.loads(_run(["dvc", "exp", "show", "--json"], repo, env))
    exp = _find_rev(shown, "bs8")
    assert exp is not None, "experiment bs8 missing from dvc exp show"
    assert exp["data"]["params"]["params.yaml"]["data"]["clip"]["batch_size"] == 8
    assert exp["data"]["metrics"]["data/eval/test/metrics.json"]["data"]["pa_mpjpe_mm"] > 0
    db = sqlite3.connect(repo / "mlflow.db")
    names = {r[0] for r in db.execute("select value from tags where key = 'dvc.exp_name'")}
    assert "bs8" in names and "workspace" in names
    parents = db.execute("select count(*) from tags where key = 'mlflow.parentRunId'").fetchone()[0]
    assert parents >= 4
