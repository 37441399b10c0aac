"""Batch augmentation in torch (vectorised over the batch, no per-sample Python work).

Two views of each training image (paper §3.5, eq. 6):
- view **a**: photometric jitter only. Its 3D pose is the rendered one, so the cached text prompts
  (orders along camera x, y, z) stay valid for it: the CLIP loss always sees view a.
- view **b**: view a rotated in the image plane and scaled about the crop centre (an approximate
  camera roll and zoom), plus its own photometric jitter. Its targets are view a's transformed by the
  same 2x3 affine; the consistency loss ties the two predictions.

Affines act on normalised uv (``u = u_px / S``, see :mod:`cliphand.hand.geometry`).

Every random parameter is drawn from the CPU generator ``gen`` (one stream, the same whatever the device); the
image arithmetic runs where the images are, so a CUDA run augments on the GPU instead of starving it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cliphand.config import Augment

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

    def factor(*shape):  # drawn on the CPU generator, applied where the images are
        return (1.0 + strength * (2 * torch.rand(b, *shape, generator=gen) - 1)).to(x.device)

    x = x * factor(1, 1, 1)                                  # brightness
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * factor(1, 1, 1) + mean                  # contrast
    grey = x.mean(dim=1, keepdim=True)
    x = (x - grey) * factor(1, 1, 1) + grey                  # saturation
    x = x * (1.0 + 0.5 * strength * (2 * torch.rand(b, 3, 1, 1, generator=gen) - 1)).to(x.device)  # colour gain
    return x.clamp_(0.0, 1.0)


def amplitude_mix(x: torch.Tensor, gen: torch.Generator, p: float = 0.5, beta: float = 0.1) -> torch.Tensor:
    """Frequency-domain (amplitude-spectrum) augmentation: for a share ``p`` of the images, the low-frequency
    amplitude spectrum is mixed with that of another image of the batch, the phase kept.

    Amplitude carries much of an image's "style" (colour cast, illumination, texture statistics), phase its
    structure (Oppenheim & Lim 1981); swapping or mixing low-frequency amplitudes between images narrows
    the synthetic-to-real gap (FDA, Yang & Soatto, CVPR 2020; amplitude mix, FACT, Xu et al., CVPR 2021).
    Per image: partner j = a random other image, lambda ~ U(0, 1); inside the centred square of side
    ``beta`` x the image side of the shifted spectrum, ``|X| <- (1 - lambda) |X| + lambda |X_j|``.

    Args:
        x: (B, 3, H, W) in [0, 1]. p: share of images changed. beta: window side as a fraction of H (0-1).
    Returns:
        (B, 3, H, W) in [0, 1] (float32).
    """
    b, _, h, w = x.shape
    if p <= 0 or beta <= 0 or b < 2:
        return x
    pick = torch.rand(b, generator=gen) < p
    partner = (torch.arange(b) + torch.randint(1, b, (b,), generator=gen)) % b
    lam = torch.rand(b, generator=gen) * pick.float()
    spec = torch.fft.fftshift(torch.fft.fft2(x.float()), dim=(-2, -1))
    amp, phase = spec.abs(), spec.angle()
    r = max(1, int(round(beta * min(h, w) / 2)))
    cy, cx = h // 2, w // 2
    win = torch.zeros(h, w)
    win[cy - r:cy + r + 1, cx - r:cx + r + 1] = 1.0
    mix = (lam.view(b, 1, 1, 1) * win).to(x.device)
    amp = amp * (1 - mix) + amp[partner.to(x.device)] * mix
    out = torch.fft.ifft2(torch.fft.ifftshift(torch.polar(amp, phase), dim=(-2, -1))).real
    return out.clamp_(0.0, 1.0)


def centre_affine(angle: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor | None = None):
    """In-plane rotation by ``angle`` (B,) radians and zoom by ``scale`` (B,) about the image centre, then a shift
    ``shift`` (B, 2, 1) of normalised uv (None: no shift).

    Returns:
        theta: (B, 2, 3) for ``F.affine_grid`` (maps view-b normalised coords to view a's);
        A: (B, 2, 3) maps view-a uv to view-b uv: ``uv_b = A[:, :, :2] @ uv_a + A[:, :, 2]``.
    """
    batch = angle.shape[0]
    c, si = torch.cos(angle), torch.sin(angle)
    R = torch.stack([torch.stack([c, -si], -1), torch.stack([si, c], -1)], -2)      # (B, 2, 2)
    t = torch.zeros(batch, 2, 1, dtype=R.dtype) if shift is None else shift
    sR = R * scale[:, None, None]
    centre = torch.full((batch, 2, 1), 0.5, dtype=R.dtype)
    A = torch.cat([sR, centre - sR @ centre + t], dim=2)
    # affine_grid works in [-1, 1] coordinates: a shift t in uv is -2 t R^T / s in view a's grid
    Rs = R.transpose(1, 2) / scale[:, None, None]
    theta = torch.cat([Rs, -Rs @ (2 * t)], dim=2)
    return theta, A


def random_affine(batch: int, gen: torch.Generator, max_rot_deg: float, scale_range: tuple[float, float],
                  shift: float = 0.0):
    """Random in-plane rotation and scale about the image centre, then a shift of up to ``shift`` x the image
    side per axis (:func:`centre_affine`; every draw from ``gen``).

    Returns:
        theta (B, 2, 3) and A (B, 2, 3) as :func:`centre_affine`.
    """
    ang = (2 * torch.rand(batch, generator=gen) - 1) * math.radians(max_rot_deg)
    lo, hi = scale_range
    s = lo + (hi - lo) * torch.rand(batch, generator=gen)
    t = (2 * torch.rand(batch, 2, 1, generator=gen) - 1) * shift        # normalised uv of view b
    return centre_affine(ang, s, t)


def warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample (B, C, H, W) images with ``theta`` from :func:`random_affine`. Outside the crop the image is
    mirrored at its border (no black corners: real crops never have them)."""
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def apply_affine_uvd(uvd: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """Map (B, N, 3) uvd of view a to view b: u, v by the affine ``A`` (B, 2, 3); d unchanged
    (a roll about the optical axis and a zoom keep root-relative depth)."""
    uv = uvd[..., :2] @ A[:, :, :2].transpose(1, 2) + A[:, None, :, 2]
    return torch.cat([uv, uvd[..., 2:]], dim=-1)


def invert_affine_uvd(uvd: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`apply_affine_uvd`: (B, N, 3) uvd of view b back to view a (d unchanged)."""
    inv = torch.linalg.inv(A[:, :, :2]).transpose(1, 2)
    uv = (uvd[..., :2] - A[:, None, :, 2]) @ inv
    return torch.cat([uv, uvd[..., 2:]], dim=-1)


def style(x: torch.Tensor, gen: torch.Generator, aug: Augment) -> torch.Tensor:
    """The appearance part of a training view: :func:`amplitude_mix` (``aug.amplitude_mix`` share,
    ``aug.amplitude_beta`` window) then :func:`photometric` (``aug.photometric``). (B, 3, H, W) in [0, 1]."""
    x = amplitude_mix(x, gen, aug.amplitude_mix, aug.amplitude_beta)
    return photometric(x, gen, aug.photometric)


def geometric_view(x: torch.Tensor, gen: torch.Generator, aug: Augment) -> tuple[torch.Tensor, torch.Tensor]:
    """The geometric part of a training view: :func:`random_affine` with ``aug.rotation_deg``, ``aug.scale`` and
    ``aug.shift``, applied by :func:`warp`.

    Returns:
        (warped images (B, 3, H, W), A (B, 2, 3) mapping the input's normalised uv to the view's).
    """
    theta, A = random_affine(x.shape[0], gen, aug.rotation_deg, tuple(aug.scale), aug.shift)
    return warp(x, theta), A
