"""Tests of the batch augmentation (cliphand.data.augment): the affine view maps labels exactly as it maps
pixels, and the amplitude-spectrum mix changes amplitudes only."""

import torch

from cliphand.data.augment import amplitude_mix, apply_affine_uvd, random_affine, warp


def _blobs(points: torch.Tensor, size: int = 128, sigma: float = 0.02) -> torch.Tensor:
    c = (torch.arange(size) + 0.5) / size
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([torch.exp(-((xx - u) ** 2 + (yy - v) ** 2) / (2 * sigma ** 2)) for u, v in points])[:, None]


def test_affine_view_moves_labels_with_pixels():
    gen = torch.Generator().manual_seed(3)
    pts = torch.tensor([[0.3, 0.6], [0.5, 0.5], [0.7, 0.2], [0.4, 0.45]])
    theta, A = random_affine(4, gen, 30.0, (0.8, 1.2), shift=0.1)
    img = warp(_blobs(pts), theta)[:, 0]
    c = (torch.arange(128) + 0.5) / 128
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    centroid = torch.stack([(img * xx).sum((1, 2)), (img * yy).sum((1, 2))], 1) / img.sum((1, 2))[:, None]
    mapped = apply_affine_uvd(torch.cat([pts, torch.zeros(4, 1)], 1)[:, None], A)[:, 0, :2]
    assert (mapped - centroid).abs().max() < 1e-3            # well below one pixel (1/128)
    assert (A[:, :, 2] - 0.5).abs().max() > 0.01              # the shift is there


def test_amplitude_mix_keeps_phase_and_range():
    gen = torch.Generator().manual_seed(0)
    x = 0.45 + 0.1 * torch.rand(6, 3, 32, 32)                 # mid-grey: no clipping
    assert torch.equal(amplitude_mix(x, gen, p=0.0), x)
    y = amplitude_mix(x, gen, p=1.0, beta=0.3)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert not torch.allclose(y, x)
    fx, fy = torch.fft.fft2(x), torch.fft.fft2(y)
    strong = fx.abs() > 1e-3 * fx.abs().amax()
    dphase = torch.angle(fy * fx.conj())[strong]
    assert dphase.abs().max() < 1e-3                          # structure (phase) untouched
