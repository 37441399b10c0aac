"""Camera geometry shared by data preparation, the model's targets and evaluation.

Conventions (used everywhere in cliphand):
- camera frame: x to the right, y down, z forward (away from the camera), metres;
- pinhole intrinsics ``K`` (3x3, pixels): ``u = fx * x / z + cx``, ``v = fy * y / z + cy``;
- the 21 joints in FreiHAND order (wrist; thumb MCP, PIP, DIP, tip; index ...; middle ...; ring ...;
  little ...), joint 0 (the wrist) is the root;
- **uvd** (the lixel targets of the joint regressor, paper eq. 2): ``u = u_px / S``, ``v = v_px / S``
  with ``S`` the square model input size in pixels, and ``d = (z - z_root) / depth_range + 0.5``, so a
  hand within ``depth_range`` metres of its root depth maps into ``[0, 1]``.

Every function accepts NumPy arrays or torch tensors (same type out as in) with any leading batch
dimensions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:  # torch is a dependency, but keep geometry importable for light tools
    import torch
except ImportError:  # pragma: no cover
    torch = None


def _stack(parts: list, like: Any):
    if torch is not None and isinstance(like, torch.Tensor):
        return torch.stack(parts, dim=-1)
    return np.stack(parts, axis=-1)


def project(xyz, K):
    """Project camera-frame points to pixels.

    Args:
        xyz: (..., N, 3) metres, camera frame, z > 0.
        K: (..., 3, 3) intrinsics in pixels.
    Returns:
        (..., N, 2) pixel coordinates (u, v).
    """
    fx, fy = K[..., 0, 0][..., None], K[..., 1, 1][..., None]
    cx, cy = K[..., 0, 2][..., None], K[..., 1, 2][..., None]
    z = xyz[..., 2]
    return _stack([fx * xyz[..., 0] / z + cx, fy * xyz[..., 1] / z + cy], xyz)


def xyz_to_uvd(xyz, K, root_depth, input_size: float, depth_range: float):
    """Camera-frame points to normalised uvd (see module docstring).

    Args:
        xyz: (..., N, 3) metres, camera frame.
        K: (..., 3, 3) intrinsics of the model-input crop, pixels.
        root_depth: (...) depth of the root joint in metres.
        input_size: side of the square model input in pixels.
        depth_range: metres spanned by d in [0, 1].
    Returns:
        (..., N, 3) uvd, dimensionless.
    """
    uv = project(xyz, K) / input_size
    d = (xyz[..., 2] - root_depth[..., None]) / depth_range + 0.5
    return _stack([uv[..., 0], uv[..., 1], d], xyz)


def uvd_to_xyz(uvd, K, root_depth, input_size: float, depth_range: float):
    """Inverse of :func:`xyz_to_uvd` (differentiable for torch tensors).

    Args:
        uvd: (..., N, 3) normalised uvd.
        K: (..., 3, 3) intrinsics of the crop, pixels.
        root_depth: (...) metres.
    Returns:
        (..., N, 3) metres, camera frame.
    """
    fx, fy = K[..., 0, 0][..., None], K[..., 1, 1][..., None]
    cx, cy = K[..., 0, 2][..., None], K[..., 1, 2][..., None]
    z = (uvd[..., 2] - 0.5) * depth_range + root_depth[..., None]
    x = (uvd[..., 0] * input_size - cx) * z / fx
    y = (uvd[..., 1] * input_size - cy) * z / fy
    return _stack([x, y, z], uvd)
