"""A small vectorised NumPy z-buffer rasterizer and a Lambert/Blinn-Phong skin shader.

Conventions: camera frame x right, y down, z forward, metres (``cliphand.geometry``); pixel ``(row v,
column u)`` has its centre at image coordinates ``(u, v)`` (integers, the OpenCV convention), so a
camera point projects to ``u = fx x / z + cx``, ``v = fy y / z + cy`` and lands on pixel
``(round(v), round(u))``.

Method: all triangles are handled at once. Each triangle's pixel bounding box is sized, triangles are
grouped by the power of two that covers the box, and per group the same grid of pixel offsets is
laid over every box; edge functions give screen-space barycentrics and coverage (a pixel centre on an
edge counts as inside). Depth and the returned barycentrics are perspective-correct (1/z is affine in
screen space). The z-buffer keeps the nearest fragment per pixel by one sort (lexsort on pixel, depth).
Triangles with a vertex closer than ``near`` are dropped (no clipping).
"""

from __future__ import annotations

import numpy as np


def rasterize(verts_cam: np.ndarray, faces: np.ndarray, K: np.ndarray, H: int, W: int,
              near: float = 1e-3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-buffer rasterization of a triangle mesh.

    Args:
        verts_cam: (V, 3) vertices in the camera frame, metres.
        faces: (F, 3) int vertex indices.
        K: (3, 3) pinhole intrinsics, pixels.
        H, W: image size, pixels.
        near: triangles with any vertex at z < near (metres) are skipped.
    Returns:
        depth (H, W) float64 metres (inf on background), face (H, W) int64 face index (-1 on background),
        bary (H, W, 3) float64 perspective-correct barycentrics of the visible face (0 on background).
    """
    v = np.asarray(verts_cam, dtype=np.float64)
    faces = np.asarray(faces)
    z = v[:, 2]
    zs = np.where(z > near, z, 1.0)
    u = K[0, 0] * v[:, 0] / zs + K[0, 1] * v[:, 1] / zs + K[0, 2]
    w = K[1, 1] * v[:, 1] / zs + K[1, 2]
    tu, tv, tz = u[faces], w[faces], z[faces]  # (F, 3)

    x0 = np.maximum(np.ceil(tu.min(1) - 1e-9), 0).astype(np.int64)
    x1 = np.minimum(np.floor(tu.max(1) + 1e-9), W - 1).astype(np.int64)
    y0 = np.maximum(np.ceil(tv.min(1) - 1e-9), 0).astype(np.int64)
    y1 = np.minimum(np.floor(tv.max(1) + 1e-9), H - 1).astype(np.int64)
    area = (tu[:, 1] - tu[:, 0]) * (tv[:, 2] - tv[:, 0]) - (tu[:, 2] - tu[:, 0]) * (tv[:, 1] - tv[:, 0])
    ok = (x1 >= x0) & (y1 >= y0) & (np.abs(area) > 1e-12) & (tz.min(1) > near)
    ext = np.maximum(x1 - x0, y1 - y0) + 1
    level = np.where(ok, np.ceil(np.log2(np.maximum(ext, 1))).astype(np.int64), -1)

    pix_l, z_l, f_l, b_l = [], [], [], []
    for lv in np.unique(level[level >= 0]):
        idx = np.nonzero(level == lv)[0]
        s = 1 << int(lv)
        oy, ox = np.divmod(np.arange(s * s), s)
        px = x0[idx, None] + ox[None, :]  # (T, s*s)
        py = y0[idx, None] + oy[None, :]
        inb = (px <= x1[idx, None]) & (py <= y1[idx, None])
        a_u, a_v = tu[idx], tv[idx]
        inv = 1.0 / area[idx, None]
        # barycentric of vertex k = edge function of the opposite edge / area
        b0 = ((a_u[:, 1, None] - px) * (a_v[:, 2, None] - py) - (a_u[:, 2, None] - px) * (a_v[:, 1, None] - py)) * inv
        b1 = ((a_u[:, 2, None] - px) * (a_v[:, 0, None] - py) - (a_u[:, 0, None] - px) * (a_v[:, 2, None] - py)) * inv
        b2 = 1.0 - b0 - b1
        m = inb & (b0 >= -1e-9) & (b1 >= -1e-9) & (b2 >= -1e-9)
        ti, ci = np.nonzero(m)
        if ti.size == 0:
            continue
        bb = np.stack([b0[ti, ci], b1[ti, ci], b2[ti, ci]], 1)
        fz = tz[idx[ti]]
        bz = bb / fz
        invz = bz.sum(1)
        pix_l.append(py[ti, ci] * W + px[ti, ci])
        z_l.append(1.0 / invz)
        f_l.append(idx[ti])
        b_l.append(bz / invz[:, None])

    depth = np.full(H * W, np.inf)
    face = np.full(H * W, -1, dtype=np.int64)
    bary = np.zeros((H * W, 3))
    if pix_l:
        pix, zz = np.concatenate(pix_l), np.concatenate(z_l)
        order = np.lexsort((zz, pix))
        ps = pix[order]
        first = np.ones(len(ps), dtype=bool)
        first[1:] = ps[1:] != ps[:-1]
        keep = order[first]
        p = pix[keep]
        depth[p] = zz[keep]
        face[p] = np.concatenate(f_l)[keep]
        bary[p] = np.concatenate(b_l)[keep]
    return depth.reshape(H, W), face.reshape(H, W), bary.reshape(H, W, 3)


def vertex_normals(verts: np.ndarray, faces: np.ndarray, weld: np.ndarray | None = None) -> np.ndarray:
    """(V, 3) unit vertex normals: area-weighted sums of the incident face normals (right-hand winding).

    ``weld`` (V,) optionally maps each vertex to a representative of its position, so that vertices
    duplicated along UV seams share one normal (no shading crease at the seams).
    """
    tri = verts[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    idx = (faces if weld is None else weld[faces]).ravel()
    rep = np.repeat(fn, 3, axis=0)
    n = np.stack([np.bincount(idx, rep[:, c], minlength=len(verts)) for c in range(3)], 1)
    if weld is not None:
        n = n[weld]
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def shade(verts_cam: np.ndarray, faces: np.ndarray, face_map: np.ndarray, bary: np.ndarray,
          albedo, light_dir, light_color=(1.0, 1.0, 1.0), ambient: float = 0.3,
          specular: float = 0.1, shininess: float = 20.0, wrap: float = 0.3,
          normals: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Shade the visible surface of a rasterized mesh.

    Per pixel, the vertex normals of the visible face are interpolated with its barycentrics and turned
    towards the camera where needed (the mesh is open at the forearm). Colour =
    ``albedo * (ambient + light_color * wrapped Lambert) + specular * light_color * (n.h)^shininess``
    (Blinn-Phong half vector ``h``; ``wrap`` softens the terminator, a cheap stand-in for skin's
    subsurface scattering: diffuse = max((n.l + wrap) / (1 + wrap), 0)).

    Args:
        verts_cam: (V, 3) camera-frame vertices, metres (the ones given to :func:`rasterize`).
        faces: (F, 3) int.
        face_map, bary: outputs of :func:`rasterize`, (H, W) and (H, W, 3).
        albedo: (3,) RGB in [0, 1], or (V, 3) per-vertex RGB (interpolated).
        light_dir: (3,) direction from the surface towards the light, camera frame (normalised here).
        light_color: (3,) RGB intensity of the light.
        ambient: ambient intensity (scalar or (3,)).
        specular: specular strength; shininess: Blinn-Phong exponent.
        normals: optional (V, 3) vertex normals (default: :func:`vertex_normals` of ``faces``).
    Returns:
        rgb (H, W, 3) float32 in [0, 1] (0 on background) and mask (H, W) bool foreground.
    """
    H, W = face_map.shape
    mask = face_map >= 0
    rgb = np.zeros((H, W, 3), dtype=np.float32)
    if not mask.any():
        return rgb, mask
    f = face_map[mask]
    b = bary[mask]
    vn = vertex_normals(verts_cam, faces) if normals is None else normals
    tri = faces[f]  # (P, 3)
    n = np.einsum("pk,pkc->pc", b, vn[tri])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    p = np.einsum("pk,pkc->pc", b, verts_cam[tri])
    view = -p / np.linalg.norm(p, axis=1, keepdims=True)
    n = np.where((n * view).sum(1, keepdims=True) < 0, -n, n)
    l = np.asarray(light_dir, dtype=np.float64)
    l = l / np.linalg.norm(l)
    lc = np.asarray(light_color, dtype=np.float64)
    ndl = n @ l
    diff = np.maximum((ndl + wrap) / (1.0 + wrap), 0.0)
    h = view + l
    h /= np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12)
    spec = np.where(ndl > 0, np.maximum((n * h).sum(1), 0.0) ** shininess, 0.0)
    alb = np.asarray(albedo, dtype=np.float64)
    if alb.ndim == 2:
        alb = np.einsum("pk,pkc->pc", b, alb[tri])
    col = alb * (np.asarray(ambient, dtype=np.float64) + diff[:, None] * lc) + specular * spec[:, None] * lc
    rgb[mask] = np.clip(col, 0.0, 1.0)
    return rgb, mask
