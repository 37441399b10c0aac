"""Reader of FreiHAND v2 (Zimmermann et al., ICCV 2019) in its original release layout, plus the
prediction file and the scoring protocol of its official ``eval.py`` (lmb-freiburg/freihand).

Layout (``FreiHAND_pub_v2`` and ``FreiHAND_pub_v2_eval`` unpacked into one folder ``root``)::

    training_xyz.json     (N, 21, 3)  metres, camera frame, FreiHAND joint order    N = 32,560
    training_K.json       (N, 3, 3)   intrinsics of the 224x224 crop, pixels
    training_verts.json   (N, 778, 3) MANO vertices, metres, camera frame
    training_mano.json    (N, 1, 61)  MANO pose (48), shape (10), global translation (3)
    training_scale.json   (N,)        metres, the metric length of a reference bone (release README)
    training/rgb/%08d.jpg 4 N images, 224x224: image v*N + i shows label i in colour version
                          v = 0..3 (green screen, homogenized, sample, auto; ``utils/fh_utils.py``)
    evaluation_{xyz,K,verts,scale}.json   (M, ...)  M = 3,960 (evaluation_mano.json where present)
    evaluation/rgb/%08d.jpg               M images, one per label

N and M are read from the files, not hard-coded; every JSON of a split must agree on them, and the rgb
folder must hold exactly 4 N (training) or M (evaluation) ``%08d.jpg`` images.

Conventions:

- joints (FreiHAND order: wrist; thumb MCP, PIP, DIP, tip; index MCP..tip; middle; ring; little) and
  vertices in metres, camera frame; all hands are right hands (nothing is mirrored).
- Crops: FreiHAND images are already hand-centred 224x224 crops and are used whole, so every sample
  gets the box ``[0, 0, 224]`` (x0, y0, side in pixels), as CMR and MobRecon do.
- Splits: ``train`` / ``val`` cut the 32,560 *labels* (not the images): ``val`` holds the last
  ``val_fraction`` of the label ids (or the ids given), with *all* requested colour versions of them,
  and ``train`` the rest, so a hand pose never appears in both. ``evaluation`` is the official test set.
- Sample ids: the image index (``v * N + i`` for training, ``i`` for evaluation); ``extra`` holds
  ``label_ids`` (i) and ``versions`` (v) per sample, and ``mano`` (n, 61) with ``with_mano``.

Large JSON files (training_verts.json is ~76 M numbers) are parsed in chunks by pandas' C number
parser with a check of the nesting (bracket count), which is several times faster and far leaner than
:func:`json.load`; anything unexpected falls back to :func:`json.load` for an exact error message.

Scoring (protocol ``freihand``, by :func:`cliphand.evaluate.metrics.evaluate`; NOTES §4): per-sample similarity (Procrustes with scale) alignment, done
separately for joints and vertices; mean errors; AUC of PCK over ``linspace(0, 0.05, 100)`` m; F@5 mm
and F@15 mm with strict ``<`` on aligned vertices (:mod:`cliphand.evaluate.metrics`).
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from cliphand.data.readers.sources import HandSamples, ImageFiles
from cliphand.errors import DataError
from cliphand.hand.geometry import project
from cliphand.io import atomic_path

IMAGE_SIZE = 224
NUM_VERSIONS = 4
NUM_VERTS = 778
SPLITS = ("train", "val", "evaluation")
# Wrist -> middle MCP of a real adult hand is about 7-11 cm; a broad band catches mm / cm labels.
WRIST_MCP_M = (0.04, 0.16)
# Fraction of samples whose wrist must project inside the 224x224 image (catches a K / xyz mix-up).
MIN_INSIDE = 0.9
_IMAGE_NAME = re.compile(r"^\d{8}\.jpg$")
_CHUNK = 1 << 26  # bytes per parsing chunk (64 MiB)
_DROP = b"[] \t\r\n"


# --------------------------------------------------------------------------------------- JSON arrays
def _parse_numbers(buf: bytes) -> np.ndarray | None:
    """Comma-separated numbers (brackets and whitespace ignored) -> float64 (k,); None if unparsable."""
    import pandas as pd  # a dependency of the package (report tables); imported only when needed

    data = buf.translate(None, _DROP)
    if not data:
        return np.empty(0)
    try:
        frame = pd.read_csv(io.BytesIO(data.replace(b",", b"\n")), header=None, dtype=np.float64,
                            engine="c", skip_blank_lines=False)
    except Exception:  # non-numeric tokens ({, ", true, ...): let json explain
        return None
    if frame.shape[1] != 1:
        return None
    return frame.to_numpy().reshape(-1)


def _fast_nested_array(path: Path, inner: tuple[int, ...]) -> np.ndarray | None:
    """Parse a nested JSON list of numbers of shape (n, *inner) in chunks; None when it does not look so."""
    parts: list[np.ndarray] = []
    n_open = n_close = 0
    head = b""
    carry = b""
    with open(path, "rb") as f:
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            if len(head) < 64:
                head += chunk[:64]
            n_open += chunk.count(b"[")
            n_close += chunk.count(b"]")
            buf = carry + chunk
            cut = buf.rfind(b",")
            if cut < 0:
                carry = buf
                continue
            arr = _parse_numbers(buf[:cut])
            if arr is None:
                return None
            parts.append(arr)
            carry = buf[cut + 1:]
    arr = _parse_numbers(carry)
    if arr is None:
        return None
    parts.append(arr)
    flat = np.concatenate(parts) if parts else np.empty(0)
    stripped = head.translate(None, b" \t\r\n")
    depth = len(stripped) - len(stripped.lstrip(b"["))
    size = int(np.prod(inner)) if inner else 1
    if depth != 1 + len(inner) or flat.size == 0 or flat.size % size or not np.all(np.isfinite(flat)):
        return None
    n = flat.size // size
    # number of lists of a regular (n, *inner) array: the outer one + n * (1 + i0 + i0*i1 + ...)
    lists = 1 + n * sum(int(np.prod(inner[:k])) for k in range(len(inner)))
    if n_open != lists or n_close != lists:
        return None
    return flat.reshape((n,) + tuple(inner))


def load_json_array(path: str | Path, inner: tuple[int, ...]) -> np.ndarray:
    """Read a JSON file holding a nested list of numbers of shape (n, *inner).

    Args:
        path: the JSON file. inner: the expected trailing shape, e.g. (21, 3); () for a flat list.
    Returns:
        float64 array (n, *inner).
    Raises:
        DataError: the file is missing or unreadable, is not JSON, not a rectangular array of numbers,
            has another shape, no entries, or non-finite values; the message names the file.
    """
    path = Path(path)
    inner = tuple(int(i) for i in inner)
    if not path.is_file():
        raise DataError(f"{path}: file is missing")
    try:
        arr = _fast_nested_array(path, inner)
        if arr is None:
            try:
                obj = json.loads(path.read_bytes())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise DataError(f"{path}: not valid JSON ({exc})") from exc
            try:
                arr = np.asarray(obj, dtype=np.float64)
            except (ValueError, TypeError) as exc:
                raise DataError(f"{path}: not a rectangular array of numbers ({exc})") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc})") from exc
    want = "(n" + "".join(f", {i}" for i in inner) + ("" if inner else ",") + ")"
    if arr.ndim != 1 + len(inner) or arr.shape[1:] != inner:
        raise DataError(f"{path}: holds an array of shape {arr.shape}, expected {want}")
    if len(arr) == 0:
        raise DataError(f"{path}: holds no samples")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{path}: holds non-finite values")
    return arr


# ------------------------------------------------------------------------------------------ checks
def check_hand_joints(joints: np.ndarray, path: str | Path, unit: str = "metres") -> None:
    """Plausibility of camera-frame joints in metres, FreiHAND order (shared by the benchmark readers).

    Args:
        joints: (n, 21, 3) metres after the reader's conversion. path: the label file, for messages.
        unit: the unit the file should hold, for the message.
    Raises:
        DataError: the median wrist -> middle-MCP bone is outside ``WRIST_MCP_M`` (wrong units) or a
            joint has depth z <= 0 (not the camera frame).
    """
    bone = float(np.median(np.linalg.norm(joints[:, 9] - joints[:, 0], axis=-1)))
    if not WRIST_MCP_M[0] <= bone <= WRIST_MCP_M[1]:
        raise DataError(f"{path}: median wrist-middle MCP bone is {bone:.4g} m after conversion, expected "
                        f"{WRIST_MCP_M[0]}-{WRIST_MCP_M[1]} m: the labels are not in {unit}")
    behind = np.flatnonzero(np.any(joints[..., 2] <= 0, axis=-1))
    if len(behind):
        raise DataError(f"{path}: {len(behind)} samples (first: #{behind[0]}) have joints with depth z <= 0 "
                        f"(not the camera frame)")


def _check_count(arr: np.ndarray, n: int, path: Path, ref: Path) -> None:
    if len(arr) != n:
        raise DataError(f"{path}: holds {len(arr)} samples but {ref.name} holds {n}")


def _check_intrinsics(K: np.ndarray, path: Path) -> None:
    if np.any(K[:, 0, 0] <= 0) or np.any(K[:, 1, 1] <= 0):
        raise DataError(f"{path}: non-positive focal lengths")
    if not np.allclose(K[:, 2], [0.0, 0.0, 1.0]):
        raise DataError(f"{path}: last row of K is not [0, 0, 1]")


def _image_names(folder: Path) -> set[str]:
    if not folder.is_dir():
        raise DataError(f"{folder}: image folder is missing")
    try:
        return {name for name in os.listdir(folder) if _IMAGE_NAME.match(name)}
    except OSError as exc:
        raise DataError(f"{folder}: cannot list image folder ({exc})") from exc


# ------------------------------------------------------------------------------------------ loader
def split_label_ids(n: int, split: str, val_ids: Sequence[int] | None = None,
                    val_fraction: float = 0.05) -> np.ndarray:
    """Label ids (0..n-1) of the ``train`` or ``val`` part of FreiHAND's training labels.

    Args:
        n: number of training labels (32,560). split: ``train`` | ``val``.
        val_ids: explicit validation label ids; default: the last ``max(1, round(n * val_fraction))``
            ids (1,628 of 32,560 at 0.05).
        val_fraction: fraction of labels held out, in (0, 1).
    Returns:
        sorted int64 label ids; ``train`` and ``val`` are disjoint and together cover 0..n-1.
    Raises:
        ValueError: unknown split, ids out of range or repeated, or an empty train / val part.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split_label_ids: split must be 'train' or 'val', got {split!r}")
    if val_ids is None:
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"split_label_ids: val_fraction must be in (0, 1), got {val_fraction}")
        n_val = max(1, int(round(n * val_fraction)))
        val = np.arange(n - n_val, n, dtype=np.int64)
    else:
        val = np.asarray(val_ids, dtype=np.int64).reshape(-1)
        if len(np.unique(val)) != len(val) or np.any(val < 0) or np.any(val >= n):
            raise ValueError(f"split_label_ids: val_ids must be distinct label ids in [0, {n})")
        val = np.sort(val)
    if not 0 < len(val) < n:
        raise ValueError(f"split_label_ids: {len(val)} of {n} labels in val; both parts must be non-empty")
    return val if split == "val" else np.setdiff1d(np.arange(n, dtype=np.int64), val)


def load_freihand(root: str | Path, split: str = "train", versions: Sequence[int] = (0, 1, 2, 3),
                  val_ids: Sequence[int] | None = None, val_fraction: float = 0.05, with_verts: bool = True,
                  with_mano: bool = False) -> HandSamples:
    """Load one split of FreiHAND v2 (module docstring: layout, crops, split rule).

    Args:
        root: folder holding ``training_*.json``, ``evaluation_*.json``, ``training/rgb``, ``evaluation/rgb``.
        split: ``train`` | ``val`` (both from the training labels) | ``evaluation`` (official test set).
        versions: colour versions 0..3 of the training images to include (ignored for ``evaluation``,
            which has one image per label); samples are ordered version-major, like the image indices.
        val_ids, val_fraction: the held-out labels of ``val`` (see :func:`split_label_ids`).
        with_verts: read the 778 MANO vertices (the full training set is ~76 M numbers: ~12 s on 2 CPU
            cores and, repeated for 4 versions as float64, ~2.4 GB; pass False when only joints are needed).
        with_mano: also read ``*_mano.json`` into ``extra['mano']`` (n, 61).
    Returns:
        :class:`HandSamples` named ``freihand_{split}``: lazy 224x224 images, K (n,3,3) pixels, joints
        (n,21,3) and verts (n,778,3) metres in the camera frame, ids = image indices, boxes
        ``[0, 0, 224]``, scale (n,) metres, protocol ``freihand``; ``extra``: ``label_ids``, ``versions``
        (and ``mano``).
    Raises:
        DataError: a missing folder or file, unreadable or malformed JSON, wrong shapes, JSON files
            disagreeing on the number of labels, implausible units (e.g. millimetres), depth <= 0,
            intrinsics that do not project the hands into the image, a wrong number of images or a
            missing image; the message names the file.
        ValueError: unknown split, bad versions or val ids.
    """
    if split not in SPLITS:
        raise ValueError(f"load_freihand: split must be one of {SPLITS}, got {split!r}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: FreiHAND folder is missing")
    prefix = "evaluation" if split == "evaluation" else "training"
    n_versions = 1 if split == "evaluation" else NUM_VERSIONS
    if split == "evaluation":
        versions = (0,)
    versions = tuple(int(v) for v in versions)
    if not versions or len(set(versions)) != len(versions) or not all(0 <= v < n_versions for v in versions):
        raise ValueError(f"load_freihand: versions must be distinct values in 0..{n_versions - 1}, got {versions}")

    xyz_path = root / f"{prefix}_xyz.json"
    joints = load_json_array(xyz_path, (21, 3))
    n = len(joints)
    K_path = root / f"{prefix}_K.json"
    K = load_json_array(K_path, (3, 3))
    _check_count(K, n, K_path, xyz_path)
    scale_path = root / f"{prefix}_scale.json"
    scale = load_json_array(scale_path, ())
    _check_count(scale, n, scale_path, xyz_path)
    verts = mano = None
    if with_verts:
        verts_path = root / f"{prefix}_verts.json"
        verts = load_json_array(verts_path, (NUM_VERTS, 3))
        _check_count(verts, n, verts_path, xyz_path)
    if with_mano:
        mano_path = root / f"{prefix}_mano.json"
        mano = load_json_array(mano_path, (1, 61))
        _check_count(mano, n, mano_path, xyz_path)
        mano = mano[:, 0]

    check_hand_joints(joints, xyz_path)
    _check_intrinsics(K, K_path)
    if not 0.005 <= float(np.median(scale)) <= 0.1:
        raise DataError(f"{scale_path}: median scale {np.median(scale):.4g}, expected a bone of 0.005-0.1 m "
                        f"(not metres?)")
    if verts is not None:
        off = float(np.median(np.linalg.norm(verts.mean(1) - joints.mean(1), axis=-1)))
        if off > 0.05:
            raise DataError(f"{verts_path}: vertices lie {off:.4g} m (median) from their joints: not metres "
                            f"in the camera frame of {xyz_path.name}")
    uv = project(joints[:, 0:1], K)[:, 0]
    inside = float(np.mean(np.all((uv >= 0) & (uv <= IMAGE_SIZE), axis=-1)))
    if inside < MIN_INSIDE:
        raise DataError(f"{K_path}: only {inside:.1%} of wrists project inside the {IMAGE_SIZE}x{IMAGE_SIZE} "
                        f"image with {xyz_path.name} (expected >= {MIN_INSIDE:.0%})")

    labels = np.arange(n, dtype=np.int64) if split == "evaluation" else split_label_ids(n, split, val_ids, val_fraction)
    label_ids = np.tile(labels, len(versions))
    version_ids = np.repeat(np.asarray(versions, np.int64), len(labels))
    ids = version_ids * n + label_ids
    img_dir = root / prefix / "rgb"
    names = _image_names(img_dir)
    paths = [img_dir / f"{i:08d}.jpg" for i in ids]
    missing = [p for p in paths if p.name not in names]
    if missing:
        raise DataError(f"{missing[0]}: image file is missing ({len(missing)} of {len(paths)} missing)")
    if len(names) != n_versions * n:
        raise DataError(f"{img_dir}: holds {len(names)} images, expected {n_versions} x {n} labels = "
                        f"{n_versions * n}")

    extra = {"label_ids": label_ids, "versions": version_ids}
    if mano is not None:
        extra["mano"] = mano[label_ids]
    return HandSamples(
        name=f"freihand_{split}", images=ImageFiles(paths, size=(IMAGE_SIZE, IMAGE_SIZE)), K=K[label_ids],
        joints=joints[label_ids], ids=ids, verts=None if verts is None else verts[label_ids],
        boxes=np.tile([0.0, 0.0, float(IMAGE_SIZE)], (len(ids), 1)), mirrored=np.zeros(len(ids), bool),
        scale=scale[label_ids], protocol="freihand", extra=extra)


# ------------------------------------------------------------------------------- predictions, scoring
def _check_pred(xyz, verts, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        xyz = np.asarray(xyz, dtype=np.float64)
        verts = np.asarray(verts, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: predictions are not rectangular arrays of numbers ({exc})") from exc
    if xyz.ndim != 3 or xyz.shape[1:] != (21, 3):
        raise ValueError(f"{where}: joints must be (n, 21, 3), got {xyz.shape}")
    if verts.ndim != 3 or verts.shape[1:] != (NUM_VERTS, 3):
        raise ValueError(f"{where}: vertices must be (n, {NUM_VERTS}, 3), got {verts.shape}")
    if len(xyz) != len(verts):
        raise ValueError(f"{where}: {len(xyz)} joint sets but {len(verts)} vertex sets")
    if not (np.all(np.isfinite(xyz)) and np.all(np.isfinite(verts))):
        raise ValueError(f"{where}: predictions hold non-finite values")
    return xyz, verts


def write_prediction_json(path: str | Path, xyz_list, verts_list) -> None:
    """Write the official scorer's prediction file ``[xyz_list, verts_list]`` atomically.

    Args:
        path: output file (FreiHAND's ``pred.json``); written to a temporary file, then renamed.
        xyz_list: n joint sets (21, 3), metres, camera frame, FreiHAND order (a list or an (n,21,3) array).
        verts_list: n vertex sets (778, 3), metres, camera frame.
    Values are rounded to 1e-7 m (0.1 micrometre) to keep the file small (~100 MB for 3,960 samples).
    Raises:
        ValueError: wrong shapes, different counts, non-finite values.
    """
    xyz, verts = _check_pred(xyz_list, verts_list, "write_prediction_json")
    text = json.dumps([np.round(xyz, 7).tolist(), np.round(verts, 7).tolist()])
    with atomic_path(path, suffix=".json") as tmp:
        tmp.write_text(text)
