"""Where things are: the repository root of this run and the pipeline's data paths.

Every ``data/...`` path the DVC stages read or write is named here once; ``dvc.yaml`` lists the same paths
(``tests/test_paths.py`` checks the two agree). The stages pass these paths to the library, which takes
its inputs and outputs as arguments and hard-codes none.
"""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The repository root of this run: the folder holding ``params.yaml`` found upwards from the current
    directory, else the current directory.

    Never ``$DVC_ROOT``: queued and ``--temp`` experiments run in a copy under ``.dvc/tmp/exps/...`` while
    DVC still points ``DVC_ROOT`` at the main repository; resolving params or data from it would make a
    queued run ignore its ``-S`` values and write into the main workspace. ``DVC_ROOT`` only locates the
    shared tracking store (:func:`cliphand.pipeline.tracking.tracking_uri`)."""
    here = Path.cwd().resolve()
    for p in (here, *here.parents):
        if (p / "params.yaml").exists():
            return p
    return here


def resolve_path(path: str | os.PathLike, root: Path | None = None) -> Path:
    """A path from params: absolute as is, relative to the repository root otherwise."""
    p = Path(path)
    return p if p.is_absolute() else (root or repo_root()) / p
