"""End to end, on the copy of the smoke repository (``conftest.py::smoke_build``), beside
``tests/test_pipeline.py``: two queued experiments under `dvc queue start -j 2`, and SIGKILLs in the middle
of two stages followed by `dvc repro` (issue 10)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from smoke import find_rev, run_cmd

pytestmark = pytest.mark.slow  # `make test` runs the slow modules beside the other tests (see Makefile)


def _kill_stage_when(repo: Path, env: dict, cmd: list[str], script: str, pattern: str, tmp_path: Path) -> str:
    """Run ``cmd``; once its log matches ``pattern``, SIGKILL the stage's own process (the python running
    ``script``, and its worker processes; not DVC) and return the log. Fails if the stage ended before the pattern was seen."""
    import re
    import signal
    import time

    import psutil

    log = tmp_path / "killed.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=fh, stderr=subprocess.STDOUT)
        killed = False
        deadline = time.monotonic() + 600
        while proc.poll() is None and time.monotonic() < deadline and not killed:
            if re.search(pattern, log.read_text(errors="replace")):
                for child in psutil.Process(proc.pid).children(recursive=True):
                    try:
                        if any(script in part for part in child.cmdline()):
                            for proc_ in [child] + child.children(recursive=True):  # the stage and its workers
                                proc_.send_signal(signal.SIGKILL)
                            killed = True
                    except psutil.Error:  # a helper process that already ended (zombie) or is gone
                        continue
            time.sleep(0.05)
        proc.wait(timeout=120)
    text = log.read_text(errors="replace")
    assert killed, f"{script} ended before it could be killed:\n{text[-3000:]}"
    assert proc.returncode != 0, "DVC must report the killed stage as failed"
    return text


def test_sigkill_mid_synthesize_and_mid_pretrain_then_repro_finishes(smoke_copy, tmp_path):
    """Issue 10: a kill at any moment loses at most the current epoch and leaves nothing half-written
    that passes for valid; the next `dvc repro` redoes the killed stage (or restores its outputs from DVC's
    run cache, as the settings did not change) and finishes with correct outputs."""
    from cliphand.model.checkpoint import load_checkpoint
    from cliphand.data.preprocess import load_prepared

    repo, env, _, params = smoke_copy
    n_synth = sum(int(params["synth"][k]) for k in ("n_train", "n_val", "n_test"))
    _kill_stage_when(repo, env, ["dvc", "repro", "-f", "-s", "synthesize"], "stages/synthesize.py",
                     rf"synthesize:.*\| *([1-9]|[1-8]\d)/{n_synth} ", tmp_path)
    _kill_stage_when(repo, env, ["dvc", "repro", "-f", "-s", "pretrain"], "stages/pretrain.py",
                     r"pretrain 1/\d+:.*\| *1/\d+ ", tmp_path)
    assert not (repo / "data/models/pretrain.pt").exists()       # DVC removed it; no partial file took its place
    out = run_cmd(["dvc", "repro"], repo, env)
    for stage in ("synthesize", "pretrain"):  # redone, or restored from DVC's run cache of the earlier run
        assert f"Running stage '{stage}'" in out or f"Stage '{stage}' is cached" in out, out
    model, ckpt = load_checkpoint(repo / "data/models/pretrain.pt")
    assert ckpt["meta"]["phase"] == "pretrain" and len(ckpt["meta"]["history"]) == params["pretrain"]["epochs"]
    assert not list((repo / "data/models").glob("*.resume.pt"))  # removed after the final checkpoint
    assert load_prepared(repo / "data/prep/train")["images"].shape[0] == params["synth"]["n_train"]
    status = run_cmd(["dvc", "status"], repo, env)
    assert "changed" not in status and "modified" not in status, status


def _snapshot(repo: Path) -> dict[str, str]:
    """sha256 of every workspace file a queued experiment must not touch (data/, params.yaml, dvc.lock,
    reports/)."""
    import hashlib

    out = {}
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo).as_posix()
        if path.is_file() and (rel.startswith(("data/", "reports/")) or rel in ("params.yaml", "dvc.lock")):
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _start_queue_and_wait(repo: Path, env: dict, jobs: int, log: Path, timeout: float = 900) -> None:
    """`dvc queue start -j <jobs>` in ``repo``, then wait until the `dvc exp queue-worker` processes it spawned
    have ended (DVC's workers exit 10 s after the queue is empty). Its output goes to ``log``, not to a pipe: the
    workers run detached but inherit its output, so with a pipe the call would itself last until they end. A
    process scan takes milliseconds, where each `dvc queue status` costs over a CPU second the runs need."""
    import time

    import psutil

    def workers() -> list:
        found = []
        for proc in psutil.process_iter(["cmdline", "cwd"]):
            cmd, cwd = proc.info["cmdline"] or [], proc.info["cwd"]
            if "queue-worker" in cmd and cwd and Path(cwd) == repo:
                found.append(proc)
        return found

    with open(log, "w") as fh:
        proc = subprocess.run(["dvc", "queue", "start", "-j", str(jobs)], cwd=repo, env=env, stdout=fh,
                              stderr=subprocess.STDOUT, timeout=300)
    assert proc.returncode == 0, log.read_text()[-3000:]
    start = time.monotonic()
    while not workers():                           # spawned detached: give them a moment to appear
        if time.monotonic() - start > 30:
            return                                 # none came (or all ended already): the status check tells
        time.sleep(0.2)
    while workers():
        assert time.monotonic() - start < timeout, f"queued experiments still running after {timeout} s"
        time.sleep(2)


def test_queued_experiments_run_in_parallel_on_their_own_params(smoke_copy, tmp_path):
    """Issue 10: two queued experiments under `dvc queue start -j 2` each train with their own -S value, show
    their own params and metrics, land in MLflow under their names, and leave the workspace byte-identical.
    (Only the finetune stage is reproduced, to keep the suite short; the whole pipeline queues the same way.)
    q12 also trains data-parallel: its pretrain and finetune stages relaunch themselves under torchrun with 2
    gloo processes, and rank 0 alone writes the metrics and the MLflow run."""
    repo, env, _, _ = smoke_copy
    before = _snapshot(repo)
    for bs, procs in ((4, 1), (12, 2)):
        run_cmd(["dvc", "exp", "run", "--queue", "finetune", "-S", f"clip.batch_size={bs}",
                 "-S", f"distributed.nproc_per_node={procs}", "-n", f"q{bs}"], repo, env)
    _start_queue_and_wait(repo, env, 2, tmp_path / "queue-start.log")
    status = run_cmd(["dvc", "queue", "status"], repo, env)
    assert not any(word in status for word in ("Queued", "Running", "Failed")), \
        status + run_cmd(["dvc", "queue", "logs", "q4"], repo, env)[-3000:]
    shown = json.loads(run_cmd(["dvc", "exp", "show", "--json"], repo, env))
    metrics = {}
    for bs in (4, 12):
        exp = find_rev(shown, f"q{bs}")
        assert exp is not None, f"q{bs} missing from dvc exp show:\n{status}"
        assert exp["data"]["params"]["params.yaml"]["data"]["clip"]["batch_size"] == bs
        ft = exp["data"]["metrics"]["data/metrics/finetune.json"]["data"]
        metrics[bs] = ft["final_loss_total"]
        assert ft["final_processes"] == (2 if bs == 12 else 1)
        assert exp["data"]["metrics"]["data/metrics/pretrain.json"]["data"]["final_processes"] == (2 if bs == 12 else 1)
    assert metrics[4] != metrics[12]                      # each trained on its own batch size
    assert _snapshot(repo) == before                      # the workspace's files are untouched
    db = sqlite3.connect(repo / "mlflow.db")
    for bs in (4, 12):
        rows = db.execute("select r.status from runs r join tags t on t.run_uuid = r.run_uuid where "
                          "t.key = 'dvc.exp_name' and t.value = ? and r.name = 'finetune'", (f"q{bs}",)).fetchall()
        assert rows == [("FINISHED",)], (bs, rows)
