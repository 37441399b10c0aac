"""``cliphand predict``: run a trained CLIP-Hand3D model on one's own images, a folder of images or a video.

Conventions (those of :mod:`cliphand.geometry`): camera frame x right, y down, z forward (metres);
pinhole intrinsics ``K`` in pixels; continuous pixel coordinates (pixel i spans [i, i+1)); the 21 joints in
FreiHAND order (:data:`cliphand.skeleton.JOINT_NAMES`), joint 0 (the wrist) is the root.

Per image:

1. **Intrinsics** ``K`` of the full image: given (``--focal F`` [``--principal cx,cy``] or ``--intrinsics
   K.json``), else the default ``fx = fy = max(W, H)``, principal point ``(W / 2, H / 2)`` (a ~53 degree
   field of view over the longer side; recorded as ``"intrinsics_source": "default"``).
2. **Hand square** ``(x0, y0, side)`` pixels, in this order: the user's tight box ``x0, y0, w, h`` made square
   (side = ``pad`` x max(w, h), same centre); else MediaPipe Hands' landmarks (side = ``pad`` x the longer
   side of their 2D bounding box, centred on it: the training crop rule of
   :func:`cliphand.data.preprocess.crop_to_input`, ``pad`` = 1.3); else the whole image (a square of the
   longer side centred on the image, no pad, zeros outside). When MediaPipe finds no hand, the whole image is
   used and ``"hand_source": "whole_image (no detection)"`` is recorded.
3. **Handedness**: ``left`` | ``right`` | ``auto`` (MediaPipe's label when it found the hand, read with the
   ordinary-photo convention unless ``selfie``: MediaPipe's labels assume a mirrored selfie image; otherwise
   right). The model was trained on right hands, so a left hand's crop is flipped horizontally (and the crop
   intrinsics mirrored, ``cx' = S - cx``, :func:`cliphand.data.sources.mirror_labels`), predicted, and the
   outputs mirrored back (x negated in the camera frame), so every output is in the original image's frame;
   the mesh faces of a mirrored mesh get reversed winding so that their normals still point outwards.
4. **Root depth**: the model predicts uvd relative to the root (``d = (z - z_root) / depth_range + 0.5``), not
   the absolute depth. :func:`solve_root_depth` picks ``z_root`` so that the lifted wrist -> middle-MCP bone
   (joints 0 and 9) has a reference length, by default :data:`BONE_LENGTH_M` = 0.095 m. This is an assumption
   (an adult hand, wrist to middle-finger MCP is about 7-11 cm; the synthetic template hand of this pipeline
   has 0.092 m; Ge et al.'s real-world labels, which fix the middle finger's first bone at 5 cm, have a median
   of 0.081 m), so it is a parameter. Absolute positions (and the hand's size) follow it and the focal length;
   a wrong focal length or bone length moves and scales the hand but the 2D projections stay the model's.
5. **Outputs** in ``out_dir``: ``<stem>.json`` (:meth:`Prediction.to_json`), ``<stem>.obj`` (or ``.ply``),
   the mesh in the camera frame in metres (y down, as everything here: viewers with y up show it upside
   down), and ``<stem>_overlay.png`` (the image, the shaded mesh projected semi-transparently, the 2D skeleton
   coloured per finger, the hand square). Every file is written atomically (temp file, then rename); the JSON
   is written last. For a video ``<out_dir>/<video stem>/frame_NNNNNN.*`` with N the frame index in the video.

Inputs: an image file (:data:`IMAGE_SUFFIXES`, EXIF orientation applied), a folder (its images, sorted by
name, not recursive) or a video (:data:`VIDEO_SUFFIXES`, read with PyAV, ``pip install av`` or ``pip install
'.[video]'``). MediaPipe (``pip install '.[peers]'``) and PyAV are optional: without MediaPipe the hand square
comes from ``box`` or the whole image.

Errors: a single image or video that cannot be read raises :class:`~cliphand.errors.DataError` naming the file
(nothing is written for it). In a folder a bad file is skipped with a warning naming it and listed in the
summary's ``failed``; the other images are still predicted (the CLI then exits with code 1).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageOps
from tqdm import tqdm

from .data.augment import normalise, to_tensor
from .data.preprocess import crop_to_input
from .data.sources import mirror_labels
from .errors import DataError
from .geometry import project, uvd_to_xyz
from .io import atomic_path, save_json, save_text
from .skeleton import BONES, FINGER_COLOURS, JOINT_NAMES

DEFAULT_CHECKPOINT = Path("data/models/finetune.pt")
#: side of the hand square = PAD x the longer side of the hand's tight 2D box (the training crop rule)
PAD = 1.3
#: assumed wrist -> middle-finger MCP length (joints 0 -> 9), metres
BONE_LENGTH_M = 0.095
#: the bone whose length fixes the root depth (FreiHAND joint indices: wrist, middle MCP)
ROOT_BONE = (0, 9)
#: last-resort root depth (metres) when the bone is degenerate in the image
FALLBACK_DEPTH_M = 0.5
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
VIDEO_HINT = "pip install av (or pip install '.[video]')"
#: longest image side read (pixels): larger photos are downscaled on reading (a hand crop is 128 px; their
#: outputs are still given in the file's own pixels)
MAX_SIDE = 4096
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


# ------------------------------------------------------------------------------------------------ geometry
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
        uvd: (21, 3) normalised uvd (:mod:`cliphand.geometry`).
        K: (3, 3) intrinsics of the crop the uvd refer to, pixels.
        input_size: S, crop side in pixels. depth_range: metres spanned by d in [0, 1].
        bone_length: L, metres. bone: joint indices (i, j), default wrist -> middle MCP.
    Returns:
        (z_r metres: the depth that ``d = 0.5`` stands for, i.e. the wrist's depth up to the model's own ``dz``
        of the wrist, for :func:`cliphand.geometry.uvd_to_xyz`; source): source is ``"bone length"``,
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


def _signed_faces(faces: np.ndarray, mirrored: bool) -> np.ndarray:
    faces = np.asarray(faces, np.int64)
    return faces[:, [0, 2, 1]] if mirrored else faces


# ------------------------------------------------------------------------------------------------ prediction
@dataclass
class Prediction:
    """The model's hand in one image, in the image's own frame (module docstring).

    Attributes:
        image_size: (W, H) pixels.
        box: (x0, y0, side) pixels of the square crop in the image.
        hand_source: ``"box"`` | ``"mediapipe"`` | ``"whole_image"`` | ``"whole_image (no detection)"``.
        handedness: ``"left"`` | ``"right"``; handedness_source ``"user"`` | ``"mediapipe"`` | ``"default"``.
        mirrored: True when the crop was flipped for the (right-hand) model.
        K: (3, 3) intrinsics of the image, pixels; intrinsics_source how they were obtained.
        K_crop: (3, 3) intrinsics of the (unflipped) S x S model input crop, pixels.
        root_depth_m: z of the predicted wrist (joint 0), metres; root_depth_source: how :func:`solve_root_depth`
            fixed it; bone_length_m: its assumed wrist -> middle-MCP length, metres.
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


def predict_image(model: torch.nn.Module, meta: dict, image: np.ndarray, faces: np.ndarray,
                  K: np.ndarray | None = None, box: tuple[float, float, float, float] | None = None,
                  hand: str = "auto", detector: Any = None, selfie: bool = False, pad: float = PAD,
                  bone_length: float = BONE_LENGTH_M, intrinsics_source: str | None = None) -> Prediction:
    """Predict the 3D hand in one RGB image (module docstring: hand square, handedness, root depth).

    Args:
        model: a :class:`~cliphand.model.cliphand3d.CLIPHand3D` in eval mode (its device is used), or an
            ONNX export behind the same call (:class:`cliphand.export.OnnxModel`, CPU).
        meta: checkpoint meta with ``input_size`` (S pixels) and ``depth_range`` (metres).
        image: (H, W, 3) uint8 RGB.
        faces: (F, 3) mesh faces of the model's template (``ckpt["template"]["faces"]``).
        K: (3, 3) intrinsics of ``image`` in pixels; None for :func:`default_intrinsics`.
        box: the hand's tight box ``(x0, y0, w, h)`` pixels (made square with ``pad``); None to detect.
        hand: ``"left"`` | ``"right"`` | ``"auto"``.
        detector: an object with ``detect(rgb) -> Detection | None``
            (:class:`cliphand.peers.mediapipe_hands.MediaPipeHands`); None to skip detection.
        selfie: read MediaPipe's handedness labels as for a mirrored selfie image.
        pad: square side over the longer side of the tight box. bone_length: metres (:func:`solve_root_depth`).
        intrinsics_source: recorded as is (default ``"default"`` when ``K`` is None, else ``"user"``).
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
    crop, K_crop = crop_to_input(image, K, None, S, box=np.asarray(square, np.float64))
    K_in = K_crop
    if mirrored:
        crop = crop[:, ::-1]
        K_in = mirror_labels(K_crop, np.zeros((1, 3)), S)[0]
    dev = next(model.parameters()).device if isinstance(model, torch.nn.Module) else torch.device("cpu")
    with torch.inference_mode():
        out = model(normalise(to_tensor(np.array(crop[None]))).to(dev))  # a writable copy
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


# ------------------------------------------------------------------------------------------------ writers
def mesh_text(verts: np.ndarray, faces: np.ndarray, fmt: str = "obj") -> str:
    """A mesh as OBJ (faces 1-based) or ASCII PLY (0-based) text; ``verts`` (V, 3) metres, ``faces`` (F, 3).

    Raises: ValueError on an unknown format."""
    verts = np.asarray(verts, np.float64)
    faces = np.asarray(faces, np.int64)
    if fmt == "obj":
        v_lines = "".join(f"v {x:.7f} {y:.7f} {z:.7f}\n" for x, y, z in verts)
        f_lines = "".join(f"f {a} {b} {c}\n" for a, b, c in faces + 1)
        return "# cliphand predict: camera frame (x right, y down, z forward), metres\n" + v_lines + f_lines
    if fmt == "ply":
        v_lines = "".join(f"{x:.7f} {y:.7f} {z:.7f}\n" for x, y, z in verts)
        f_lines = "".join(f"3 {a} {b} {c}\n" for a, b, c in faces)
        header = ("ply\nformat ascii 1.0\ncomment cliphand predict: camera frame (x right, y down, z forward), "
                  f"metres\nelement vertex {len(verts)}\nproperty float x\nproperty float y\nproperty float z\n"
                  f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n")
        return header + v_lines + f_lines
    raise ValueError(f"mesh format must be 'obj' or 'ply', got {fmt!r}")


def _hex_rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[k:k + 2], 16) for k in (1, 3, 5))


def draw_overlay(image: np.ndarray, pred: Prediction) -> Image.Image:
    """The image with the predicted mesh (flat-shaded, semi-transparent, painter's order), the hand square
    (white) and the 2D skeleton coloured per finger (:data:`cliphand.report.FINGER_COLOURS`). Returns RGB."""
    base = Image.fromarray(np.asarray(image, np.uint8)).convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    v, uv, faces = pred.verts_cam, pred.verts_uv, pred.faces
    if len(faces) and np.all(np.isfinite(uv)):
        tri = v[faces]
        normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        shade = np.abs(normal[:, 2]) / np.maximum(np.linalg.norm(normal, axis=1), 1e-12)
        for k in np.argsort(-tri[:, :, 2].mean(1)):  # far first
            g = int(90 + 150 * shade[k])
            draw.polygon([tuple(p) for p in uv[faces[k]]], fill=(g, g, int(g * 0.85) + 30, 140))
    scale = max(1, round(max(pred.image_size) / 256))
    x0, y0, side = pred.box
    draw.rectangle([x0, y0, x0 + side, y0 + side], outline=(255, 255, 255, 200), width=scale)
    out = Image.alpha_composite(base, layer)
    draw = ImageDraw.Draw(out)
    juv = pred.joints_uv
    if np.all(np.isfinite(juv)):
        for b, (i, j) in enumerate(BONES):
            draw.line([tuple(juv[i]), tuple(juv[j])], fill=_hex_rgb(FINGER_COLOURS[b // 4]) + (255,), width=2 * scale)
        r = 1.5 * scale
        for k, (x, y) in enumerate(juv):
            colour = (255, 255, 255, 255) if k == 0 else _hex_rgb(FINGER_COLOURS[(k - 1) // 4]) + (255,)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour, outline=(0, 0, 0, 255))
    return out.convert("RGB")


def write_prediction(out_dir: str | Path, stem: str, image: np.ndarray, pred: Prediction, mesh_format: str = "obj",
                     file_pred: Prediction | None = None, **extra: Any) -> Path:
    """Write ``<stem>.<mesh_format>``, ``<stem>_overlay.png`` and, last, ``<stem>.json`` into ``out_dir``
    (each atomically, all rendered in memory first, so a failure before writing leaves nothing); ``extra``
    goes into the JSON. The overlay draws ``pred`` on ``image``; the JSON holds ``file_pred`` (the prediction in
    the file's own pixels when the image was downscaled on reading, default ``pred``). Returns the JSON path."""
    out_dir = Path(out_dir)
    mesh_name, overlay_name = f"{stem}.{mesh_format}", f"{stem}_overlay.png"
    text = mesh_text(pred.verts_cam, pred.faces, mesh_format)
    overlay = draw_overlay(image, pred)
    record = (file_pred or pred).to_json(**extra, mesh_file=mesh_name, overlay_file=overlay_name)
    save_text(out_dir / mesh_name, text)
    with atomic_path(out_dir / overlay_name) as tmp:
        overlay.save(tmp, format="PNG", compress_level=1)  # 3x faster than the default, ~7% larger
    path = out_dir / f"{stem}.json"
    save_json(path, record)
    return path


# ------------------------------------------------------------------------------------------------ inputs
def read_image(path: str | Path, max_side: int | None = None) -> tuple[np.ndarray, float]:
    """An image file as (H, W, 3) uint8 RGB (EXIF orientation applied, grey / alpha converted), downscaled so
    that its longer side is at most ``max_side`` pixels (default :data:`MAX_SIDE`).

    A large JPEG is decoded at a reduced size directly (PIL's ``draft``: DCT scaling), so a 100-megapixel photo
    never sits in memory at full size. Images beyond PIL's decompression-bomb limit (about 179 megapixels)
    are refused.

    Returns:
        (image, scale): ``scale`` = output width / file width (1.0 when not downscaled); pixel coordinates of the
        file are ``output pixels / scale``.
    Raises:
        DataError: naming the file when it is missing, empty, truncated, not an image, or too large.
    """
    path = Path(path)
    max_side = MAX_SIDE if max_side is None else int(max_side)
    if not path.is_file():
        raise DataError(f"{path}: image not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: cannot read image (the file is empty)")
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            w0 = im.size[0]
            if max(im.size) > max_side:
                f = max_side / max(im.size)
                if hasattr(im, "draft"):
                    im.draft("RGB", (max(1, int(im.size[0] * f)), max(1, int(im.size[1] * f))))
                im = im.convert("RGB")
                im.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
            else:
                im = im.convert("RGB")
            return np.asarray(im, np.uint8), im.size[0] / w0
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from exc


def _video_frames(path: Path, every: int) -> tuple[Iterator[tuple[int, float | None, np.ndarray]], int | None, Any]:
    """(iterator of (frame index, time in s or None, (H, W, 3) uint8 RGB) for every ``every``-th frame, number of
    frames it will give or None when unknown, the open PyAV container). Raises: DataError (PyAV missing,
    unreadable video; a frame that cannot be decoded raises it from the iterator)."""
    if importlib.util.find_spec("av") is None:
        raise DataError(f"{path}: reading videos needs PyAV, which is not installed: {VIDEO_HINT}")
    import av

    try:
        container = av.open(str(path))
        stream = container.streams.video[0]
    except Exception as exc:  # noqa: BLE001 - PyAV raises FFmpegError subclasses, IndexError (no video stream)
        raise DataError(f"{path}: cannot open video ({exc})") from exc
    total = int(stream.frames) or None
    n_out = None if total is None else (total + every - 1) // every

    def frames():
        index = -1
        decoded = container.decode(stream)
        while True:
            try:
                frame = next(decoded, None)
            except Exception as exc:  # noqa: BLE001 - a corrupt stream part-way (FFmpegError subclasses)
                raise DataError(f"{path}: cannot decode frame {index + 1} ({exc})") from exc
            if frame is None:
                return
            index += 1
            if index % every == 0:
                yield index, (None if frame.time is None else float(frame.time)), frame.to_ndarray(format="rgb24")

    return frames(), n_out, container


def _stems(paths: list[Path]) -> list[str]:
    counts: dict[str, int] = {}
    for p in paths:
        counts[p.stem] = counts.get(p.stem, 0) + 1
    return [p.stem if counts[p.stem] == 1 else p.name.replace(".", "_") for p in paths]


def input_kind(path: str | Path) -> str:
    """``"folder"`` | ``"video"`` | ``"image"`` by type and suffix. Raises: DataError (missing / unsupported)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: input not found")
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    raise DataError(f"{path}: unsupported file type {suffix or '(none)'}: use an image "
                    f"({', '.join(IMAGE_SUFFIXES)}), a folder of them or a video ({', '.join(VIDEO_SUFFIXES)})")


def _open_detector(use_detector: bool | None, video: bool):
    from .peers import mediapipe_hands as mph

    if use_detector is False or (use_detector is None and not mph.available()):
        return None, None
    if not mph.available():
        raise DataError(f"MediaPipe Hands was asked for but is not installed: {mph.INSTALL_HINT}")
    try:
        det = mph.MediaPipeHands(static_image_mode=not video)
    except mph.PeerUnavailable as exc:
        if use_detector:
            raise DataError(str(exc)) from exc
        return None, None
    return det, mph.version()


def run_predict(input_path: str | Path, out_dir: str | Path = "predictions",
                checkpoint: str | Path = DEFAULT_CHECKPOINT, *, device: str = "auto",
                box: tuple[float, float, float, float] | None = None, use_detector: bool | None = None,
                hand: str = "auto", selfie: bool = False, pad: float = PAD, focal: float | None = None,
                principal: tuple[float, float] | None = None, intrinsics: str | Path | None = None,
                bone_length: float = BONE_LENGTH_M, mesh_format: str = "obj", every: int = 1,
                progress: bool = True, warn: Callable[[str], None] | None = None,
                onnx: str | Path | None = None) -> dict:
    """Predict every image of ``input_path`` (an image, a folder of images or a video) into ``out_dir``.

    Args:
        checkpoint: model checkpoint (:func:`cliphand.checkpoint.load_checkpoint`).
        device: ``cpu`` | ``cuda`` | ``auto`` (:func:`cliphand.training.resolve_device`).
        box: the hand's tight box ``(x0, y0, w, h)`` pixels, used for every image.
        use_detector: MediaPipe Hands: None = when installed, True = required, False = off (ignored with ``box``).
        hand, selfie, pad, bone_length: see :func:`predict_image`.
        focal (pixels) and principal ``(cx, cy)``, or ``intrinsics`` (a JSON file, :func:`read_intrinsics`):
            the camera; default :func:`default_intrinsics` per image.
        mesh_format: ``obj`` | ``ply``. every: predict every N-th video frame.
        progress: tqdm bar (folders and videos). warn: called with a message per skipped file (default: stderr).
        onnx: run this export of the checkpoint's model (:func:`cliphand.export.export_onnx`, e.g.
            ``data/bench/default.onnx``) with onnxruntime on the CPU instead of PyTorch; the checkpoint still
            gives the input size, depth range and mesh faces.
    Returns:
        summary dict: ``kind``, ``n`` (images tried), ``n_written``, ``n_failed``, ``failed`` (list of
        ``{"file", "error"}``), ``n_detected`` (MediaPipe found the hand), ``detector``, ``seconds``, mean
        ``ms_per_image`` (all work per written image, files included), ``ms_model``, ``ms_detect``, ``out``.
    Raises:
        DataError: missing input, unsupported type, an empty folder, an unreadable single image or video,
            PyAV missing for a video, a bad checkpoint or intrinsics file.
        ValueError: bad ``box``, ``hand``, ``mesh_format``, ``every``, ``pad``, ``bone_length`` or ``focal``.
        TrainingError: CUDA requested but unavailable.
    """
    from .checkpoint import load_checkpoint
    from .training import resolve_device

    t_start = time.perf_counter()
    input_path, out_dir = Path(input_path), Path(out_dir)
    if mesh_format not in ("obj", "ply"):
        raise ValueError(f"mesh format must be 'obj' or 'ply', got {mesh_format!r}")
    if hand not in ("left", "right", "auto"):
        raise ValueError(f"hand must be 'left', 'right' or 'auto', got {hand!r}")
    if int(every) < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if not (pad > 0 and bone_length > 0):
        raise ValueError(f"pad and bone length must be positive, got pad={pad}, bone_length={bone_length} m")
    if box is not None:
        square_box(box, pad)  # validate early
    warn = warn or (lambda msg: tqdm.write(msg, file=sys.stderr))
    kind = input_kind(input_path)
    if kind == "folder":
        files = sorted(p for p in input_path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{input_path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    K_user, k_src = None, None
    if intrinsics is not None:
        K_user, k_src = read_intrinsics(intrinsics), f"file {intrinsics}"
    if focal is not None:
        default_intrinsics(1, 1, focal)  # validate early
    if kind == "video" and importlib.util.find_spec("av") is None:
        raise DataError(f"{input_path}: reading videos needs PyAV, which is not installed: {VIDEO_HINT}")
    if kind == "image":  # read before anything is loaded or written: a bad file fails fast, nothing is left
        first_image, first_scale = read_image(input_path)
    model, ckpt = load_checkpoint(checkpoint)
    meta, faces = ckpt["meta"], np.asarray(ckpt["template"]["faces"])
    if onnx is not None:
        from .export import OnnxModel

        model, dev = OnnxModel(onnx, int(meta["input_size"]), len(ckpt["template"]["verts"])), torch.device("cpu")
    else:
        dev = resolve_device(device)
        model.to(dev)
    common = {"model": {"checkpoint": str(checkpoint), "input_size": int(meta["input_size"]),
                        "depth_range": float(meta["depth_range"])}}

    def camera(width: int, height: int) -> tuple[np.ndarray, str]:
        if K_user is not None:
            return K_user, k_src
        if focal is None and principal is None:
            return default_intrinsics(width, height), "default"
        parts = [p for p, given in (("--focal", focal), ("--principal", principal)) if given is not None]
        return default_intrinsics(width, height, focal, principal), "user (" + ", ".join(parts) + ")"

    summary = {"input": str(input_path), "kind": kind, "out": str(out_dir), "checkpoint": str(checkpoint),
               "device": str(dev), "runtime": "onnxruntime" if onnx is not None else "pytorch", "n": 0, "n_written": 0, "n_failed": 0, "failed": [], "n_detected": 0}
    ms_total, ms_model, ms_detect = [], [], []
    detector = container = None

    def one(image: np.ndarray, dest: Path, stem: str, scale: float = 1.0, **extra) -> None:
        """Predict and write one image; ``scale`` = its size / the file's (read_image downscaled it)."""
        t0 = time.perf_counter()
        size = (round(image.shape[1] / scale), round(image.shape[0] / scale))
        K, src = camera(*size)                      # the camera and the box are given in the file's pixels
        K = np.diag([scale, scale, 1.0]) @ K
        b = None if box is None else tuple(v * scale for v in box)
        pred = predict_image(model, meta, image, faces, K=K, box=b, hand=hand, detector=detector, selfie=selfie,
                             pad=pad, bone_length=bone_length, intrinsics_source=src)
        if scale != 1.0:
            extra["downscaled"] = {"factor": scale, "read_size": [int(image.shape[1]), int(image.shape[0])],
                                   "max_side": MAX_SIDE}
        write_prediction(dest, stem, image, pred, mesh_format, file_pred=pred.scaled(1.0 / scale, size),
                         **extra, **common)
        summary["n_written"] += 1
        summary["n_detected"] += pred.hand_source == "mediapipe"
        ms_model.append(pred.timings_ms["model"])
        if "detect" in pred.timings_ms:
            ms_detect.append(pred.timings_ms["detect"])
        ms_total.append((time.perf_counter() - t0) * 1000)

    try:
        detector, summary["detector"] = (None, None) if box is not None else _open_detector(use_detector,
                                                                                          kind == "video")
        if kind == "image":
            summary["n"] = 1
            one(first_image, out_dir, input_path.stem, first_scale, input=str(input_path))
        elif kind == "folder":
            for path, stem in tqdm(list(zip(files, _stems(files))), desc="predict", unit="image",
                                   disable=not progress):
                summary["n"] += 1
                try:
                    image, scale = read_image(path)
                    one(image, out_dir, stem, scale, input=str(path))
                except Exception as exc:  # noqa: BLE001 - one bad image never stops a folder
                    msg = str(exc) if isinstance(exc, DataError) else f"{path}: {type(exc).__name__}: {exc}"
                    summary["n_failed"] += 1
                    summary["failed"].append({"file": str(path), "error": msg})
                    warn(f"warning: skipped {msg}")
        else:
            frames, n_frames, container = _video_frames(input_path, int(every))
            dest = out_dir / input_path.stem
            for index, t, image in tqdm(frames, total=n_frames, desc="predict", unit="frame", disable=not progress):
                summary["n"] += 1
                one(image, dest, f"frame_{index:06d}", input=str(input_path), frame_index=index, time_s=t)
            summary["out"] = str(dest)
    finally:
        if detector is not None:
            detector.close()
        if container is not None:
            container.close()

    def mean(xs):
        return round(float(np.mean(xs)), 3) if xs else None

    summary.update(seconds=round(time.perf_counter() - t_start, 3), ms_per_image=mean(ms_total),
                   ms_model=mean(ms_model), ms_detect=mean(ms_detect))
    return summary
