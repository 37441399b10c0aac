"""A small vectorised NumPy z-buffer rasterizer and a Lambert/Blinn-Phong skin shader (key light, optional
fill light, ambient and hemispheric ambient, per-vertex albedo and specular strength).

Conventions: camera frame x right, y down, z forward, metres (``cliphand.hand.geometry``); pixel ``(row v,
column u)`` has its centre at image coordinates ``(u, v)`` (integers, the OpenCV convention), so a
camera point projects to ``u = fx x / z + cx``, ``v = fy y / z + cy`` and lands on pixel
``(round(v), round(u))``.

Method: all triangles are handled at once. Each triangle's pixel bounding box is sized, triangles are
grouped by the powers of two that cover the box's width and height, and per group the same grid of
pixel offsets is laid over every box; edge functions (affine in the pixel position) give screen-space
barycentrics and coverage (a pixel centre on an edge counts as inside). Depth and the returned
barycentrics are perspective-correct (1/z is affine in screen space). The z-buffer keeps the nearest
fragment per pixel (``np.maximum.at`` on 1/z, then the fragments at that depth); barycentrics are
finished for those only.
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
    # edge functions as affine forms of the pixel: e_k(x, y) = A_k x + B_k y + C_k, the (signed, unnormalised)
    # barycentric of vertex k, from the edge opposite it; e_0 + e_1 + e_2 = area
    A0, B0 = tv[:, 1] - tv[:, 2], tu[:, 2] - tu[:, 1]
    C0 = tu[:, 1] * tv[:, 2] - tu[:, 2] * tv[:, 1]
    A1, B1 = tv[:, 2] - tv[:, 0], tu[:, 0] - tu[:, 2]
    C1 = tu[:, 2] * tv[:, 0] - tu[:, 0] * tv[:, 2]
    sgn = np.where(area < 0, -1.0, 1.0)
    tol = 1e-9 * np.abs(area)
    # group triangles by the powers of two covering their box's width and height
    lx = np.ceil(np.log2(np.maximum(x1 - x0 + 1, 1))).astype(np.int64)
    ly = np.ceil(np.log2(np.maximum(y1 - y0 + 1, 1))).astype(np.int64)
    level = np.where(ok, lx * 64 + ly, -1)

    pix_l, f_l, g_l, iz_l = [], [], [], []
    for lv in np.unique(level[level >= 0]):
        idx = np.nonzero(level == lv)[0]
        sx, sy = 1 << int(lv // 64), 1 << int(lv % 64)
        ox = np.arange(sx, dtype=np.float64)[None, None, :]
        oy = np.arange(sy, dtype=np.float64)[None, :, None]
        fx, fy, sg = x0[idx].astype(np.float64), y0[idx].astype(np.float64), sgn[idx]
        t_ = tol[idx, None, None]
        # separable: e = (C + A x0 + B (y0 + oy)) [rows] + A ox [columns]
        r0 = ((A0[idx] * fx + B0[idx] * fy + C0[idx]) * sg)[:, None, None] + (B0[idx] * sg)[:, None, None] * oy
        r1 = ((A1[idx] * fx + B1[idx] * fy + C1[idx]) * sg)[:, None, None] + (B1[idx] * sg)[:, None, None] * oy
        e0 = r0 + (A0[idx] * sg)[:, None, None] * ox  # (T, sy, sx)
        e1 = r1 + (A1[idx] * sg)[:, None, None] * ox
        m = (e0 >= -t_) & (e1 >= -t_) & (e0 + e1 <= (area[idx] * sg)[:, None, None] + t_)
        m &= (oy <= (y1[idx] - y0[idx])[:, None, None]) & (ox <= (x1[idx] - x0[idx])[:, None, None])
        ti, cy, cx = np.nonzero(m)
        if ti.size == 0:
            continue
        tri = idx[ti]
        inv = 1.0 / np.abs(area[tri])
        g0, g1 = e0[ti, cy, cx] * inv, e1[ti, cy, cx] * inv
        zt = tz[tri]
        iz_l.append(g0 / zt[:, 0] + g1 / zt[:, 1] + (1.0 - g0 - g1) / zt[:, 2])  # 1/z, affine on screen
        pix_l.append((y0[tri] + cy) * W + x0[tri] + cx)
        f_l.append(tri)
        g_l.append(np.stack([g0, g1], 1))

    depth = np.full(H * W, np.inf)
    face = np.full(H * W, -1, dtype=np.int64)
    bary = np.zeros((H * W, 3))
    if pix_l:
        pix, iz = np.concatenate(pix_l), np.concatenate(iz_l)
        best = np.zeros(H * W)
        np.maximum.at(best, pix, iz)  # z-buffer: nearest (largest 1/z) per pixel
        keep = np.nonzero(iz == best[pix])[0]  # fragments at the nearest depth (ties: the last one wins)
        p, tri, g = pix[keep], np.concatenate(f_l)[keep], np.concatenate(g_l)[keep]
        zt = tz[tri]
        bz = np.stack([g[:, 0] / zt[:, 0], g[:, 1] / zt[:, 1], (1.0 - g[:, 0] - g[:, 1]) / zt[:, 2]], 1)
        izk = iz[keep]
        depth[p] = 1.0 / izk
        face[p] = tri
        bary[p] = bz / izk[:, None]
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
          albedo, light_dir, light_color=(1.0, 1.0, 1.0), ambient=0.3,
          specular=0.1, shininess: float = 20.0, wrap: float = 0.3,
          normals: np.ndarray | None = None, fill_dir=None, fill_color=None,
          sky=None, ground=None) -> tuple[np.ndarray, np.ndarray]:
    """Shade the visible surface of a rasterized mesh.

    Per pixel, the vertex normals of the visible face are interpolated with its barycentrics and turned
    towards the camera where needed (open meshes). Colour =
    ``albedo * (ambient + hemi + light_color * wrapped Lambert(l) + fill_color * wrapped Lambert(fill))
    + specular * light_color * (n.h)^shininess`` (Blinn-Phong half vector ``h`` of the key light; ``wrap``
    softens the terminator, a cheap stand-in for skin's subsurface scattering: diffuse =
    max((n.l + wrap) / (1 + wrap), 0)). ``hemi`` is a hemispheric ambient: ``sky * (1 - n_y) / 2 +
    ground * (1 + n_y) / 2`` (camera y points down, so surfaces facing up get the sky colour).

    Args:
        verts_cam: (V, 3) camera-frame vertices, metres (the ones given to :func:`rasterize`).
        faces: (F, 3) int.
        face_map, bary: outputs of :func:`rasterize`, (H, W) and (H, W, 3).
        albedo: (3,) RGB in [0, 1], or (V, 3) per-vertex RGB (interpolated).
        light_dir: (3,) direction from the surface towards the key light, camera frame (normalised here).
        light_color: (3,) RGB intensity of the key light.
        ambient: ambient intensity (scalar or (3,)).
        specular: specular strength, scalar or (V,) per vertex (interpolated); shininess: Blinn-Phong
            exponent.
        normals: optional (V, 3) vertex normals (default: :func:`vertex_normals` of ``faces``).
        fill_dir, fill_color: optional second directional light (diffuse only), like ``light_*``.
        sky, ground: optional (3,) RGB of the hemispheric ambient (both or neither).
    Returns:
        rgb (H, W, 3) float32 in [0, 1] (0 on background) and mask (H, W) bool foreground.
    """
    H, W = face_map.shape
    mask = face_map >= 0
    rgb = np.zeros((H, W, 3), dtype=np.float32)
    if not mask.any():
        return rgb, mask
    f = face_map[mask]
    b = bary[mask].T  # (3, P)
    vn = vertex_normals(verts_cam, faces) if normals is None else normals
    alb = np.asarray(albedo, dtype=np.float64)
    ks = np.asarray(specular, dtype=np.float64)
    # interpolate all per-vertex attributes in one pass, one row per component (contiguous 1-D maths):
    # normal, position, [albedo], [specular]
    rows = [vn.T, np.asarray(verts_cam, np.float64).T] + ([alb.T] if alb.ndim == 2 else []) \
        + ([ks[None]] if ks.ndim == 1 else [])
    attr = np.ascontiguousarray(np.concatenate(rows, 0))  # (C, V)
    tri = faces[f]  # (P, 3)
    a = attr[:, tri[:, 0]] * b[0] + attr[:, tri[:, 1]] * b[1] + attr[:, tri[:, 2]] * b[2]  # (C, P)
    n, p = a[0:3], a[3:6]
    alb = a[6:9] if alb.ndim == 2 else alb[:, None]
    if ks.ndim == 1:
        ks = a[-1]
    n = n / np.maximum(np.sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]), 1e-12)
    view = -p / np.sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2])
    n = n * np.where(n[0] * view[0] + n[1] * view[1] + n[2] * view[2] < 0, -1.0, 1.0)

    def dot(d):
        return n[0] * d[0] + n[1] * d[1] + n[2] * d[2]

    ld = np.asarray(light_dir, dtype=np.float64)
    ld = ld / np.linalg.norm(ld)
    lc = np.asarray(light_color, dtype=np.float64)[:, None]
    ndl = dot(ld)
    light = np.asarray(ambient, dtype=np.float64).reshape(-1, 1) + np.maximum((ndl + wrap) / (1.0 + wrap), 0.0) * lc
    if fill_dir is not None:
        lf = np.asarray(fill_dir, dtype=np.float64)
        lf = lf / np.linalg.norm(lf)
        light = light + np.maximum((dot(lf) + wrap) / (1.0 + wrap), 0.0) * np.asarray(fill_color, np.float64)[:, None]
    if sky is not None:
        t = 0.5 - 0.5 * n[1]
        sk, gr = np.asarray(sky, np.float64)[:, None], np.asarray(ground, np.float64)[:, None]
        light = light + gr + t * (sk - gr)
    h = view + ld[:, None]
    h = h / np.maximum(np.sqrt(h[0] * h[0] + h[1] * h[1] + h[2] * h[2]), 1e-12)
    spec = np.where(ndl > 0, np.maximum(dot(h), 0.0) ** shininess, 0.0)
    col = (alb * light + (ks * spec) * lc).T
    rgb[mask] = np.clip(col, 0.0, 1.0)
    return rgb, mask
