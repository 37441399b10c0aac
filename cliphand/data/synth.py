"""Synthetic training images of the rigged WebXR hand with domain randomisation, and the
``synthesize`` stage that writes them (file formats: the design's "synthesize stage").

One sample (:func:`render_sample`): random articulation (:mod:`cliphand.data.articulation`), random hand
size, global rotation, camera (focal length, principal point, distance, position in the image), a forearm
attached at the wrist, often in a sleeve (:mod:`cliphand.data.forearm`), skin, lights, background
(photo, indoor-clutter collage or procedural texture, :mod:`cliphand.data.backgrounds`), occluders, then
blur, colour jitter, noise and JPEG compression. Rendering: :mod:`cliphand.data.render` (hand and forearm
in one z-buffer). The labels (``joints``, ``verts``) are the hand's only.

Skin: a random tone from light to dark with low-frequency colour variation shared by hand and forearm,
per-vertex mottling (``skin_mottle``), darker and slightly redder creases (concave mesh regions,
``crease_darken``), fingernails (:func:`nail_weights`: lighter, pinker and more specular patches on the
back of the distal phalanges) and a fine per-pixel grain (``skin_grain``). Lights: a key light, with
probability ``p_fill_light`` a fill light of another colour, an ambient and a hemispheric ambient (sky
colour from above, a muted ground bounce from below), drawn independently (flat to contrasty) and then
scaled together to a random ``exposure`` (like a camera's auto-exposure).

Global rotation: with probability ``p_upright`` a "presented hand" view like the real-world test set
(fingers up, palm or back of the hand to the camera, 50/50), turned by a random roll of up to +-60 deg
and tilts of up to +-``upright_jitter_deg`` about the image axes; otherwise a uniformly random rotation
(scipy ``Rotation.random``) redrawn while the hand's long axis (wrist -> middle MCP) lies within
``min_view_angle_deg`` of the optical axis (a hand seen end-on hides almost every joint).

Every sample is drawn from its own generator ``np.random.default_rng([seed, split_id, index])``
(split_id train 0, val 1, test 2), so the output does not depend on the number of workers.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter
from scipy.spatial.transform import Rotation

from cliphand.data import forearm as fa
from cliphand.data.articulation import (SAMPLER_DEFAULTS, Articulator, calibrate_label_offsets, load_gestures,
                                        palm_frame)
from cliphand.data.backgrounds import color_shift, load_photos, photo_crop, procedural, random_background
from cliphand.data.hand_model import RiggedHand
from cliphand.data.render import rasterize, shade, vertex_normals
from cliphand.io import atomic_path, save_npy, save_npz

#: All settings of the synthesize stage (``params.yaml`` ``synth:``), with their defaults. Ranges are
#: [low, high] drawn uniformly.
DEFAULTS = {
    "render_size": 160,             # R: square image side, pixels
    "fov_deg": [20.0, 45.0],        # horizontal field of view -> focal f = (R/2) / tan(fov/2), pixels
    "hand_size_frac": [0.5, 0.9],   # longest side of the hand mesh's 2D box / R
    "center_jitter": 0.15,          # box centre offset from the image centre, +- fraction of R
    "principal_jitter": 0.05,       # principal point offset from the image centre, +- fraction of R
    "hand_scale": [0.9, 1.1],       # isotropic scale of the template hand (hand size variation)
    "bone_scale_jitter": 0.0,       # std of the palm's and of each finger's length factor (hand shape), 0 = off
    "p_upright": 0.5,               # chance of a presented-hand view (module docstring)
    "upright_jitter_deg": 40.0,     # tilt range of presented-hand views, degrees
    "min_view_angle_deg": 30.0,     # uniform views: min angle between hand axis and optical axis
    "skin_jitter": 0.06,            # per-channel jitter of the skin albedo
    "skin_mottle": 0.03,            # std of the per-vertex multiplicative albedo noise (mm-scale blotches)
    "skin_grain": [0.005, 0.025],   # std of the per-pixel multiplicative skin texture (fine grain), fraction
    "crease_darken": [0.0, 0.2],    # darkening (and reddening) of concave mesh regions (creases), fraction
    "nail_tint": [0.3, 0.7],        # fingernail albedo: blend weight from skin towards a light pink, 0-1
    "nail_specular": [0.15, 0.5],   # extra Blinn-Phong specular strength on the fingernails
    "ambient": [0.15, 0.7],         # ambient light intensity (before the exposure normalisation)
    "hemi_ambient": [0.0, 0.4],     # hemispheric ambient intensity (sky from above, ground bounce below)
    "light_intensity": [0.3, 1.1],  # key light intensity (before the exposure normalisation)
    "light_color_jitter": 0.15,     # per-channel jitter of the light colour
    "p_fill_light": 0.6,            # chance of a second (fill) directional light
    "fill_intensity": [0.1, 0.6],   # fill light intensity / key light intensity
    "fill_color_jitter": 0.3,       # per-channel jitter of the fill light colour
    "exposure": [0.75, 1.15],       # ambient + hemispheric + half the direct light, after normalisation
    "wrap": [0.2, 0.5],             # wrapped-Lambert softness (0 hard terminator, 1 very soft)
    "specular": [0.0, 0.25],        # Blinn-Phong specular strength (skin)
    "shininess": [5.0, 40.0],       # Blinn-Phong exponent
    "p_forearm": 0.9,               # chance of a forearm attached at the wrist (cliphand.data.forearm)
    "forearm_length": [0.08, 0.25], # how far the forearm reaches behind the wrist, metres
    "forearm_bend_deg": 20.0,       # max wrist flexion and deviation between hand and forearm, +- degrees
    "forearm_taper": [1.1, 1.4],    # forearm cross-section 20 cm behind the wrist / at the wrist
    "p_sleeve": 0.6,                # chance (given a forearm) of a sleeve over the forearm
    "sleeve_start": [0.02, 0.12],   # distance of the sleeve's edge from the wrist, metres
    "sleeve_widen": [1.1, 1.35],    # sleeve cross-section / forearm cross-section
    "p_sleeve_texture": 0.3,        # chance of a procedural texture on the sleeve (else plain cloth)
    "p_photo_bg": 0.5,              # chance of a photograph background
    "p_collage_bg": 0.3,            # chance of an indoor-clutter collage background (rest: procedural)
    "p_occlusion": 0.4,             # chance of one occluder over the hand
    "occlusion_frac": [0.05, 0.3],  # occluder area / hand box area
    "color_jitter": 0.15,           # strength of the final brightness/contrast/saturation/gain jitter
    "p_blur": 0.4,                  # chance of Gaussian blur
    "blur_sigma": [0.3, 1.2],       # blur sigma, pixels
    "noise_std": [0.0, 6.0],        # Gaussian pixel noise std, 0-255 units
    "p_jpeg": 0.5,                  # chance of JPEG compression
    "jpeg_quality": [40, 95],       # JPEG quality range
    "gestures_path": "../shared/data/ge_synthetic_gestures/handGestures.txt",  # None: no gesture prior
    "label_convention": "ge",       # "ge": label joints calibrated to the Ge et al. gestures (tips on the skin of
                                    # the fingertip, FreiHAND-like thumb base and wrist; needs gestures_path);
                                    # "webxr": the asset's own joints (tips mid-way along the distal phalanx)
    **SAMPLER_DEFAULTS,             # articulation sampler (cliphand.data.articulation)
}

SPLITS = {"train": 0, "val": 1, "test": 2}

# base skin albedos (sRGB, 0-1), light to dark; a sample interpolates between neighbours
_SKIN = np.array([[0.96, 0.80, 0.69], [0.90, 0.70, 0.57], [0.80, 0.60, 0.46],
                  [0.66, 0.46, 0.33], [0.50, 0.33, 0.22], [0.36, 0.23, 0.15]])

_ARTICULATORS: dict = {}


#: keys of the params.yaml ``synth:`` section that are arguments of :func:`synthesize`, not render settings
STAGE_KEYS = ("n_train", "n_val", "n_test", "workers", "seed")


def merge_cfg(cfg: dict | None) -> dict:
    """``DEFAULTS`` updated by ``cfg`` (:data:`STAGE_KEYS` are dropped, so the whole params.yaml ``synth:``
    section can be passed). Raises ValueError naming unknown keys (typos in params.yaml)."""
    cfg = {k: v for k, v in (cfg or {}).items() if k not in STAGE_KEYS}
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown synth settings {unknown}; known: {sorted(DEFAULTS)}")
    return {**DEFAULTS, **cfg}


def _articulator(hand: RiggedHand, cfg: dict) -> Articulator:
    """One Articulator per (hand, gesture file) and process (gesture fitting runs once)."""
    gp = cfg["gestures_path"] if cfg["p_gesture"] > 0 else None
    key = (id(hand), str(gp))
    if key not in _ARTICULATORS:
        _ARTICULATORS[key] = Articulator(hand, load_gestures(gp) if gp else None)
    return _ARTICULATORS[key]


def _u(rng, lohi):
    return rng.uniform(lohi[0], lohi[1])


def _bone_scales(rng: np.random.Generator, cfg: dict) -> np.ndarray:
    """(25,) bone length factors of one sample's hand shape (:meth:`RiggedHand.with_bone_scales`): the palm
    (wrist -> finger bases and metacarpals) by one factor, each finger's phalanges (thumb: metacarpal and
    phalanges) by its own, both ~ N(1, ``bone_scale_jitter``) clipped to +-2.5 std; 1 everywhere at jitter 0."""
    sd = float(cfg["bone_scale_jitter"])
    scales = np.ones(25)
    if sd <= 0:
        return scales
    draw = lambda: 1.0 + float(np.clip(rng.normal(0.0, sd), -2.5 * sd, 2.5 * sd))  # noqa: E731
    palm = draw()
    for base in (5, 10, 15, 20):            # wrist -> metacarpal joint, metacarpal -> proximal phalanx
        scales[base] = scales[base + 1] = palm
    scales[1] = palm                        # wrist -> thumb base: part of the palm
    scales[2:5] = draw()                    # thumb: metacarpal, phalanges, tip
    for base in (5, 10, 15, 20):
        scales[base + 2: base + 5] = draw() # each finger's phalanges and tip
    return scales


def _rotation(rng: np.random.Generator, j21: np.ndarray, cfg: dict) -> np.ndarray:
    """Global rotation (3, 3) from the template frame to the camera frame (module docstring)."""
    P = palm_frame(j21)  # columns: along the hand, radial, palm normal
    if rng.random() < cfg["p_upright"]:
        palm_to_cam = rng.random() < 0.5
        n_img = np.array([0.0, 0.0, -1.0 if palm_to_cam else 1.0])  # palm normal towards / away from camera
        up = np.array([0.0, -1.0, 0.0])  # fingers up in the image
        tgt = np.stack([up, np.cross(n_img, up), n_img], 1)  # image of the palm frame (right-handed)
        j = cfg["upright_jitter_deg"]
        jit = Rotation.from_euler("zxy", [rng.uniform(-60, 60), rng.uniform(-j, j), rng.uniform(-j, j)],
                                  degrees=True).as_matrix()
        return jit @ tgt @ P.T
    cos_min = np.cos(np.radians(cfg["min_view_angle_deg"]))
    for _ in range(100):
        R = Rotation.random(random_state=rng).as_matrix()
        if abs((R @ P[:, 0])[2]) < cos_min:
            break
    return R


def _skin_field(rng: np.random.Generator, cfg: dict):
    """A random skin tone with a little low-frequency variation: returns ``f(points) -> (N, 3)`` albedo of
    template-frame points (metres), so the hand and the forearm share one continuous colour field."""
    t = rng.uniform(0, len(_SKIN) - 1)
    i = int(min(t, len(_SKIN) - 2))
    base = _SKIN[i] * (1 - (t - i)) + _SKIN[i + 1] * (t - i)
    base = base * (1 + rng.normal(0, cfg["skin_jitter"], 3))
    w = rng.normal(0, 60.0, (3, 3))  # spatial frequencies, 1/metre
    ph = rng.uniform(0, 2 * np.pi, 3)
    redness = np.array([0.03, -0.02, -0.02]) * rng.uniform(0, 1)

    def field(pts: np.ndarray) -> np.ndarray:
        var = np.sin(pts @ w.T + ph).mean(1, keepdims=True)  # (N, 1) in [-1, 1]
        return np.clip(base[None, :] * (1 + 0.06 * var) + redness * (var > 0), 0, 1)

    return field


def _skin_albedo(rng: np.random.Generator, hand: RiggedHand, cfg: dict) -> np.ndarray:
    """(V, 3) per-vertex skin colour of the hand: :func:`_skin_field` at the template vertices."""
    return _skin_field(rng, cfg)(hand.verts)


_NAILS: dict = {}
_ADJ: dict = {}

#: (distal phalanx, tip) skin-joint indices (hand_model.JOINT_NAMES) of thumb, index, middle, ring, little
_DISTAL = ((3, 4), (8, 9), (13, 14), (18, 19), (23, 24))


def _smooth(x):
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
        along = _smooth((a - 0.4 * end) / (0.15 * end)) * (1 - _smooth((a - (end - 0.003)) / 0.0015))
        w = np.maximum(w, own * along * _smooth((n @ y - 0.45) / 0.35))
    _NAILS[key] = (hand, w)
    return w


def _concavity(hand: RiggedHand, verts: np.ndarray, normals: np.ndarray) -> np.ndarray:
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


def _muted(rng: np.random.Generator, sat_max: float = 0.5) -> np.ndarray:
    """A random muted RGB colour (grey level 0.1-0.85, saturation up to ``sat_max``)."""
    g = rng.uniform(0.1, 0.85)
    return np.clip(g + (rng.uniform(0, 1, 3) - 0.5) * rng.uniform(0, sat_max) * 2 * min(g, 1 - g) * 2, 0, 1)


def _forearm(hand: RiggedHand, rng: np.random.Generator, cfg: dict, scale: float, Rm: np.ndarray,
             t: np.ndarray, zlim: float, K: np.ndarray, R: int) -> dict:
    """Draw and build the forearm (:mod:`cliphand.data.forearm`) of a sample: template mesh plus ``cam``,
    its vertices in the camera frame (template * ``scale``, rotated by ``Rm``, shifted by ``t``, like the
    hand). The arm is shortened so that no vertex comes nearer the camera than ``zlim`` (metres) where
    possible; an arm whose far end would show inside the R x R image (K) is lengthened until it leaves the
    image (an arm does not end in mid-air), up to 45 cm (then the upper arm, same tube) and while it stays
    beyond ``zlim``. Also draws the sleeve's colour: ``cloth`` (3,), and ``texture`` (bool)."""
    fit = fa.fit_wrist(hand)
    length = _u(rng, cfg["forearm_length"])
    bend = cfg["forearm_bend_deg"]
    flex, dev = rng.uniform(-bend, bend, 2)
    taper = _u(rng, cfg["forearm_taper"])
    sleeve = rng.random() < cfg["p_sleeve"]
    start, widen = _u(rng, cfg["sleeve_start"]), _u(rng, cfg["sleeve_widen"])
    folds = rng.uniform(0.0, 0.08)
    fold_seed = int(rng.integers(2 ** 62))

    def build(length):
        m = fa.forearm_mesh(fit, length, flex, dev, taper, start if sleeve else None, widen, folds,
                            np.random.default_rng(fold_seed))
        m["cam"] = (scale * m["verts"]) @ Rm.T + t
        return m

    m = build(length)
    close = m["cam"][:, 2] < zlim
    if close.any():
        return build(max(fit.stub + 0.01, m["dist"][close].min() - 0.01)) | _cloth(rng, cfg)
    # lengthen (1 cm steps) until the far end, with its radius, projects outside the image
    ext = np.arange(0.0, max(0.45 - length, 0.0) + 1e-9, 0.01)
    p = (scale * m["end"]) @ Rm.T + t + scale * ext[:, None] * (Rm @ m["end_dir"])
    ok = p[:, 2] > zlim
    zz = np.where(ok, p[:, 2], 1.0)
    uv = p[:, :2] / zz[:, None] * [K[0, 0], K[1, 1]] + K[:2, 2]
    rad = K[0, 0] * scale * m["end_radius"] / zz
    out = ok & ((uv < -rad[:, None]) | (uv > R - 1 + rad[:, None])).any(1)
    if not out[0]:
        hit = np.nonzero(out)[0]
        if len(hit) and ok[:hit[0] + 1].all():
            m = build(length + ext[hit[0]] + 0.01)
    return m | _cloth(rng, cfg)


def _cloth(rng: np.random.Generator, cfg: dict) -> dict:
    """The sleeve's colour ``cloth`` (3,) and whether it gets a texture, ``texture``."""
    return {"cloth": _muted(rng), "texture": rng.random() < cfg["p_sleeve_texture"]}


def _occluder(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, cfg: dict) -> np.ndarray:
    """Paste one random shape (ellipse, rotated rectangle or polygon; textured, photo or flat colour)
    over part of the hand. img (R, R, 3) float in [0, 1]; mask (R, R) bool hand silhouette."""
    R = img.shape[0]
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return img
    box_area = (np.ptp(ys) + 1) * (np.ptp(xs) + 1)
    area = _u(rng, cfg["occlusion_frac"]) * box_area
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


def render_sample(hand: RiggedHand, rng: np.random.Generator, cfg: dict | None = None) -> dict:
    """Render one randomised synthetic image of the hand.

    Args:
        hand: the rigged hand (:meth:`RiggedHand.from_glb`).
        rng: the sample's generator (all randomness comes from it).
        cfg: settings, keys of :data:`DEFAULTS` (missing keys take the defaults).
    Returns:
        dict with ``image`` uint8 (R, R, 3) RGB; ``K`` float32 (3, 3) intrinsics, pixels (pixel centres at
        integer coordinates); ``joints`` float32 (21, 3) FreiHAND order and ``verts`` float32 (V, 3), metres,
        camera frame (x right, y down, z forward), of the hand only (not the forearm); ``mask`` bool (R, R)
        the hand's own visible silhouette (pixels where the hand mesh is the nearest surface; not the
        forearm) before occluders (for checks; not stored by :func:`synthesize`).
    Raises:
        ValueError: unknown cfg keys. DataError: gesture file missing (when ``p_gesture`` > 0).
    """
    cfg = merge_cfg(cfg)
    R = int(cfg["render_size"])
    art = _articulator(hand, cfg)
    angles = art.sample(rng, cfg)
    shape_rng = np.random.default_rng(rng.integers(2 ** 62))  # own stream: jitter 0 leaves the rest unchanged
    posed = hand if cfg["bone_scale_jitter"] <= 0 else hand.with_bone_scales(_bone_scales(shape_rng, cfg))
    verts, joints = posed.pose(art.rotations(angles))
    s = _u(rng, cfg["hand_scale"])
    verts, joints = verts * s, joints * s

    Rm = _rotation(rng, hand.joints21, cfg)
    verts, joints = verts @ Rm.T, joints @ Rm.T

    # camera: focal from the field of view, principal point near the centre
    f = (R / 2) / np.tan(np.radians(_u(rng, cfg["fov_deg"])) / 2)
    c0 = (R - 1) / 2
    pj = cfg["principal_jitter"] * R
    cx, cy = c0 + rng.uniform(-pj, pj), c0 + rng.uniform(-pj, pj)
    K = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]])
    # place the hand: its mesh box gets the drawn size and centre (weak perspective, two corrections)
    size = _u(rng, cfg["hand_size_frac"]) * R
    cj = cfg["center_jitter"] * R
    target = np.array([c0 + rng.uniform(-cj, cj), c0 + rng.uniform(-cj, cj)])
    lo, hi = verts[:, :2].min(0), verts[:, :2].max(0)
    z0 = f * max(hi - lo) / size
    mid = (lo + hi) / 2

    def shift(z):  # translation putting the box centre on the target pixel at depth z
        return np.array([(target[0] - cx) * z / f - mid[0], (target[1] - cy) * z / f - mid[1],
                         z - joints[:, 2].mean()])

    for _ in range(2):
        vc = verts + shift(z0)
        uv = vc[:, :2] / vc[:, 2:] * f + [cx, cy]
        z0 *= max(uv.max(0) - uv.min(0)) / size
    t = shift(z0)
    # keep the hand in front of the camera and limit perspective blow-up (nearest vertex at least half
    # as far as the joints' mean depth, and at least 5 cm away)
    zmin, zm = verts[:, 2].min() + t[2], joints[:, 2].mean() + t[2]
    t[2] += max(0.0, zm - 2 * zmin, 0.05 - zmin)
    verts, joints = verts + t, joints + t

    # forearm (own generator, so the rest of the sample does not depend on whether/how it is drawn)
    arm_rng = np.random.default_rng(rng.integers(2 ** 62))
    arm = None
    if arm_rng.random() < cfg["p_forearm"]:
        arm = _forearm(hand, arm_rng, cfg, s, Rm, t, max(0.05, 0.5 * joints[:, 2].mean()), K, R)

    # materials: skin colour field (hand and arm), mottling, creases, nails
    V, F = len(verts), len(hand.faces)
    skin = _skin_field(rng, cfg)
    albedo = skin(hand.verts) * (1 + rng.normal(0, cfg["skin_mottle"], V)[hand.weld])[:, None]
    normals = vertex_normals(verts, hand.faces, hand.weld)  # welded: no creases along the UV seams
    crease = _u(rng, cfg["crease_darken"]) * _smooth(_concavity(hand, verts, normals) / 0.08)
    albedo = albedo * (1 - crease[:, None] * np.array([0.8, 1.0, 1.0]))
    nail = nail_weights(hand) * _u(rng, cfg["nail_tint"])
    nail_col = 0.5 * albedo + 0.5 * np.array([0.96, 0.80, 0.78])
    albedo = albedo * (1 - nail[:, None]) + nail_col * nail[:, None]
    ks = _u(rng, cfg["specular"])
    spec = ks + nail * _u(rng, cfg["nail_specular"])

    # lights: key, optional fill, ambient and hemispheric ambient, then an "auto-exposure" normalisation
    light = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), -rng.uniform(0.3, 1.5)])
    lcol = _u(rng, cfg["light_intensity"]) * (1 + rng.uniform(-1, 1, 3) * cfg["light_color_jitter"])
    amb = _u(rng, cfg["ambient"]) * (1 + rng.uniform(-0.1, 0.1, 3))
    hemi = _u(rng, cfg["hemi_ambient"])
    sky = hemi * (1 + rng.uniform(-0.15, 0.15, 3))
    ground = hemi * _muted(rng, 0.6) / 0.6
    fill_on = rng.random() < cfg["p_fill_light"]
    fill_dir = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), -rng.uniform(-0.3, 1.2)])
    fcol = (_u(rng, cfg["fill_intensity"]) * lcol.mean() * fill_on
            * (1 + rng.uniform(-1, 1, 3) * cfg["fill_color_jitter"]))
    gain = _u(rng, cfg["exposure"]) / (amb.mean() + (sky.mean() + ground.mean()) / 2
                                        + 0.5 * (lcol.mean() + fcol.mean()))
    wrap = _u(rng, cfg["wrap"])
    # fine skin texture: zero-mean noise, per pixel plus 3-pixel blotches (std about 1 before the scale)
    coarse = Image.fromarray(rng.random((R // 3 + 1, R // 3 + 1), np.float32) - 0.5).resize((R, R), Image.BILINEAR)
    grain = np.float32(_u(rng, cfg["skin_grain"]) * np.sqrt(12.0)) * (
        0.6 * (rng.random((R, R), np.float32) - 0.5) + 0.8 * np.asarray(coarse))

    # one z-buffer for hand and forearm
    all_v, all_f, all_n, all_a, all_s = verts, hand.faces, normals, albedo, spec
    if arm is not None:
        cloth = arm["cloth"]
        part = arm["part"]
        arm_alb = np.where((part == fa.SKIN)[:, None],
                           skin(arm["verts"]) * (1 + arm_rng.normal(0, cfg["skin_mottle"], len(part)))[:, None],
                           np.where((part == fa.CLOTH)[:, None], cloth, 0.3 * cloth))
        all_v = np.concatenate([verts, arm["cam"]])
        all_f = np.concatenate([hand.faces, arm["faces"] + V])
        all_n = np.concatenate([normals, arm["normals"] @ Rm.T])
        all_a = np.concatenate([albedo, arm_alb])
        all_s = np.concatenate([spec, np.where(part == fa.SKIN, ks, 0.02)])
    depth, face, bary = rasterize(all_v, all_f, K, R, R)
    rgb, fg = shade(all_v, all_f, face, bary, all_a, light, lcol * gain, normals=all_n, ambient=amb * gain,
                    specular=all_s, shininess=_u(rng, cfg["shininess"]), wrap=wrap,
                    fill_dir=fill_dir if fill_on else None, fill_color=fcol * gain, sky=sky * gain,
                    ground=ground * gain)
    mask = fg & (face < F)  # the hand's own (visible) silhouette
    if arm is not None:
        cloth_px = fg & (face >= F)
        cloth_px[cloth_px] = arm["part"][arm["faces"][face[cloth_px] - F, 0]] != fa.SKIN
        if arm["texture"] and cloth_px.any():
            tex = procedural(arm_rng, R, R)[cloth_px]
            rgb[cloth_px] = np.clip(rgb[cloth_px] * tex / np.maximum(tex.mean(0), 0.05), 0, 1)
    rgb = np.where(fg[..., None], np.clip(rgb * (1 + grain[..., None]), 0, 1), rgb).astype(np.float32)

    # composite over the background with a soft (anti-aliased) silhouette, within the foreground's box
    bg = random_background(rng, R, R, cfg["p_photo_bg"], cfg["p_collage_bg"])
    img = bg
    if fg.any():
        ys, xs = np.nonzero(fg.any(1))[0], np.nonzero(fg.any(0))[0]
        sl = np.s_[max(ys[0] - 4, 0):ys[-1] + 5, max(xs[0] - 4, 0):xs[-1] + 5]
        m = fg[sl].astype(np.float32)
        sm = gaussian_filter(np.concatenate([rgb[sl] * m[..., None], m[..., None]], 2), (0.7, 0.7, 0), truncate=3.0)
        fill = sm[..., :3] / np.maximum(sm[..., 3:], 1e-6)
        hand_rgb = np.where(fg[sl][..., None], rgb[sl], fill)
        alpha = np.clip(gaussian_filter(m, 0.5, truncate=3.0) * 0.5 + m * 0.5, 0, 1)[..., None]
        img = bg.copy()
        img[sl] = bg[sl] * (1 - alpha) + hand_rgb * alpha
    if rng.random() < cfg["p_occlusion"]:
        img = _occluder(rng, img, mask, cfg)

    # camera effects
    img = color_shift(img, rng, cfg["color_jitter"])
    if rng.random() < cfg["p_blur"]:
        sig = _u(rng, cfg["blur_sigma"])
        img = gaussian_filter(img, (sig, sig, 0))
    # pixel noise: uniform with the drawn std (cheaper to draw than Gaussian; indistinguishable at these levels)
    sd = np.float32(_u(rng, cfg["noise_std"]) * np.sqrt(12.0))
    img = img * np.float32(255.0) + (rng.random(img.shape, np.float32) - np.float32(0.5)) * sd
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    if rng.random() < cfg["p_jpeg"]:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=int(rng.integers(cfg["jpeg_quality"][0],
                                                                               cfg["jpeg_quality"][1] + 1)))
        img = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return {"image": img, "K": K.astype(np.float32), "joints": joints.astype(np.float32),
            "verts": verts.astype(np.float32), "mask": mask}


# --- the synthesize stage -------------------------------------------------------------------------

_WORKER: dict = {}


def labelled_hand(glb_path: str | os.PathLike, cfg: dict) -> RiggedHand:
    """The rigged hand with the label joints of ``cfg['label_convention']``: ``webxr`` the asset's joints,
    ``ge`` offsets fitted to the Ge et al. gestures (:func:`cliphand.data.articulation.calibrate_label_offsets`).

    Raises:
        DataError: unreadable glb or gesture file; ValueError: an unknown convention, or ``ge`` without
            ``gestures_path``.
    """
    hand = RiggedHand.from_glb(glb_path)
    conv = cfg["label_convention"]
    if conv == "webxr":
        return hand
    if conv != "ge":
        raise ValueError(f"synth.label_convention must be 'ge' or 'webxr', got {conv!r}")
    if not cfg["gestures_path"]:
        raise ValueError("synth.label_convention 'ge' needs synth.gestures_path (the Ge et al. gestures)")
    hand.label_offsets = calibrate_label_offsets(hand, load_gestures(cfg["gestures_path"]))
    return hand


def _init_worker(glb_path: str, cfg: dict, label_offsets: np.ndarray | None) -> None:
    try:  # one BLAS thread per worker process
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:  # pragma: no cover
        pass
    _WORKER["hand"] = RiggedHand.from_glb(glb_path)
    _WORKER["hand"].label_offsets = label_offsets
    _WORKER["cfg"] = cfg
    _articulator(_WORKER["hand"], cfg)


def _render_chunk(task: tuple[int, int, int, int]) -> tuple[int, int, dict]:
    seed, split_id, start, stop = task
    hand, cfg = _WORKER["hand"], _WORKER["cfg"]
    out = {k: [] for k in ("image", "K", "joints", "verts")}
    for i in range(start, stop):
        s = render_sample(hand, np.random.default_rng([seed, split_id, i]), cfg)
        for k in out:
            out[k].append(s[k])
    return split_id, start, {k: np.stack(v) for k, v in out.items()}


def synthesize(glb_path: str | os.PathLike, out_dir: str | os.PathLike, n_train: int, n_val: int,
               n_test: int, seed: int = 0, cfg: dict | None = None, workers: int = 0,
               chunk: int = 16) -> dict:
    """Render the synthetic splits and write them (design doc, "synthesize stage").

    Files: ``<out_dir>/<split>/images.npy`` uint8 (n, R, R, 3); ``<out_dir>/<split>/labels.npz`` with
    ``K`` (n, 3, 3) float32 pixels, ``joints`` (n, 21, 3) float32 and ``verts`` (n, V, 3) float32, metres,
    camera frame; ``<out_dir>/template.npz`` with ``verts`` (V, 3) float32 bind pose (template frame),
    ``faces`` (F, 3) int32, ``joints`` (21, 3) float32. Splits train/val/test; sample i of a split is
    drawn from ``default_rng([seed, split_id, i])``, so the files do not depend on ``workers``. Images are
    written into a memory-mapped temporary file and renamed when complete (atomic).

    Args:
        glb_path: the rigged hand (``right.glb``).
        out_dir: e.g. ``data/synth``.
        n_train, n_val, n_test: samples per split (0 writes an empty split).
        seed: base seed.
        cfg: settings (:data:`DEFAULTS` keys).
        workers: processes (0 = ``os.cpu_count()``; 1 = in this process).
        chunk: samples per task.
    Returns:
        {split: n} written.
    Raises:
        DataError: unreadable glb or gesture file. ValueError: unknown cfg keys.
    """
    cfg = merge_cfg(cfg)
    out_dir = Path(out_dir)
    hand = labelled_hand(glb_path, cfg)
    _articulator(hand, cfg)  # fail early on a bad gesture file
    R = int(cfg["render_size"])
    V = len(hand.verts)
    workers = (os.cpu_count() or 1) if workers == 0 else int(workers)
    sizes = {"train": int(n_train), "val": int(n_val), "test": int(n_test)}
    from tqdm import tqdm

    save_npz(out_dir / "template.npz", verts=hand.verts.astype(np.float32), faces=hand.faces.astype(np.int32),
             joints=hand.joints21.astype(np.float32))
    load_photos()  # decode the background photographs once, before forking (the workers share them)
    pool = None
    if workers > 1 and sum(sizes.values()) > chunk:
        pool = mp.get_context("fork").Pool(workers, initializer=_init_worker, initargs=(str(glb_path), cfg, hand.label_offsets))
    else:
        _WORKER.update(hand=hand, cfg=cfg)
    try:
        with tqdm(total=sum(sizes.values()), desc="synthesize", unit="img") as bar:
            for split, n in sizes.items():
                sid = SPLITS[split]
                tasks = [(int(seed), sid, a, min(a + chunk, n)) for a in range(0, n, chunk)]
                K = np.zeros((n, 3, 3), np.float32)
                joints = np.zeros((n, 21, 3), np.float32)
                verts = np.zeros((n, V, 3), np.float32)
                if n == 0:  # a zero-length memory map cannot be created
                    save_npy(out_dir / split / "images.npy", np.zeros((0, R, R, 3), np.uint8))
                    save_npz(out_dir / split / "labels.npz", K=K, joints=joints, verts=verts)
                    continue
                with atomic_path(out_dir / split / "images.npy") as tmp:
                    images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, R, R, 3))
                    results = pool.imap_unordered(_render_chunk, tasks) if pool else map(_render_chunk, tasks)
                    for _, a, r in results:
                        b = a + len(r["image"])
                        images[a:b], K[a:b], joints[a:b], verts[a:b] = r["image"], r["K"], r["joints"], r["verts"]
                        bar.update(b - a)
                    images.flush()
                    del images
                save_npz(out_dir / split / "labels.npz", K=K, joints=joints, verts=verts)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return sizes
