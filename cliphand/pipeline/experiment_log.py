"""``cliphand experiments collect``: the measurements of the recipe search's variants, read from the MLflow
store the stages log to (each DVC experiment's stage runs carry ``dvc.exp_name``); the log's format is
:mod:`cliphand.report.experiment_log`."""

from __future__ import annotations

import subprocess

import yaml

from cliphand.pipeline.tracking import logged_params


def _latest_runs(tracking_uri: str, stage: str) -> dict[str, object]:
    """The latest FINISHED MLflow run of ``stage`` per DVC experiment name."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    exp = client.get_experiment_by_name("cliphand")
    if exp is None:
        return {}
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.mlflow.runName = '{stage}' and "
                              "attributes.status = 'FINISHED'", order_by=["attributes.start_time ASC"],
                              max_results=5000)
    return {r.data.tags.get("dvc.exp_name", ""): r for r in runs}


def unlisted_settings(variant: dict, run_params: dict[str, str], baseline: dict) -> list[str]:
    """The settings a variant's run used beyond its own ``set`` (empty when it ran exactly what it lists).

    Args:
        variant: ``{name, set: ['key=value', ...]}`` (reports/experiments.yaml).
        run_params: the run's logged MLflow params (flattened params.yaml, values as ``str``).
        baseline: params.yaml at the run's baseline git revision (nested).
    Returns:
        ``'key=value'`` of every logged param that differs from ``baseline`` without being in ``set``, and of
        every ``set`` key whose logged value is not the listed one, e.g. ``['loss.lixel=0.3']``.
    """
    listed = dict(item.lstrip("+").split("=", 1) for item in variant.get("set") or [])
    expected = logged_params(baseline) | logged_params({k: yaml.safe_load(v) for k, v in listed.items()})
    return [f"{k}={run_params.get(k)}" for k in sorted(set(expected) | set(run_params))
            if run_params.get(k) != expected.get(k)]


def _params_at(rev: str, cache: dict[str, dict | None]) -> dict | None:
    """params.yaml at git revision ``rev`` of the repository in the working directory (None when git cannot show
    it, e.g. outside that repository or for a revision it does not have)."""
    if rev not in cache:
        proc = subprocess.run(["git", "show", f"{rev}:params.yaml"], capture_output=True, text=True) if rev else None
        cache[rev] = yaml.safe_load(proc.stdout) if proc is not None and proc.returncode == 0 else None
    return cache[rev]


def collect(variants: list[dict], tracking_uri: str) -> list[dict]:
    """One row per variant (:data:`cliphand.report.experiment_log.COLUMNS`) from its latest finished run; variants
    without a run get empty measurement cells. A run that used settings beyond its variant's ``set`` (compared
    with params.yaml at its baseline git revision, :func:`unlisted_settings`) is not counted either: its row
    stays empty and its ``not_counted`` entry names those settings."""
    by_stage = {st: _latest_runs(tracking_uri, st) for st in {v.get("stage", "pretrain") for v in variants}}
    rows, params_cache = [], {}
    for v in variants:
        stage = v.get("stage", "pretrain")
        run = by_stage[stage].get(v["name"])
        not_counted = ""
        if run is not None:
            rev = run.data.tags.get("dvc.baseline_rev") or run.data.tags.get("git.rev", "")
            baseline = _params_at(rev, params_cache)
            extra = unlisted_settings(v, run.data.params, baseline) if baseline is not None else []
            if extra:
                not_counted = f"run {run.info.run_id} differs from params.yaml at {rev[:7]} beyond its set: {' '.join(extra)}"
                run = None
        m = run.data.metrics if run is not None else {}
        tags = run.data.tags if run is not None else {}

        def num(key, scale=1.0, nd=2):
            return "" if key not in m else round(m[key] * scale, nd)

        rows.append({
            "name": v["name"], "stage": stage, "settings": " ".join(v.get("set") or []) or "(baseline)",
            "steps": "" if "total_steps" not in m else int(m["total_steps"]),
            "wall_min": num("wall_s", 1 / 60, 1), "val_pa_mpjpe_mm": num("final_val_pa_mpjpe_mm"),
            "real_dev_pa_mpjpe_mm": num("final_real_dev_pa_mpjpe_mm"), "real_dev_mpjpe_mm": num("final_real_dev_mpjpe_mm"),
            "cpu": f"{tags.get('env.cpu_model', '')} ({tags.get('env.cpu_capability', '')})" if tags else "",
            "kept": v.get("kept", ""), "why": v.get("why", ""),
            "run_id": run.info.run_id if run is not None else "", "git_rev": tags.get("git.rev", "")[:10],
            "not_counted": not_counted,
        })
    return rows
