"""The template hand mesh file (``template.npz``: the rest-pose mesh with its 21 joints) that the synthesize
stage writes, the preprocess stage copies to ``data/prep/template.npz`` and the model is built on."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cliphand.errors import DataError


def read_template(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a template mesh file (``data/synth/template.npz``, ``data/prep/template.npz``): ``verts`` (V, 3)
    float32 metres, ``joints`` (J, 3) float32 metres, ``faces`` (F, 3) int64.

    Raises: DataError naming the file when it is missing or an array is absent, mis-shaped or not finite.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: template file not found")
    with np.load(path) as z:
        missing = [k for k in ("verts", "joints", "faces") if k not in z]
        if missing:
            raise DataError(f"{path}: template lacks arrays {missing}")
        verts, joints, faces = z["verts"], z["joints"], z["faces"]
    for name, a in (("verts", verts), ("joints", joints), ("faces", faces)):
        if a.ndim != 2 or a.shape[1] != 3:
            raise DataError(f"{path}: {name} must be (n, 3), got {a.shape}")
    if not (np.isfinite(verts).all() and np.isfinite(joints).all()):
        raise DataError(f"{path}: template has non-finite coordinates")
    if faces.size and (faces.min() < 0 or faces.max() >= len(verts)):
        raise DataError(f"{path}: faces index outside 0..{len(verts) - 1}")
    return {"verts": verts.astype(np.float32), "joints": joints.astype(np.float32), "faces": faces.astype(np.int64)}
