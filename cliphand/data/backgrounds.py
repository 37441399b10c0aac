"""Backgrounds and occluder textures for the synthetic images: real photographs shipped inside
installed Python packages, and procedural textures.

Photographs (only files that are really inside site-packages; nothing is downloaded; missing ones are
skipped):
- ``matplotlib/mpl-data/sample_data/grace_hopper.jpg`` (portrait, 512x600);
- ``sklearn/datasets/images/china.jpg`` (temple and trees, 427x640) and
  ``sklearn/datasets/images/flower.jpg`` (flower, 427x640), scikit-learn's sample images.
Each draw takes a random crop (10-100 % of the shorter side), flip, quarter turn and colour shift, so three
photos still give varied clutter. Procedural textures: value noise summed over several scales, stripes,
checkerboards, linear/radial gradients and blends of these, in random colours.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

#: (package, path inside the package) of the photographs used as backgrounds.
PHOTO_FILES = (
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    ("sklearn", "datasets/images/china.jpg"),
    ("sklearn", "datasets/images/flower.jpg"),
)


def photo_paths() -> list[Path]:
    """Paths of the :data:`PHOTO_FILES` that exist in the installed packages (without importing them)."""
    out = []
    for pkg, rel in PHOTO_FILES:
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            continue
        for root in spec.submodule_search_locations:
            p = Path(root) / rel
            if p.is_file():
                out.append(p)
                break
    return out


@lru_cache(maxsize=1)
def load_photos() -> tuple[np.ndarray, ...]:
    """The photographs as uint8 RGB arrays (H, W, 3); cached per process. Empty if none is installed."""
    return tuple(np.asarray(Image.open(p).convert("RGB")) for p in photo_paths())


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))


def color_shift(img: np.ndarray, rng: np.random.Generator, strength: float = 0.25) -> np.ndarray:
    """Random per-channel gain, brightness, contrast, saturation of a float RGB image in [0, 1].

    Args:
        img: (H, W, 3) float in [0, 1].
        strength: relative size of the changes (gain +-strength/2 per channel, saturation +-2*strength,
            contrast +-strength, brightness +-strength/2).
    Returns:
        (H, W, 3) float32 in [0, 1].
    """
    x = img.astype(np.float32)
    x = x * (1 + rng.uniform(-strength, strength, 3) * 0.5).astype(np.float32)
    grey = x.mean(2, keepdims=True)
    x = grey + (x - grey) * np.float32(1 + rng.uniform(-strength * 2, strength * 2))
    m = x.mean()
    x = m + (x - m) * np.float32(1 + rng.uniform(-strength, strength))
    x = x + np.float32(rng.uniform(-strength, strength) * 0.5)
    return np.clip(x, 0, 1)


def photo_crop(rng: np.random.Generator, h: int, w: int, photos=None) -> np.ndarray | None:
    """A random crop of a random photograph, resized to (h, w), flipped/turned and colour-shifted.

    Returns:
        (h, w, 3) float32 in [0, 1], or None when no photograph is available.
    """
    photos = load_photos() if photos is None else photos
    if not photos:
        return None
    img = photos[rng.integers(len(photos))]
    if rng.random() < 0.5:
        img = np.rot90(img, int(rng.integers(1, 4)))
    H, W = img.shape[:2]
    side = int(min(H, W) * rng.uniform(0.1, 1.0))
    aspect = rng.uniform(0.75, 1.33) * (w / h)
    ch, cw = side, min(W, max(4, int(side * aspect)))
    ch = min(H, ch)
    y = rng.integers(0, H - ch + 1)
    x = rng.integers(0, W - cw + 1)
    crop = np.ascontiguousarray(img[y:y + ch, x:x + cw])
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    out = _resize(np.ascontiguousarray(crop), h, w).astype(np.float32) / 255.0
    return color_shift(out, rng)


def _colors(rng: np.random.Generator, n: int) -> np.ndarray:
    """n random RGB colours (float32 [0, 1]), mostly muted like indoor scenes."""
    c = rng.uniform(0, 1, (n, 3))
    sat = rng.uniform(0.1, 1.0, (n, 1))
    grey = c.mean(1, keepdims=True)
    return (grey + (c - grey) * sat).astype(np.float32)


def value_noise(rng: np.random.Generator, h: int, w: int, octaves: int = 4) -> np.ndarray:
    """Sum of bilinearly upsampled random grids at scales h/2^k (fractal value noise), (h, w) in [0, 1]."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    cells = int(rng.integers(2, 6))
    for _ in range(octaves):
        g = rng.uniform(0, 1, (cells + 1, cells + 1)).astype(np.float32)
        out += amp * np.asarray(Image.fromarray(g).resize((w, h), Image.BILINEAR))
        total += amp
        amp *= rng.uniform(0.4, 0.7)
        cells *= 2
    return out / total


def procedural(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random procedural texture: noise, stripes, checker, gradient, or a blend of two.

    Returns:
        (h, w, 3) float32 in [0, 1].
    """
    kind = rng.integers(5)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c = _colors(rng, 3)
    if kind == 0:  # coloured multi-scale noise
        t = np.stack([value_noise(rng, h, w) for _ in range(3)], 2)
        lo, hi = np.minimum(c[0], c[1]), np.maximum(c[0], c[1]) + 0.2
        img = lo + t * (hi - lo)
    elif kind in (1, 2):  # stripes or checker, random angle/period, soft edges
        ang = rng.uniform(0, np.pi)
        period = rng.uniform(4, max(6.0, w / 2))
        s = np.sin(2 * np.pi * (xx * np.cos(ang) + yy * np.sin(ang)) / period)
        if kind == 2:
            s = s * np.sin(2 * np.pi * (-xx * np.sin(ang) + yy * np.cos(ang)) / period)
        t = np.clip(s * rng.uniform(1, 8) * 0.5 + 0.5, 0, 1)[..., None]
        img = c[0] * t + c[1] * (1 - t)
    elif kind == 3:  # linear or radial gradient
        if rng.random() < 0.5:
            ang = rng.uniform(0, 2 * np.pi)
            t = xx * np.cos(ang) + yy * np.sin(ang)
        else:
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            t = np.hypot(yy - cy, xx - cx)
        t = ((t - t.min()) / max(float(np.ptp(t)), 1e-6))[..., None]
        img = c[0] * t + c[1] * (1 - t)
    else:  # blend of two textures by a noise mask
        a, b = procedural(rng, h, w), procedural(rng, h, w)
        m = (value_noise(rng, h, w, 3) > 0.5).astype(np.float32)[..., None]
        img = a * m + b * (1 - m)
    if rng.random() < 0.5:  # fine grain
        img = img * (0.85 + 0.3 * value_noise(rng, h, w, 2)[..., None])
    return np.clip(img, 0, 1).astype(np.float32)


def random_background(rng: np.random.Generator, h: int, w: int, p_photo: float = 0.5) -> np.ndarray:
    """A background: a photograph crop with probability ``p_photo`` (when any is installed), otherwise a
    procedural texture; sometimes the photo is mixed with a texture.

    Returns:
        (h, w, 3) float32 in [0, 1].
    """
    if rng.random() < p_photo:
        img = photo_crop(rng, h, w)
        if img is not None:
            if rng.random() < 0.2:
                a = np.float32(rng.uniform(0.2, 0.5))
                img = (1 - a) * img + a * procedural(rng, h, w)
            return img
    return procedural(rng, h, w)
