"""Synthetic training images of the rigged WebXR hand with domain randomisation, and the
``synthesize`` stage that writes them (file formats: the design's "synthesize stage").

One sample (:func:`render_sample`): random articulation (:mod:`cliphand.data.articulation`), random hand
size, global rotation, camera (focal length, principal point, distance, position in the image), skin
tone, light, background (photo or procedural, :mod:`cliphand.data.backgrounds`), occluders, then blur,
colour jitter, noise and JPEG compression. Rendering: :mod:`cliphand.data.render`.

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

from cliphand.data.articulation import SAMPLER_DEFAULTS, Articulator, load_gestures, palm_frame
from cliphand.data.backgrounds import color_shift, photo_crop, procedural, random_background
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
    "p_upright": 0.5,               # chance of a presented-hand view (module docstring)
    "upright_jitter_deg": 40.0,     # tilt range of presented-hand views, degrees
    "min_view_angle_deg": 30.0,     # uniform views: min angle between hand axis and optical axis
    "skin_jitter": 0.06,            # per-channel jitter of the skin albedo
    "ambient": [0.15, 0.5],         # ambient light intensity
    "light_intensity": [0.5, 1.1],  # key light intensity
    "light_color_jitter": 0.15,     # per-channel jitter of the light colour
    "specular": [0.0, 0.25],        # Blinn-Phong specular strength
    "shininess": [5.0, 40.0],       # Blinn-Phong exponent
    "p_photo_bg": 0.5,              # chance of a photograph background (else procedural)
    "p_occlusion": 0.4,             # chance of one occluder over the hand
    "occlusion_frac": [0.05, 0.3],  # occluder area / hand box area
    "color_jitter": 0.15,           # strength of the final brightness/contrast/saturation/gain jitter
    "p_blur": 0.4,                  # chance of Gaussian blur
    "blur_sigma": [0.3, 1.2],       # blur sigma, pixels
    "noise_std": [0.0, 6.0],        # Gaussian pixel noise std, 0-255 units
    "p_jpeg": 0.5,                  # chance of JPEG compression
    "jpeg_quality": [40, 95],       # JPEG quality range
    "gestures_path": "../shared/data/ge_synthetic_gestures/handGestures.txt",  # None: no gesture prior
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


def _skin_albedo(rng: np.random.Generator, hand: RiggedHand, cfg: dict) -> np.ndarray:
    """(V, 3) per-vertex skin colour: a random tone with a little low-frequency variation."""
    t = rng.uniform(0, len(_SKIN) - 1)
    i = int(min(t, len(_SKIN) - 2))
    base = _SKIN[i] * (1 - (t - i)) + _SKIN[i + 1] * (t - i)
    base = base * (1 + rng.normal(0, cfg["skin_jitter"], 3))
    w = rng.normal(0, 60.0, (3, 3))  # spatial frequencies, 1/metre
    ph = rng.uniform(0, 2 * np.pi, 3)
    var = np.sin(hand.verts @ w.T + ph).mean(1, keepdims=True)  # (V, 1) in [-1, 1]
    redness = np.array([0.03, -0.02, -0.02]) * rng.uniform(0, 1)
    return np.clip(base[None, :] * (1 + 0.06 * var) + redness * (var > 0), 0, 1)


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
        camera frame (x right, y down, z forward); ``mask`` bool (R, R) the hand's own silhouette before
        occluders (for checks; not stored by :func:`synthesize`).
    Raises:
        ValueError: unknown cfg keys. DataError: gesture file missing (when ``p_gesture`` > 0).
    """
    cfg = merge_cfg(cfg)
    R = int(cfg["render_size"])
    art = _articulator(hand, cfg)
    angles = art.sample(rng, cfg)
    verts, joints = hand.pose(art.rotations(angles))
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

    faces = hand.faces
    depth, face, bary = rasterize(verts, faces, K, R, R)
    normals = vertex_normals(verts, faces, hand.weld)  # welded: no creases along the UV seams
    light = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), -rng.uniform(0.3, 1.5)])
    lcol = _u(rng, cfg["light_intensity"]) * (1 + rng.uniform(-1, 1, 3) * cfg["light_color_jitter"])
    rgb, mask = shade(verts, faces, face, bary, _skin_albedo(rng, hand, cfg), light, lcol, normals=normals,
                      ambient=_u(rng, cfg["ambient"]) * (1 + rng.uniform(-0.1, 0.1, 3)),
                      specular=_u(rng, cfg["specular"]), shininess=_u(rng, cfg["shininess"]))

    # composite over the background with a soft (anti-aliased) silhouette
    bg = random_background(rng, R, R, cfg["p_photo_bg"])
    m = mask.astype(np.float32)
    wsum = gaussian_filter(m, 0.7)
    fill = np.stack([gaussian_filter(rgb[..., c], 0.7) for c in range(3)], -1) / np.maximum(wsum, 1e-6)[..., None]
    hand_rgb = np.where(mask[..., None], rgb, fill)
    alpha = np.clip(gaussian_filter(m, 0.5) * 0.5 + m * 0.5, 0, 1)[..., None]
    img = bg * (1 - alpha) + hand_rgb * alpha
    if rng.random() < cfg["p_occlusion"]:
        img = _occluder(rng, img, mask, cfg)

    # camera effects
    img = color_shift(img, rng, cfg["color_jitter"])
    if rng.random() < cfg["p_blur"]:
        sig = _u(rng, cfg["blur_sigma"])
        img = np.stack([gaussian_filter(img[..., c], sig) for c in range(3)], -1)
    img = img * 255.0 + rng.normal(0, _u(rng, cfg["noise_std"]), img.shape)
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


def _init_worker(glb_path: str, cfg: dict) -> None:
    try:  # one BLAS thread per worker process
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:  # pragma: no cover
        pass
    _WORKER["hand"] = RiggedHand.from_glb(glb_path)
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
    hand = RiggedHand.from_glb(glb_path)
    _articulator(hand, cfg)  # fail early on a bad gesture file
    R = int(cfg["render_size"])
    V = len(hand.verts)
    workers = (os.cpu_count() or 1) if workers == 0 else int(workers)
    sizes = {"train": int(n_train), "val": int(n_val), "test": int(n_test)}
    from tqdm import tqdm

    save_npz(out_dir / "template.npz", verts=hand.verts.astype(np.float32), faces=hand.faces.astype(np.int32),
             joints=hand.joints21.astype(np.float32))
    pool = None
    if workers > 1 and sum(sizes.values()) > chunk:
        pool = mp.get_context("fork").Pool(workers, initializer=_init_worker, initargs=(str(glb_path), cfg))
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
