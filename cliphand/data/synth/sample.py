"""One labelled synthetic image of the rigged WebXR hand with domain randomisation (:func:`render_sample`).

One sample (:func:`render_sample`): random articulation (:mod:`cliphand.data.synth.articulation`), random hand
size, global rotation, camera (focal length, principal point, distance, position in the image), a forearm
attached at the wrist, often in a sleeve (:mod:`cliphand.data.synth.forearm`), skin, lights, background
(photo, indoor-clutter collage or procedural texture, :mod:`cliphand.data.synth.backgrounds`), occluders, then
blur, colour jitter, noise and JPEG compression. Rendering: :mod:`cliphand.data.synth.render` (hand and forearm
in one z-buffer). The labels (``joints``, ``verts``) are the hand's only.

Lights: a key light, with probability ``p_fill_light`` a fill light of another colour, an ambient and a
hemispheric ambient (sky colour from above, a muted ground bounce from below), drawn independently (flat
to contrasty) and then scaled together to a random ``exposure`` (like a camera's auto-exposure).

Skin, nails, creases, sleeve colours and occluders: :mod:`cliphand.data.synth.appearance`; settings (each
named below by its field): :class:`cliphand.config.SynthSettings`.

Global rotation: with probability ``p_upright`` a "presented hand" view like the real-world test set
(fingers up, palm or back of the hand to the camera, 50/50), turned by a random roll of up to +-60 deg
and tilts of up to +-``upright_jitter_deg`` about the image axes; otherwise a uniformly random rotation
(scipy ``Rotation.random``) redrawn while the hand's long axis (wrist -> middle MCP) lies within
``min_view_angle_deg`` of the optical axis (a hand seen end-on hides almost every joint).
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter
from scipy.spatial.transform import Rotation

from cliphand.data.synth import forearm as fa
from cliphand.config import SynthSettings
from cliphand.data.synth.appearance import (concavity, draw_cloth, draw_range, muted_color, nail_weights,
                                            paste_occluder, skin_field, smoothstep)
from cliphand.data.synth.articulation import Articulator, load_gestures, palm_frame
from cliphand.data.synth.backgrounds import color_shift, procedural, random_background
from cliphand.data.synth.hand_model import RiggedHand
from cliphand.data.synth.render import rasterize, shade, vertex_normals

_ARTICULATORS: dict = {}


def articulator(hand: RiggedHand, cfg: SynthSettings, gestures_path: str | os.PathLike | None) -> Articulator:
    """One Articulator per (hand, gesture file) and process (gesture fitting runs once); without gestures
    when ``gestures_path`` is None or ``cfg.p_gesture`` is 0. Raises DataError: an unreadable gesture file."""
    gp = gestures_path if cfg.p_gesture > 0 else None
    key = (id(hand), str(gp))
    if key not in _ARTICULATORS:
        _ARTICULATORS[key] = Articulator(hand, load_gestures(gp) if gp else None)
    return _ARTICULATORS[key]


def _bone_scales(rng: np.random.Generator, cfg: SynthSettings) -> np.ndarray:
    """(25,) bone length factors of one sample's hand shape (:meth:`RiggedHand.with_bone_scales`): the palm
    (wrist -> finger bases and metacarpals) by one factor, each finger's phalanges (thumb: metacarpal and
    phalanges) by its own, both ~ N(1, ``bone_scale_jitter``) clipped to +-2.5 std; 1 everywhere at jitter 0."""
    sd = float(cfg.bone_scale_jitter)
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


def _rotation(rng: np.random.Generator, j21: np.ndarray, cfg: SynthSettings) -> np.ndarray:
    """Global rotation (3, 3) from the template frame to the camera frame (module docstring)."""
    P = palm_frame(j21)  # columns: along the hand, radial, palm normal
    if rng.random() < cfg.p_upright:
        palm_to_cam = rng.random() < 0.5
        n_img = np.array([0.0, 0.0, -1.0 if palm_to_cam else 1.0])  # palm normal towards / away from camera
        up = np.array([0.0, -1.0, 0.0])  # fingers up in the image
        tgt = np.stack([up, np.cross(n_img, up), n_img], 1)  # image of the palm frame (right-handed)
        j = cfg.upright_jitter_deg
        jit = Rotation.from_euler("zxy", [rng.uniform(-60, 60), rng.uniform(-j, j), rng.uniform(-j, j)],
                                  degrees=True).as_matrix()
        return jit @ tgt @ P.T
    cos_min = np.cos(np.radians(cfg.min_view_angle_deg))
    for _ in range(100):
        R = Rotation.random(random_state=rng).as_matrix()
        if abs((R @ P[:, 0])[2]) < cos_min:
            break
    return R


def _forearm(hand: RiggedHand, rng: np.random.Generator, cfg: SynthSettings, scale: float, Rm: np.ndarray,
             t: np.ndarray, zlim: float, K: np.ndarray, R: int) -> dict:
    """Draw and build the forearm (:mod:`cliphand.data.synth.forearm`) of a sample: template mesh plus ``cam``,
    its vertices in the camera frame (template * ``scale``, rotated by ``Rm``, shifted by ``t``, like the
    hand). The arm is shortened so that no vertex comes nearer the camera than ``zlim`` (metres) where
    possible; an arm whose far end would show inside the R x R image (K) is lengthened until it leaves the
    image (an arm does not end in mid-air), up to 45 cm (then the upper arm, same tube) and while it stays
    beyond ``zlim``. Also draws the sleeve's colour: ``cloth`` (3,), and ``texture`` (bool)."""
    fit = fa.fit_wrist(hand)
    length = draw_range(rng, cfg.forearm_length)
    bend = cfg.forearm_bend_deg
    flex, dev = rng.uniform(-bend, bend, 2)
    taper = draw_range(rng, cfg.forearm_taper)
    sleeve = rng.random() < cfg.p_sleeve
    start, widen = draw_range(rng, cfg.sleeve_start), draw_range(rng, cfg.sleeve_widen)
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
        return build(max(fit.stub + 0.01, m["dist"][close].min() - 0.01)) | draw_cloth(rng, cfg)
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
    return m | draw_cloth(rng, cfg)


def render_sample(hand: RiggedHand, rng: np.random.Generator, cfg: SynthSettings | None = None,
                  gestures_path: str | os.PathLike | None = None) -> dict:
    """Render one randomised synthetic image of the hand.

    Args:
        hand: the rigged hand (:meth:`RiggedHand.from_glb`).
        rng: the sample's generator (all randomness comes from it).
        cfg: the settings (:class:`cliphand.config.SynthSettings`); None: the defaults.
        gestures_path: the Ge et al. gesture file (``handGestures.txt``) the articulation starts from with
            probability ``cfg.p_gesture``; None: no gesture prior.
    Returns:
        dict with ``image`` uint8 (R, R, 3) RGB; ``K`` float32 (3, 3) intrinsics, pixels (pixel centres at
        integer coordinates); ``joints`` float32 (21, 3) FreiHAND order and ``verts`` float32 (V, 3), metres,
        camera frame (x right, y down, z forward), of the hand only (not the forearm); ``mask`` bool (R, R)
        the hand's own visible silhouette (pixels where the hand mesh is the nearest surface; not the
        forearm) before occluders (for checks; not stored by
        :func:`cliphand.data.synth.synthesize.synthesize`).
    Raises:
        DataError: an unreadable gesture file (when ``p_gesture`` > 0).
    """
    cfg = cfg if cfg is not None else SynthSettings()
    R = cfg.render_size
    art = articulator(hand, cfg, gestures_path)
    angles = art.sample(rng, cfg)
    shape_rng = np.random.default_rng(rng.integers(2 ** 62))  # own stream: jitter 0 leaves the rest unchanged
    posed = hand if cfg.bone_scale_jitter <= 0 else hand.with_bone_scales(_bone_scales(shape_rng, cfg))
    verts, joints = posed.pose(art.rotations(angles))
    s = draw_range(rng, cfg.hand_scale)
    verts, joints = verts * s, joints * s

    Rm = _rotation(rng, hand.joints21, cfg)
    verts, joints = verts @ Rm.T, joints @ Rm.T

    # camera: focal from the field of view, principal point near the centre
    f = (R / 2) / np.tan(np.radians(draw_range(rng, cfg.fov_deg)) / 2)
    c0 = (R - 1) / 2
    pj = cfg.principal_jitter * R
    cx, cy = c0 + rng.uniform(-pj, pj), c0 + rng.uniform(-pj, pj)
    K = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]])
    # place the hand: its mesh box gets the drawn size and centre (weak perspective, two corrections)
    size = draw_range(rng, cfg.hand_size_frac) * R
    cj = cfg.center_jitter * R
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
    if arm_rng.random() < cfg.p_forearm:
        arm = _forearm(hand, arm_rng, cfg, s, Rm, t, max(0.05, 0.5 * joints[:, 2].mean()), K, R)

    # materials: skin colour field (hand and arm), mottling, creases, nails
    V, F = len(verts), len(hand.faces)
    skin = skin_field(rng, cfg)
    albedo = skin(hand.verts) * (1 + rng.normal(0, cfg.skin_mottle, V)[hand.weld])[:, None]
    normals = vertex_normals(verts, hand.faces, hand.weld)  # welded: no creases along the UV seams
    crease = draw_range(rng, cfg.crease_darken) * smoothstep(concavity(hand, verts, normals) / 0.08)
    albedo = albedo * (1 - crease[:, None] * np.array([0.8, 1.0, 1.0]))
    nail = nail_weights(hand) * draw_range(rng, cfg.nail_tint)
    nail_col = 0.5 * albedo + 0.5 * np.array([0.96, 0.80, 0.78])
    albedo = albedo * (1 - nail[:, None]) + nail_col * nail[:, None]
    ks = draw_range(rng, cfg.specular)
    spec = ks + nail * draw_range(rng, cfg.nail_specular)

    # lights: key, optional fill, ambient and hemispheric ambient, then an "auto-exposure" normalisation
    light = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), -rng.uniform(0.3, 1.5)])
    lcol = draw_range(rng, cfg.light_intensity) * (1 + rng.uniform(-1, 1, 3) * cfg.light_color_jitter)
    amb = draw_range(rng, cfg.ambient) * (1 + rng.uniform(-0.1, 0.1, 3))
    hemi = draw_range(rng, cfg.hemi_ambient)
    sky = hemi * (1 + rng.uniform(-0.15, 0.15, 3))
    ground = hemi * muted_color(rng, 0.6) / 0.6
    fill_on = rng.random() < cfg.p_fill_light
    fill_dir = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), -rng.uniform(-0.3, 1.2)])
    fcol = (draw_range(rng, cfg.fill_intensity) * lcol.mean() * fill_on
            * (1 + rng.uniform(-1, 1, 3) * cfg.fill_color_jitter))
    gain = draw_range(rng, cfg.exposure) / (amb.mean() + (sky.mean() + ground.mean()) / 2
                                        + 0.5 * (lcol.mean() + fcol.mean()))
    wrap = draw_range(rng, cfg.wrap)
    # fine skin texture: zero-mean noise, per pixel plus 3-pixel blotches (std about 1 before the scale)
    coarse = Image.fromarray(rng.random((R // 3 + 1, R // 3 + 1), np.float32) - 0.5).resize((R, R), Image.BILINEAR)
    grain = np.float32(draw_range(rng, cfg.skin_grain) * np.sqrt(12.0)) * (
        0.6 * (rng.random((R, R), np.float32) - 0.5) + 0.8 * np.asarray(coarse))

    # one z-buffer for hand and forearm
    all_v, all_f, all_n, all_a, all_s = verts, hand.faces, normals, albedo, spec
    if arm is not None:
        cloth = arm["cloth"]
        part = arm["part"]
        arm_alb = np.where((part == fa.SKIN)[:, None],
                           skin(arm["verts"]) * (1 + arm_rng.normal(0, cfg.skin_mottle, len(part)))[:, None],
                           np.where((part == fa.CLOTH)[:, None], cloth, 0.3 * cloth))
        all_v = np.concatenate([verts, arm["cam"]])
        all_f = np.concatenate([hand.faces, arm["faces"] + V])
        all_n = np.concatenate([normals, arm["normals"] @ Rm.T])
        all_a = np.concatenate([albedo, arm_alb])
        all_s = np.concatenate([spec, np.where(part == fa.SKIN, ks, 0.02)])
    depth, face, bary = rasterize(all_v, all_f, K, R, R)
    rgb, fg = shade(all_v, all_f, face, bary, all_a, light, lcol * gain, normals=all_n, ambient=amb * gain,
                    specular=all_s, shininess=draw_range(rng, cfg.shininess), wrap=wrap,
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
    bg = random_background(rng, R, R, cfg.p_photo_bg, cfg.p_collage_bg)
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
    if rng.random() < cfg.p_occlusion:
        img = paste_occluder(rng, img, mask, cfg)

    # camera effects
    img = color_shift(img, rng, cfg.color_jitter)
    if rng.random() < cfg.p_blur:
        sig = draw_range(rng, cfg.blur_sigma)
        img = gaussian_filter(img, (sig, sig, 0))
    # pixel noise: uniform with the drawn std (cheaper to draw than Gaussian; indistinguishable at these levels)
    sd = np.float32(draw_range(rng, cfg.noise_std) * np.sqrt(12.0))
    img = img * np.float32(255.0) + (rng.random(img.shape, np.float32) - np.float32(0.5)) * sd
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    if rng.random() < cfg.p_jpeg:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=int(rng.integers(cfg.jpeg_quality[0],
                                                                               cfg.jpeg_quality[1] + 1)))
        img = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return {"image": img, "K": K.astype(np.float32), "joints": joints.astype(np.float32),
            "verts": verts.astype(np.float32), "mask": mask}
