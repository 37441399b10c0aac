"""Where the hand sits in a model input: scale and position of the 21 joints' 2D box in the crop.

Used to check that the training distribution (prepared synthetic crops after the on-the-fly augmentation of
:func:`cliphand.data.augment.geometric_view`) covers the crops the model is scored on (the real-world set's
own dataset crops). Coordinates are normalised uv (``u = u_px / S``, :mod:`cliphand.hand.geometry`).
"""

from __future__ import annotations

import numpy as np
import torch

from cliphand.config import Augment
from cliphand.data.augment import apply_affine_uvd, random_affine

#: percentiles reported by :func:`summary`
PERCENTILES = (1, 5, 25, 50, 75, 95, 99)


def box_statistics(uvd: np.ndarray) -> dict[str, np.ndarray]:
    """Per sample: ``side`` = the longer side of the joints' 2D bounding box / crop side, and ``cx``, ``cy`` =
    the box centre's offset from the crop centre / crop side.

    Args:
        uvd: (n, 21, 2 or 3) normalised uv(d) of the joints in the crop.
    Returns:
        dict of (n,) float64 arrays ``side``, ``cx``, ``cy``.
    Raises:
        ValueError: uvd is not (n, 21, >= 2).
    """
    uvd = np.asarray(uvd, np.float64)
    if uvd.ndim != 3 or uvd.shape[1] != 21 or uvd.shape[2] < 2:
        raise ValueError(f"box_statistics: uvd must be (n, 21, 2 or 3), got {uvd.shape}")
    lo, hi = uvd[..., :2].min(1), uvd[..., :2].max(1)
    centre = (lo + hi) / 2 - 0.5
    return {"side": (hi - lo).max(1), "cx": centre[:, 0], "cy": centre[:, 1]}


def augmented_uvd(uvd: np.ndarray, aug: Augment, seed: int = 0, copies: int = 4) -> np.ndarray:
    """The joints as the network sees them in pretraining: ``copies`` draws of the random in-plane rotation,
    scale and shift of ``aug`` (the params.yaml ``augment`` group) applied to each sample's uvd.

    Returns:
        (n * copies, 21, 3) normalised uvd.
    """
    gen = torch.Generator().manual_seed(int(seed))
    x = torch.as_tensor(np.asarray(uvd, np.float32)).repeat(copies, 1, 1)
    _, A = random_affine(len(x), gen, aug.rotation_deg, tuple(aug.scale), aug.shift)
    return apply_affine_uvd(x, A).numpy()


def summary(stats: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Percentiles (:data:`PERCENTILES`) of each statistic: ``{'side': {'p1': ..., 'p50': ...}, ...}``."""
    return {k: {f"p{p}": float(np.percentile(v, p)) for p in PERCENTILES} for k, v in stats.items()}


def coverage(train: dict[str, np.ndarray], test: dict[str, np.ndarray], lo: float = 1, hi: float = 99) -> dict[str, float]:
    """Share of the test samples whose statistic lies inside the training distribution's [lo, hi] percentile
    range, per statistic (1.0 = every test crop looks like some training crop in scale and position)."""
    out = {}
    for k in train:
        a, b = np.percentile(train[k], [lo, hi])
        out[k] = float(np.mean((test[k] >= a) & (test[k] <= b)))
    return out
