"""Reader of the Rendered Hand pose Dataset (RHD, Zimmermann & Brox, ICCV 2017) in its original release
layout (``RHD_published_v2``), and the BiHand scoring convention used for RHD and STB.

Layout::

    <root>/training/anno_training.pickle      dict: sample id -> {'xyz': (42,3) metres, camera frame,
    <root>/evaluation/anno_evaluation.pickle          'uv_vis': (42,3) u, v pixels + visible 0/1,
                                                      'K': (3,3) pixels}; keypoints 0-20: left hand,
                                                      21-41: right hand
    <root>/{training,evaluation}/color/%05d.png      320x320 RGB, named by the sample id
    <root>/{training,evaluation}/mask/%05d.png       segmentation (only for ``side_rule='mask'``)

41,258 training and 2,728 evaluation samples in the real release (counts are read, not hard-coded).
The pickles were written by Python 2 and are read with :class:`cliphand.io.ArrayUnpickler` (``encoding="latin1"``),
which builds arrays and containers only: a tampered pickle cannot run code.

Conventions:

- One hand per sample. ``side_rule='visible'`` (default): the hand with more visible keypoints
  (``uv_vis[:, 2]``); a tie goes to the right hand. ``side_rule='mask'``: the hand with more pixels in
  the segmentation mask (left-hand labels 2-17, right-hand labels 18-33; ties to the right), which is
  what BiHand (lixiny/bihand, ``bihand/datasets/rhd.py``) and Zimmermann's hand3d actually do; it
  decodes every mask once at load time (slow on the full training set: ~1 min).
- Joint order: RHD stores the wrist, then each finger from the **tip** to the base (thumb, index,
  middle, ring, little); :data:`RHD_TO_FREIHAND` maps it to FreiHAND order (``freihand = rhd[map]``).
- Left hands are mirrored to right hands (:func:`cliphand.data.readers.sources.mirror_labels`): image flipped,
  x negated, ``u0' = 320 - u0``, so projections become ``320 - u``.
- Boxes: None (crop around the ground-truth 2D joints, the BiHand convention for RHD).
- Protocol ``bihand`` (scored by :func:`cliphand.evaluate.metrics.evaluate`, keys ``bihand_*``; NOTES §4): root-relative prediction scaled by the GT reference
  bone (wrist -> middle MCP, BiHand's ``joint_bone``), GT root added, no Procrustes; AUC of PCK over
  20-50 mm with 20 thresholds and mean PJPE (mm) over all 21 joints, as BiHand's ``testing/test_bihand.py``
  (``EvalUtil.get_measures(20, 50, 20)``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from PIL import Image

from cliphand.data.readers.freihand import check_hand_joints
from cliphand.data.readers.sources import HandSamples, ImageFiles, mirror_labels
from cliphand.errors import DataError
from cliphand.io import ArrayUnpickler
from cliphand.hand.geometry import project

IMAGE_SIZE = 320
# freihand_joints = rhd_joints[RHD_TO_FREIHAND] (RHD runs tip -> base per finger; an involution).
RHD_TO_FREIHAND = np.array([0, 4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9, 16, 15, 14, 13, 20, 19, 18, 17])
SPLITS = {"training": "training", "train": "training", "evaluation": "evaluation", "test": "evaluation"}
SIDE_RULES = ("visible", "mask")
# Median reprojection error (px) above which 'uv_vis' and 'xyz'/'K' are taken to disagree.
MAX_REPROJ_PX = 2.0
_IMAGE_NAME = re.compile(r"^\d{5,}\.png$")


def read_annotations(path: str | Path) -> dict[str, np.ndarray]:
    """Read and shape-check an RHD annotation pickle.

    Args:
        path: ``anno_training.pickle`` or ``anno_evaluation.pickle``.
    Returns:
        dict with ``ids`` int64 (m,) sorted sample ids, ``xyz`` (m,42,3) metres, ``uv_vis`` (m,42,3)
        (u, v pixels, visible), ``K`` (m,3,3) pixels; float64, RHD order, left hand first.
    Raises:
        DataError: missing or unreadable file, not a dict of samples, a missing key, a wrong shape or
            non-finite values; the message names the file (and the sample id).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file is missing")
    try:
        with open(path, "rb") as f:
            raw = ArrayUnpickler(f, encoding="latin1").load()  # written by Python 2; data classes only
    except Exception as exc:  # UnpicklingError, EOFError, ValueError, OSError ...
        raise DataError(f"{path}: cannot read pickle ({exc})") from exc
    if not isinstance(raw, dict) or not raw:
        raise DataError(f"{path}: expected a non-empty dict sample id -> annotation, got {type(raw).__name__}")
    try:
        keys = sorted(raw, key=int)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: sample ids must be integers ({exc})") from exc
    ids = np.array([int(k) for k in keys], dtype=np.int64)
    out: dict[str, np.ndarray] = {"ids": ids}
    for key, shape in (("xyz", (42, 3)), ("uv_vis", (42, 3)), ("K", (3, 3))):
        arr = np.empty((len(keys),) + shape)
        for n, k in enumerate(keys):
            entry = raw[k]
            if not isinstance(entry, dict) or key not in entry:
                raise DataError(f"{path}: sample {k} has no '{key}'")
            try:
                value = np.asarray(entry[key], dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise DataError(f"{path}: sample {k} '{key}' is not numeric ({exc})") from exc
            if value.shape != shape:
                raise DataError(f"{path}: sample {k} '{key}' has shape {value.shape}, expected {shape}")
            arr[n] = value
        if not np.all(np.isfinite(arr)):
            raise DataError(f"{path}: '{key}' holds non-finite values")
        out[key] = arr
    return out


def _mask_right(mask_dir: Path, ids: np.ndarray) -> np.ndarray:
    """BiHand / hand3d rule: True where the right hand covers at least as many mask pixels as the left."""
    right = np.empty(len(ids), bool)
    for n, i in enumerate(ids):
        path = mask_dir / f"{i:05d}.png"
        try:
            with Image.open(path) as im:
                m = np.asarray(im)
        except FileNotFoundError as exc:
            raise DataError(f"{path}: mask file is missing") from exc
        except Exception as exc:
            raise DataError(f"{path}: cannot decode mask ({exc})") from exc
        if m.ndim == 3:
            m = m[..., 0]
        right[n] = np.count_nonzero((m >= 18) & (m <= 33)) >= np.count_nonzero((m >= 2) & (m <= 17))
    return right


def load_rhd(root: str | Path, split: str = "evaluation", side_rule: str = "visible") -> HandSamples:
    """Load one split of RHD as right hands in FreiHAND order (module docstring: conventions).

    Args:
        root: the ``RHD_published_v2`` folder. split: ``training`` | ``evaluation`` (``train`` / ``test``
            are accepted as aliases).
        side_rule: ``visible`` (more visible keypoints, ties -> right) | ``mask`` (BiHand: more mask
            pixels, ties -> right).
    Returns:
        :class:`HandSamples` named ``rhd_{training|evaluation}``: lazy 320x320 images (flipped for
        mirrored left hands), K (n,3,3) pixels, joints (n,21,3) metres camera frame, ids = sample ids,
        boxes None, mirrored (n,) bool, protocol ``bihand``; ``extra``: ``uv`` (n,21,2) pixels of the
        annotated keypoints in the (flipped) image, ``visible`` (n,21) bool, ``side`` (n,) 'left'/'right'
        (the hand in the original image).
    Raises:
        DataError: missing folder, pickle, image or mask; unreadable pickle; wrong shapes; implausible
            units (bone length not in metres), depth <= 0, ``uv_vis`` disagreeing with the projection of
            ``xyz`` by ``K``; a color folder whose image count differs from the annotations; the message
            names the file.
        ValueError: unknown split or side rule.
    """
    if split not in SPLITS:
        raise ValueError(f"load_rhd: split must be one of {sorted(SPLITS)}, got {split!r}")
    if side_rule not in SIDE_RULES:
        raise ValueError(f"load_rhd: side_rule must be one of {SIDE_RULES}, got {side_rule!r}")
    split = SPLITS[split]
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: RHD folder is missing")
    split_dir = root / split
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: RHD split folder is missing")
    anno_path = split_dir / f"anno_{split}.pickle"
    anno = read_annotations(anno_path)
    ids = anno["ids"]

    if side_rule == "mask":
        right = _mask_right(split_dir / "mask", ids)
    else:
        vis = anno["uv_vis"][..., 2]
        right = vis[:, 21:].sum(1) >= vis[:, :21].sum(1)
    sel = np.where(right[:, None], np.arange(21, 42), np.arange(21))[:, RHD_TO_FREIHAND]  # (n, 21)
    rows = np.arange(len(ids))[:, None]
    joints = anno["xyz"][rows, sel]
    uv = anno["uv_vis"][rows, sel, :2]
    visible = anno["uv_vis"][rows, sel, 2] > 0
    K = anno["K"]

    check_hand_joints(joints, anno_path)
    if np.any(K[:, 0, 0] <= 0) or np.any(K[:, 1, 1] <= 0):
        raise DataError(f"{anno_path}: 'K' has non-positive focal lengths")
    err = float(np.median(np.linalg.norm(project(joints, K) - uv, axis=-1)))
    if err > MAX_REPROJ_PX:
        raise DataError(f"{anno_path}: 'uv_vis' differs from the projection of 'xyz' by 'K' by {err:.3g} px "
                        f"(median, expected <= {MAX_REPROJ_PX}): labels or intrinsics are wrong")

    color_dir = split_dir / "color"
    if not color_dir.is_dir():
        raise DataError(f"{color_dir}: image folder is missing")
    names = {name for name in os.listdir(color_dir) if _IMAGE_NAME.match(name)}
    paths = [color_dir / f"{i:05d}.png" for i in ids]
    missing = [p for p in paths if p.name not in names]
    if missing:
        raise DataError(f"{missing[0]}: image file is missing ({len(missing)} of {len(paths)} missing)")
    if len(names) != len(ids):
        raise DataError(f"{color_dir}: holds {len(names)} images but {anno_path.name} annotates {len(ids)}")

    mirrored = ~right
    K_m, joints_m = mirror_labels(K[mirrored], joints[mirrored], IMAGE_SIZE)
    K, joints = K.copy(), joints.copy()
    K[mirrored], joints[mirrored] = K_m, joints_m
    uv = uv.copy()
    uv[mirrored, :, 0] = IMAGE_SIZE - uv[mirrored, :, 0]
    return HandSamples(
        name=f"rhd_{split}", images=ImageFiles(paths, flip=mirrored, size=(IMAGE_SIZE, IMAGE_SIZE)), K=K,
        joints=joints, ids=ids, boxes=None, mirrored=mirrored, protocol="bihand",
        extra={"uv": uv, "visible": visible, "side": np.where(right, "right", "left")})
