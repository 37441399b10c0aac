"""Batches for training and evaluation from the preprocess stage's arrays.

Images stay memory-mapped (``images.npy``); a batch is gathered by index, so the loader costs one
contiguous-ish read per batch and no worker processes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from cliphand.errors import DataError
from cliphand.text.cache import load_text_cache
from cliphand.data.augment import normalise, to_tensor
from cliphand.data.preprocess import load_prepared


class PreparedSet:
    """One prepared split (``data/prep/<name>``) with optional cached text features.

    Args:
        prep_dir: folder with ``images.npy`` (n, S, S, 3) uint8 and ``labels.npz``.
        text_path: optional ``data/text/<split>_n<N>.npz``; it must cover the samples used (prompts are
            a function of the sample index, so a cache of the first k samples is a prefix of the full one).
        limit: use only the first ``limit`` samples.
    Raises:
        DataError: missing/invalid files or a text cache shorter than the split.
    """

    def __init__(self, prep_dir: str | Path, text_path: str | Path | None = None, limit: int | None = None):
        self.dir = Path(prep_dir)
        arrays = load_prepared(self.dir, mmap=True)
        n = int(arrays["images"].shape[0]) if limit is None else min(int(limit), int(arrays["images"].shape[0]))
        self.images = arrays["images"][:n]
        self.labels = {k: np.asarray(v[:n]) for k, v in arrays.items() if k != "images"}
        self.n = n
        self.size = int(self.images.shape[1])
        self.has_mesh = "verts_uvd" in self.labels
        self.text = self.prompts = None
        if self.n == 0:
            raise DataError(f"{self.dir}: the split holds no samples")
        if text_path is not None:
            cache = load_text_cache(text_path)
            if len(cache["feats"]) < self.n:
                raise DataError(f"{text_path}: holds text for {len(cache['feats'])} samples, the split uses "
                                f"{self.n} (stale cache? re-run embed_text)")
            self.text = cache["feats"][:n]
            self.prompts = cache["prompts"][:n]

    def __len__(self) -> int:
        return self.n

    def head(self, limit: int) -> "PreparedSet":
        """The first ``limit`` samples as a view (no copy of the memory-mapped images)."""
        if limit >= self.n:
            return self
        return self.select(np.arange(int(limit)))

    def select(self, index: np.ndarray) -> "PreparedSet":
        """The samples at ``index`` (sorted integer positions, or a boolean mask of length n) as a new set;
        ``head`` keeps the memory map, other selections read their images into memory.

        Raises:
            DataError: an empty selection or a position outside 0..n-1.
        """
        index = np.asarray(index)
        index = np.nonzero(index)[0] if index.dtype == bool else np.sort(index.astype(np.int64))
        if index.size == 0 or index.min() < 0 or index.max() >= self.n:
            raise DataError(f"{self.dir}: selection of {index.size} samples is empty or outside 0..{self.n - 1}")
        view = object.__new__(PreparedSet)
        view.__dict__.update(self.__dict__)
        prefix = np.array_equal(index, np.arange(index.size))
        view.n = int(index.size)
        view.images = self.images[: index.size] if prefix else self.images[index]
        view.labels = {k: v[index] for k, v in self.labels.items()}
        view.text = None if self.text is None else self.text[index]
        view.prompts = None if self.text is None else self.prompts[index]
        return view

    def content_hash(self) -> str:
        """BLAKE2b (16 hex digits) of every label array and every image of this set, in order, with the text
        features when present: part of a resume checkpoint's fingerprint, so a resume never continues on
        other data. Reads the images once (about 0.5 s per 500 MB)."""
        h = hashlib.blake2b(digest_size=8)
        h.update(repr((self.n, self.images.shape, str(self.images.dtype))).encode())
        for key in sorted(self.labels):
            arr = np.ascontiguousarray(self.labels[key])
            h.update(key.encode() + repr((arr.shape, str(arr.dtype))).encode())
            h.update(arr.tobytes() if arr.dtype.kind not in "OU" else repr(arr.tolist()).encode())
        for start in range(0, self.n, 1024):
            h.update(np.ascontiguousarray(self.images[start:start + 1024]).data)
        if self.text is not None:
            h.update(np.ascontiguousarray(self.text).data)
        return h.hexdigest()

    def batch(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        """Gather samples ``idx`` (sorted for locality).

        Returns a dict of tensors: ``image`` (B, 3, S, S) float in [0, 1] (not yet normalised),
        ``uvd`` (B, 21, 3), ``joints`` (B, 21, 3) metres, ``K`` (B, 3, 3), ``root_depth`` (B,),
        ``index`` (B,), and when present ``verts_uvd``/``verts`` (B, V, 3) and ``text`` (B, 3, L, D) float32.
        """
        idx = np.sort(np.asarray(idx))
        out = {"image": to_tensor(self.images[idx]), "index": torch.as_tensor(idx)}
        for key in ("uvd", "joints", "K", "root_depth", "verts_uvd", "verts"):
            if key in self.labels:
                out[key] = torch.as_tensor(self.labels[key][idx], dtype=torch.float32)
        if self.text is not None:
            out["text"] = torch.as_tensor(np.asarray(self.text[idx], dtype=np.float32))
        return out


def iterate(dataset: PreparedSet, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
    """Yield the split's samples in order, ``batch_size`` at a time (the last batch may be smaller); for
    inference. Training draws its own shuffled batches (:func:`cliphand.train.loop.train`)."""
    for start in range(0, len(dataset), batch_size):
        yield dataset.batch(np.arange(start, min(start + batch_size, len(dataset))))


def model_input(images01: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) images in [0, 1] → normalised model input."""
    return normalise(images01)
