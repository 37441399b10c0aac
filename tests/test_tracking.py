"""MLflow tracking of a stage: a stage that raises ends its run as FAILED (issue 10)."""

from __future__ import annotations

import pytest


def test_failed_stage_ends_its_run_as_failed(tmp_path, monkeypatch):
    import mlflow

    from cliphand.pipeline import tracking

    monkeypatch.setenv("CLIPHAND_TRACKING", "1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    (tmp_path / "params.yaml").write_text("seed: 0\n")
    with pytest.raises(RuntimeError, match="boom"):
        with tracking.stage_run("pretrain", {"seed": 0}, root=tmp_path) as run:
            run_id = run.run_id
            raise RuntimeError("boom")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert mlflow.get_run(run_id).info.status == "FAILED"
