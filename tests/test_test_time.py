"""Test-time rotation (cliphand/evaluate/test_time.py): the upright angle, the inverse of the view affine, and the
whole round trip through real image warps with a model that sees exactly where two blobs are."""

import math

import numpy as np
import pytest
import torch

from cliphand.data.augment import apply_affine_uvd, centre_affine, invert_affine_uvd
from cliphand.evaluate.test_time import (DEFAULT_ROTATIONS_DEG, check_rotations, rotated_passes,
                                         upright_rotation_deg)

S = 64


def _hand(wrist_uv, mcp_uv, n=1):
    """(n, 21, 3) uvd with the wrist (joint 0) and the middle MCP (joint 9) at the given uv, the rest at the wrist."""
    uvd = torch.zeros(n, 21, 3)
    uvd[:, :, :2] = torch.tensor(wrist_uv, dtype=torch.float32)
    uvd[:, 9, :2] = torch.tensor(mcp_uv, dtype=torch.float32)
    uvd[:, :, 2] = torch.linspace(0.2, 0.8, 21)
    return uvd


@pytest.mark.parametrize("bone", [(0.3, 0.0), (-0.2, 0.1), (0.0, 0.25), (0.1, -0.3), (-0.05, -0.2)])
def test_upright_angle_turns_the_bone_up(bone):
    uvd = _hand((0.5, 0.5), (0.5 + bone[0], 0.5 + bone[1]))
    ang = upright_rotation_deg(uvd)
    _, A = centre_affine(torch.deg2rad(ang.double()), torch.ones(1, dtype=torch.float64))
    turned = apply_affine_uvd(uvd.double(), A)
    b = turned[0, 9, :2] - turned[0, 0, :2]
    assert b[0].item() == pytest.approx(0.0, abs=1e-6) and b[1].item() < 0   # along -v: up in the image
    assert b.norm().item() == pytest.approx(math.hypot(*bone), rel=1e-6)


def test_invert_affine_undoes_the_view_and_keeps_depth():
    ang, s = torch.tensor([0.3, -1.2]), torch.tensor([1.1, 0.9])
    _, A = centre_affine(ang, s, torch.tensor([[[0.02], [-0.03]], [[0.0], [0.01]]]))
    uvd = torch.rand(2, 21, 3)
    back = invert_affine_uvd(apply_affine_uvd(uvd, A), A)
    torch.testing.assert_close(back, uvd, atol=1e-6, rtol=0)


def _blobs(centres: np.ndarray) -> torch.Tensor:
    """(B, 3, S, S) images: a Gaussian blob in channel 0 at the wrist and one in channel 1 at the middle MCP
    (``centres`` (B, 2, 2) normalised uv)."""
    grid = (torch.arange(S, dtype=torch.float32) + 0.5) / S
    v, u = torch.meshgrid(grid, grid, indexing="ij")
    img = torch.zeros(len(centres), 3, S, S)
    for i, pair in enumerate(centres):
        for ch, (cu, cv) in enumerate(pair):
            img[i, ch] = torch.exp(-((u - cu) ** 2 + (v - cv) ** 2) / (2 * 0.03 ** 2))
    return img


def _blob_model(images: torch.Tensor) -> dict:
    """A 'model' that finds the two blobs (intensity-weighted centroid): exactly rotation-equivariant up to
    resampling, so a correct round trip gives the blobs' true positions back."""
    grid = (torch.arange(S, dtype=torch.float32) + 0.5) / S
    w = images[:, :2].clamp(min=0) ** 4
    w = w / w.sum(dim=(2, 3), keepdim=True)
    u = (w * grid[None, None, None, :]).sum(dim=(2, 3))
    v = (w * grid[None, None, :, None]).sum(dim=(2, 3))
    uv = torch.stack([u, v], -1)                                 # (B, 2 blobs, 2)
    uvd = torch.zeros(images.shape[0], 21, 3)
    uvd[:, :, :2] = uv[:, :1]
    uvd[:, 9, :2] = uv[:, 1]
    uvd[:, :, 2] = 0.5
    return {"uvd": uvd, "verts": uvd[:, :5].clone()}


def test_round_trip_through_warped_views_lands_on_the_true_positions():
    centres = np.array([[[0.5, 0.62], [0.68, 0.45]], [[0.45, 0.5], [0.30, 0.62]], [[0.55, 0.40], [0.5, 0.58]]])
    images = _blobs(centres)
    first = _blob_model(images)
    # a first pass that is off by a constant: every averaged view must still agree with the truth
    out = rotated_passes(_blob_model, images, first, [-15.0, 0.0, 15.0])
    assert out["uvd"].shape == (3, 21, 3) and out["verts"].shape == (3, 5, 3)
    truth = torch.tensor(centres, dtype=torch.float32)
    torch.testing.assert_close(out["uvd"][:, [0, 9], :2], truth, atol=3e-3, rtol=0)    # < 0.2 px at 64 px
    torch.testing.assert_close(out["uvd"][:, :, 2], torch.full((3, 21), 0.5))             # depth untouched


def test_views_are_turned_upright_before_the_model_sees_them():
    centres = np.array([[[0.5, 0.5], [0.7, 0.5]]])          # the bone points right (+u)
    seen = []

    def spy(images):
        out = _blob_model(images)
        seen.append(out["uvd"][:, [0, 9], :2])
        return out

    images = _blobs(centres)
    rotated_passes(spy, images, _blob_model(images), [0.0])
    bone = seen[0][0, 1] - seen[0][0, 0]
    assert bone[0].abs().item() < 0.01 and bone[1].item() < -0.15   # the model saw it pointing up


def test_no_offsets_is_one_pass_and_other_keys_pass_through():
    first = {"uvd": torch.rand(2, 21, 3), "pose_emb": torch.rand(2, 3, 8)}
    assert rotated_passes(None, torch.zeros(2, 3, S, S), first, []) is first
    out = rotated_passes(lambda x: {"uvd": torch.rand(x.shape[0], 21, 3)}, torch.zeros(2, 3, S, S), first, [0.0])
    assert out["pose_emb"] is first["pose_emb"] and "verts" not in out
    with pytest.raises(ValueError, match="needs the first pass's 'uvd'"):
        rotated_passes(None, torch.zeros(1, 3, S, S), {"verts": torch.zeros(1, 5, 3)}, [0.0])


def test_check_rotations_names_the_setting():
    assert DEFAULT_ROTATIONS_DEG == (0.0,)
    assert check_rotations([0, -10]) == [0.0, -10.0]
    for bad in ([91.0], [float("nan")], [0.0] * 9):
        with pytest.raises(ValueError, match=r"rotations = .*\[-90, 90\]"):
            check_rotations(bad)
