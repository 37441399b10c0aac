"""What every DVC stage entry point shares: settings, the MLflow run, wall time, metrics file.

Usage in ``stages/<name>.py``::

    with stage_context("pretrain") as st:
        ...                                  # call the library with st.params, st.path(...)
        st.finish({"val_mpjpe_mm": 12.3})    # writes data/metrics/pretrain.json with wall_s
"""

from __future__ import annotations

import contextlib
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from . import distributed, tracking
from .config import load_params, repo_root, resolve_path
from .io import save_json
from .settings import validate


@dataclass
class StageContext:
    """Settings and handles of one stage execution (in a data-parallel stage, of one of its processes:
    ``main`` is False on every rank but 0, whose ``run`` logs nothing and whose :meth:`finish` writes nothing)."""

    name: str
    root: Path
    params: dict
    run: tracking.Run
    main: bool = True
    t0: float = field(default_factory=time.perf_counter)

    def path(self, rel: str | Path) -> Path:
        """A path from params or a literal, relative to the repository root."""
        return resolve_path(rel, self.root)

    def finish(self, metrics: dict[str, Any] | None = None, metrics_path: str | Path | None = None) -> dict:
        """Add ``wall_s`` and the machine (``env``: CPU model, vector capability, torch threads) to ``metrics``,
        write them (default ``data/metrics/<stage>.json``), log them to MLflow and return them."""
        metrics = dict(metrics or {})
        if not self.main:
            return metrics
        metrics["wall_s"] = round(time.perf_counter() - self.t0, 2)
        env = environment()
        metrics["env"] = {k: env[k] for k in ("cpu_model", "cpu_capability", "cpu_threads", "device")}
        self.run.set_tags({f"env.{k}": v for k, v in metrics["env"].items()})
        path = self.path(metrics_path or f"data/metrics/{self.name.replace('@', '_')}.json")
        save_json(path, metrics)
        self.run.log_metrics(metrics)
        self.run.log_artifact(path)
        return metrics


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, str]:
    """Device, CPU model and vector capability, Python and key package versions (for the report and MLflow
    tags): timings differ about 3x between the 2-core AVX-512 and AVX2 machines, so every timing names them."""
    import numpy
    import torch

    env = {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
           "numpy": numpy.__version__, "cpu_threads": str(torch.get_num_threads()), "cpu_model": cpu_model(),
           "cpu_capability": torch.backends.cpu.get_cpu_capability(),
           "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()})"}
    for mod in ("torchvision", "mlflow", "dvc", "scipy"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - optional in some environments
            pass
    return env


@contextlib.contextmanager
def stage_context(name: str, parent: str | None = None, data_parallel: bool = False) -> Iterator[StageContext]:
    """Check params.yaml against its schema (:func:`cliphand.settings.validate`; DataError naming the key,
    the value and what is allowed, before any work), then open the stage's MLflow run (named ``name``,
    grouped under ``parent`` if given).

    With ``data_parallel`` (pretrain, finetune) and ``distributed.nproc_per_node x nnodes`` > 1, the stage's
    script runs again under ``torchrun`` (:func:`cliphand.distributed.relaunch`) and this process exits with
    its status; in each process torchrun starts, the process group is joined here and only rank 0 opens
    the MLflow run and writes the metrics file.
    """
    root = repo_root()
    params = load_params(root / "params.yaml")
    validate(params, str(root / "params.yaml"))
    world = distributed.World()
    if data_parallel:
        cfg = params["distributed"]
        status = distributed.relaunch(sys.argv[0], cfg)
        if status is not None:
            raise SystemExit(status)
        world = distributed.setup(cfg["backend"], params.get("device", "cpu"))
    try:
        if world.main:
            with tracking.stage_run(name, params, parent=parent, root=root) as run:
                yield StageContext(name=name, root=root, params=params, run=run)
        else:
            yield StageContext(name=name, root=root, params=params, run=tracking.Run(), main=False)
    finally:
        distributed.teardown()  # a no-op unless this process joined a process group
