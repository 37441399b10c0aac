"""The template mesh the model deforms (paper §3.4): the WebXR hand of the synthesize stage (default) or
the user's MANO model (``data.template: mano``, 778 vertices, FreiHAND's joints; see :mod:`cliphand.hand.mano`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cliphand.config import Data
from cliphand.paths import Paths
from cliphand.io import save_npz
from cliphand.hand.template import read_template


def write_template(data: Data, paths: Paths, out: Path) -> dict:
    """Write the template of ``data.template`` to ``out`` (verts (V,3) f32 m, joints (21,3) f32 m, faces
    (F,3) i32): the synthetic hand's (``data/synth/template.npz``) or the mean MANO hand of ``data.mano_path``
    (the schema requires it with ``template: mano``). Returns a summary ``{kind, vertices, faces}``.

    Raises:
        DataError: a missing ``data/synth/template.npz`` or MANO file.
    """
    if data.template == "synth":
        tpl = read_template(paths.synth_template)
    else:
        from cliphand.hand.mano import mano_template

        tpl = mano_template(paths.resolve(data.mano_path))
    verts, joints, faces = tpl["verts"], tpl["joints"], tpl["faces"]
    save_npz(out, verts=np.asarray(verts, np.float32), joints=np.asarray(joints, np.float32),
             faces=np.asarray(faces, np.int32))
    return {"kind": data.template, "vertices": int(len(verts)), "faces": int(len(faces))}
