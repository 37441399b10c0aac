"""Reader of the Stereo Hand Pose Tracking Benchmark (STB, Zhang et al., ICIP 2017), its SK (Intel
RealSense F200 colour) subset, in the original release layout, with the conventions of the peers that
report STB numbers (BiHand, lixiny/bihand ``bihand/datasets/stb.py`` + ``bihand/config.py``; the same
constants appear in Ge et al.'s hand_shape_pose STB loader).

Layout::

    <root>/images/B{1..6}{Counting,Random}/SK_color_{i}.png    640x480 RGB, i = 0..1499
    <root>/labels/B{1..6}{Counting,Random}_SK.mat             variable 'handPara' (3, 21, 1500), mm

Splits (the paper's, as BiHand): ``train`` = B2-B6 (10 sequences, 15,000 frames), ``test`` = B1
(B1Counting + B1Random, 3,000 frames); ``all`` = the 12 sequences. The frame count per sequence is read
from the labels (1,500 in the release) and must equal the number of ``SK_color_*.png`` images.

Conventions (constants below; all read in BiHand's loader at commit 1968bf35, and the constants,
the joint-name list and the depth -> colour transform also in Ge et al.'s loader). Not confirmed against
STB's own README (not at hand): the joint order and the left-hand labelling rest on the peers' joint-name
lists; Zimmermann's hand3d ships STB only as a preprocessed binary, so its conversion could not be read.

- ``handPara`` is in millimetres in the frame of the SK *depth* camera. STB gives a rotation vector
  ``SK_ROT_VEC`` and translation ``SK_TRANS_MM`` that map colour-camera coordinates to depth-camera
  coordinates, ``X_d = R X_c + t`` with ``R = Rodrigues(SK_ROT_VEC)``; labels are moved to the colour
  camera by the inverse, ``X_c = R^T (X_d - t)`` (BiHand's ``sk_xyz_depth2color``: ``(X - t) @ R`` with
  ``sk_rot_mx(v)`` = Rodrigues(v), checked numerically).
- Colour intrinsics (pixels): fx = 607.92271, fy = 607.88192, u0 = 314.78337, v0 = 236.42484.
- Joint order of ``handPara``: palm centre, then little, ring, middle, index, thumb, each from the MCP
  to the tip (BiHand's ``stb_joints``); :data:`STB_TO_FREIHAND` maps it to FreiHAND order.
- STB's root is the palm centre; it is replaced by a wrist estimate as BiHand's ``_stb_palm2wrist``
  does: ``wrist = mcp_middle + 2.2 (palm - mcp_middle)`` (``WRIST_FROM_PALM = (9, 2.2)``, FreiHAND
  indices). Ge et al. use the ring MCP and 2.0 instead (``(13, 2.0)``); the 20-50 mm AUC depends on it.
- STB shows the subject's left hand (the peers name the joints ``loc_bn_*_L`` and BiHand flips every
  STB sample for its right-hand model); every sample is mirrored to a right hand
  (:func:`cliphand.data.readers.sources.mirror_labels`: image flipped, x negated, ``u0' = 640 - u0``).
- Boxes: None (crop around the ground-truth 2D joints, BiHand's convention). Protocol ``bihand``
  (scored by :func:`cliphand.evaluate.metrics.evaluate`, keys ``bihand_*``).
- Sample ids: ``10000 * s + i`` with ``s`` the index of the sequence in :data:`SEQUENCES` and ``i`` the
  frame; ``extra`` holds ``sequence`` and ``frame``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.io
from scipy.spatial.transform import Rotation

from cliphand.data.readers.freihand import check_hand_joints
from cliphand.data.readers.sources import HandSamples, ImageFiles, mirror_labels
from cliphand.errors import DataError

__all__ = ["IMAGE_HW", "SEQUENCES", "SK_INTRINSICS", "SK_ROT_VEC", "SK_TRANS_MM", "SPLITS", "STB_TO_FREIHAND",
           "WRIST_FROM_PALM", "depth_to_color", "load_sequence_labels", "load_stb", "palm_to_wrist",
           "sk_intrinsics"]

IMAGE_HW = (480, 640)
SK_INTRINSICS = (607.92271, 607.88192, 314.78337, 236.42484)  # fx, fy, u0, v0 (pixels)
SK_ROT_VEC = (0.00531, -0.01196, 0.00301)  # rad, colour -> depth camera
SK_TRANS_MM = (-24.0381, -0.4563, -1.2326)  # mm, colour -> depth camera
# freihand_joints = stb_joints[STB_TO_FREIHAND]; STB: palm, little, ring, middle, index, thumb (MCP -> tip).
STB_TO_FREIHAND = np.array([0, 17, 18, 19, 20, 13, 14, 15, 16, 9, 10, 11, 12, 5, 6, 7, 8, 1, 2, 3, 4])
WRIST_FROM_PALM = (9, 2.2)  # BiHand: wrist = J[9] + 2.2 (palm - J[9]); Ge et al.: (13, 2.0)
SEQUENCES = tuple(f"B{b}{kind}" for b in range(1, 7) for kind in ("Counting", "Random"))
SPLITS = {
    "train": tuple(s for s in SEQUENCES if not s.startswith("B1")),
    "test": ("B1Counting", "B1Random"),
    "all": SEQUENCES,
}
MAX_FRAMES = 10000  # frames per sequence the id scheme allows


def sk_intrinsics() -> np.ndarray:
    """(3, 3) SK colour-camera intrinsics in pixels (unmirrored 640x480 image)."""
    fx, fy, u0, v0 = SK_INTRINSICS
    return np.array([[fx, 0.0, u0], [0.0, fy, v0], [0.0, 0.0, 1.0]])


def depth_to_color(xyz_mm: np.ndarray) -> np.ndarray:
    """STB label frame (SK depth camera) -> SK colour camera: ``R^T (X - t)``.

    Args:
        xyz_mm: (..., 3) millimetres in the depth-camera frame.
    Returns:
        (..., 3) millimetres in the colour-camera frame.
    """
    R = Rotation.from_rotvec(np.asarray(SK_ROT_VEC, np.float64)).as_matrix()
    return (np.asarray(xyz_mm, np.float64) - np.asarray(SK_TRANS_MM)) @ R


def palm_to_wrist(joints: np.ndarray, rule: tuple[int, float] = WRIST_FROM_PALM) -> np.ndarray:
    """Replace joint 0 (STB's palm centre) by a wrist estimate ``J[k] + f (J[0] - J[k])``.

    Args:
        joints: (n, 21, 3) FreiHAND order, any unit. rule: (k, f), FreiHAND index of the MCP and factor.
    Returns:
        a copy with joint 0 replaced.
    """
    k, f = rule
    out = np.array(joints, np.float64, copy=True)
    out[:, 0] = out[:, k] + f * (out[:, 0] - out[:, k])
    return out


def load_sequence_labels(path: str | Path, wrist_rule: tuple[int, float] = WRIST_FROM_PALM) -> np.ndarray:
    """Read one ``B*_SK.mat`` and convert it (module docstring), without mirroring.

    Returns:
        (N, 21, 3) float64 metres, SK colour-camera frame, FreiHAND order, wrist root, left hand.
    Raises:
        DataError: missing or unreadable file, no ``handPara``, wrong shape, non-finite values, not
            millimetres (bone length), depth <= 0; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file is missing")
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as exc:  # ValueError, MatReadError, OSError ... on corrupt files
        raise DataError(f"{path}: cannot read MATLAB file ({exc})") from exc
    if "handPara" not in mat:
        raise DataError(f"{path}: variable 'handPara' is missing")
    para = np.asarray(mat["handPara"])
    if para.ndim != 3 or para.shape[:2] != (3, 21) or para.shape[2] == 0 or para.dtype.kind not in "fiu":
        raise DataError(f"{path}: 'handPara' has shape {para.shape} ({para.dtype}), expected (3, 21, N) numbers")
    if para.shape[2] > MAX_FRAMES:
        raise DataError(f"{path}: 'handPara' has {para.shape[2]} frames, more than {MAX_FRAMES}")
    if not np.all(np.isfinite(para)):
        raise DataError(f"{path}: 'handPara' holds non-finite values")
    xyz = depth_to_color(para.astype(np.float64).transpose(2, 1, 0))  # (N, 21, 3) mm
    joints = palm_to_wrist(xyz[:, STB_TO_FREIHAND] / 1000.0, wrist_rule)
    check_hand_joints(joints, path, unit="millimetres")
    return joints


def load_stb(root: str | Path, split: str = "test", sequences: Sequence[str] | None = None,
             wrist_rule: tuple[int, float] = WRIST_FROM_PALM) -> HandSamples:
    """Load the STB-SK frames of a split as right hands in FreiHAND order (module docstring).

    Args:
        root: folder with ``images/`` and ``labels/``.
        split: ``train`` (B2-B6) | ``test`` (B1) | ``all``; ignored when ``sequences`` is given.
        sequences: explicit sequence names from :data:`SEQUENCES`.
        wrist_rule: palm -> wrist rule (k, f) of :func:`palm_to_wrist`; default BiHand's.
    Returns:
        :class:`HandSamples` named ``stb_{split}`` (``stb_custom`` with ``sequences``): lazy 640x480
        images (flipped), K (n,3,3) of the mirrored image (pixels), joints (n,21,3) metres, ids
        ``10000 s + i``, boxes None, mirrored all True, protocol ``bihand``; ``extra``: ``sequence``
        (n,) str, ``frame`` (n,) int64.
    Raises:
        DataError: missing folder, label file or image; unreadable .mat; wrong shape; not millimetres;
            a sequence folder whose ``SK_color_*.png`` count differs from its label count; names the file.
        ValueError: unknown split or sequence.
    """
    if sequences is None:
        if split not in SPLITS:
            raise ValueError(f"load_stb: split must be one of {sorted(SPLITS)}, got {split!r}")
        sequences, name = SPLITS[split], f"stb_{split}"
    else:
        sequences, name = tuple(sequences), "stb_custom"
        unknown = [s for s in sequences if s not in SEQUENCES]
        if unknown or not sequences or len(set(sequences)) != len(sequences):
            raise ValueError(f"load_stb: sequences must be distinct names of {SEQUENCES}, got {sequences}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: STB folder is missing")
    all_joints, paths, seq_names, frames, ids = [], [], [], [], []
    for seq in sequences:
        joints = load_sequence_labels(root / "labels" / f"{seq}_SK.mat", wrist_rule)
        n = len(joints)
        img_dir = root / "images" / seq
        if not img_dir.is_dir():
            raise DataError(f"{img_dir}: image folder is missing")
        names = {f for f in os.listdir(img_dir) if re.match(r"^SK_color_\d+\.png$", f)}
        seq_paths = [img_dir / f"SK_color_{i}.png" for i in range(n)]
        missing = [p for p in seq_paths if p.name not in names]
        if missing:
            raise DataError(f"{missing[0]}: image file is missing ({len(missing)} of {n} missing)")
        if len(names) != n:
            raise DataError(f"{img_dir}: holds {len(names)} SK_color images but {seq}_SK.mat labels {n} frames")
        all_joints.append(joints)
        paths += seq_paths
        seq_names += [seq] * n
        frames.append(np.arange(n, dtype=np.int64))
        ids.append(MAX_FRAMES * SEQUENCES.index(seq) + np.arange(n, dtype=np.int64))
    joints = np.concatenate(all_joints)
    K = np.tile(sk_intrinsics(), (len(joints), 1, 1))
    K, joints = mirror_labels(K, joints, IMAGE_HW[1])
    n = len(joints)
    return HandSamples(
        name=name, images=ImageFiles(paths, flip=np.ones(n, bool), size=IMAGE_HW), K=K, joints=joints,
        ids=np.concatenate(ids), boxes=None, mirrored=np.ones(n, bool), protocol="bihand",
        extra={"sequence": np.asarray(seq_names), "frame": np.concatenate(frames)})
