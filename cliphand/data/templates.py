"""The template mesh the model deforms (paper §3.4): the WebXR hand of the synthesize stage (default) or
the user's MANO model (``data.template: mano``, 778 vertices, FreiHAND's joints; see :mod:`cliphand.hand.mano`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cliphand.paths import resolve_path
from cliphand.errors import DataError
from cliphand.io import save_npz
from cliphand.hand.template import read_template


def write_template(params: dict, root: Path, out: Path) -> dict:
    """Write the template of ``data.template`` to ``out`` (verts (V,3) f32 m, joints (21,3) f32 m, faces
    (F,3) i32) and return a summary ``{kind, vertices, faces}``.

    Raises:
        DataError: an unknown kind, a missing ``data/synth/template.npz`` or MANO file.
    """
    data = params.get("data") or {}
    kind = data.get("template", "synth")
    if kind == "synth":
        tpl = read_template(resolve_path("data/synth/template.npz", root))
        verts, joints, faces = tpl["verts"], tpl["joints"], tpl["faces"]
    elif kind == "mano":
        from cliphand.hand.mano import mano_template

        if not data.get("mano_path"):
            raise DataError("params.yaml: data.template is 'mano' but data.mano_path is not set (your MANO_RIGHT.pkl)")
        tpl = mano_template(resolve_path(data["mano_path"], root))
        verts, joints, faces = tpl["verts"], tpl["joints"], tpl["faces"]
    else:
        raise DataError(f"params.yaml: data.template = {kind!r}; expected 'synth' or 'mano'")
    save_npz(out, verts=np.asarray(verts, np.float32), joints=np.asarray(joints, np.float32),
             faces=np.asarray(faces, np.int32))
    return {"kind": kind, "vertices": int(len(verts)), "faces": int(len(faces))}
