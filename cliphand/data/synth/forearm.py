"""A forearm (optionally in a sleeve) attached at the wrist of the rigged hand: a tapered, slightly bent,
closed tube mesh in the hand's template frame, rendered together with the hand by
:func:`cliphand.data.synth.sample.render_sample` (the real-world test photos show the arm, often in a sleeve).

Geometry. :func:`fit_wrist` measures the hand mesh's cross-section over the short forearm stub that the
WebXR hand has behind the wrist (about 2 cm): centre and half-axes along the palm frame's ulnar axis
``e2`` (width) and palm normal ``e3`` (thickness) (:func:`cliphand.data.synth.articulation.palm_frame`). The
tube (:func:`forearm_mesh`) starts 6 mm inside the palm and runs away from the fingers along ``-e1``,
its cross-section 5 % inside the stub's (so the hand's own surface stays visible where they overlap),
3 % outside over the stub's slanted rounded end (which would otherwise show as a seam), then the wrist's
size, widening towards the elbow by ``taper`` over 20 cm. Wrist flexion/deviation bend the axis smoothly
over the 4 cm after the stub's middle (so the tube does not poke out of the stub). Both ends are capped
(a closed surface). With a sleeve, from ``sleeve_start`` metres behind the wrist the tube is
``sleeve_widen`` times wider, with random folds, and a cuff ring (the sleeve's inside, facing the
hand) closes the step.

The cross-section follows the stub's outline (:attr:`WristFit.profile`) near the wrist and becomes the
fitted ellipse from 3 to 8 cm behind it. Vertex normals are computed from the rings (perpendicular to
the axis; caps and cuff along the axis). Every vertex carries a ``part``: :data:`SKIN`, :data:`CLOTH`
or :data:`CUFF` (the sleeve's inside).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cliphand.data.synth.articulation import palm_frame
from cliphand.data.synth.hand_model import JOINTS21, RiggedHand

SKIN, CLOTH, CUFF = 0, 1, 2

_FITS: dict = {}


@dataclass(frozen=True)
class WristFit:
    """Cross-section of the hand mesh at the wrist (template frame, metres).

    Attributes:
        centre: (3,) centre of the wrist cross-section (the wrist joint plus the section's offset).
        frame: (3, 3) palm frame, columns ``e1`` (wrist -> middle MCP), ``e2`` (ulnar), ``e3`` (palm normal).
        radii: (2,) half width along ``e2`` and half thickness along ``e3``.
        stub: how far the hand mesh reaches behind the wrist joint.
        profile: (72,) radius of the section's outline every 5 deg from ``e2`` towards ``e3``: the support
            function of the stub's vertices (the section is a rounded rectangle rather than an ellipse),
            at least the ellipse's radius, lightly smoothed.
    """

    centre: np.ndarray
    frame: np.ndarray
    radii: np.ndarray
    stub: float
    profile: np.ndarray


def fit_wrist(hand: RiggedHand) -> WristFit:
    """:class:`WristFit` of the bind-pose hand (cached per hand object). The wrist is the root joint and
    has no articulation, so the stub does not move with the pose. Uses the skin joints (not the label
    joints, which may carry offsets)."""
    key = id(hand)
    if key not in _FITS or _FITS[key][0] is not hand:
        j = hand.bind_joints[JOINTS21]
        P = palm_frame(j)
        q = (hand.verts - j[0]) @ P
        stub = float(-q[:, 0].min())
        sel = (q[:, 0] > -0.8 * stub) & (q[:, 0] < 0.0)  # behind the wrist, without the rounded end
        lo, hi = q[sel, 1:].min(0), q[sel, 1:].max(0)
        mid = (lo + hi) / 2
        centre = j[0] + P[:, 1:] @ mid
        radii = (hi - lo) / 2
        phi = np.radians(np.arange(0, 360, 5))
        d = np.stack([np.cos(phi), np.sin(phi)], 1)
        slab = (q[:, 0] > -0.6 * stub) & (q[:, 0] < -0.15 * stub)
        sup = ((q[slab, 1:] - mid) @ d.T).max(0)
        ell = 1 / np.sqrt((d[:, 0] / radii[0]) ** 2 + (d[:, 1] / radii[1]) ** 2)
        prof = np.maximum(sup, ell)
        prof = 0.25 * np.roll(prof, 1) + 0.5 * prof + 0.25 * np.roll(prof, -1)
        _FITS[key] = (hand, WristFit(centre=centre, frame=P, radii=radii, stub=stub, profile=prof))
    return _FITS[key][1]


def _rots(axis: np.ndarray, deg: np.ndarray) -> np.ndarray:
    """(n, 3, 3) rotations about one axis by the angles ``deg`` (n,), degrees (Rodrigues)."""
    x, y, z = axis / np.linalg.norm(axis)
    t = np.radians(np.asarray(deg, dtype=np.float64))[:, None, None]
    K = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(t) * K + (1 - np.cos(t)) * (K @ K)


def _smooth(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def forearm_mesh(fit: WristFit, length: float, flex_deg: float = 0.0, dev_deg: float = 0.0,
                 taper: float = 1.3, sleeve_start: float | None = None, sleeve_widen: float = 1.2,
                 folds: float = 0.0, rng: np.random.Generator | None = None, n_around: int = 20,
                 step: float = 0.015) -> dict:
    """Closed tube mesh of a forearm (module docstring), template frame, metres (lengths are at the
    template's scale; the caller scales the arm with the hand).

    Args:
        fit: the wrist cross-section (:func:`fit_wrist`).
        length: how far the arm reaches behind the wrist joint (> the stub).
        flex_deg, dev_deg: bend of the arm's axis about ``e2`` (flexion/extension) and ``e3`` (radial/ulnar
            deviation), degrees.
        taper: cross-section scale 20 cm behind the wrist stub relative to the wrist (linear, held beyond).
        sleeve_start: distance behind the wrist where a sleeve begins (None or >= length: bare arm; at least
            5 mm beyond the stub).
        sleeve_widen: sleeve cross-section / arm cross-section.
        folds: relative amplitude of the sleeve's folds (radius modulation per ring); draws from ``rng``.
        n_around: vertices per ring; step: ring spacing along the arm, metres.
    Returns:
        dict ``verts`` (N, 3), ``faces`` (M, 3) int32, ``normals`` (N, 3) unit, ``part`` (N,) int8
        (:data:`SKIN`, :data:`CLOTH`, :data:`CUFF`), ``dist`` (N,) distance behind the wrist, metres;
        ``end`` (3,) centre and ``end_dir`` (3,) unit axis direction of the far end, ``end_radius`` its
        largest radius.
    """
    e1, e2, e3 = fit.frame[:, 0], fit.frame[:, 1], fit.frame[:, 2]
    stub = fit.stub
    length = max(float(length), stub + 0.01)
    sleeve = sleeve_start is not None and sleeve_start < length - 0.005
    if sleeve:  # the sleeve's edge lies beyond the hand's own stub
        sleeve_start = max(float(sleeve_start), stub + 0.005)
    # stations along the arm (distance behind the wrist)
    a_pts = [-0.006, 0.5 * stub, 0.85 * stub, stub]
    a_pts += list(np.arange(stub + step, length, step)) + [length]
    a_pts = sorted(set(float(a) for a in a_pts if a <= length))
    if sleeve:
        a_pts = sorted(set(a_pts) | {float(sleeve_start)})
    rings = []  # (a, scale, part, joined, normal kind 'r'adial / 'b'ack (towards the hand))
    for a in a_pts:
        if sleeve and a == sleeve_start:
            rings += [(a, 1.0, SKIN, True, "r"), (a, 1.0, CUFF, False, "b"),
                      (a, sleeve_widen, CUFF, True, "b"), (a, sleeve_widen, CLOTH, False, "r")]
        elif sleeve and a > sleeve_start:
            rings.append((a, sleeve_widen, CLOTH, True, "r"))
        else:
            rings.append((a, 1.0, SKIN, True, "r"))

    A = np.array([r[0] for r in rings])
    kmul = np.array([r[1] for r in rings])
    part = np.array([r[2] for r in rings], np.int8)
    joined = np.array([r[3] for r in rings])
    back = np.array([r[4] == "b" for r in rings])
    n_r = len(rings)

    # inside the stub slightly smaller than the hand's own surface, slightly larger over its (slanted)
    # rounded end, which would otherwise show as a seam, then the taper
    scale = (0.95 + 0.08 * _smooth((A - 0.3 * stub) / (0.25 * stub))
             - 0.03 * _smooth((A - stub) / 0.01) + (taper - 1.0) * np.clip((A - stub) / 0.2, 0.0, 1.0))

    def bend_at(a):  # (n, 3, 3) bend rotations, growing over 4 cm from the stub's middle
        w = _smooth((a - 0.5 * stub) / 0.04)
        return _rots(e2, flex_deg * w) @ _rots(e3, dev_deg * w)

    B = bend_at(A)
    u, v, d = B @ e2, B @ e3, B @ -e1  # (n_r, 3) each
    mid = np.concatenate([[A[0]], (A[1:] + A[:-1]) / 2])
    step_dir = bend_at(mid) @ -e1
    c = fit.centre + A[0] * -e1 + np.cumsum(np.diff(A, prepend=A[0])[:, None] * step_dir, 0)

    phi = np.linspace(0, 2 * np.pi, n_around, endpoint=False)
    cph, sph = np.cos(phi), np.sin(phi)
    rx, ry = fit.radii
    grid = np.radians(np.arange(0, 365, 5))
    prof = np.interp(phi, grid, np.append(fit.profile, fit.profile[0]))  # the wrist's outline
    ell = 1 / np.sqrt((cph / rx) ** 2 + (sph / ry) ** 2)  # the ellipse further up the arm
    w = _smooth((A - 0.03) / 0.05)[:, None]
    r = (scale * kmul)[:, None] * ((1 - w) * prof + w * ell)  # (n_r, n_around)
    cl = np.nonzero(part == CLOTH)[0]
    if folds > 0 and rng is not None and len(cl):
        amp = folds * rng.uniform(-1, 1, len(cl))
        k = rng.integers(2, 5, len(cl))
        ph = rng.uniform(0, 2 * np.pi, len(cl))
        r[cl] *= 1 + amp[:, None] * np.cos(k[:, None] * phi[None] + ph[:, None])
    ring = c[:, None] + (r * cph)[..., None] * u[:, None] + (r * sph)[..., None] * v[:, None]
    # outward normals of the ring outlines, perpendicular to the axis; cuff rings face the hand
    nxt, prv = np.r_[1:n_around, 0], np.r_[n_around - 1, 0:n_around - 1]
    tg = ring[:, nxt] - ring[:, prv]  # tangent along the outline
    dd = np.broadcast_to(d[:, None], tg.shape)
    n = np.stack([tg[..., 1] * dd[..., 2] - tg[..., 2] * dd[..., 1], tg[..., 2] * dd[..., 0] - tg[..., 0] * dd[..., 2],
                  tg[..., 0] * dd[..., 1] - tg[..., 1] * dd[..., 0]], -1)  # tangent x axis
    n *= np.sign((n * (ring - c[:, None])).sum(2))[..., None]
    n /= np.maximum(np.linalg.norm(n, axis=2, keepdims=True), 1e-12)
    n[back] = -d[back, None]

    idx = np.arange(n_r * n_around).reshape(n_r, n_around)
    rr = np.nonzero(joined[1:])[0] + 1
    a0, a1 = idx[rr - 1], idx[rr]
    b0, b1 = a0[:, nxt], a1[:, nxt]
    faces = [np.stack([a0, b0, a1], 2).reshape(-1, 3), np.stack([b0, b1, a1], 2).reshape(-1, 3)]
    # caps: a centre vertex per end, fanned
    nv = n_r * n_around
    V, N = [ring.reshape(-1, 3)], [n.reshape(-1, 3)]
    P, D = [np.repeat(part, n_around)], [np.repeat(A, n_around)]
    for k, (rj, sgn) in enumerate(((0, -1.0), (n_r - 1, 1.0))):
        V.append(ring[rj].mean(0)[None])
        N.append((sgn * d[rj])[None])
        P.append(part[rj:rj + 1])
        D.append(A[rj:rj + 1])
        faces.append(np.stack([np.full(n_around, nv + k), idx[rj], idx[rj, nxt]], 1))
    return {"verts": np.concatenate(V), "faces": np.concatenate(faces).astype(np.int32),
            "normals": np.concatenate(N), "part": np.concatenate(P), "dist": np.concatenate(D),
            "end": c[-1], "end_dir": d[-1], "end_radius": float(r[-1].max())}
