"""The recipe search, in the open: a hand-written list of variants (``reports/experiments.yaml``: name, the
``dvc exp run -S`` settings, kept or not and why) joined with what their runs measured, read from the MLflow
store the stages log to (each DVC experiment's stage runs carry ``dvc.exp_name``).

``cliphand experiments commands`` prints the ``dvc exp run`` command of every variant not yet run;
``cliphand experiments collect`` writes ``reports/experiment_log.csv`` (one row per variant, committed, read by
the report): wall minutes, steps, synthetic val and real-dev PA-MPJPE (mm), the machine, kept, why, the MLflow
run id and git revision. Selection uses only the synthetic ``val`` split and the real-photo development subset
(label ids divisible by 4, :data:`cliphand.experiment.REAL_DEV_EVERY`); the other real photos are never looked at.
"""

from __future__ import annotations

import csv
import io
import shlex
from pathlib import Path

from .config import load_yaml
from .errors import DataError
from .io import save_text

#: columns of the experiment log CSV
COLUMNS = ("name", "stage", "settings", "steps", "wall_min", "val_pa_mpjpe_mm", "real_dev_pa_mpjpe_mm",
           "real_dev_mpjpe_mm", "cpu", "kept", "why", "run_id", "git_rev")


def load_variants(path: str | Path) -> list[dict]:
    """Read the variants file: a mapping ``variants:`` -> list of ``{name, stage, set, kept, why}``.

    Raises:
        DataError: naming the file and the entry, when a name is missing or repeated, a stage is not
            pretrain/finetune, or ``set`` is not a list of ``key=value`` strings.
    """
    data = load_yaml(path)
    items = data.get("variants")
    if not isinstance(items, list) or not items:
        raise DataError(f"{path}: expected a non-empty list under 'variants'")
    seen = set()
    for i, v in enumerate(items):
        name = v.get("name") if isinstance(v, dict) else None
        if not name or name in seen:
            raise DataError(f"{path}: variant {i} has no name or repeats {name!r}")
        seen.add(name)
        if v.get("stage", "pretrain") not in ("pretrain", "finetune"):
            raise DataError(f"{path}: variant {name!r}: stage must be pretrain or finetune, got {v.get('stage')!r}")
        sets = v.get("set") or []
        if not isinstance(sets, list) or not all(isinstance(s, str) and "=" in s for s in sets):
            raise DataError(f"{path}: variant {name!r}: 'set' must be a list of 'key=value' strings")
    return items


def command(variant: dict) -> str:
    """The ``dvc exp run`` that runs one variant (its stage and everything upstream)."""
    parts = ["dvc", "exp", "run", variant.get("stage", "pretrain"), "-n", variant["name"]]
    for s in variant.get("set") or []:
        parts += ["-S", s]
    return shlex.join(parts)


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
    """One row per variant (:data:`COLUMNS`) from its latest finished run; variants without a run get empty
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


def write_csv(rows: list[dict], path: str | Path) -> None:
    """Write the rows as CSV (atomically)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS))
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in COLUMNS})
    save_text(path, buf.getvalue())


def read_csv(path: str | Path) -> list[dict]:
    """Read an experiment log CSV (empty list when the file does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))
