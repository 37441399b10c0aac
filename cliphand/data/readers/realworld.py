"""Loader of the Ge et al. (CVPR 2019) real-world hand test set (folder format in its README).

Folder: ``params.mat`` (cam_param (583,4) fx, fy, u0, v0 of the 1280x720 frame; bbox (583,4) x, y, w, h
of the square crop; pose_root (583,3) cm; image_path), ``pose_gt.mat`` (pose_gt (583,21,3) cm, camera
frame, FreiHAND joint order) and ``images/NNNNN.jpg`` (256x256 crops; only some are present).

Returned samples: only those whose image exists; joints in metres; intrinsics of the 256x256 crop
(README): with r = 256 / w, ``fx' = fx r, fy' = fy r, u0' = (u0 - x) r, v0' = (v0 - y) r``. The hands are
left hands; ``mirror=True`` (default, cliphand uses right hands everywhere) flips the image
horizontally, negates x and sets ``u0' <- 256 - u0'`` (continuous pixel coordinates, pixel i spans [i, i+1)),
so the projection of the mirrored joints is ``256 - u`` of the original.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
from tqdm import tqdm

from cliphand.errors import DataError
from cliphand.data.readers.freihand import check_hand_joints
from cliphand.data.readers.sources import ImageFiles, mirror_labels
from cliphand.hand.geometry import project

N_LABELS = 583
CROP = 256


def _loadmat(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"{path}: file is missing")
    try:
        return scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises ValueError, MatReadError, OSError ... on corrupt files
        raise DataError(f"{path}: cannot read MATLAB file ({exc})") from exc


def _field(mat: dict, key: str, shape: tuple, path: Path) -> np.ndarray:
    if key not in mat:
        raise DataError(f"{path}: variable '{key}' is missing")
    arr = np.asarray(mat[key])
    if arr.shape != shape:
        raise DataError(f"{path}: '{key}' has shape {arr.shape}, expected {shape}")
    if arr.dtype.kind not in "fiu":
        raise DataError(f"{path}: '{key}' has dtype {arr.dtype}, expected numbers")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{path}: '{key}' holds non-finite values")
    return arr


def crop_intrinsics(cam_param: np.ndarray, bbox: np.ndarray, size: int = CROP) -> np.ndarray:
    """Intrinsics of the square crops (README): (n,4) fx, fy, u0, v0 and (n,4) x, y, w, h -> (n,3,3) pixels."""
    cam_param = np.asarray(cam_param, np.float64)
    bbox = np.asarray(bbox, np.float64)
    r = size / bbox[:, 2]
    K = np.zeros((len(r), 3, 3))
    K[:, 0, 0] = cam_param[:, 0] * r
    K[:, 1, 1] = cam_param[:, 1] * r
    K[:, 0, 2] = (cam_param[:, 2] - bbox[:, 0]) * r
    K[:, 1, 2] = (cam_param[:, 3] - bbox[:, 1]) * r
    K[:, 2, 2] = 1.0
    return K


def projection_inside_fraction(joints: np.ndarray, K: np.ndarray, size: int = CROP) -> float:
    """Fraction of samples whose 21 joints all project inside the ``size`` x ``size`` crop.

    Args: joints (n,21,3) metres camera frame, K (n,3,3) crop intrinsics. Returns: fraction in [0,1].
    """
    uv = project(np.asarray(joints, np.float64), np.asarray(K, np.float64))
    inside = (uv >= 0).all(-1) & (uv <= size).all(-1) & (np.asarray(joints)[..., 2] > 0)
    return float(inside.all(-1).mean())


def load_realworld(root: str | Path, mirror: bool = True, load_images: bool = True,
                   min_inside: float = 0.9) -> dict[str, np.ndarray]:
    """Load and validate the real-world test set.

    Args:
        root: folder with params.mat, pose_gt.mat and images/.
        mirror: convert the left hands to right hands (flip image, negate x, u0' <- 256 - u0').
        load_images: decode the JPEGs (otherwise only their presence is checked).
        min_inside: minimum fraction of samples whose GT joints project inside the crop.
    Returns:
        dict with ``images`` uint8 (n,256,256,3) (only with load_images), ``K`` float32 (n,3,3) crop
        intrinsics in pixels, ``joints`` float32 (n,21,3) metres camera frame, ``ids`` int64 (n,) label
        indices (0..582), ``paths`` (n,) str image paths; n = number of images present.
    Raises:
        DataError: a missing file, unreadable .mat or image, a wrong shape, implausible units
            (bone lengths not in cm), pose_root != joint 0, a non-square bbox, no images at all, or too
            few projections inside the crop; the message names the file.
    """
    root = Path(root)
    params_path, pose_path, img_dir = root / "params.mat", root / "pose_gt.mat", root / "images"
    params, pose = _loadmat(params_path), _loadmat(pose_path)
    pose_gt = _field(pose, "pose_gt", (N_LABELS, 21, 3), pose_path)
    if pose_gt.dtype.kind != "f":
        raise DataError(f"{pose_path}: 'pose_gt' has dtype {pose_gt.dtype}, expected float")
    cam = _field(params, "cam_param", (N_LABELS, 4), params_path).astype(np.float64)
    bbox = _field(params, "bbox", (N_LABELS, 4), params_path).astype(np.float64)
    pose_root = _field(params, "pose_root", (N_LABELS, 3), params_path)
    if "image_path" not in params:
        raise DataError(f"{params_path}: variable 'image_path' is missing")
    image_path = [str(p).strip() for p in np.asarray(params["image_path"]).reshape(-1)]
    if len(image_path) != N_LABELS:
        raise DataError(f"{params_path}: 'image_path' has {len(image_path)} entries, expected {N_LABELS}")

    check_hand_joints(pose_gt.astype(np.float64) / 100.0, pose_path, unit="centimetres")  # cm -> m
    if not np.allclose(pose_root, pose_gt[:, 0], atol=1e-3):
        raise DataError(f"{params_path}: 'pose_root' differs from joint 0 of {pose_path.name}")
    if np.any(bbox[:, 2] <= 0) or not np.array_equal(bbox[:, 2], bbox[:, 3]):
        raise DataError(f"{params_path}: 'bbox' must hold square crops with w = h > 0")
    if np.any(cam[:, :2] <= 0):
        raise DataError(f"{params_path}: 'cam_param' has non-positive focal lengths")

    if not img_dir.is_dir():
        raise DataError(f"{img_dir}: image folder is missing")
    ids = np.array([i for i, p in enumerate(image_path) if (root / p).is_file()], dtype=np.int64)
    if len(ids) == 0:
        raise DataError(f"{img_dir}: none of the {N_LABELS} labelled images is present")

    joints = pose_gt[ids].astype(np.float64) / 100.0  # cm -> m
    K = crop_intrinsics(cam[ids], bbox[ids])
    frac = projection_inside_fraction(joints, K)
    if frac < min_inside:
        raise DataError(f"{root}: only {frac:.1%} of samples project inside the {CROP}x{CROP} crop "
                        f"(expected >= {min_inside:.0%}); intrinsics or labels are wrong")

    out: dict[str, np.ndarray] = {"ids": ids, "paths": np.array([image_path[i] for i in ids])}
    if load_images:
        files = ImageFiles([root / image_path[i] for i in ids], flip=np.full(len(ids), mirror), size=(CROP, CROP))
        images = np.stack([files[n] for n in tqdm(range(len(files)), desc="realworld images", leave=False)])
        out["images"] = images
    if mirror:
        K, joints = mirror_labels(K, joints, CROP)
    out["K"] = K.astype(np.float32)
    out["joints"] = joints.astype(np.float32)
    return out
