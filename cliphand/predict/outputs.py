"""The files ``cliphand predict`` writes per image (:mod:`cliphand.predict`): the mesh as OBJ / PLY text
(:func:`mesh_text`), the overlay picture (:func:`draw_overlay`) and :func:`write_prediction`, which writes both
and, last, the JSON record, each file atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from cliphand.hand.skeleton import BONES, FINGER_COLOURS
from cliphand.io import atomic_path, save_json, save_text
from cliphand.predict.prediction import Prediction


def mesh_text(verts: np.ndarray, faces: np.ndarray, fmt: str = "obj") -> str:
    """A mesh as OBJ (faces 1-based) or ASCII PLY (0-based) text; ``verts`` (V, 3) metres, ``faces`` (F, 3).

    Raises: ValueError on an unknown format."""
    verts = np.asarray(verts, np.float64)
    faces = np.asarray(faces, np.int64)
    if fmt == "obj":
        v_lines = "".join(f"v {x:.7f} {y:.7f} {z:.7f}\n" for x, y, z in verts)
        f_lines = "".join(f"f {a} {b} {c}\n" for a, b, c in faces + 1)
        return "# cliphand predict: camera frame (x right, y down, z forward), metres\n" + v_lines + f_lines
    if fmt == "ply":
        v_lines = "".join(f"{x:.7f} {y:.7f} {z:.7f}\n" for x, y, z in verts)
        f_lines = "".join(f"3 {a} {b} {c}\n" for a, b, c in faces)
        header = ("ply\nformat ascii 1.0\ncomment cliphand predict: camera frame (x right, y down, z forward), "
                  f"metres\nelement vertex {len(verts)}\nproperty float x\nproperty float y\nproperty float z\n"
                  f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n")
        return header + v_lines + f_lines
    raise ValueError(f"mesh format must be 'obj' or 'ply', got {fmt!r}")


def _hex_rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[k:k + 2], 16) for k in (1, 3, 5))


def draw_overlay(image: np.ndarray, pred: Prediction) -> Image.Image:
    """The image with the predicted mesh (flat-shaded, semi-transparent, painter's order), the hand square
    (white) and the 2D skeleton coloured per finger (:data:`cliphand.hand.skeleton.FINGER_COLOURS`). Returns RGB."""
    base = Image.fromarray(np.asarray(image, np.uint8)).convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    v, uv, faces = pred.verts_cam, pred.verts_uv, pred.faces
    if len(faces) and np.all(np.isfinite(uv)):
        tri = v[faces]
        normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        shade = np.abs(normal[:, 2]) / np.maximum(np.linalg.norm(normal, axis=1), 1e-12)
        for k in np.argsort(-tri[:, :, 2].mean(1)):  # far first
            g = int(90 + 150 * shade[k])
            draw.polygon([tuple(p) for p in uv[faces[k]]], fill=(g, g, int(g * 0.85) + 30, 140))
    scale = max(1, round(max(pred.image_size) / 256))
    x0, y0, side = pred.box
    draw.rectangle([x0, y0, x0 + side, y0 + side], outline=(255, 255, 255, 200), width=scale)
    out = Image.alpha_composite(base, layer)
    draw = ImageDraw.Draw(out)
    juv = pred.joints_uv
    if np.all(np.isfinite(juv)):
        for b, (i, j) in enumerate(BONES):
            draw.line([tuple(juv[i]), tuple(juv[j])], fill=_hex_rgb(FINGER_COLOURS[b // 4]) + (255,), width=2 * scale)
        r = 1.5 * scale
        for k, (x, y) in enumerate(juv):
            colour = (255, 255, 255, 255) if k == 0 else _hex_rgb(FINGER_COLOURS[(k - 1) // 4]) + (255,)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour, outline=(0, 0, 0, 255))
    return out.convert("RGB")


def write_prediction(out_dir: str | Path, stem: str, image: np.ndarray, pred: Prediction, mesh_format: str = "obj",
                     file_pred: Prediction | None = None, **extra: Any) -> Path:
    """Write ``<stem>.<mesh_format>``, ``<stem>_overlay.png`` and, last, ``<stem>.json`` into ``out_dir``
    (each atomically, all rendered in memory first, so a failure before writing leaves nothing); ``extra``
    goes into the JSON. The overlay draws ``pred`` on ``image``; the JSON holds ``file_pred`` (the prediction in
    the file's own pixels when the image was downscaled on reading, default ``pred``). Returns the JSON path."""
    out_dir = Path(out_dir)
    mesh_name, overlay_name = f"{stem}.{mesh_format}", f"{stem}_overlay.png"
    text = mesh_text(pred.verts_cam, pred.faces, mesh_format)
    overlay = draw_overlay(image, pred)
    record = (file_pred or pred).to_json(**extra, mesh_file=mesh_name, overlay_file=overlay_name)
    save_text(out_dir / mesh_name, text)
    with atomic_path(out_dir / overlay_name) as tmp:
        overlay.save(tmp, format="PNG", compress_level=1)  # 3x faster than the default, ~7% larger
    path = out_dir / f"{stem}.json"
    save_json(path, record)
    return path
