"""FreiHAND's mesh ground truth rebuilt with MANO (``cliphand mano-verts``): the 778 vertices of every
training sample from ``training_mano.json``, for users who have FreiHAND and MANO but not
``training_verts.json``.

FreiHAND conventions (read in lmb-freiburg/freihand, ``utils/model.py``, ``utils/mano_utils.py``,
``utils/fh_utils.py``, ``view_samples.py``):

- ``training_mano.json``: 32560 entries ``[[61 floats]]``, split by ``split_theta``: 48 pose (axis-angle,
  global rotation first), 10 shape, ``uv_root`` (2, pixels), ``scale`` (1).
- The ground truth is posed by ``HandModel(use_mean_pca=False, use_mean_pose=True)``: MANO with
  ``flat_hand_mean=False`` (``hands_mean`` added) and ``use_pca=False`` (components = identity).
- 21 keypoints (``get_keypoints_from_mesh_ch``): MANO's posed joints mapped to FreiHAND order plus
  vertices 744 (thumb tip), 320 (index), 443 (middle), 555 (ring), 672 (little).
- Root placement (``get_focal_pp``, ``backproject_ortho``, ``recover_root``, ``HandModel.pose_by_root``):
  ``focal = (fx + fy) / 2``, ``pp = K[:2, 2]``, ``xyz_root = [u - px, v - py, focal] / scale``; the mesh
  is translated so that keypoint 9 (middle-finger MCP, ``root_id=9``) lands on ``xyz_root``. So the root
  is at depth ``focal / scale`` and projects (with focal length ``focal``) onto ``uv_root``.
- Everything in metres, camera frame. ``training_verts.json`` (778x3) and ``training_xyz.json`` (21x3)
  hold the result per sample; :func:`build_freihand_verts` compares against them when present.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from cliphand.data.readers.freihand import load_json_array
from cliphand.errors import DataError
from cliphand.hand.mano import FREIHAND_ROOT, FREIHAND_TIPS, freihand_joints, mano_forward
from cliphand.hand.mano_file import load_mano
from cliphand.io import atomic_path


def _freihand_root(mano_params: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(N, 61), (N, 3, 3) -> (N, 3) root keypoint in the camera frame (metres)."""
    uv_root, scale = mano_params[:, 58:60], mano_params[:, 60]
    focal = 0.5 * (K[:, 0, 0] + K[:, 1, 1])
    pp = K[:, :2, 2]
    xyz = np.concatenate([uv_root - pp, focal[:, None]], axis=1)
    return xyz / scale[:, None]


def _freihand_batch(model: dict, mano_params: np.ndarray, K: np.ndarray,
                    tips: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    verts, j16 = mano_forward(model, mano_params[:, :48], mano_params[:, 48:58], flat_hand_mean=False)
    joints = freihand_joints(verts, j16, tips)
    t = _freihand_root(mano_params, K) - joints[:, FREIHAND_ROOT]
    return verts + t[:, None], joints + t[:, None]


def freihand_mesh(model: dict, mano_params: np.ndarray, K: np.ndarray,
                  tips: Sequence[int] = FREIHAND_TIPS) -> tuple[np.ndarray, np.ndarray]:
    """FreiHAND's mesh and keypoints of one training sample from its MANO parameters.

    Args:
        model: :func:`load_mano`'s dict.
        mano_params: (61,) (or (1, 61) as in ``training_mano.json``): 48 pose (axis-angle, global first),
            10 shape, ``uv_root`` (2, pixels), ``scale`` (1, > 0).
        K: (3, 3) camera intrinsics (pixels), ``training_K.json``.
        tips: fingertip vertices of the returned keypoints (the placement uses keypoint 9, no tip).
    Returns:
        verts (778, 3), joints (21, 3, FreiHAND order), float64 metres, camera frame: MANO posed with
        ``hands_mean`` added, translated so that keypoint 9 lies at
        ``[u - px, v - py, (fx + fy) / 2] / scale``.
    Raises:
        ValueError on wrong shapes or a non-positive scale.
    Source: lmb-freiburg/freihand ``utils/model.py`` (``split_theta``, ``get_focal_pp``, ``backproject_ortho``,
    ``recover_root``, ``HandModel.pose_by_root``, ``pose_hand``).
    """
    p = np.asarray(mano_params, np.float64).reshape(-1)
    K = np.asarray(K, np.float64)
    if p.shape != (61,):
        raise ValueError(f"mano_params must hold 61 numbers, got shape {np.shape(mano_params)}")
    if K.shape != (3, 3):
        raise ValueError(f"K must be (3, 3), got {K.shape}")
    if not p[60] > 0:
        raise ValueError(f"scale must be > 0, got {p[60]}")
    verts, joints = _freihand_batch(model, p[None], K[None], tips)
    return verts[0], joints[0]


def build_freihand_verts(freihand_root: str | os.PathLike, mano_path: str | os.PathLike,
                         out_path: str | os.PathLike, limit: int | None = None, progress: bool = True,
                         chunk: int = 256, tips: Sequence[int] = FREIHAND_TIPS) -> dict:
    """Rebuild FreiHAND's training meshes from ``training_mano.json`` + ``training_K.json`` with MANO.

    Args:
        freihand_root: the FreiHAND folder (``training_mano.json``, ``training_K.json``; optionally
            ``training_verts.json`` and ``training_xyz.json`` to compare against).
        mano_path: ``MANO_RIGHT.pkl``.
        out_path: ``.npy`` written atomically: (n, 778, 3) float32 metres, camera frame, sample order of
            ``training_mano.json`` (load with ``mmap_mode='r'``).
        limit: only the first ``limit`` samples (None: all, 32560 for FreiHAND).
        progress: tqdm progress bar. chunk: samples per batch. tips: as in :func:`freihand_joints`.
    Returns:
        dict: ``n`` samples written, ``n_available``, ``out`` path, ``seconds``; ``verts_max_abs_diff_m``,
        ``verts_mean_abs_diff_m`` against ``training_verts.json`` and ``joints_max_abs_diff_m``,
        ``joints_mean_abs_diff_m`` against ``training_xyz.json`` (None when that file is absent).
    Raises:
        DataError naming the file: missing or malformed JSON, count mismatch between the files, a
        non-positive scale, a reference file with fewer samples, or a bad MANO file (:func:`load_mano`).
    Source: FreiHAND's ``pose_hand`` (lmb-freiburg/freihand ``utils/model.py``); see :func:`freihand_mesh`.
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    root = Path(freihand_root)
    mano_json, k_json = root / "training_mano.json", root / "training_K.json"
    params = load_json_array(mano_json, (1, 61)).reshape(-1, 61)
    Ks = load_json_array(k_json, (3, 3))
    if len(params) != len(Ks):
        raise DataError(f"{k_json}: {len(Ks)} entries but {mano_json} has {len(params)}")
    bad = np.flatnonzero(~(params[:, 60] > 0))
    if bad.size:
        raise DataError(f"{mano_json}: sample {int(bad[0])} has scale {params[bad[0], 60]} (must be > 0)")
    n_avail = len(params)
    n = n_avail if limit is None else max(0, min(int(limit), n_avail))
    model = load_mano(mano_path)
    V = model["v_template"].shape[0]

    refs = {}  # reference arrays the user can compare against (training_verts.json is ~0.6 GB as float64)
    for key, name, inner in (("verts", "training_verts.json", (V, 3)), ("joints", "training_xyz.json", (21, 3))):
        if (root / name).is_file():
            refs[key] = load_json_array(root / name, inner)
            if len(refs[key]) < n:
                raise DataError(f"{root / name}: holds fewer than {n} samples ({len(refs[key])} found)")
    diff_max = {k: 0.0 for k in refs}
    diff_sum = {k: 0.0 for k in refs}
    with atomic_path(out_path, suffix=".npy") as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, V, 3))
        with tqdm(total=n, desc="FreiHAND meshes", unit="sample", disable=not progress) as bar:
            for start in range(0, n, chunk):
                stop = min(n, start + chunk)
                verts, joints = _freihand_batch(model, params[start:stop], Ks[start:stop], tips)
                out[start:stop] = verts
                for key, ref in refs.items():
                    d = np.abs(ref[start:stop] - (verts if key == "verts" else joints))
                    diff_max[key] = max(diff_max[key], float(d.max()))
                    diff_sum[key] += float(d.sum())
                bar.update(stop - start)
        out.flush()
        del out
    stats: dict = {"n": n, "n_available": n_avail, "out": str(out_path),
                   "seconds": round(time.perf_counter() - t0, 3)}
    for key, size in (("verts", V * 3), ("joints", 63)):
        have = key in refs and n > 0
        stats[f"{key}_max_abs_diff_m"] = diff_max[key] if have else None
        stats[f"{key}_mean_abs_diff_m"] = diff_sum[key] / (n * size) if have else None
    return stats
