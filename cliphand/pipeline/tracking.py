"""MLflow tracking: one run per DVC stage execution.

Store: ``$MLFLOW_TRACKING_URI`` when set, else SQLite at ``<repo>/mlflow.db`` (MLflow 3 refuses a
``./mlruns`` file store by default). ``<repo>`` is ``$DVC_ROOT``, which queued ``dvc exp run`` copies
still point at the main repository, so every run of every experiment lands in one store. Artifacts go
to ``<repo>/mlartifacts`` (an absolute location, so queued copies that are deleted afterwards do not
take them along).

Each run is named after the stage and tagged with the DVC stage (``$DVC_STAGE``), the DVC experiment
name (``$DVC_EXP_NAME``), its baseline revision and the git revision. Tracking can be switched off with
``CLIPHAND_TRACKING=0`` (then every call is a no-op).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator

from cliphand.environment import git_revision
from cliphand.paths import repo_root

from cliphand.profiles import flatten

EXPERIMENT = "cliphand"


def logged_params(params: dict) -> dict[str, str]:
    """params.yaml content as a run logs it: flattened keys (``clip.batch_size``), ``str`` values cut to
    6,000 characters (MLflow's limit on a param value)."""
    return {k: str(v)[:6000] for k, v in flatten(params).items()}


def enabled() -> bool:
    """False when ``CLIPHAND_TRACKING=0``."""
    return os.environ.get("CLIPHAND_TRACKING", "1") != "0"


def store_root(root: Path | None = None) -> Path:
    """Where the shared store lives: ``$DVC_ROOT`` (the main repository, also for queued experiments that
    run in a temporary copy), else ``root``, else :func:`cliphand.paths.repo_root`."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    return Path(root or repo_root()).resolve()


def tracking_uri(root: Path | None = None) -> str:
    """``$MLFLOW_TRACKING_URI`` or ``sqlite:///<main repository>/mlflow.db`` (:func:`store_root`)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{store_root(root) / 'mlflow.db'}"


def _experiment_id(mlflow, root: Path) -> str:
    exp = mlflow.get_experiment_by_name(EXPERIMENT)
    if exp is not None:
        return exp.experiment_id
    try:
        return mlflow.create_experiment(EXPERIMENT, artifact_location=(store_root(root) / "mlartifacts").as_uri())
    except Exception:  # two queued workers may race to create it
        exp = mlflow.get_experiment_by_name(EXPERIMENT)
        if exp is None:
            raise
        return exp.experiment_id


def _tags(stage: str, root: Path) -> dict[str, str]:
    return {
        "dvc.stage": os.environ.get("DVC_STAGE", stage),
        "dvc.exp_name": os.environ.get("DVC_EXP_NAME", "workspace"),
        "dvc.baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", ""),
        "git.rev": git_revision(root),
    }


class Run:
    """Handle given to a stage: log metrics/artifacts to the active MLflow run (no-op when disabled)."""

    def __init__(self, mlflow=None, run_id: str | None = None):
        self._mlflow = mlflow
        self.run_id = run_id

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Log the finite numeric entries of ``metrics`` (names sanitised for MLflow)."""
        if self._mlflow is None:
            return
        clean = {}
        for k, v in flatten(metrics).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf"):
                clean[k.replace("@", "_at_")] = float(v)
        if clean:
            self._mlflow.log_metrics(clean, step=step)

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Copy a file (or folder) into the run's artifacts."""
        if self._mlflow is None or not Path(path).exists():
            return
        if Path(path).is_dir():
            self._mlflow.log_artifacts(str(path), artifact_path)
        else:
            self._mlflow.log_artifact(str(path), artifact_path)

    def set_tags(self, tags: dict[str, str]) -> None:
        if self._mlflow is not None:
            self._mlflow.set_tags(tags)

    def log_model(self, module, example, name: str = "model") -> str | None:
        """Log ``module`` (a torch ``nn.Module`` with one tensor output) as an MLflow model, pytorch flavor,
        with the signature of ``example`` -> its output and ``example`` as the input example, so that
        ``mlflow.pyfunc.load_model(uri).predict(array)`` serves it. Returns the model URI, or None when
        tracking is off."""
        if self._mlflow is None:
            return None
        import mlflow.pytorch
        import numpy as np
        import torch
        from mlflow.models import infer_signature

        example = np.ascontiguousarray(example, dtype=np.float32)
        module.eval()
        with torch.no_grad():
            output = module(torch.as_tensor(example)).numpy()
        # pickle format: the default torch.export ("pt2") format cannot reload this model (a buffer view of
        # the mesh levels fails its storage check in torch 2.14), as the dynamo ONNX exporter fails on it
        info = mlflow.pytorch.log_model(module, name=name, signature=infer_signature(example, output),
                                        input_example=example, serialization_format="pickle",
                                        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "numpy",
                                                          "cliphand"])
        return info.model_uri

    def log_dataset(self, features, source: str | os.PathLike, name: str, context: str = "training") -> None:
        """Record a prepared dataset as an input of the run (MLflow's Dataset column): ``features`` is an
        array that identifies it (its labels; the digest is computed from it), ``source`` its folder."""
        if self._mlflow is None:
            return
        import mlflow.data

        dataset = mlflow.data.from_numpy(features, source=str(source), name=name)
        self._mlflow.log_input(dataset, context=context)


@contextlib.contextmanager
def stage_run(stage: str, params: dict | None = None, parent: str | None = None,
              root: Path | None = None) -> Iterator[Run]:
    """Start an MLflow run named ``stage`` for one stage execution.

    Args:
        stage: run name, e.g. ``'finetune'`` or ``'ablate@bs8'``.
        params: params.yaml content; logged flattened (``clip.batch_size`` ...), with params.yaml as an
            artifact.
        parent: name of a parent run to group under (e.g. ``'ablate'``): found among the runs with the
            same DVC experiment name and git revision, created if absent.
    Yields:
        :class:`Run`.
    """
    if not enabled():
        yield Run()
        return
    import mlflow

    root = root or repo_root()
    mlflow.set_tracking_uri(tracking_uri(root))
    exp_id = _experiment_id(mlflow, root)
    tags = _tags(stage, root)
    if parent is not None:
        parent_id = _find_or_create_parent(mlflow, exp_id, parent, tags)
        tags["mlflow.parentRunId"] = parent_id
    with mlflow.start_run(experiment_id=exp_id, run_name=stage, tags=tags) as active:
        if params:
            items = list(logged_params(params).items())
            for i in range(0, len(items), 100):
                mlflow.log_params(dict(items[i:i + 100]))
            if (root / "params.yaml").exists():
                mlflow.log_artifact(str(root / "params.yaml"))
        yield Run(mlflow, active.info.run_id)


def _find_or_create_parent(mlflow, exp_id: str, name: str, tags: dict[str, str]) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    query = (f"tags.mlflow.runName = '{name}' and tags.`dvc.exp_name` = '{tags['dvc.exp_name']}' "
             f"and tags.`git.rev` = '{tags['git.rev']}'")
    found = client.search_runs([exp_id], filter_string=query, max_results=1, order_by=["attributes.start_time DESC"])
    if found:
        return found[0].info.run_id
    run = client.create_run(exp_id, run_name=name, tags={**tags, "cliphand.group": name})
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def log_trained_model(run: Run, checkpoint: str | os.PathLike, datasets: dict[str, str | os.PathLike],
                      example_set: str) -> str | None:
    """Log a trained checkpoint to ``run`` as an MLflow model and its prepared datasets as run inputs.

    Args:
        run: the stage's :class:`Run` (no-op when tracking is off).
        checkpoint: a file of :func:`cliphand.model.checkpoint.save_checkpoint`.
        datasets: context name (``training``, ``validation``, ...) -> prepared split folder (``data/prep/<x>``);
            each is logged by its joint labels (n, 21, 3), which fix its digest.
        example_set: the key of ``datasets`` whose first crop, normalised, is the model's input example.
    Returns:
        the model URI (``models:/...``), or None when tracking is off.
    The model is :class:`cliphand.bench.export.StackedInference`: ImageNet-normalised crops (B, 3, S, S) float32 ->
    (B, 21 + V, 3) normalised uvd (joints, then vertices).
    """
    if run._mlflow is None:
        return None
    from cliphand.model.checkpoint import load_checkpoint
    from cliphand.data.augment import normalise
    from cliphand.data.loader import PreparedSet
    from cliphand.bench.export import StackedInference

    sets = {context: PreparedSet(path) for context, path in datasets.items()}
    for context, data in sets.items():
        run.log_dataset(data.labels["joints"], data.dir, name=data.dir.name, context=context)
    model, _ = load_checkpoint(checkpoint)
    example = normalise(sets[example_set].batch([0])["image"]).numpy()
    return run.log_model(StackedInference(model), example)
