"""End to end: the DVC pipeline on the smoke profile in a throw-away copy of the repository.

Checks that `dvc repro` runs every stage and writes the report, that a second `dvc repro` does
nothing, that `dvc exp run -S clip.batch_size=8` reruns only what depends on it and shows up in
`dvc exp show` and in MLflow beside the baseline runs, that the finetune run holds its model, and that
the MLflow UI shows the runs in a browser.

The smoke `dvc repro` runs once per session (``conftest.py::smoke_build``), which then copies the repository:
these tests use the built one in file order; ``tests/test_queue_and_kills.py`` uses the copy. `make test`
runs the two modules side by side (pytest-xdist, ``--dist loadfile``): a DVC stage is mostly one core's
work, so each module keeps one core of a 2-core machine busy.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess

import pytest

from smoke import BIN, find_rev, run_cmd

pytestmark = pytest.mark.slow  # `make test` runs the slow modules beside the other tests (see Makefile)


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
        # the default test-time rotation: two passes, the first pass scored too
        assert m["forward_passes"] == 2 and m["one_pass"]["pa_mpjpe_mm"] > 0
    for row in params["ablate"]["runs"]:
        assert (repo / f"data/ablate/{row}/metrics.json").exists()
    bench = json.loads((repo / "data/metrics/benchmark.json").read_text())
    for name in ("default", "paper"):  # Table 6 split, ONNX parity and latency for both models
        res = bench["models"][name]
        assert set(res["torch"]["latency"]) == {"pose_features", "mesh_regressor", "whole"}
        assert res["parity"]["joints_max_abs_m"] <= 1e-4 and res["onnx"]["latency"]["whole"]["median_ms"] > 0
    assert bench["models"]["paper"]["torch"]["vertices"] == 778
    tta = bench["models"]["default"]["test_time"]        # the same rotation timed, and the export scored with it
    assert tta["forward_passes"] == 2 and tta["onnx"]["realworld"]["n"] > 0
    assert tta["onnx"]["latency"]["whole"]["median_ms"] > 0 and tta["torch"]["latency"]["whole"]["median_ms"] > 0
    assert "test-time rotation, 2 passes" in (repo / "reports/report.md").read_text()
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
    out = run_cmd(["dvc", "repro"], repo, env)
    assert "Running stage" not in out


def test_exp_run_reruns_only_dependants_and_is_tracked(smoke_repo):
    repo, env, _, params = smoke_repo
    out = run_cmd(["dvc", "exp", "run", "-S", "clip.batch_size=8", "-n", "bs8"], repo, env)
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    assert "finetune" in ran and "report" in ran
    assert not ran & {"download", "synthesize", "preprocess", "embed_text", "pretrain"}
    assert not any(s.startswith("ablate@") for s in ran)
    shown = json.loads(run_cmd(["dvc", "exp", "show", "--json"], repo, env))
    exp = find_rev(shown, "bs8")
    assert exp is not None, "experiment bs8 missing from dvc exp show"
    assert exp["data"]["params"]["params.yaml"]["data"]["clip"]["batch_size"] == 8
    assert exp["data"]["metrics"]["data/eval/test/metrics.json"]["data"]["pa_mpjpe_mm"] > 0
    db = sqlite3.connect(repo / "mlflow.db")
    names = {r[0] for r in db.execute("select value from tags where key = 'dvc.exp_name'")}
    assert "bs8" in names and "workspace" in names
    parents = db.execute("select count(*) from tags where key = 'mlflow.parentRunId'").fetchone()[0]
    assert parents >= len(params["ablate"]["runs"])  # one run per ablation row, under the parent `ablate`


def test_finetune_run_holds_the_model_and_its_datasets(smoke_repo):
    """Issue 10: the finetune run logs the trained model (pyfunc-loadable, same joints as the checkpoint)
    and the prepared datasets as run inputs."""
    import mlflow
    import numpy as np
    import torch

    from cliphand.model.checkpoint import load_checkpoint
    from cliphand.data.augment import normalise
    from cliphand.data.loader import PreparedSet

    repo, env, _, _ = smoke_repo
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.mlflow.runName = 'finetune'",
                              output_format="list")
    assert runs, "no finetune run in MLflow"
    run = runs[0]                          # the newest: it wrote the workspace's data/models/finetune.pt
    names = {(d.dataset.name, t.value) for d in run.inputs.dataset_inputs for t in d.tags if t.key == "mlflow.data.context"}
    assert ("train", "training") in names and ("val", "validation") in names
    models = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
    mine = [m for m in models if m.source_run_id == run.info.run_id]
    assert len(mine) == 1
    served = mlflow.pyfunc.load_model(mine[0].model_uri)
    x = normalise(PreparedSet(repo / "data/prep/val").batch(np.arange(4))["image"]).numpy()
    model, _ = load_checkpoint(repo / "data/models/finetune.pt")
    with torch.no_grad():
        want = model.pose_features(torch.as_tensor(x))["uvd"].numpy()
    np.testing.assert_allclose(np.asarray(served.predict(x))[:, :21], want, atol=1e-5)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: the MLflow UI browser test is skipped "
                                             "(.ci/run installs Debian's chromium, so CI always runs it)")
def test_mlflow_ui_shows_the_stage_runs_in_a_real_browser(smoke_repo, tmp_path):
    """Issue 10: `mlflow ui` on the smoke store, opened in headless Chromium, lists the stage runs and shows a
    logged metric of the finetune run (what a user sees, not only what the database holds)."""
    import socket
    import time
    import urllib.request

    import mlflow

    repo, env, _, _ = smoke_repo
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    run = mlflow.search_runs(search_all_experiments=True, filter_string="tags.mlflow.runName = 'finetune'",
                             output_format="list")[0]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ui = subprocess.Popen([str(BIN / "mlflow"), "ui", "--backend-store-uri", env["MLFLOW_TRACKING_URI"],
                           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                          cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(base + "/health", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline and ui.poll() is None, "mlflow ui did not start"
                time.sleep(0.5)

        def dom(url: str) -> str:
            proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                                   "--no-first-run", "--disable-background-networking", "--disable-component-update",
                                   "--disable-sync", f"--user-data-dir={tmp_path / 'chrome'}",
                                   "--window-size=1600,1000", "--virtual-time-budget=20000", "--dump-dom", url],
                                  capture_output=True, text=True, timeout=180)
            assert proc.returncode == 0, proc.stderr[-2000:]
            return proc.stdout

        exp = run.info.experiment_id
        runs_page = dom(f"{base}/#/experiments/{exp}/runs")
        for stage in ("pretrain", "finetune", "report"):
            assert f">{stage}<" in runs_page or f"{stage}</" in runs_page, f"run {stage} not on the runs page"
        run_page = dom(f"{base}/#/experiments/{exp}/runs/{run.info.run_id}")
        metric = "final_val_pa_mpjpe_mm"
        assert metric in run_page, f"metric {metric} not on the finetune run's page"
    finally:
        ui.terminate()
        ui.wait(timeout=30)
