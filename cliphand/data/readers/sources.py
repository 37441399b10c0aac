"""The common form of every dataset reader's output: one split as :class:`HandSamples`.

Readers (:mod:`cliphand.data.readers.freihand`, :mod:`cliphand.data.readers.rhd`, :mod:`cliphand.data.readers.stb`,
:mod:`cliphand.data.readers.realworld`) turn a dataset in its original layout into camera-frame labels in
FreiHAND joint order (metres, right hands: left hands are mirrored) plus a lazy image sequence, so the
preprocess stage (:func:`cliphand.data.preprocess.prepare_split`) treats them all alike.

Mirroring a left hand to a right hand (images of width W): flip the image horizontally, negate x of
every 3D point and set ``u0' = W - u0`` (continuous pixel coordinates, pixel i spans [i, i+1)), so the
projection of the mirrored point is ``W - u`` of the original.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from cliphand.errors import DataError


def mirror_labels(K: np.ndarray, points: np.ndarray, width: int | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror camera-frame points and intrinsics left <-> right (module docstring).

    Args:
        K: (..., 3, 3) pixels. points: (..., N, 3) metres. width: image width(s) in pixels.
    Returns:
        (K', points') with ``u0' = width - u0`` and x negated; inputs are not modified.
    """
    K = np.array(K, np.float64, copy=True)
    points = np.array(points, np.float64, copy=True)
    K[..., 0, 2] = np.asarray(width, np.float64) - K[..., 0, 2]
    points[..., 0] *= -1.0
    return K, points


class ImageFiles(Sequence):
    """A lazy sequence of RGB images read from files: ``files[i]`` -> (H, W, 3) uint8.

    Args:
        paths: image file paths.
        flip: optional (n,) bool; True flips that image horizontally (a mirrored left hand).
        size: optional (H, W) every image must have.
    Raises (on access):
        DataError: the file is missing, cannot be decoded or has another size; the message names the file.
    """

    def __init__(self, paths: Sequence[str | Path], flip: np.ndarray | None = None,
                 size: tuple[int, int] | None = None):
        self.paths = [Path(p) for p in paths]
        self.flip = np.zeros(len(self.paths), bool) if flip is None else np.asarray(flip, bool)
        if self.flip.shape != (len(self.paths),):
            raise ValueError(f"ImageFiles: flip must be ({len(self.paths)},), got {self.flip.shape}")
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):
        if isinstance(i, slice):
            idx = range(*i.indices(len(self)))
            return ImageFiles([self.paths[j] for j in idx], self.flip[list(idx)], self.size)
        path = self.paths[i]
        try:
            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB"))
        except FileNotFoundError as exc:
            raise DataError(f"{path}: image file is missing") from exc
        except Exception as exc:  # PIL: UnidentifiedImageError, OSError (truncated), ...
            raise DataError(f"{path}: cannot decode image ({exc})") from exc
        if self.size is not None and arr.shape[:2] != tuple(self.size):
            raise DataError(f"{path}: image is {arr.shape[1]}x{arr.shape[0]}, expected "
                            f"{self.size[1]}x{self.size[0]}")
        return np.ascontiguousarray(arr[:, ::-1]) if self.flip[i] else arr


@dataclass
class HandSamples:
    """One split of a hand dataset, ready for :func:`cliphand.data.preprocess.prepare_split`.

    Attributes:
        name: e.g. ``freihand_train``.
        images: length-n sequence of (H, W, 3) uint8 RGB images (lazy, e.g. :class:`ImageFiles`),
            already flipped for mirrored samples.
        K: (n, 3, 3) float64 intrinsics in pixels (of the possibly mirrored image).
        joints: (n, 21, 3) float64 metres, camera frame, FreiHAND joint order, right hands.
        ids: (n,) int64 sample ids in the source dataset (for FreiHAND training: the image index).
        verts: optional (n, V, 3) float64 metres (FreiHAND: the 778 MANO vertices).
        boxes: optional (n, 3) float64 crop squares ``x0, y0, side`` in pixels; None means "crop around
            the ground-truth joints" (see the preprocess stage).
        mirrored: (n,) bool, True where a left hand was mirrored to a right hand.
        scale: optional (n,) float64 metres, the dataset's reference bone length (FreiHAND ``scale``).
        protocol: the benchmark's scoring protocol: ``freihand`` | ``bihand`` | ``realworld``.
    """

    name: str
    images: Sequence
    K: np.ndarray
    joints: np.ndarray
    ids: np.ndarray
    verts: np.ndarray | None = None
    boxes: np.ndarray | None = None
    mirrored: np.ndarray | None = None
    scale: np.ndarray | None = None
    protocol: str = "freihand"
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        n = len(self.images)
        self.K = np.asarray(self.K, np.float64)
        self.joints = np.asarray(self.joints, np.float64)
        self.ids = np.asarray(self.ids, np.int64)
        if self.K.shape != (n, 3, 3) or self.joints.shape != (n, 21, 3) or self.ids.shape != (n,):
            raise ValueError(f"HandSamples {self.name}: need K ({n},3,3), joints ({n},21,3), ids ({n},), got "
                             f"{self.K.shape}, {self.joints.shape}, {self.ids.shape}")
        if self.verts is not None:
            self.verts = np.asarray(self.verts, np.float64)
            if self.verts.ndim != 3 or self.verts.shape[0] != n or self.verts.shape[2] != 3:
                raise ValueError(f"HandSamples {self.name}: verts must be ({n},V,3), got {self.verts.shape}")
        if self.boxes is not None:
            self.boxes = np.asarray(self.boxes, np.float64)
            if self.boxes.shape != (n, 3):
                raise ValueError(f"HandSamples {self.name}: boxes must be ({n},3), got {self.boxes.shape}")
        self.mirrored = np.zeros(n, bool) if self.mirrored is None else np.asarray(self.mirrored, bool)
        if self.protocol not in ("freihand", "bihand", "realworld"):
            raise ValueError(f"HandSamples {self.name}: unknown protocol {self.protocol!r}")

    def __len__(self) -> int:
        return len(self.images)
