"""Batch augmentation in torch (vectorised over the batch, no per-sample Python work).

Two views of each training image (paper §3.5, eq. 6):
- view **a**: photometric jitter only. Its 3D pose is the rendered one, so the cached text prompts
  (orders along camera x, y, z) stay valid for it: the CLIP loss always sees view a.
- view **b**: view a rotated in the image plane and scaled about the crop centre (an approximate
  camera roll and zoom), plus its own photometric jitter. Its targets are view a's transformed by the
  same 2x3 affine; the consistency loss ties the two predictions.

Affines act on normalised uv (``u = u_px / S``, see :mod:`cliphand.geometry`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def to_tensor(images_uint8) -> torch.Tensor:
    """(B, S, S, 3) uint8 array → (B, 3, S, S) float32 in [0, 1]."""
    x = torch.as_tensor(images_uint8)
    return x.permute(0, 3, 1, 2).float().div_(255.0)


def normalise(x: torch.Tensor) -> torch.Tensor:
    """ImageNet mean/std normalisation of (B, 3, H, W) images in [0, 1]."""
    return (x - IMAGENET_MEAN.to(x)) / IMAGENET_STD.to(x)


def photometric(x: torch.Tensor, gen: torch.Generator, strength: float = 0.3) -> torch.Tensor:
    """Random brightness, contrast, saturation and per-channel gain, per sample.

    Args:
        x: (B, 3, H, W) in [0, 1].
        strength: maximum relative change of each factor (0 disables).
    Returns:
        (B, 3, H, W) in [0, 1].
    """
    if strength <= 0:
        return x
    b = x.shape[0]

    def factor(*shape):
        return 1.0 + strength * (2 * torch.rand(b, *shape, generator=gen) - 1)

    x = x * factor(1, 1, 1)                                  # brightness
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * factor(1, 1, 1) + mean                  # contrast
    grey = x.mean(dim=1, keepdim=True)
    x = (x - grey) * factor(1, 1, 1) + grey                  # saturation
    x = x * (1.0 + 0.5 * strength * (2 * torch.rand(b, 3, 1, 1, generator=gen) - 1))  # colour gain
    return x.clamp_(0.0, 1.0)


def random_affine(batch: int, gen: torch.Generator, max_rot_deg: float, scale_range: tuple[float, float]):
    """Random in-plane rotation and scale about the image centre.

    Returns:
        theta: (B, 2, 3) for ``F.affine_grid`` (maps view-b normalised coords to view a's);
        A: (B, 2, 3) maps view-a uv to view-b uv: ``uv_b = A[:, :, :2] @ uv_a + A[:, :, 2]``.
    """
    ang = (2 * torch.rand(batch, generator=gen) - 1) * math.radians(max_rot_deg)
    lo, hi = scale_range
    s = lo + (hi - lo) * torch.rand(batch, generator=gen)
    c, si = torch.cos(ang), torch.sin(ang)
    R = torch.stack([torch.stack([c, -si], -1), torch.stack([si, c], -1)], -2)      # (B, 2, 2)
    theta = torch.cat([R.transpose(1, 2) / s[:, None, None], torch.zeros(batch, 2, 1)], dim=2)
    sR = R * s[:, None, None]
    centre = torch.full((batch, 2, 1), 0.5)
    A = torch.cat([sR, centre - sR @ centre], dim=2)
    return theta, A


def warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample (B, C, H, W) images with ``theta`` from :func:`random_affine` (zeros outside)."""
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def apply_affine_uvd(uvd: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """Map (B, N, 3) uvd of view a to view b: u, v by the affine ``A`` (B, 2, 3); d unchanged
    (a roll about the optical axis and a zoom keep root-relative depth)."""
    uv = uvd[..., :2] @ A[:, :, :2].transpose(1, 2) + A[:, None, :, 2]
    return torch.cat([uv, uvd[..., 2:]], dim=-1)
