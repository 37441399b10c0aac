"""``cliphand experiments collect``: the measurements of the recipe search's variants, read from the MLflow
store the stages log to (each DVC experiment's stage runs carry ``dvc.exp_name``); the log's format is
:mod:`cliphand.report.experiment_log`."""

from __future__ import annotations


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


def collect(variants: list[dict], tracking_uri: str) -> list[dict]:
    """One row per variant (:data:`cliphand.report.experiment_log.COLUMNS`) from its latest finished run; variants without a run get empty
    measurement cells."""
    by_stage = {st: _latest_runs(tracking_uri, st) for st in {v.get("stage", "pretrain") for v in variants}}
    rows = []
    for v in variants:
        stage = v.get("stage", "pretrain")
        run = by_stage[stage].get(v["name"])
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
        })
    return rows
