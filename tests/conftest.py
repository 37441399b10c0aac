"""Shared test fixtures: the real data beside the repository, a quiet MLflow setting, and the smoke-profile
repository of the end-to-end tests (built once per session, see ``tests/smoke.py``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from filelock import FileLock

from smoke import build, copy_repo, env_for

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

# Library tests do not talk to MLflow; the pipeline smoke test sets its own store.
os.environ.setdefault("CLIPHAND_TRACKING", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

if os.environ.get("CLIPHAND_TEST_THREADS"):  # `make test` runs the unit tests beside the pipeline module
    import torch

    torch.set_num_threads(int(os.environ["CLIPHAND_TEST_THREADS"]))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real photos, the rigged hand, RHD samples); skips nothing: it must exist."""
    assert SHARED.is_dir(), f"{SHARED} is missing: the tests need ../shared/data beside the repository"
    return SHARED


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def smoke_build(tmp_path_factory, repo_root, shared_data) -> tuple[Path, dict, str]:
    """The smoke pipeline, once per test session: `dvc repro` in ``<tmp>/smoke/workspace``, then that repository
    copied to ``<tmp>/smoke/copy`` (git, DVC cache, outputs; without the MLflow store, so the copy's runs go to a
    store of its own) before any test changes it. Under pytest-xdist the first worker to get here builds while
    the other waits on the file lock; if the build fails, the other worker's tests fail at once with its error
    (``smoke-failed.txt``) instead of building again. Returns (``<tmp>/smoke``, the params, the output of `dvc repro`)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent                      # the folder the workers of this session share
    root, done, failed = base / "smoke", base / "smoke" / "built.json", base / "smoke-failed.txt"
    with FileLock(str(base / "smoke.lock")):
        if failed.is_file():                    # the other worker's build failed: do not build it a second time
            pytest.fail(f"the smoke build failed in another worker:\n{failed.read_text()}")
        if not done.is_file():
            try:
                params, out = build(root / "workspace", repo_root, shared_data)
                copy_repo(root / "workspace", root / "copy")
            except BaseException as exc:
                failed.write_text(f"{type(exc).__name__}: {str(exc)[-3000:]}")
                raise
            done.write_text(json.dumps({"params": params, "out": out}))
    built = json.loads(done.read_text())
    return root, built["params"], built["out"]


@pytest.fixture(scope="session")
def smoke_repo(smoke_build):
    """(repository, environment, output of `dvc repro`, params) of the built smoke repository."""
    root, params, out = smoke_build
    return root / "workspace", env_for(root / "workspace"), out, params


@pytest.fixture(scope="session")
def smoke_copy(smoke_build):
    """As :func:`smoke_repo`, for its copy (own MLflow store, empty at first)."""
    root, params, out = smoke_build
    return root / "copy", env_for(root / "copy"), out, params
