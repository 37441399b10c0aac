"""Shared test fixtures: the real data beside the repository and a quiet MLflow setting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
