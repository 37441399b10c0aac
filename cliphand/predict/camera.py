"""The camera side of ``cliphand predict`` (:mod:`cliphand.predict`): pinhole intrinsics of an image (default or
from a JSON file), the square hand crop ``(x0, y0, side)`` in pixels (from a tight box or the whole image), and
the absolute root depth from root-relative uvd and an assumed bone length (:func:`solve_root_depth`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cliphand.errors import DataError

#: side of the hand square = PAD x the longer side of the hand's tight 2D box (the training crop rule)
PAD = 1.3
#: assumed wrist -> middle-finger MCP length (joints 0 -> 9), metres
BONE_LENGTH_M = 0.095
#: the bone whose length fixes the root depth (FreiHAND joint indices: wrist, middle MCP)
ROOT_BONE = (0, 9)
#: last-resort root depth (metres) when the bone is degenerate in the image
FALLBACK_DEPTH_M = 0.5


def default_intrinsics(width: int, height: int, focal: float | None = None,
                       principal: tuple[float, float] | None = None) -> np.ndarray:
    """Pinhole intrinsics of a ``width`` x ``height`` image.

    Args:
        focal: fx = fy in pixels (default ``max(width, height)``).
        principal: (cx, cy) pixels (default the image centre ``(width / 2, height / 2)``).
    Returns:
        (3, 3) float64 pixels.
    Raises:
        ValueError: non-positive or non-finite focal length.
    """
    f = float(max(width, height)) if focal is None else float(focal)
    if not (np.isfinite(f) and f > 0):
        raise ValueError(f"focal length must be a positive number of pixels, got {focal}")
    cx, cy = (width / 2.0, height / 2.0) if principal is None else (float(principal[0]), float(principal[1]))
    return np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])


def read_intrinsics(path: str | Path) -> np.ndarray:
    """A 3x3 intrinsics matrix (pixels) from JSON: a 3x3 list, or an object with key ``K`` holding one.

    Raises:
        DataError: missing file, invalid JSON, wrong shape, non-finite values or non-positive focal lengths;
        the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: intrinsics file not found")
    try:
        obj = json.loads(path.read_text())
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc
    if isinstance(obj, dict):
        obj = obj.get("K")
    try:
        K = np.asarray(obj, np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: intrinsics must be a 3x3 list of numbers ({exc})") from exc
    if K.shape != (3, 3) or not np.all(np.isfinite(K)):
        raise DataError(f"{path}: intrinsics must be a finite 3x3 list of numbers (or {{\"K\": ...}}), "
                        f"got shape {K.shape}")
    if not (K[0, 0] > 0 and K[1, 1] > 0) or not np.allclose(K[2], [0, 0, 1]):
        raise DataError(f"{path}: not a pinhole matrix: need fx, fy > 0 and last row 0, 0, 1, got {K.tolist()}")
    return K


def square_box(box: tuple[float, float, float, float], pad: float = PAD) -> tuple[float, float, float]:
    """Tight hand box ``(x0, y0, w, h)`` pixels -> square ``(x0, y0, side)`` with side = ``pad`` x max(w, h),
    same centre. Raises: ValueError when w or h is not positive."""
    x0, y0, w, h = (float(v) for v in box)
    if not (w > 0 and h > 0) or not np.all(np.isfinite([x0, y0, w, h])):
        raise ValueError(f"box x0,y0,w,h needs finite values and w, h > 0, got {box}")
    side = pad * max(w, h)
    cx, cy = x0 + w / 2, y0 + h / 2
    return cx - side / 2, cy - side / 2, side


def whole_image_box(width: int, height: int) -> tuple[float, float, float]:
    """The square of the image's longer side centred on the image, ``(x0, y0, side)`` pixels (no pad)."""
    side = float(max(width, height))
    return (width - side) / 2, (height - side) / 2, side


def solve_root_depth(uvd: np.ndarray, K: np.ndarray, input_size: int, depth_range: float,
                     bone_length: float = BONE_LENGTH_M, bone: tuple[int, int] = ROOT_BONE) -> tuple[float, str]:
    """Absolute root depth from root-relative uvd and a known bone length.

    With rays ``r_i = ((u_i - cx) / fx, (v_i - cy) / fy, 1)`` (``u_i = S * uvd_u`` crop pixels) and depths
    ``z_i = z_r + dz_i`` (``dz_i = (d_i - 0.5) * depth_range``), the bone ``p_j - p_i = (r_j - r_i) z_r +
    (r_j dz_j - r_i dz_i) = a z_r + b`` has length ``bone_length`` when ``|a|^2 z_r^2 + 2 a.b z_r + |b|^2 -
    L^2 = 0``. The largest positive root is taken. Without one (a depth offset longer than the bone, or a
    degenerate bone), the fallback ``z_r = L / |(r_j - r_i)_xy|`` (``f L / pixel length``, depth offsets
    ignored) is used, and :data:`FALLBACK_DEPTH_M` when the bone has no length in the image.

    Args:
        uvd: (21, 3) normalised uvd (:mod:`cliphand.hand.geometry`).
        K: (3, 3) intrinsics of the crop the uvd refer to, pixels.
        input_size: S, crop side in pixels. depth_range: metres spanned by d in [0, 1].
        bone_length: L, metres. bone: joint indices (i, j), default wrist -> middle MCP.
    Returns:
        (z_r metres: the depth that ``d = 0.5`` stands for, i.e. the wrist's depth up to the model's own ``dz``
        of the wrist, for :func:`cliphand.hand.geometry.uvd_to_xyz`; source): source is ``"bone length"``,
        ``"fallback: f * bone / pixel length"`` or ``"fallback: fixed"``.
    """
    uvd = np.asarray(uvd, np.float64)
    K = np.asarray(K, np.float64)
    i, j = bone
    uv = uvd[:, :2] * input_size
    rays = np.stack([(uv[:, 0] - K[0, 2]) / K[0, 0], (uv[:, 1] - K[1, 2]) / K[1, 1], np.ones(len(uv))], -1)
    dz = (uvd[:, 2] - 0.5) * depth_range
    a = rays[j] - rays[i]
    b = rays[j] * dz[j] - rays[i] * dz[i]
    qa, qb, qc = a @ a, 2 * (a @ b), b @ b - bone_length ** 2
    disc = qb * qb - 4 * qa * qc
    if qa > 1e-12 and disc >= 0:
        roots = ((-qb + np.sqrt(disc)) / (2 * qa), (-qb - np.sqrt(disc)) / (2 * qa))
        positive = [r for r in roots if r > 0]
        if positive:
            return float(max(positive)), "bone length"
    sep = float(np.hypot(a[0], a[1]))
    if sep > 1e-9:
        return bone_length / sep, "fallback: f * bone / pixel length"
    return FALLBACK_DEPTH_M, "fallback: fixed"

