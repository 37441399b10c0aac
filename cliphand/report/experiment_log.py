"""The recipe-search log, its file format: the variants file and the CSV of their measurements.

The recipe search, in the open: a hand-written list of variants (``reports/experiments.yaml``: name, the
``dvc exp run -S`` settings, kept or not and why) joined with what their runs measured, read from the MLflow
store the stages log to (each DVC experiment's stage runs carry ``dvc.exp_name``; gathered by
:func:`cliphand.pipeline.experiment_log.collect`).

``cliphand experiments commands`` prints the queued ``dvc exp run --queue`` of every variant not yet run, then
``dvc queue start -j 1``: each queued run starts from the committed params.yaml in its own copy of the repository.
(Run one after another in the workspace, ``dvc exp run -S`` leaves each override in params.yaml, so every later
variant would inherit the earlier ones' settings.)
``cliphand experiments collect`` writes ``reports/experiment_log.csv`` (one row per variant, committed, read by
the report): wall minutes, steps, synthetic val and real-dev PA-MPJPE (mm), the machine, kept, why, the MLflow
run id and git revision. Selection uses only the synthetic ``val`` split and the real-photo development subset
(label ids divisible by 4, :data:`cliphand.train.experiment.REAL_DEV_EVERY`); the other real photos are never looked at.
"""

from __future__ import annotations

import csv
import io
import shlex
from pathlib import Path

from cliphand.profiles import get, load_yaml
from cliphand.errors import DataError
from cliphand.io import save_text

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


#: starts the queued variants one at a time (two trainings on one CPU would slow each other and skew wall_min)
QUEUE_START = "dvc queue start -j 1"


#: what :func:`cliphand.profiles.get` returns for a key params.yaml does not list (``None`` is a listed value)
_ABSENT = object()


def command(variant: dict, params: dict | None = None) -> str:
    """The ``dvc exp run --queue`` that queues one variant (its stage and everything upstream), to be run from
    the committed params.yaml plus its own ``set`` only, by :data:`QUEUE_START`.

    A setting that ``params`` (the params.yaml the run starts from) does not list, such as a schema key left at
    its default (``synth.upright_jitter_deg``), gets DVC's ``+key=value`` (Hydra's append): a plain ``-S`` of an
    absent key is refused by DVC ("Key ... is not in struct")."""
    parts = ["dvc", "exp", "run", "--queue", variant.get("stage", "pretrain"), "-n", variant["name"]]
    for s in variant.get("set") or []:
        key = s.split("=", 1)[0]
        add = params is not None and not key.startswith("+") and get(params, key, _ABSENT) is _ABSENT
        parts += ["-S", f"+{s}" if add else s]
    return shlex.join(parts)


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
