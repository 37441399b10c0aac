"""Anatomically limited random articulation of the rigged hand.

A pose is an angle table ``angles`` (5, 5) in degrees: rows thumb, index, middle, ring, little; columns
:data:`COLUMNS` = (``flex1``, ``abd1``, ``flex2``, ``flex3``, ``meta``):

- fingers: ``flex1``/``abd1`` flexion and abduction at the MCP joint (skin joint ``*-phalanx-proximal``),
  ``flex2`` PIP flexion (``*-phalanx-intermediate``), ``flex3`` DIP flexion (``*-phalanx-distal``),
  ``meta`` flexion of the metacarpal at the carpometacarpal joint (palm cupping; ring and little only);
- thumb: ``flex1``/``abd1`` at the carpometacarpal joint (``thumb-metacarpal``, the "thumb MCP" of the
  FreiHAND naming), ``flex2`` thumb MCP (``thumb-phalanx-proximal``), ``flex3`` thumb IP
  (``thumb-phalanx-distal``); ``meta`` unused (0).

Axes come from the bind pose (see :meth:`Articulator.__init__`): flexion turns a bone towards the palm
side, positive abduction turns it radially (towards the thumb). All angles are relative to the bind pose
of the WebXR hand (fingers nearly straight and slightly spread, thumb relaxed). Limits (:data:`LIMITS_DEG`)
follow the usual active ranges of motion of the finger joints (e.g. Hume et al., J Hand Surg 1990;
Lee & Kunii, 1995), narrowed where the rest pose already carries flexion or the thin mesh would
self-intersect.

Gesture prior: :func:`load_gestures` reads the 500 poses of the Ge et al. (CVPR 2019) synthetic set
(``handGestures.txt``, left hands, cm) and :meth:`Articulator.fit_angles` converts each into an angle table
by matching bone directions in a common palm frame (closed form, hinge projection), so sampling can start
from a natural gesture and add noise.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from scipy.linalg import orthogonal_procrustes

from cliphand.config import SynthSettings
from cliphand.data.synth.hand_model import JOINTS21, RiggedHand
from cliphand.errors import DataError
from cliphand.hand.skeleton import FINGERS

COLUMNS = ("flex1", "abd1", "flex2", "flex3", "meta")

#: Joint limits in degrees, (low, high) per finger and column (see module docstring for the joints).
LIMITS_DEG = {
    "thumb":  {"flex1": (-25, 45), "abd1": (-25, 45), "flex2": (-10, 65), "flex3": (-20, 80), "meta": (0, 0)},
    "index":  {"flex1": (-20, 90), "abd1": (-15, 20), "flex2": (0, 110), "flex3": (-10, 90), "meta": (0, 0)},
    "middle": {"flex1": (-20, 90), "abd1": (-12, 12), "flex2": (0, 110), "flex3": (-10, 90), "meta": (0, 0)},
    "ring":   {"flex1": (-20, 90), "abd1": (-15, 12), "flex2": (0, 110), "flex3": (-10, 90), "meta": (0, 10)},
    "little": {"flex1": (-20, 95), "abd1": (-25, 15), "flex2": (0, 110), "flex3": (-10, 90), "meta": (0, 20)},
}

#: Default sampler settings (the ``synth`` config passes its own values under the same names).
# skin-joint indices (hand_model.SKIN_JOINT_NAMES order)
_THUMB = (1, 2, 3, 4)  # metacarpal, proximal, distal, tip
_FINGER = {k: tuple(5 + 5 * (k - 1) + i for i in range(5)) for k in range(1, 5)}  # meta, prox, inter, dist, tip


def limits_array() -> np.ndarray:
    """(5, 5, 2) float array of :data:`LIMITS_DEG` (finger, column, low/high), degrees."""
    return np.array([[LIMITS_DEG[f][c] for c in COLUMNS] for f in FINGERS], dtype=np.float64)


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def axis_angle(axis: np.ndarray, deg: float) -> np.ndarray:
    """(3, 3) rotation by ``deg`` degrees about unit ``axis`` (right-hand rule, Rodrigues)."""
    x, y, z = axis
    t = np.radians(deg)
    c, s = np.cos(t), np.sin(t)
    Kx = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + s * Kx + (1 - c) * (Kx @ Kx)


def palm_frame(j21: np.ndarray) -> np.ndarray:
    """Orthonormal palm frame of 21 FreiHAND-order joints of a right hand.

    Columns: e1 wrist -> middle MCP (along the hand), e2 = e3 x e1 (across the palm towards the little
    finger, ulnar), e3 the palm normal pointing out of the palm (r x u with r little MCP -> index MCP);
    a right-handed frame.
    Returns (3, 3).
    """
    u = _unit(j21[9] - j21[0])
    r = j21[5] - j21[17]
    n = _unit(np.cross(r, u))
    return np.stack([u, np.cross(n, u), n], axis=1)


def load_gestures(path: str | os.PathLike) -> np.ndarray:
    """Read ``handGestures.txt`` (Ge et al. CVPR 2019 synthetic set, left hands, cm).

    Returns:
        (N, 21, 3) float64 joints in metres, FreiHAND order, mirrored (x negated) to right hands.
    Raises:
        DataError: missing file or a block that is not 21 lines ``NAME x y z``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: gesture file not found")
    poses, cur = [], []
    for ln, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 4:
            raise DataError(f"{path}:{ln}: expected 'NAME x y z', got {line!r}")
        cur.append([float(p) for p in parts[1:]])
        if len(cur) == 21:
            poses.append(cur)
            cur = []
    if cur or not poses:
        raise DataError(f"{path}: {len(poses)} complete poses and {len(cur)} leftover lines (21 per pose expected)")
    X = np.array(poses) / 100.0
    X[..., 0] *= -1.0
    return X


class Articulator:
    """Turns angle tables into joint rotations for :meth:`RiggedHand.pose`, and samples natural poses.

    Axes (from the bind pose): palm normal ``n`` from :func:`palm_frame` of the bind joints. For each
    finger joint, ``d`` is the unit bone direction (joint -> next joint of the chain) and ``p`` the palmar
    direction: ``n`` for the fingers, and for the thumb the joint's own palmar axis (-Y of its glTF frame;
    WebXR joint frames have +Y out of the back of the hand and -Z along the bone), because the thumb pad
    faces across the palm. ``p`` is made orthogonal to ``d``; the flexion axis is ``d x p`` (positive
    flexion turns the bone towards ``p``), the abduction axis is ``-p`` (positive abduction turns it
    towards ``d x p``, radially for the fingers). A two-axis joint (finger MCP, thumb CMC) turns by
    ``R_flex(flex1) @ R_abd(abd1)``: abduction in the bone's own frame, flexion about the axis fixed in
    the parent (a universal joint without the gimbal singularity at 90 deg of flexion). For the thumb carpometacarpal joint the abduction sign
    is chosen so that positive ``abd1`` lifts the thumb out of the palm plane to the palm side.

    Args:
        hand: the rigged hand.
        gestures: optional (N, 21, 3) joints of natural gestures (:func:`load_gestures`) to start from.
    """

    def __init__(self, hand: RiggedHand, gestures: np.ndarray | None = None):
        self.hand = hand
        b = hand.bind_joints
        self.normal = palm_frame(b[JOINTS21])[:, 2]  # of the skin joints: axes do not depend on label offsets
        n_j = len(hand.joint_names)
        self.flex_axis = np.zeros((n_j, 3))
        self.abd_axis = np.zeros((n_j, 3))
        self.bone_dir = np.zeros((n_j, 3))
        chains = [(_THUMB, True)] + [(_FINGER[k], False) for k in range(1, 5)]
        for chain, is_thumb in chains:
            for j, c in zip(chain[:-1], chain[1:]):
                d = _unit(b[c] - b[j])
                p = -hand.bind_world[j, :3, 1] if is_thumb else self.normal
                p = _unit(p - (p @ d) * d)
                self.bone_dir[j] = d
                self.flex_axis[j] = np.cross(d, p)
                self.abd_axis[j] = -p
        # thumb CMC: positive abduction moves the thumb towards the palm side (+n)
        j = _THUMB[0]
        moved = np.cross(self.abd_axis[j], self.bone_dir[j])
        if moved @ self.normal < 0:
            self.abd_axis[j] = -self.abd_axis[j]
        self.limits = limits_array()
        self.gesture_angles = None
        if gestures is not None:
            self.gesture_angles = np.stack([self.fit_angles(g) for g in gestures])

    def _joints_of(self, f: int):
        """Skin joints carrying (flex1/abd1, flex2, flex3, meta) for finger row f (meta None for thumb)."""
        if f == 0:
            return _THUMB[0], _THUMB[1], _THUMB[2], None
        ch = _FINGER[f]
        return ch[1], ch[2], ch[3], ch[0]

    def rotations(self, angles: np.ndarray) -> np.ndarray:
        """Angle table -> local joint rotations.

        Args:
            angles: (5, 5) degrees (rows :data:`FINGERS`, columns :data:`COLUMNS`).
        Returns:
            (25, 3, 3) rotations for :meth:`RiggedHand.pose` (identity for the wrist and tips).
        """
        angles = np.asarray(angles, dtype=np.float64)
        R = np.tile(np.eye(3), (len(self.hand.joint_names), 1, 1))
        for f in range(5):
            j1, j2, j3, jm = self._joints_of(f)
            fl1, ab1, fl2, fl3, meta = angles[f]
            R[j1] = axis_angle(self.flex_axis[j1], fl1) @ axis_angle(self.abd_axis[j1], ab1)
            R[j2] = axis_angle(self.flex_axis[j2], fl2)
            R[j3] = axis_angle(self.flex_axis[j3], fl3)
            if jm is not None:
                R[jm] = axis_angle(self.flex_axis[jm], meta)
        return R

    def clip(self, angles: np.ndarray) -> np.ndarray:
        """Clip an angle table to :data:`LIMITS_DEG`."""
        return np.clip(angles, self.limits[..., 0], self.limits[..., 1])

    def fit_angles(self, joints21: np.ndarray) -> np.ndarray:
        """Angle table whose bone directions best match a target pose (closed form, then clipped).

        The target is rotated so its palm frame (:func:`palm_frame`) matches the template's; each chain is
        then solved from the base: two angles (flexion, abduction) at the first joint reproduce the first
        bone's direction exactly, the hinge joints take the signed angle of the target bone projected onto
        their flexion plane. Metacarpal flexion is left at 0.

        Args:
            joints21: (21, 3) right-hand joints, FreiHAND order, any frame and unit.
        Returns:
            (5, 5) degrees, within :data:`LIMITS_DEG`.
        """
        X = np.asarray(joints21, dtype=np.float64)
        Ra = palm_frame(self.hand.joints21) @ palm_frame(X).T
        out = np.zeros((5, 5))
        for f in range(5):
            base = 1 + 4 * f
            t = [_unit(Ra @ (X[base + i + 1] - X[base + i])) for i in range(3)]
            j1, j2, j3, _ = self._joints_of(f)
            d, a = self.bone_dir[j1], self.flex_axis[j1]
            # R_flex(theta) R_abd(phi) d = cos(phi) (cos(theta) d + sin(theta) p) + sin(phi) s
            p = np.cross(a, d)
            s = np.cross(self.abd_axis[j1], d)
            ph = np.degrees(np.arcsin(np.clip(t[0] @ s, -1, 1)))
            th = np.degrees(np.arctan2(t[0] @ p, t[0] @ d))
            Rc = axis_angle(a, th) @ axis_angle(self.abd_axis[j1], ph)
            hinge = []
            for j, tj in ((j2, t[1]), (j3, t[2])):
                tl = Rc.T @ tj
                dj, aj = self.bone_dir[j], self.flex_axis[j]
                ang = np.degrees(np.arctan2(tl @ np.cross(aj, dj), tl @ dj))
                hinge.append(ang)
                Rc = Rc @ axis_angle(aj, ang)
            out[f] = [th, ph, hinge[0], hinge[1], 0.0]
        return self.clip(out)

    def sample(self, rng: np.random.Generator, cfg: SynthSettings | None = None) -> np.ndarray:
        """Draw a natural-looking angle table.

        With probability ``p_gesture`` (when gestures are loaded): a random Ge et al. gesture plus
        Gaussian noise of ``gesture_noise_deg``. Otherwise a shared grasp coefficient ``g ~ Beta(a, a)``
        sets every finger's curl (plus ``finger_noise``); each finger may instead be independent
        (``p_finger_independent``: fully extended or a random curl), which gives pointing and counting
        gestures. Curl drives MCP, PIP flexion; DIP follows PIP with a coupling of 0.5-0.85 (the usual
        ~2/3); spread (abduction) shrinks as fingers curl; ring and little metacarpals cup with g.

        Args:
            rng: NumPy generator.
            cfg: the settings (its sampler fields ``p_gesture``, ``gesture_noise_deg``, ``grasp_beta``,
                ``finger_noise``, ``p_finger_independent``); None: the defaults.
        Returns:
            (5, 5) degrees within :data:`LIMITS_DEG`.
        """
        c = cfg if cfg is not None else SynthSettings()
        lim = self.limits
        if self.gesture_angles is not None and rng.random() < c.p_gesture:
            a = self.gesture_angles[rng.integers(len(self.gesture_angles))].copy()
            a[:, :4] += rng.normal(0.0, c.gesture_noise_deg, (5, 4))
            a[3:, 4] = rng.uniform(0, 1, 2) * lim[3:, 4, 1] * 0.5
            return self.clip(a)
        g = rng.beta(c.grasp_beta, c.grasp_beta)
        a = np.zeros((5, 5))
        spread = rng.uniform(-0.2, 1.0)
        pattern = np.array([0.0, 15.0, 2.0, -8.0, -18.0])
        for f in range(1, 5):
            curl = np.clip(g + rng.normal(0, c.finger_noise), 0, 1)
            if rng.random() < c.p_finger_independent:
                curl = 0.0 if rng.random() < 0.5 else rng.uniform(0, 1)
            hi = lim[f, :, 1]
            fl1 = curl * hi[0] * rng.uniform(0.6, 1.0) + rng.normal(0, 6)
            fl2 = curl * hi[2] * rng.uniform(0.7, 1.0) + rng.normal(0, 6)
            fl3 = fl2 * rng.uniform(0.5, 0.85) + rng.normal(0, 5)
            ab = spread * (1 - curl) * pattern[f] + rng.normal(0, 3)
            meta = (0.3 + 0.7 * g) * rng.uniform(0, 1) * hi[4]
            a[f] = [fl1, ab, fl2, fl3, meta]
        ct = np.clip(g + rng.normal(0, 0.3), 0, 1)
        if rng.random() < c.p_finger_independent:
            ct = rng.uniform(0, 1)
        lo, hi = lim[0, :, 0], lim[0, :, 1]
        a[0] = [lo[0] + (hi[0] - lo[0]) * np.clip(ct + rng.normal(0, 0.2), 0, 1),
                rng.uniform(lo[1], hi[1]),
                ct * hi[2] * rng.uniform(0.5, 1.0) + rng.normal(0, 5),
                ct * hi[3] * rng.uniform(0.3, 1.0) + rng.normal(0, 5),
                0.0]
        return self.clip(a)


def _similarity(target: np.ndarray, source: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) with ``target ~ s * source @ R + t`` in least squares (Umeyama / Procrustes).
    target, source: (N, 3)."""
    mt, ms = target.mean(0), source.mean(0)
    t0, s0 = target - mt, source - ms
    R, sc = orthogonal_procrustes(s0, t0)
    s = sc / max(float((s0 ** 2).sum()), 1e-12)
    return s, R, mt - s * ms @ R


def calibrate_label_offsets(hand: RiggedHand, poses: np.ndarray, iters: int = 5, ridge: float = 1.0) -> np.ndarray:
    """Label offsets (:attr:`RiggedHand.label_offsets`) that make the hand's 21 label joints follow the
    joint convention of the target poses (e.g. the 500 Ge et al. gestures, :func:`load_gestures`).

    The WebXR asset's "tip" joints sit about 12 mm short of the fingertip and its thumb base about 15 mm
    further from the wrist than the FreiHAND / Ge et al. labels, a convention gap that no network trained on
    the renders can close (on Ge et al.'s real photos it costs about 7 mm PA-MPJPE for the best articulation
    of the unchanged skeleton). Alternating least squares: (1) fit the angles of every pose
    (:meth:`Articulator.fit_angles`) and the similarity aligning the posed labels to it; (2) given those, each
    joint's offset (3 numbers, in the frame of its carrier bone) enters linearly: solve the normal equations
    with a ridge ``ridge`` (in units of one pose's weight) towards no offset.

    Args:
        hand: the rigged hand (its own label_offsets are the starting point).
        poses: (N, 21, 3) right-hand joints, FreiHAND order, metres.
        iters: alternations. ridge: Tikhonov weight (>= 0).
    Returns:
        (21, 3) offsets, metres, template frame.
    Raises:
        ValueError: poses not (N, 21, 3) with N >= 1.
    """
    poses = np.asarray(poses, np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (21, 3) or len(poses) == 0:
        raise ValueError(f"calibrate_label_offsets: poses must be (N, 21, 3), got {poses.shape}")
    base = RiggedHand(**{**hand.__dict__, "label_offsets": None})
    bind, carrier = base.joints21, base.label_carriers
    art = Articulator(base)
    # the fitted angles depend on the skin joints only, so the carriers' transforms are fixed across iterations
    A = np.stack([base.transforms(art.rotations(art.fit_angles(X))) for X in poses])[:, carrier]   # (N, 21, 4, 4)
    Rc, tc = A[:, :, :3, :3], A[:, :, :3, 3]
    delta = np.zeros((21, 3)) if hand.label_offsets is None else hand.label_offsets.copy()
    for _ in range(iters):
        labels = np.einsum("njab,jb->nja", Rc, bind + delta) + tc                  # (N, 21, 3)
        M = np.tile(np.eye(3) * ridge, (21, 1, 1))
        rhs = np.zeros((21, 3))
        for X, L, R_c, t_c in zip(poses, labels, Rc, tc):
            s, R, t = _similarity(X, L)
            J = s * np.einsum("ba,jbc->jac", R, R_c)                               # s R^T Rc per joint (21, 3, 3)
            r = X - (s * (np.einsum("jab,jb->ja", R_c, bind) + t_c) @ R + t)
            M += np.einsum("jba,jbc->jac", J, J)
            rhs += np.einsum("jba,jb->ja", J, r)
        delta = np.linalg.solve(M, rhs[..., None])[..., 0]
    return delta
