"""How a synthetic hand and its surroundings look: skin colour, fingernails, creases, muted colours, the
sleeve's cloth and occluders (drawn by :func:`cliphand.data.synth.sample.render_sample`).

Skin: a random tone from light to dark with low-frequency colour variation shared by hand and forearm,
per-vertex mottling (``skin_mottle``), darker and slightly redder creases (concave mesh regions,
``crease_darken``), fingernails (:func:`nail_weights`: lighter, pinker and more specular patches on the
back of the distal phalanges) and a fine per-pixel grain (``skin_grain``).

Occluders (:func:`paste_occluder`): one random ellipse, rotated rectangle or star-shaped polygon over part
of the hand, filled with a procedural texture, a photograph crop or a flat colour.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from cliphand.config import SynthSettings
from cliphand.data.synth.backgrounds import photo_crop, procedural
from cliphand.data.synth.hand_model import RiggedHand
from cliphand.data.synth.render import vertex_normals

# base skin albedos (sRGB, 0-1), light to dark; a sample interpolates between neighbours
_SKIN = np.array([[0.96, 0.80, 0.69], [0.90, 0.70, 0.57], [0.80, 0.60, 0.46],
                  [0.66, 0.46, 0.33], [0.50, 0.33, 0.22], [0.36, 0.23, 0.15]])


def draw_range(rng: np.random.Generator, lohi: list[float]) -> float:
    """One uniform draw from a range setting ``lohi`` = [low, high] (:class:`cliphand.config.SynthSettings`)."""
    return rng.uniform(lohi[0], lohi[1])


def skin_field(rng: np.random.Generator, cfg: SynthSettings):
    """A random skin tone with a little low-frequency variation: returns ``f(points) -> (N, 3)`` albedo of
    template-frame points (metres), so the hand and the forearm share one continuous colour field."""
    t = rng.uniform(0, len(_SKIN) - 1)
    i = int(min(t, len(_SKIN) - 2))
    base = _SKIN[i] * (1 - (t - i)) + _SKIN[i + 1] * (t - i)
    base = base * (1 + rng.normal(0, cfg.skin_jitter, 3))
    w = rng.normal(0, 60.0, (3, 3))  # spatial frequencies, 1/metre
    ph = rng.uniform(0, 2 * np.pi, 3)
    redness = np.array([0.03, -0.02, -0.02]) * rng.uniform(0, 1)

    def field(pts: np.ndarray) -> np.ndarray:
        var = np.sin(pts @ w.T + ph).mean(1, keepdims=True)  # (N, 1) in [-1, 1]
        return np.clip(base[None, :] * (1 + 0.06 * var) + redness * (var > 0), 0, 1)

    return field


_NAILS: dict = {}
_ADJ: dict = {}

#: (distal phalanx, tip) skin-joint indices (hand_model.SKIN_JOINT_NAMES) of thumb, index, middle, ring, little
_DISTAL = ((3, 4), (8, 9), (13, 14), (18, 19), (23, 24))


def smoothstep(x):
    """Smoothstep of ``x`` clipped to [0, 1]: 0 below 0, 1 above 1, 3x^2 - 2x^3 between."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def nail_weights(hand: RiggedHand) -> np.ndarray:
    """(V,) fingernail weight in [0, 1] per vertex of the bind pose (cached per hand object).

    Per finger: vertices skinned to the distal phalanx (weight of the distal and tip joints > 0.5), from 40 %
    of the way from the DIP joint to the finger's end (the mesh's farthest vertex along the bone) to 1.5 mm
    short of the end, whose welded normal points to the back of the finger: the distal joint's +Y axis
    (WebXR joint frames have +Y out of the back of the hand; for the four fingers it is within a few degrees
    of minus the palm normal, for the thumb it is the thumb's own back). Soft edges (smoothstep).
    """
    key = id(hand)
    if key in _NAILS and _NAILS[key][0] is hand:
        return _NAILS[key][1]
    n = vertex_normals(hand.verts, hand.faces, hand.weld)
    b = hand.bind_joints
    w = np.zeros(len(hand.verts))
    for dj, tj in _DISTAL:
        u = b[tj] - b[dj]
        u /= np.linalg.norm(u)
        y = hand.bind_world[dj, :3, 1]
        y = y - (y @ u) * u
        y /= np.linalg.norm(y)
        own = (hand.weights[:, dj] + hand.weights[:, tj]) > 0.5
        a = (hand.verts - b[dj]) @ u
        end = a[own].max()
        along = smoothstep((a - 0.4 * end) / (0.15 * end)) * (1 - smoothstep((a - (end - 0.003)) / 0.0015))
        w = np.maximum(w, own * along * smoothstep((n @ y - 0.45) / 0.35))
    _NAILS[key] = (hand, w)
    return w


def concavity(hand: RiggedHand, verts: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """(V,) concavity of the posed mesh: (mean of the welded neighbours - vertex) . normal, divided by the
    mean edge length (> 0 in creases and folds, < 0 on knuckles and ridges)."""
    key = id(hand)
    if key not in _ADJ or _ADJ[key][0] is not hand:
        f = hand.weld[hand.faces]
        e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
        e = np.unique(np.sort(e, 1), axis=0)
        e = np.concatenate([e, e[:, ::-1]])  # both directions
        _ADJ[key] = (hand, e, np.bincount(e[:, 0], minlength=len(hand.verts)))
    _, e, deg = _ADJ[key]
    V = len(verts)
    d = verts[e[:, 1]] - verts[e[:, 0]]
    nb = np.stack([np.bincount(e[:, 0], d[:, c], minlength=V) for c in range(3)], 1)
    ln = np.bincount(e[:, 0], np.linalg.norm(d, axis=1), minlength=V)
    dg = np.maximum(deg, 1)
    c = (nb / dg[:, None] * normals).sum(1) / np.maximum(ln / dg, 1e-9)
    return c[hand.weld]


def muted_color(rng: np.random.Generator, sat_max: float = 0.5) -> np.ndarray:
    """A random muted RGB colour (grey level 0.1-0.85, saturation up to ``sat_max``)."""
    g = rng.uniform(0.1, 0.85)
    return np.clip(g + (rng.uniform(0, 1, 3) - 0.5) * rng.uniform(0, sat_max) * 2 * min(g, 1 - g) * 2, 0, 1)


def draw_cloth(rng: np.random.Generator, cfg: SynthSettings) -> dict:
    """The sleeve's colour ``cloth`` (3,) and whether it gets a texture, ``texture``."""
    return {"cloth": muted_color(rng), "texture": rng.random() < cfg.p_sleeve_texture}


def paste_occluder(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, cfg: SynthSettings) -> np.ndarray:
    """Paste one random shape (ellipse, rotated rectangle or polygon; textured, photo or flat colour)
    over part of the hand. img (R, R, 3) float in [0, 1]; mask (R, R) bool hand silhouette."""
    R = img.shape[0]
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return img
    box_area = (np.ptp(ys) + 1) * (np.ptp(xs) + 1)
    area = draw_range(rng, cfg.occlusion_frac) * box_area
    k = rng.integers(len(ys))
    cy, cx = ys[k], xs[k]
    yy, xx = np.mgrid[0:R, 0:R].astype(np.float64)
    ang = rng.uniform(0, np.pi)
    dx = (xx - cx) * np.cos(ang) + (yy - cy) * np.sin(ang)
    dy = -(xx - cx) * np.sin(ang) + (yy - cy) * np.cos(ang)
    aspect = rng.uniform(0.3, 1.0)
    kind = rng.integers(3)
    if kind == 0:  # ellipse
        a = np.sqrt(area / (np.pi * aspect))
        occ = (dx / a) ** 2 + (dy / (a * aspect)) ** 2 <= 1
    elif kind == 1:  # rotated rectangle (e.g. a bar or an object edge)
        a = np.sqrt(area / aspect)
        occ = (np.abs(dx) <= a / 2) & (np.abs(dy) <= a * aspect / 2)
    else:  # random star-shaped polygon via radius by angle
        r0 = np.sqrt(area / np.pi)
        nv = int(rng.integers(5, 9))
        radii = r0 * rng.uniform(0.6, 1.4, nv)
        theta = np.arctan2(dy, dx)
        rr = np.interp(theta, np.linspace(-np.pi, np.pi, nv + 1), np.append(radii, radii[0]))
        occ = np.hypot(dx, dy) <= rr
    c = rng.random()
    if c < 0.4:
        tex = procedural(rng, R, R)
    elif c < 0.7:
        tex = photo_crop(rng, R, R)
        if tex is None:
            tex = procedural(rng, R, R)
    else:
        tex = np.broadcast_to(rng.uniform(0, 1, 3).astype(np.float32), (R, R, 3))
    alpha = gaussian_filter(occ.astype(np.float32), 0.5)[..., None]
    return img * (1 - alpha) + tex * alpha

