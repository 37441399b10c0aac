"""Preprocess stage: square crops around the hand, resized to the model input, with uvd targets.

A crop is the square around the bounding box of the projected joints (and vertices), enlarged by
``pad``, resampled to S x S pixels by a PIL affine transform (bilinear, zeros outside the image).
Pixel coordinates are continuous (pixel i spans [i, i+1), as PIL's transforms), so the crop's
intrinsics are exactly ``K' = A @ K`` with ``A = [[s, 0, -s x0], [0, s, -s y0], [0, 0, 1]]``,
``s = S / side`` and ``(x0, y0)`` the crop's top-left corner in the source image.

Output format (design doc): ``<out_dir>/images.npy`` uint8 (n, S, S, 3) and ``<out_dir>/labels.npz`` with
K (n,3,3) f32 crop intrinsics, joints (n,21,3) f32 metres camera frame, uvd (n,21,3) f32,
root_depth (n,) f32 metres, ids (n,) int64, and for synthetic data verts (n,V,3) f32 and verts_uvd (n,V,3) f32.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from cliphand.errors import DataError
from cliphand.hand.geometry import project, xyz_to_uvd
from cliphand.data.readers.sources import HandSamples
from cliphand.io import atomic_path, save_json, save_npy, save_npz


def crop_to_input(image: np.ndarray, K: np.ndarray, points_cam: np.ndarray | None, input_size: int, pad: float = 1.3,
                  rng: np.random.Generator | None = None, jitter: tuple[float, float] | None = None,
                  box: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Crop a square around the projected points (or a given square ``box``) and resize it to ``input_size``.

    Args:
        image: (H, W, 3) uint8 RGB.
        K: (3, 3) intrinsics of ``image`` in pixels.
        points_cam: (N, 3) points (joints and/or vertices) in metres, camera frame, z > 0; may be None
            when ``box`` is given.
        input_size: S, side of the output in pixels.
        pad: side of the square = pad x the longer side of the points' 2D bounding box.
        rng, jitter: optional random crop jitter ``(shift, scale)``: the centre moves by up to
            ``shift * side`` per axis and the side is multiplied by ``1 + U(-scale, scale)``
            (uniform draws from ``rng``, a fresh default generator when None).
        box: optional square ``(x0, y0, side)`` in pixels used instead of the points' box (FreiHAND:
            the whole 224 x 224 image); ``pad`` and ``jitter`` are then ignored.
    Returns:
        (crop (S, S, 3) uint8, K' (3, 3) float64) such that ``project(points, K')`` gives crop pixels.
    Raises:
        ValueError: bad shapes, non-positive depth or a degenerate bounding box.
    """
    image = np.asarray(image)
    K = np.asarray(K, np.float64)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"crop_to_input: image must be uint8 (H,W,3), got {image.dtype} {image.shape}")
    if K.shape != (3, 3):
        raise ValueError(f"crop_to_input: K must be (3,3), got {K.shape}")
    if points_cam is None and box is None:
        raise ValueError("crop_to_input: give the points or a box")
    if points_cam is not None:
        points_cam = np.asarray(points_cam, np.float64)
        if points_cam.ndim != 2 or points_cam.shape[1] != 3:
            raise ValueError(f"crop_to_input: points must be (N,3), got {points_cam.shape}")
        if not np.all(points_cam[:, 2] > 0):
            raise ValueError("crop_to_input: points must have z > 0 (camera frame)")
    if box is not None:
        x0, y0, side = (float(v) for v in box)
        centre, jitter = np.array([x0 + side / 2, y0 + side / 2]), None
    else:
        uv = project(points_cam, K)
        lo, hi = uv.min(0), uv.max(0)
        centre = (lo + hi) / 2
        side = float((hi - lo).max()) * pad
    if jitter is not None:
        rng = rng if rng is not None else np.random.default_rng()
        shift, scale = jitter
        centre = centre + rng.uniform(-1, 1, 2) * shift * side
        side *= 1 + rng.uniform(-scale, scale)
    if not side > 0:
        raise ValueError("crop_to_input: the points' 2D bounding box is degenerate")
    x0, y0 = centre - side / 2
    s = input_size / side
    A = np.array([[s, 0, -s * x0], [0, s, -s * y0], [0, 0, 1.0]])
    # PIL's affine data maps output (x, y) to input: x_in = a x + b y + c, y_in = d x + e y + f.
    crop = Image.fromarray(image).transform((input_size, input_size), Image.Transform.AFFINE,
                                            data=(1 / s, 0, x0, 0, 1 / s, y0),
                                            resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))
    return np.asarray(crop, np.uint8), A @ K


def prepare_split(images: np.ndarray, K: np.ndarray, joints: np.ndarray, verts: np.ndarray | None,
                  input_size: int, depth_range: float, pad: float = 1.3, ids: np.ndarray | None = None,
                  rng: np.random.Generator | None = None, jitter: tuple[float, float] | None = None,
                  boxes: np.ndarray | None = None, out_images: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Crop every sample and compute its uvd targets (paper eq. 2 via :func:`cliphand.hand.geometry.xyz_to_uvd`).

    The crop square is fitted to the 21 joints only (also when vertices are given), so synthetic and
    real samples, which have no vertices, are cropped at the same scale, unless ``boxes`` gives the
    squares (the dataset's own crop convention). ``root_depth = joints[:, 0, 2]``.

    Args:
        images: (n, H, W, 3) uint8 (may be memory-mapped).
        K: (n, 3, 3) intrinsics in pixels. joints: (n, 21, 3) metres. verts: (n, V, 3) metres or None.
        input_size: S pixels. depth_range: metres spanned by d in [0, 1]. pad: crop padding factor.
        ids: (n,) sample ids (default 0..n-1). rng, jitter: see :func:`crop_to_input`.
        boxes: optional (n, 3) crop squares ``x0, y0, side`` in pixels.
        out_images: optional (n, S, S, 3) uint8 array to write the crops into (e.g. a memory map, so a
            large split never sits in memory); returned as ``images``.
    Returns:
        dict: images uint8 (n,S,S,3), K f32 (n,3,3), joints f32 (n,21,3), uvd f32 (n,21,3),
        root_depth f32 (n,), ids int64 (n,), and with verts: verts f32 (n,V,3), verts_uvd f32 (n,V,3).
    Raises:
        ValueError: inconsistent shapes.
    """
    n = len(images)
    K = np.asarray(K, np.float64)
    joints = np.asarray(joints, np.float64)
    if K.shape != (n, 3, 3) or joints.shape != (n, 21, 3):
        raise ValueError(f"prepare_split: need K ({n},3,3) and joints ({n},21,3), got {K.shape}, {joints.shape}")
    if verts is not None:
        verts = np.asarray(verts, np.float64)
        if verts.ndim != 3 or verts.shape[0] != n or verts.shape[2] != 3:
            raise ValueError(f"prepare_split: verts must be ({n},V,3), got {verts.shape}")
    ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, np.int64)
    if ids.shape != (n,):
        raise ValueError(f"prepare_split: ids must be ({n},), got {ids.shape}")
    if out_images is None:
        out_images = np.empty((n, input_size, input_size, 3), np.uint8)
    if out_images.shape != (n, input_size, input_size, 3):
        raise ValueError(f"prepare_split: out_images must be ({n},{input_size},{input_size},3), got {out_images.shape}")
    out_K = np.empty((n, 3, 3))
    for i in tqdm(range(n), desc="crop", leave=False):
        box = None if boxes is None else boxes[i]
        out_images[i], out_K[i] = crop_to_input(np.asarray(images[i]), K[i], joints[i], input_size, pad, rng, jitter,
                                                box)
    root_depth = joints[:, 0, 2]
    out = {
        "images": out_images,
        "K": out_K.astype(np.float32),
        "joints": joints.astype(np.float32),
        "uvd": xyz_to_uvd(joints, out_K, root_depth, input_size, depth_range).astype(np.float32),
        "root_depth": root_depth.astype(np.float32),
        "ids": ids,
    }
    if verts is not None:
        out["verts"] = verts.astype(np.float32)
        out["verts_uvd"] = xyz_to_uvd(verts, out_K, root_depth, input_size, depth_range).astype(np.float32)
    return out


def write_prepared(out_dir: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``images.npy`` and ``labels.npz`` (all other arrays) into ``out_dir`` atomically.

    Raises:
        ValueError: ``arrays`` has no ``images``.
    """
    if "images" not in arrays:
        raise ValueError("write_prepared: arrays must contain 'images'")
    out_dir = Path(out_dir)
    save_npy(out_dir / "images.npy", np.ascontiguousarray(arrays["images"], dtype=np.uint8))
    save_npz(out_dir / "labels.npz", **{k: np.asarray(v) for k, v in arrays.items() if k != "images"})


def write_split(out_dir: str | Path, samples: HandSamples, input_size: int, depth_range: float,
                pad: float = 1.3) -> dict:
    """Prepare a dataset split (:class:`cliphand.data.readers.sources.HandSamples`) into ``out_dir`` atomically.

    The crops stream into a memory-mapped temporary ``images.npy`` (a FreiHAND training split at 224 px
    is about 20 GB), renamed into place with ``labels.npz`` and ``meta.json`` (source name, scoring
    protocol, crop convention, number of samples and of mirrored left hands) once complete.

    Returns:
        the meta dict. Raises: DataError from the reader (unreadable images), ValueError on bad shapes.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = len(samples)
    with atomic_path(out_dir / "images.npy") as tmp:
        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, input_size, input_size, 3))
        arrays = prepare_split(samples.images, samples.K, samples.joints, samples.verts, input_size, depth_range, pad,
                               ids=samples.ids, boxes=samples.boxes, out_images=mm)
        mm.flush()
        del mm, arrays["images"]
    save_npz(out_dir / "labels.npz", **arrays)
    meta = {"source": samples.name, "protocol": samples.protocol, "n": n,
            "crop": "dataset boxes" if samples.boxes is not None else f"joints x {pad}",
            "mirrored": int(np.sum(samples.mirrored)), "has_mesh": samples.verts is not None}
    save_json(out_dir / "meta.json", meta)
    return meta


def read_meta(directory: str | Path) -> dict:
    """``meta.json`` of a prepared split (empty dict for splits prepared before it existed)."""
    path = Path(directory) / "meta.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc


_LABEL_SPECS = {  # key: (trailing shape, dtype kind); None = any size
    "K": ((3, 3), "f"),
    "joints": ((21, 3), "f"),
    "uvd": ((21, 3), "f"),
    "root_depth": ((), "f"),
    "ids": ((), "iu"),
    "verts": ((None, 3), "f"),
    "verts_uvd": ((None, 3), "f"),
}


def load_prepared(directory: str | Path, mmap: bool = True) -> dict[str, np.ndarray]:
    """Load and validate a prepared split written by :func:`write_prepared`.

    Args:
        directory: ``data/prep/<name>``.
        mmap: memory-map ``images.npy`` (read-only).
    Returns:
        dict with ``images`` (n,S,S,3) uint8 and every array of ``labels.npz`` (see module docstring).
    Raises:
        DataError: a missing or unreadable file, a missing key, a wrong shape or dtype, n mismatch, or
            verts without verts_uvd (or the reverse); the message names the file.
    """
    directory = Path(directory)
    img_path, lab_path = directory / "images.npy", directory / "labels.npz"
    for p in (img_path, lab_path):
        if not p.is_file():
            raise DataError(f"{p}: file is missing (run the preprocess stage)")
    try:
        images = np.load(img_path, mmap_mode="r" if mmap else None)
    except Exception as exc:
        raise DataError(f"{img_path}: cannot read ({exc})") from exc
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3 or images.shape[1] != images.shape[2]:
        raise DataError(f"{img_path}: expected uint8 (n,S,S,3), got {images.dtype} {images.shape}")
    n = images.shape[0]
    try:
        with np.load(lab_path, allow_pickle=False) as z:
            labels = {k: z[k] for k in z.files}
    except Exception as exc:
        raise DataError(f"{lab_path}: cannot read ({exc})") from exc
    required = ["K", "joints", "uvd", "root_depth", "ids"]
    missing = [k for k in required if k not in labels]
    if missing:
        raise DataError(f"{lab_path}: missing arrays {missing}")
    if ("verts" in labels) != ("verts_uvd" in labels):
        raise DataError(f"{lab_path}: 'verts' and 'verts_uvd' must be present together")
    for key, (shape, kinds) in _LABEL_SPECS.items():
        if key not in labels:
            continue
        arr = labels[key]
        ok = arr.ndim == 1 + len(shape) and arr.shape[0] == n and arr.dtype.kind in kinds
        ok = ok and all(w is None or w == g for w, g in zip(shape, arr.shape[1:]))
        if not ok:
            want = "(" + ",".join(["n"] + ["V" if w is None else str(w) for w in shape]) + ")"
            raise DataError(f"{lab_path}: '{key}' is {arr.dtype} {arr.shape}, expected {want} with n={n} "
                            f"and dtype kind {kinds!r}")
    if "verts" in labels and labels["verts"].shape != labels["verts_uvd"].shape:
        raise DataError(f"{lab_path}: 'verts' {labels['verts'].shape} and 'verts_uvd' "
                        f"{labels['verts_uvd'].shape} differ")
    return {"images": images, **labels}
