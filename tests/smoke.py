"""The smoke-profile repository of the end-to-end tests (``tests/test_pipeline.py``,
``tests/test_queue_and_kills.py``; the fixtures that build it once per session are in ``conftest.py``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from cliphand.profiles import deep_merge, load_yaml

BIN = Path(sys.executable).parent


def find_rev(node, name: str):
    """The revision entry named ``name`` in ``dvc exp show --json`` output (with its params/metrics)."""
    if isinstance(node, dict):
        if node.get("name") == name and isinstance(node.get("data"), dict):
            return node
        node = list(node.values())
    if isinstance(node, list):
        for child in node:
            found = find_rev(child, name)
            if found is not None:
                return found
    return None


def run_cmd(cmd: list[str], cwd: Path, env: dict) -> str:
    """Run ``cmd`` in ``cwd``; its stdout + stderr. Fails the test, with the output's end, on a non-zero exit."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-6000:]}"
    return out


# inputs of the report stage kept in git beside its outputs (the recipe search's log, written by a command)
KEPT = ("reports/experiment_log.csv", "reports/experiments.yaml")


def env_for(repo: Path) -> dict:
    """The environment of every command in ``repo``: this venv first on PATH, MLflow on (its own store)."""
    return {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "CLIPHAND_TRACKING": "1",
            "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}", "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def build(dst: Path, repo_root: Path, shared_data: Path) -> tuple[dict, str]:
    """The tracked files copied to ``dst`` with the smoke profile's params.yaml, committed, and `dvc repro`."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=repo_root,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, files):
        if rel.startswith(("data/", "reports/", "dvc.lock")) and rel not in KEPT:  # the last run's results stay behind
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
    env = env_for(dst)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "smoke"]):
        run_cmd(cmd, dst, env)
    return params, run_cmd(["dvc", "repro"], dst, env)


def copy_repo(src: Path, dst: Path) -> None:
    """``src`` copied to ``dst`` (git, DVC cache and outputs, modification times kept) without its MLflow store
    (``mlflow.db``, ``mlartifacts/``: the copy's runs go to a store of its own, whose artifact folder is the copy's)
    and without DVC's temporary folder ``.dvc/tmp`` (locks, queue state)."""
    def left_behind(folder: str, names: list[str]) -> list[str]:
        here = Path(folder)
        if here == src:
            return [n for n in names if n in ("mlflow.db", "mlartifacts")]
        return ["tmp"] if here == src / ".dvc" and "tmp" in names else []

    shutil.copytree(src, dst, symlinks=True, ignore=left_behind)
