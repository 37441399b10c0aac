"""Backgrounds and occluder textures for the synthetic images: real photographs shipped inside
installed Python packages, procedural textures and indoor-clutter collages.

Photographs (only files that are really inside site-packages; nothing is downloaded; missing ones are
skipped, and the package is never imported):
- ``matplotlib/mpl-data/sample_data/grace_hopper.jpg`` (portrait, 512x600);
- ``sklearn/datasets/images/china.jpg`` (temple and trees, 427x640) and
  ``sklearn/datasets/images/flower.jpg`` (flower, 427x640), scikit-learn's sample images;
- scikit-image's bundled photographs (``skimage/data/``): colour ``astronaut.png`` (portrait with flag and
  shuttle model), ``chelsea.png`` (cat), ``coffee.png`` (cup on a wooden table), ``motorcycle_left.png``
  (garage with shelves full of boxes), ``rocket.jpg`` (launch pad at dusk), and the greyscale photographs
  ``brick.png``, ``grass.png``, ``gravel.png`` (surface textures) and ``camera.png`` (cameraman outdoors),
  which are tinted with a random muted colour when drawn. Left out on purpose: charts and synthetic images
  (``color.png``, ``horse.png``, ``logo.png``, ``chessboard_*``, ``page.png``, ``text.png``), microscopy and
  medical images (``cell.png``, ``ihc.png``, ``retina.jpg``, ``microaneurysms.png``), astronomy
  (``hubble_deep_field.jpg``, ``moon.png``), ``coins.png`` and ``clock_motion.png`` (objects on flat black or
  grey), and ``motorcycle_right.png`` (a near-duplicate of the left view).
Each draw takes a random crop (10-100 % of the shorter side), flip, quarter turn and colour shift, so a few
photos still give varied clutter. Procedural textures: value noise summed over several scales, stripes,
checkerboards, linear/radial gradients and blends of these, in random colours. Collages (:func:`collage`):
a wall (flat colour with a light fall-off, photo or texture) with pasted photo crops and coloured panels,
door/frame bars and shelves of can- and box-like items (the real-world test photos are taken in front of a
drinks fridge).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

#: (package, path inside the package) of the photographs used as backgrounds (module docstring).
PHOTO_FILES = (
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    ("sklearn", "datasets/images/china.jpg"),
    ("sklearn", "datasets/images/flower.jpg"),
    ("skimage", "data/astronaut.png"),
    ("skimage", "data/chelsea.png"),
    ("skimage", "data/coffee.png"),
    ("skimage", "data/motorcycle_left.png"),
    ("skimage", "data/rocket.jpg"),
    ("skimage", "data/brick.png"),       # greyscale photographs (tinted when drawn)
    ("skimage", "data/grass.png"),
    ("skimage", "data/gravel.png"),
    ("skimage", "data/camera.png"),
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


def _read_photo(p: Path) -> np.ndarray:
    im = Image.open(p)
    if im.mode in ("L", "I;16", "I", "F", "LA"):
        return np.asarray(im.convert("L"))
    return np.asarray(im.convert("RGB"))


@lru_cache(maxsize=1)
def load_photos() -> tuple[np.ndarray, ...]:
    """The photographs as uint8 arrays, RGB (H, W, 3) or greyscale (H, W); cached per process (loaded
    before forking workers, they are shared). Empty if none is installed."""
    return tuple(_read_photo(p) for p in photo_paths())


@lru_cache(maxsize=1)
def _pil_photos() -> tuple:
    """:func:`load_photos` as PIL images (cropping and resizing in one step, no copies)."""
    return tuple(Image.fromarray(p) for p in load_photos())


def color_shift(img: np.ndarray, rng: np.random.Generator, strength: float = 0.25) -> np.ndarray:
    """Random per-channel gain, brightness, contrast, saturation of a float RGB image in [0, 1].

    Args:
        img: (H, W, 3) float in [0, 1].
        strength: relative size of the changes (gain +-strength/2 per channel, saturation +-2*strength,
            contrast +-strength, brightness +-strength/2).
    Returns:
        (H, W, 3) float32 in [0, 1].
    """
    g = 1 + rng.uniform(-strength, strength, 3) * 0.5  # per-channel gain
    sat = 1 + rng.uniform(-strength * 2, strength * 2)  # about the pixel's grey
    con = 1 + rng.uniform(-strength, strength)  # about the image mean
    bri = rng.uniform(-strength, strength) * 0.5
    # the four steps compose to one affine colour map: x -> x @ M + off
    M = (con * sat * np.eye(3) + con * (1 - sat) / 3) * g[:, None]
    mean = float((img.reshape(-1, img.shape[-1]).mean(0) * g).mean())
    off = (1 - con) * mean + bri
    x = img.reshape(-1, 3).astype(np.float32) @ M.astype(np.float32) + np.float32(off)
    return np.clip(x, 0, 1).reshape(img.shape)


def photo_crop(rng: np.random.Generator, h: int, w: int, photos=None) -> np.ndarray | None:
    """A random crop of a random photograph, resized to (h, w), flipped/turned and colour-shifted;
    greyscale photographs get a random muted tint.

    Returns:
        (h, w, 3) float32 in [0, 1], or None when no photograph is available.
    """
    if photos is None:
        photos, pil = load_photos(), _pil_photos()
    else:
        pil = None
    if not photos:
        return None
    i = int(rng.integers(len(photos)))
    img = photos[i]
    k = int(rng.integers(1, 4)) if rng.random() < 0.5 else 0  # quarter turns, applied after resizing
    H, W = img.shape[:2]
    if k % 2:
        H, W = W, H
    side = int(min(H, W) * rng.uniform(0.1, 1.0))
    aspect = rng.uniform(0.75, 1.33) * (w / h)
    ch, cw = side, min(W, max(4, int(side * aspect)))
    ch = min(H, ch)
    y = int(rng.integers(0, H - ch + 1))
    x = int(rng.integers(0, W - cw + 1))
    flip = rng.random() < 0.5
    # the crop box in the unturned photo: turning by k quarters (np.rot90, counter-clockwise) maps
    # unturned (row, col) to turned coordinates; invert that for the box
    H0, W0 = img.shape[:2]
    if k == 0:
        box, size = (x, y, x + cw, y + ch), (w, h)
    elif k == 1:  # turned (r, c) <- unturned (c, W0 - 1 - r)
        box, size = (W0 - y - ch, x, W0 - y, x + cw), (h, w)
    elif k == 2:
        box, size = (W0 - x - cw, H0 - y - ch, W0 - x, H0 - y), (w, h)
    else:  # turned (r, c) <- unturned (H0 - 1 - c, r)
        box, size = (y, H0 - x - cw, y + ch, H0 - x), (h, w)
    src = pil[i] if pil is not None else Image.fromarray(np.ascontiguousarray(img))
    out = np.asarray(src.resize(size, Image.BILINEAR, box=box, reducing_gap=2.0))
    if k:
        out = np.rot90(out, k)
    if flip:
        out = out[:, ::-1]
    out = out.astype(np.float32) / np.float32(255.0)
    if out.ndim == 2:  # greyscale photograph: tint (saturation 0-0.35 around grey, mean gain 1)
        tint = 1 + (rng.uniform(0, 1, 3) - 0.5) * rng.uniform(0, 0.7)
        out = out[..., None] * (tint / tint.mean()).astype(np.float32)
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
    yy, xx = np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)[None, :]
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


def _fill(rng: np.random.Generator, h: int, w: int, photo_ok: bool = True) -> np.ndarray:
    """Contents of a collage panel: flat colour with a soft gradient, a photo crop or a texture."""
    c = rng.random()
    if c < 0.35 or h < 4 or w < 4:
        col = _colors(rng, 2)
        t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None] * np.float32(rng.uniform(0, 0.5))
        return np.clip(col[0] * (1 - t) + col[1] * t, 0, 1) * np.ones((1, w, 1), np.float32)
    if c < 0.8 and photo_ok:
        img = photo_crop(rng, h, w)
        if img is not None:
            return img
    return procedural(rng, h, w)


def _shelves(rng: np.random.Generator, img: np.ndarray, y0: int, y1: int, x0: int, x1: int,
             unit: float) -> None:
    """Draw shelves of can/bottle/box-like items into ``img[y0:y1, x0:x1]`` (in place): a dark interior,
    2-7 rows, each a shelf edge and a run of items in a few label colours with cylinder shading and a
    specular streak (cans, bottles) or flat fronts (boxes). ``unit``: the image side, pixels (sets the
    item size)."""
    H, W = y1 - y0, x1 - x0
    if H < 8 or W < 8:
        return
    interior = _colors(rng, 1)[0] * np.float32(rng.uniform(0.15, 0.7))
    img[y0:y1, x0:x1] = interior
    n_rows = int(np.clip(H / (unit * rng.uniform(0.1, 0.25)), 1, 7))
    edges = np.linspace(y0, y1, n_rows + 1).astype(int)
    shelf_col = _colors(rng, 1)[0] * 0.5 + np.float32(rng.uniform(0.2, 0.5))
    for r in range(n_rows):
        ra, rb = edges[r], edges[r + 1]
        rh = rb - ra
        if rh < 4:
            continue
        th = max(1, int(rh * rng.uniform(0.05, 0.15)))  # shelf edge thickness
        img[rb - th:rb, x0:x1] = shelf_col
        palette = _colors(rng, int(rng.integers(1, 5)))
        palette = np.clip(palette * np.float32(rng.uniform(0.8, 1.5)), 0, 1)
        cyl = rng.random() < 0.75
        iw = max(2, int(unit * rng.uniform(0.03, 0.08)))  # item width
        ih = int(min(rh - th - 1, iw * rng.uniform(1.3, 3.0)))
        if ih < 2:
            continue
        prof = np.linspace(-1, 1, iw, dtype=np.float32)
        shade_x = (0.55 + 0.45 * np.sqrt(np.clip(1 - prof ** 2, 0, 1))) if cyl else np.full(iw, 0.9, np.float32)
        if cyl:  # specular streak
            shade_x = shade_x + 0.5 * np.exp(-((prof - rng.uniform(-0.6, 0.6)) / 0.15) ** 2).astype(np.float32)
        x = x0 + int(rng.integers(0, max(1, iw // 2)))
        yb = rb - th
        while x + iw <= x1:
            col = palette[rng.integers(len(palette))]
            item = col[None, None, :] * shade_x[None, :, None] * np.ones((ih, 1, 1), np.float32)
            if rng.random() < 0.5:  # a label band / lid of another colour
                a = int(rng.integers(0, ih))
                b = min(ih, a + 1 + int(ih * rng.uniform(0.1, 0.4)))
                item[a:b] = palette[rng.integers(len(palette))] * shade_x[:, None]
            img[yb - ih:yb, x:x + iw] = np.clip(item, 0, 1)
            x += iw + int(rng.integers(0, 3))
            if rng.random() < 0.08:  # a gap in the row
                x += iw


def collage(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """An indoor-clutter background: a wall with a light fall-off (or a photo or texture), then in random
    order 1-5 pasted panels (photo crops, flat colours, textures: posters, doors, boxes), shelves of items
    (:func:`_shelves`) and 0-3 frame bars.

    Returns:
        (h, w, 3) float32 in [0, 1].
    """
    img = np.ascontiguousarray(_fill(rng, h, w), dtype=np.float32)
    if rng.random() < 0.5:  # light fall-off over the wall
        yy, xx = np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)[None, :]
        cy, cx = rng.uniform(-0.5, 1.5) * h, rng.uniform(-0.5, 1.5) * w
        d = np.hypot(yy - cy, xx - cx) / max(h, w)
        img = img * (1 - np.float32(rng.uniform(0.1, 0.5)) * np.clip(d, 0, 1))[..., None]
    ops = ["panel"] * int(rng.integers(0, 4)) + ["shelves"] * int(rng.random() < 0.75) + \
          ["bar"] * int(rng.integers(0, 4))
    for op in rng.permutation(ops):
        lo = 0.4 if op == "shelves" else 0.15
        ph, pw = int(h * rng.uniform(lo, 1.0)), int(w * rng.uniform(lo, 1.0))
        y, x = int(rng.integers(-ph // 3, h - ph // 2)), int(rng.integers(-pw // 3, w - pw // 2))
        ya, yb, xa, xb = max(y, 0), min(y + ph, h), max(x, 0), min(x + pw, w)
        if yb - ya < 2 or xb - xa < 2:
            continue
        if op == "panel":
            img[ya:yb, xa:xb] = _fill(rng, yb - ya, xb - xa)
        elif op == "shelves":
            _shelves(rng, img, ya, yb, xa, xb, max(h, w))
        else:  # a door or window frame: a dark or light bar, vertical or horizontal
            t = max(2, int(min(h, w) * rng.uniform(0.02, 0.1)))
            col = _colors(rng, 1)[0] * np.float32(rng.choice([0.15, 1.0]))
            if rng.random() < 0.7:
                img[:, xa:xa + t] = col
            else:
                img[ya:ya + t, :] = col
    if rng.random() < 0.5:  # slightly out of focus
        sig = float(rng.uniform(0.4, 1.2))
        img = gaussian_filter(img, (sig, sig, 0), truncate=2.5)
    return np.clip(img, 0, 1)


def random_background(rng: np.random.Generator, h: int, w: int, p_photo: float = 0.5,
                      p_collage: float = 0.0) -> np.ndarray:
    """A background: an indoor collage (:func:`collage`) with probability ``p_collage``, a photograph crop
    with probability ``p_photo`` (when any is installed), otherwise a procedural texture; sometimes the
    photo is mixed with a texture.

    Returns:
        (h, w, 3) float32 in [0, 1].
    """
    u = rng.random()
    if u < p_collage:
        return collage(rng, h, w)
    if u - p_collage < p_photo:
        img = photo_crop(rng, h, w)
        if img is not None:
            if rng.random() < 0.2:
                a = np.float32(rng.uniform(0.2, 0.5))
                img = (1 - a) * img + a * procedural(rng, h, w)
            return img
    return procedural(rng, h, w)
