"""What ``cliphand predict`` reads (:mod:`cliphand.predict`): the kind of an input (image, folder, video), the
images of a folder and their output stems, an image file (with its size cap :data:`MAX_SIDE`) and the frames of
a video (PyAV, optional).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image, ImageOps

from cliphand.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
VIDEO_HINT = "pip install av (or pip install '.[video]')"
#: longest image side read (pixels): larger photos are downscaled on reading (a hand crop is 128 px; their
#: outputs are still given in the file's own pixels)
MAX_SIDE = 4096


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


def folder_images(folder: Path) -> list[Path]:
    """The images of ``folder`` (files with an :data:`IMAGE_SUFFIXES` suffix, not recursive), sorted by name.

    Raises: DataError naming the folder when it holds none."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    return files


def file_stems(paths: list[Path]) -> list[str]:
    """Output stems of ``paths``, in order: the file stem, or the whole name with dots as ``_`` where two files
    share a stem (``a.jpg``, ``a.png`` -> ``a_jpg``, ``a_png``)."""
    counts: dict[str, int] = {}
    for p in paths:
        counts[p.stem] = counts.get(p.stem, 0) + 1
    return [p.stem if counts[p.stem] == 1 else p.name.replace(".", "_") for p in paths]


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


def downscale_record(image: np.ndarray, scale: float) -> dict:
    """The JSON note on an image that :func:`read_image` downscaled by ``scale``: ``factor``, ``read_size``
    ``[W, H]`` of ``image`` (H, W, 3) as read and the cap ``max_side`` (:data:`MAX_SIDE`)."""
    return {"factor": scale, "read_size": [int(image.shape[1]), int(image.shape[0])], "max_side": MAX_SIDE}


def require_pyav(path: Path) -> None:
    """Raises: DataError naming the video ``path`` when PyAV, which reads videos, is not installed."""
    if importlib.util.find_spec("av") is None:
        raise DataError(f"{path}: reading videos needs PyAV, which is not installed: {VIDEO_HINT}")


def video_frames(path: Path, every: int) -> tuple[Iterator[tuple[int, float | None, np.ndarray]], int | None, Any]:
    """(iterator of (frame index, time in s or None, (H, W, 3) uint8 RGB) for every ``every``-th frame, number of
    frames it will give or None when unknown, the open PyAV container). Raises: DataError (PyAV missing,
    unreadable video; a frame that cannot be decoded raises it from the iterator)."""
    require_pyav(path)
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
