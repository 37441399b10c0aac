"""The machine and code a measurement ran on: CPU model and vector capability, device, package versions and
the git commit. Every timing in the metrics files, MLflow tags and the report names them (timings differ
about 3x between the 2-core AVX-512 and AVX2 machines)."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from cliphand.paths import repo_root


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
    for dist in ("torchvision", "mlflow", "dvc", "scipy"):
        # the installed distribution's version, read without importing it (importing torchvision alone
        # takes about 2 s, a third of a small stage's start-up)
        try:
            env[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:  # optional in some environments
            pass
    return env


def git_revision(root: Path | None = None) -> str:
    """The current git commit of the repository ('unknown' outside git)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root or repo_root(), capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
