"""One image -> the model's 3D hand (:mod:`cliphand.predict`): the :class:`Prediction` record (joints, mesh,
hand square, handedness, intrinsics, root depth, in the image's own frame) with its JSON form, and
:func:`predict_image` (hand square, handedness flip, model forward, root depth, lifting to the camera frame).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from cliphand.data.augment import normalise, to_tensor
from cliphand.data.preprocess import crop_to_input
from cliphand.data.readers.sources import mirror_labels
from cliphand.evaluate.test_time import DEFAULT_ROTATIONS_DEG, rotated_passes
from cliphand.hand.geometry import project, uvd_to_xyz
from cliphand.hand.skeleton import JOINT_NAMES
from cliphand.predict.camera import (BONE_LENGTH_M, PAD, default_intrinsics, solve_root_depth, square_box,
                                     whole_image_box)

_UNITS = {
    "joints_cam_m": "metres, camera frame (x right, y down, z forward)",
    "joints_root_relative_m": "metres, camera-frame axes, joint minus the wrist (joint 0)",
    "joints_uv_px": "pixels of the input image, continuous (pixel i spans [i, i+1))",
    "box": "pixels of the input image: x0, y0 (top-left corner) and side of the square crop",
    "intrinsics": "3x3 pinhole matrix of the input image, pixels",
    "root_depth_m": "metres, z of the wrist",
    "detection": "MediaPipe's handedness label (selfie convention) and score, its 21 landmarks uv_px in pixels",
    "mesh": "mesh file vertices: metres, camera frame (y down); faces 1-based (OBJ) / 0-based (PLY), "
            "counter-clockwise seen from outside",
}


def _signed_faces(faces: np.ndarray, mirrored: bool) -> np.ndarray:
    faces = np.asarray(faces, np.int64)
    return faces[:, [0, 2, 1]] if mirrored else faces


@dataclass
class Prediction:
    """The model's hand in one image, in the image's own frame (:mod:`cliphand.predict`).

    Attributes:
        image_size: (W, H) pixels.
        box: (x0, y0, side) pixels of the square crop in the image.
        hand_source: ``"box"`` | ``"mediapipe"`` | ``"whole_image"`` | ``"whole_image (no detection)"``.
        handedness: ``"left"`` | ``"right"``; handedness_source ``"user"`` | ``"mediapipe"`` | ``"default"``.
        mirrored: True when the crop was flipped for the (right-hand) model.
        K: (3, 3) intrinsics of the image, pixels; intrinsics_source how they were obtained.
        K_crop: (3, 3) intrinsics of the (unflipped) S x S model input crop, pixels.
        root_depth_m: z of the predicted wrist (joint 0), metres; root_depth_source: how
            :func:`~cliphand.predict.camera.solve_root_depth` fixed it; bone_length_m: its assumed wrist -> middle-MCP
            length, metres.
        joints_cam: (21, 3) metres camera frame; verts_cam (V, 3) metres; faces (F, 3) int, outward winding.
        joints_uv, verts_uv: (21, 2), (V, 2) pixels of the image (projections with ``K``).
        detection: MediaPipe's ``label`` / ``score`` / ``uv_px`` when it ran and found a hand, else None.
        timings_ms: ``detect``, ``model`` (crop + forward + lifting), milliseconds.
    """

    image_size: tuple[int, int]
    box: tuple[float, float, float]
    hand_source: str
    handedness: str
    handedness_source: str
    mirrored: bool
    K: np.ndarray
    intrinsics_source: str
    K_crop: np.ndarray
    root_depth_m: float
    root_depth_source: str
    bone_length_m: float
    joints_cam: np.ndarray
    verts_cam: np.ndarray
    faces: np.ndarray
    joints_uv: np.ndarray
    verts_uv: np.ndarray
    detection: dict | None = None
    timings_ms: dict = field(default_factory=dict)

    def scaled(self, factor: float, image_size: tuple[int, int]) -> "Prediction":
        """The same prediction for the image resized by ``factor`` (pixels x factor): intrinsics, box and 2D
        points rescale; the camera-frame 3D outputs do not change."""
        if factor == 1.0:
            return self
        S = np.diag([factor, factor, 1.0])
        return Prediction(**{**self.__dict__, "image_size": tuple(int(v) for v in image_size), "K": S @ self.K,
                             "box": tuple(float(v) * factor for v in self.box),
                             "joints_uv": self.joints_uv * factor, "verts_uv": self.verts_uv * factor,
                             "detection": None if self.detection is None else {
                                 **self.detection, "uv_px": (np.asarray(self.detection["uv_px"]) * factor).tolist()}})

    def to_json(self, **extra: Any) -> dict:
        """JSON-ready dict (see ``units`` inside); ``extra`` keys (input file, mesh file, model ...) come first."""
        w, h = self.image_size
        return {
            **extra,
            "image_size": {"width": int(w), "height": int(h)},
            "box": [float(v) for v in self.box],
            "hand_source": self.hand_source,
            "detection": self.detection,
            "handedness": self.handedness,
            "handedness_source": self.handedness_source,
            "mirrored": bool(self.mirrored),
            "intrinsics": np.asarray(self.K, float).tolist(),
            "intrinsics_source": self.intrinsics_source,
            "crop_intrinsics": np.asarray(self.K_crop, float).tolist(),
            "root_depth_m": float(self.root_depth_m),
            "root_depth_source": self.root_depth_source,
            "bone_length_m": float(self.bone_length_m),
            "joint_names": list(JOINT_NAMES),
            "joints_cam_m": np.asarray(self.joints_cam, float).tolist(),
            "joints_root_relative_m": (np.asarray(self.joints_cam, float) - self.joints_cam[0]).tolist(),
            "joints_uv_px": np.asarray(self.joints_uv, float).tolist(),
            "n_vertices": int(len(self.verts_cam)),
            "n_faces": int(len(self.faces)),
            "timings_ms": {k: round(float(v), 3) for k, v in self.timings_ms.items()},
            "units": _UNITS,
        }


def crop_mirrored(image: np.ndarray, K: np.ndarray, square: tuple[float, float, float],
                  input_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The hand square resized to the model input, the image mirrored at its border where the square reaches
    past it (as the training views are, :func:`cliphand.data.augment.warp`), not filled with black.

    Args:
        image: (H, W, 3) uint8 RGB. K: (3, 3) its intrinsics, pixels. square: ``(x0, y0, side)`` pixels of
            ``image``, may reach outside it. input_size: S pixels.
    Returns:
        (crop (S, S, 3) uint8, K' (3, 3)) as :func:`cliphand.data.preprocess.crop_to_input`: ``project(points,
        K')`` gives crop pixels.
    """
    h, w = image.shape[:2]
    x0, y0, side = (float(v) for v in square)
    left, top = max(0, math.ceil(-x0)), max(0, math.ceil(-y0))
    right, bottom = max(0, math.ceil(x0 + side - w)), max(0, math.ceil(y0 + side - h))
    if left or top or right or bottom:  # symmetric = mirrored about the pixel edge, like grid_sample's reflection
        image = np.pad(image, ((top, bottom), (left, right), (0, 0)), mode="symmetric")
        K = np.asarray(K, np.float64) + np.array([[0, 0, left], [0, 0, top], [0, 0, 0]], np.float64)
    return crop_to_input(image, K, None, input_size, box=np.array([x0 + left, y0 + top, side], np.float64))


def predict_image(model: torch.nn.Module, meta: dict, image: np.ndarray, faces: np.ndarray,
                  K: np.ndarray | None = None, box: tuple[float, float, float, float] | None = None,
                  hand: str = "auto", detector: Any = None, selfie: bool = False, pad: float = PAD,
                  bone_length: float = BONE_LENGTH_M, intrinsics_source: str | None = None,
                  rotations: Sequence[float] = DEFAULT_ROTATIONS_DEG) -> Prediction:
    """Predict the 3D hand in one RGB image (:mod:`cliphand.predict`: hand square, handedness, root depth).

    Args:
        model: a :class:`~cliphand.model.cliphand3d.CLIPHand3D` in eval mode (its device is used), or an
            ONNX export behind the same call (:class:`cliphand.bench.export.OnnxModel`, CPU).
        meta: checkpoint meta with ``input_size`` (S pixels) and ``depth_range`` (metres).
        image: (H, W, 3) uint8 RGB.
        faces: (F, 3) mesh faces of the model's template (``ckpt["template"]["faces"]``).
        K: (3, 3) intrinsics of ``image`` in pixels; None for :func:`~cliphand.predict.camera.default_intrinsics`.
        box: the hand's tight box ``(x0, y0, w, h)`` pixels (made square with ``pad``); None to detect.
        hand: ``"left"`` | ``"right"`` | ``"auto"``.
        detector: an object with ``detect(rgb) -> Detection | None``
            (:class:`cliphand.peers.mediapipe_hands.MediaPipeHands`); None to skip detection.
        selfie: read MediaPipe's handedness labels as for a mirrored selfie image.
        pad: square side over the longer side of the tight box. bone_length: metres
            (:func:`~cliphand.predict.camera.solve_root_depth`).
        intrinsics_source: recorded as is (default ``"default"`` when ``K`` is None, else ``"user"``).
        rotations: test-time rotation offsets, degrees from the upright view
            (:func:`cliphand.evaluate.test_time.rotated_passes`); empty: one forward pass.
    Returns:
        :class:`Prediction`.
    Raises:
        ValueError: a non-uint8-RGB image, a bad ``hand`` or ``box``, or a degenerate hand square.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"predict_image needs a uint8 (H, W, 3) RGB image, got {image.dtype} {image.shape}")
    if hand not in ("left", "right", "auto"):
        raise ValueError(f"hand must be 'left', 'right' or 'auto', got {hand!r}")
    height, width = image.shape[:2]
    S, depth_range = int(meta["input_size"]), float(meta["depth_range"])
    if K is None:
        K, src_k = default_intrinsics(width, height), intrinsics_source or "default"
    else:
        K, src_k = np.asarray(K, np.float64), intrinsics_source or "user"
    timings: dict[str, float] = {}

    det, det_info = None, None
    if box is not None:
        square, hand_source = square_box(box, pad), "box"
    else:
        if detector is not None:
            t0 = time.perf_counter()
            det = detector.detect(image)
            timings["detect"] = (time.perf_counter() - t0) * 1000
        if det is not None:
            square, hand_source = det.box(pad), "mediapipe"
            det_info = {"label": det.label, "score": float(det.score), "uv_px": np.asarray(det.uv, float).tolist()}
        else:
            square = whole_image_box(width, height)
            hand_source = "whole_image (no detection)" if detector is not None else "whole_image"

    if hand == "auto":
        if det is not None:
            handedness, hand_from = ("left" if det.is_left(selfie) else "right"), "mediapipe"
        else:
            handedness, hand_from = "right", "default"
    else:
        handedness, hand_from = hand, "user"
    mirrored = handedness == "left"

    t0 = time.perf_counter()
    crop, K_crop = crop_mirrored(image, K, square, S)
    K_in = K_crop
    if mirrored:
        crop = crop[:, ::-1]
        K_in = mirror_labels(K_crop, np.zeros((1, 3)), S)[0]
    dev = next(model.parameters()).device if isinstance(model, torch.nn.Module) else torch.device("cpu")
    with torch.inference_mode():
        x = normalise(to_tensor(np.array(crop[None]))).to(dev)  # a writable copy
        out = rotated_passes(model, x, model(x), rotations)
    uvd = out["uvd"][0].double().cpu().numpy()
    verts_uvd = out["verts"][0].double().cpu().numpy()
    z_root, z_src = solve_root_depth(uvd, K_in, S, depth_range, bone_length)
    zr = np.asarray(z_root, np.float64)
    joints = uvd_to_xyz(uvd, K_in, zr, S, depth_range)
    verts = uvd_to_xyz(verts_uvd, K_in, zr, S, depth_range)
    if mirrored:  # back to the image's frame (x negated; mirror_labels' convention)
        joints[:, 0] *= -1.0
        verts[:, 0] *= -1.0
    timings["model"] = (time.perf_counter() - t0) * 1000
    return Prediction(image_size=(width, height), box=tuple(float(v) for v in square), hand_source=hand_source,
                      handedness=handedness, handedness_source=hand_from, mirrored=mirrored, K=K,
                      intrinsics_source=src_k, K_crop=K_crop, root_depth_m=float(joints[0, 2]), root_depth_source=z_src,
                      bone_length_m=float(bone_length), joints_cam=joints, verts_cam=verts,
                      faces=_signed_faces(faces, mirrored), joints_uv=project(joints, K), verts_uv=project(verts, K),
                      detection=det_info, timings_ms=timings)

