"""Test-time rotation (ours; not in the paper or the authors' code): after the usual forward pass, the crop is
turned in the image plane so that the predicted hand points up (the wrist → middle-MCP bone along −v, the way
most training renders and real photos show it), run again, and the prediction of that view, turned back, is
averaged with the first one. MediaPipe Hands crops the hand the same way (a rotated region of interest from its
palm detector); here the first pass plays the detector.

The views are offsets from the upright angle (``evaluate.test_rotations_deg``, default ``[0]``: the upright view
alone, two forward passes in all); each costs one forward pass; ``[]`` is the paper's single pass.
Selected on the synthetic val split and the 100-photo development subset of the real photos (README, "Test-time
rotation"); the other real photos were not looked at.

Geometry: an in-plane rotation of the crop about its centre is a roll of the camera about its optical axis, which
keeps every joint's depth, so a view's uvd turns back by the inverse 2D affine with d unchanged
(:func:`cliphand.data.augment.invert_affine_uvd`). Pixels the turned crop needs from outside the original crop
are mirrored at its border, as in training (:func:`cliphand.data.augment.warp`).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from cliphand.config import Evaluate
from cliphand.data.augment import centre_affine, invert_affine_uvd, warp

#: the default offsets (``evaluate.test_rotations_deg``'s schema default): the upright view alone
DEFAULT_ROTATIONS_DEG: tuple[float, ...] = tuple(Evaluate.model_fields["test_rotations_deg"].default)

#: the bone whose direction defines "up": wrist (0) → middle-finger MCP (9), FreiHAND joint order
UPRIGHT_BONE = (0, 9)
#: the outputs that are positions in the crop (normalised uvd) and are averaged over the views
POSITION_KEYS = ("uvd", "verts")


def upright_rotation_deg(uvd: torch.Tensor) -> torch.Tensor:
    """The in-plane rotation that turns each hand upright.

    Args:
        uvd: (B, 21, 3) normalised uvd (u right, v down, in [0, 1] over the crop).
    Returns:
        (B,) degrees in (-180, 180]: the ``angle`` of :func:`cliphand.data.augment.centre_affine` (about the crop
        centre) that maps the wrist → middle-MCP direction onto −v (up in the image).
    """
    a, b = UPRIGHT_BONE
    bone = uvd[:, b, :2].float() - uvd[:, a, :2].float()
    return -torch.rad2deg(torch.atan2(bone[:, 0], -bone[:, 1]))


def rotated_passes(forward: Callable[[torch.Tensor], dict], images: torch.Tensor, first: dict,
                   offsets_deg: Sequence[float]) -> dict:
    """Average the first pass with passes on upright-turned crops (module docstring).

    Args:
        forward: images (B, 3, S, S) normalised → dict with ``uvd`` (B, 21, 3) and optionally ``verts``
            (B, V, 3), normalised uvd: the PyTorch model, its ``pose_features`` or an ONNX export
            (:class:`cliphand.bench.export.OnnxModel`).
        images: (B, 3, S, S) the normalised crops of ``first``.
        first: ``forward``'s output on ``images`` (other keys, such as the CLIP embeddings, are kept as they are).
        offsets_deg: the extra views, degrees from the upright angle; empty: ``first`` unchanged.
    Returns:
        ``first`` with ``uvd`` (and ``verts``, where present) replaced by the mean over the
        ``1 + len(offsets_deg)`` views, in float32, in the input crop's frame.
    Raises:
        ValueError: ``first`` has no ``uvd``.
    """
    if not len(offsets_deg):
        return first
    if "uvd" not in first:
        raise ValueError("rotated_passes needs the first pass's 'uvd'")
    keys = [k for k in POSITION_KEYS if k in first]
    sums = {k: first[k].float().clone() for k in keys}
    base = upright_rotation_deg(first["uvd"]).cpu().double()
    ones = torch.ones_like(base)
    for off in offsets_deg:
        theta, A = centre_affine(torch.deg2rad(base + float(off)), ones)
        out = forward(warp(images, theta.float()))
        for k in keys:
            sums[k] += invert_affine_uvd(out[k].float(), A.float().to(out[k].device))
    n = 1 + len(offsets_deg)
    return {**first, **{k: v / n for k, v in sums.items()}}


def check_rotations(offsets_deg: Sequence[float], name: str = "rotations") -> list[float]:
    """``offsets_deg`` checked against the settings' schema (:data:`cliphand.config.types.TestRotations`: at most 8
    finite offsets in [-90, 90] degrees).

    Raises:
        ValueError: naming ``name``, the value and what is allowed.
    """
    from pydantic import TypeAdapter, ValidationError

    from cliphand.config.types import TestRotations

    try:
        return TypeAdapter(TestRotations).validate_python(list(offsets_deg))
    except ValidationError as exc:
        raise ValueError(f"{name} = {list(offsets_deg)}: at most 8 test-time rotation offsets, each a finite "
                         f"number of degrees in [-90, 90] ({exc.errors()[0]['msg']})") from None
