"""MANO without chumpy: read the MANO model file, pose it in numpy, and rebuild FreiHAND's mesh ground truth.

The MANO model file (``MANO_RIGHT.pkl`` from https://mano.is.tue.mpg.de) is never shipped with this
project: users download it under MANO's licence and pass its path.

MANO pickle layout (``MANO_RIGHT.pkl`` of MANO v1.2, a Python-2 pickle; read with ``encoding='latin1'``;
layout as used by MANO's own ``webuser/smpl_handpca_wrapper_HAND_only.py``, ``webuser/verts.py``,
``webuser/lbs.py``, ``webuser/posemapper.py``):

- ``v_template`` (778, 3) ndarray, metres: the mean-shape template in the flat-hand rest pose.
- ``f`` (1538, 3) uint32 ndarray: triangles.
- ``J_regressor`` (16, 778) ``scipy.sparse.csc_matrix``: joints of the rest mesh, ``J = J_regressor @ v``.
- ``weights`` (778, 16) ndarray: linear-blend-skinning weights (rows sum to 1).
- ``kintree_table`` (2, 16) uint32: row 0 the parent id of each joint (``2**32 - 1`` for the root), row 1
  the joint ids. MANO's 16 joints: 0 wrist, 1-3 index, 4-6 middle, 7-9 little, 10-12 ring, 13-15 thumb.
- ``shapedirs`` (778, 3, 10): shape blend shapes; in the released file a ``chumpy.ch.Ch`` object whose
  pickled state (``Ch.__getstate__`` = its ``__dict__`` minus caches) holds the array under ``'x'``.
- ``posedirs`` (778, 3, 135): pose blend shapes over the 15 non-root joints' ``(R - I)`` entries (row-major).
- ``hands_components`` (45, 45): PCA basis of the 45 finger pose parameters; ``hands_mean`` (45,): their
  mean (a slightly bent hand); ``hands_coeffs``: PCA coefficients of the training scans (unused here).
- ``J`` (16, 3), ``bs_style`` ('lbs'), ``bs_type`` ('lrotmin'): the rest joints and the blend types.

:func:`load_mano` reads it with a restricted unpickler: ``chumpy.*`` classes become stand-ins that keep
their pickled state and are converted to numpy arrays (chumpy is never imported, even when installed);
scipy sparse matrices load and are made dense; any other class is refused (:class:`DataError`).

MANO forward pass (MANO's ``ready_arguments`` + ``lbs.verts_core``; Romero et al., SIGGRAPH Asia 2017):
full pose = global rotation (3) + [``hands_mean`` unless ``flat_hand_mean``] + 45 finger parameters
(axis-angle, no PCA); ``v_shaped = v_template + shapedirs @ betas``; ``J = J_regressor @ v_shaped``;
``v_posed = v_shaped + posedirs @ concat((R_i - I).ravel() for the 15 non-root joints)``; the joints'
global transforms along ``kintree_table`` (the root rotates about ``J[0]``); linear blend skinning of
``v_posed``. The 16 output joints are the posed skeleton (``Jtr``: the translations of the global joint
transforms), which is what FreiHAND's keypoints use.

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
import pickle
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from .data.freihand import load_json_array
from .errors import DataError
from .io import ArrayUnpickler, atomic_path, save_npz

__all__ = [
    "AUTHORS_TIPS", "FREIHAND_ROOT", "FREIHAND_TIPS", "FREIHAND_TIP_SLOTS", "MANO_KEYS", "MANO_TO_FREIHAND",
    "build_freihand_verts", "freihand_joints", "freihand_mesh", "load_mano", "mano_forward", "mano_template",
    "save_template_npz",
]

#: Arrays :func:`load_mano` returns (all required in the file).
MANO_KEYS = ("v_template", "f", "J_regressor", "weights", "kintree_table", "shapedirs", "posedirs",
             "hands_components", "hands_mean")

#: FreiHAND's fingertip vertices: thumb, index, middle, ring, little (lmb-freiburg/freihand utils/mano_utils.py).
FREIHAND_TIPS = (744, 320, 443, 555, 672)
#: Fingertip vertices of CMR/MobRecon/the CLIP-Hand3D authors: 333/444 for index/middle (project NOTES §4);
#: thumb, ring and little as FreiHAND's.
AUTHORS_TIPS = (744, 333, 444, 555, 672)
#: FreiHAND index of each of MANO's 16 joints (0 wrist, 1-3 index, 4-6 middle, 7-9 little, 10-12 ring, 13-15 thumb).
MANO_TO_FREIHAND = (0, 5, 6, 7, 9, 10, 11, 17, 18, 19, 13, 14, 15, 1, 2, 3)
#: FreiHAND indices of the five fingertips (thumb, index, middle, ring, little).
FREIHAND_TIP_SLOTS = (4, 8, 12, 16, 20)
#: FreiHAND's root keypoint for placing the mesh (middle-finger MCP; ``HandModel.pose_by_root(root_id=9)``).
FREIHAND_ROOT = 9

# --- reading the pickle ---------------------------------------------------------------------------

class _ChumpyStandIn:
    """Stand-in for a pickled chumpy object: keeps the constructor arguments and the pickled state."""

    chumpy_class = "chumpy"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def to_numpy(self) -> np.ndarray:
        """The object's value as an array; ValueError when the state holds no value this code understands."""
        return _chumpy_value(self, 0)


_STANDINS: dict[str, type] = {}


def _standin_class(module: str, name: str) -> type:
    full = f"{module}.{name}"
    if full not in _STANDINS:
        _STANDINS[full] = type(f"ChumpyStandIn_{name}", (_ChumpyStandIn,), {"chumpy_class": full})
    return _STANDINS[full]


# chumpy bookkeeping attributes that carry no value (Ch.__dict__ minus _parents/_cache, chumpy/ch.py)
_CH_BOOKKEEPING = {"dterms", "terms", "_dirty_vars", "_itr", "_depends_on_deps", "_parents", "_cache", "label",
                   "_status", "_makes_dr_wrt", "_default_kwargs", "_cache_info", "_parents_dirty"}
_CH_BINARY = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.divide,
              "power": np.power, "dot": np.dot, "matmul": np.matmul}


def _chumpy_value(obj: Any, depth: int) -> np.ndarray:
    if depth > 64:
        raise ValueError("chumpy objects nested too deeply")
    if not isinstance(obj, _ChumpyStandIn):
        if sp.issparse(obj):
            return obj.toarray()
        return np.asarray(obj)
    state = obj.state
    if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
        merged: dict = {}
        for part in state:
            if isinstance(part, dict):
                merged.update(part)
        state = merged
    if not isinstance(state, dict):
        if state is None and len(obj.args) == 1:  # reduced as cls(value)
            return np.asarray(_chumpy_value(obj.args[0], depth + 1))
        raise ValueError(f"{obj.chumpy_class} object with unexpected pickled state {type(state).__name__}")
    short = obj.chumpy_class.rsplit(".", 1)[-1].lower()
    keys = set(state) - _CH_BOOKKEEPING

    def val(k: str) -> np.ndarray:
        return np.asarray(_chumpy_value(state[k], depth + 1))

    if "x" in state:  # plain Ch: the value itself
        return val("x")
    if "a" in state:
        a = val("a")
        extra = keys - {"a"}
        if not extra:
            return a
        if extra <= {"idxs", "preferred_shape"} and "idxs" in extra:  # chumpy.reordering.Select
            out = a.ravel()[np.asarray(state["idxs"])]
            shape = state.get("preferred_shape")
            return out.reshape(shape) if shape is not None else out
        if extra == {"newshape"}:  # chumpy.reordering.Reshape
            return a.reshape(state["newshape"])
        if extra == {"axes"}:  # chumpy.reordering.transpose
            return np.transpose(a, state["axes"])
        if extra == {"b"} and short in _CH_BINARY:  # chumpy.ch_ops.add, ...
            return np.asarray(_CH_BINARY[short](a, val("b")))
    raise ValueError(f"{obj.chumpy_class} object holds no value this reader understands "
                     f"(no 'x' or 'a'; state keys {sorted(map(str, state))})")


class _MANOUnpickler(ArrayUnpickler):
    """Unpickler for MANO files: what :class:`cliphand.io.ArrayUnpickler` allows, plus scipy sparse matrices and
    chumpy stand-ins (a pickle can run arbitrary code; this one can only build data). Never imports chumpy."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "chumpy" or module.startswith("chumpy."):
            return _standin_class(module, name)
        if module == "scipy.sparse" or module.startswith("scipy.sparse."):
            cls = getattr(sp, name, None)
            if isinstance(cls, type) and (name.endswith("_matrix") or name.endswith("_array")):
                return cls
        return super().find_class(module, name)


def _parents(kintree: np.ndarray) -> np.ndarray:
    """Column index of each joint's parent (-1 for the root), as MANO's ``global_rigid_transformation``."""
    if int(kintree[0, 0]) != -1:
        raise ValueError("kintree_table: column 0 is not the root (parent 2**32-1 / -1)")
    ids = kintree[1]
    id_to_col = {int(j): i for i, j in enumerate(ids)}
    if len(id_to_col) != len(ids):
        raise ValueError("kintree_table row 1 repeats joint ids")
    parents = np.full(kintree.shape[1], -1, np.int64)
    for i in range(1, kintree.shape[1]):
        p = int(kintree[0, i])
        if p not in id_to_col:
            raise ValueError(f"kintree_table: joint {i}'s parent id {p} is not a joint id")
        parents[i] = id_to_col[p]
        if parents[i] >= i:
            raise ValueError(f"kintree_table: joint {i}'s parent {parents[i]} does not come before it")
    return parents


def load_mano(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a MANO model pickle (``MANO_RIGHT.pkl``) without chumpy.

    Args:
        path: the MANO ``.pkl`` file (Python-2 pickle, read with ``encoding='latin1'``).
    Returns:
        dict of numpy arrays (V = 778, K = 16 joints, F = 1538 for MANO; V, K, F are checked for
        consistency, not fixed): ``v_template`` (V, 3) float64 metres, ``f`` (F, 3) int64,
        ``J_regressor`` (K, V) float64 dense, ``weights`` (V, K) float64, ``kintree_table`` (2, K) int64
        (root parent stored as -1 instead of 2**32-1), ``shapedirs`` (V, 3, B) float64,
        ``posedirs`` (V, 3, 9 (K-1)) float64, ``hands_components`` (C, 3 (K-1)) float64,
        ``hands_mean`` (3 (K-1),) float64; plus ``J`` (K, 3) float64 when the file has it.
    Raises:
        DataError naming the file: missing file, not a (readable) pickle, a class other than numpy/scipy
        sparse/chumpy, a chumpy object without a value, a missing key, a wrong shape or non-finite values,
        blend types other than 'lbs'/'lrotmin'.
    Source: MANO v1.2 ``webuser`` loader (layout in this module's docstring); chumpy's ``Ch.__getstate__``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: MANO model file not found (download MANO_RIGHT.pkl from mano.is.tue.mpg.de)")
    try:
        with open(path, "rb") as fh:
            raw = _MANOUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError,
            KeyError, UnicodeDecodeError, OverflowError) as e:
        raise DataError(f"{path}: not a readable MANO pickle ({type(e).__name__}: {e})") from e
    if not isinstance(raw, dict):
        raise DataError(f"{path}: MANO pickle must hold a dict, got {type(raw).__name__}")
    missing = [k for k in MANO_KEYS if k not in raw]
    if missing:
        raise DataError(f"{path}: MANO pickle lacks keys {missing}")
    for key, want in (("bs_style", "lbs"), ("bs_type", "lrotmin")):
        if key in raw and str(raw[key]) != want:
            raise DataError(f"{path}: {key} is {raw[key]!r}; only {want!r} is supported")

    out: dict[str, np.ndarray] = {}
    for key in MANO_KEYS + (("J",) if "J" in raw else ()):
        try:
            arr = _chumpy_value(raw[key], 0)
        except ValueError as e:
            raise DataError(f"{path}: {key}: {e}") from e
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise DataError(f"{path}: {key} is not numeric (dtype {arr.dtype})")
        if key in ("f", "kintree_table"):
            if arr.size and not np.all(np.equal(np.mod(arr, 1), 0)):
                raise DataError(f"{path}: {key} must hold integers")
            arr = arr.astype(np.int64)  # uint64 2**64-1 wraps to -1
            if key == "kintree_table":
                arr[arr == 2 ** 32 - 1] = -1  # MANO's uint32 root parent
        else:
            arr = arr.astype(np.float64)
            if not np.isfinite(arr).all():
                raise DataError(f"{path}: {key} has non-finite values")
        out[key] = arr

    def bad(key: str, want: str) -> DataError:
        return DataError(f"{path}: {key} must be {want}, got shape {out[key].shape}")

    v = out["v_template"]
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] < 1:
        raise bad("v_template", "(V, 3)")
    V = v.shape[0]
    kt = out["kintree_table"]
    if kt.ndim != 2 or kt.shape[0] != 2 or kt.shape[1] < 1:
        raise bad("kintree_table", "(2, K)")
    K = kt.shape[1]
    try:
        _parents(kt)
    except ValueError as e:
        raise DataError(f"{path}: {e}") from e
    P = 3 * (K - 1)
    checks = {
        "f": (out["f"].ndim == 2 and out["f"].shape[1] == 3, "(F, 3)"),
        "J_regressor": (out["J_regressor"].shape == (K, V), f"({K}, {V}) (joints x vertices)"),
        "weights": (out["weights"].shape == (V, K), f"({V}, {K}) (vertices x joints)"),
        "shapedirs": (out["shapedirs"].ndim == 3 and out["shapedirs"].shape[:2] == (V, 3)
                      and out["shapedirs"].shape[2] >= 1, f"({V}, 3, B)"),
        "posedirs": (out["posedirs"].shape == (V, 3, 9 * (K - 1)), f"({V}, 3, {9 * (K - 1)})"),
        "hands_components": (out["hands_components"].ndim == 2 and out["hands_components"].shape[1] == P,
                             f"(C, {P})"),
        "hands_mean": (out["hands_mean"].shape == (P,), f"({P},)"),
    }
    if "J" in out:
        checks["J"] = (out["J"].shape == (K, 3), f"({K}, 3)")
    for key, (ok, want) in checks.items():
        if not ok:
            raise bad(key, want)
    f = out["f"]
    if f.size and (f.min() < 0 or f.max() >= V):
        raise DataError(f"{path}: f indexes vertices outside 0..{V - 1}")
    return out


# --- forward pass ---------------------------------------------------------------------------------

def _rodrigues(rvec: np.ndarray) -> np.ndarray:
    """Axis-angle (..., 3) -> rotation matrices (..., 3, 3) (as ``cv2.Rodrigues``)."""
    r = np.asarray(rvec, np.float64)
    theta = np.linalg.norm(r, axis=-1)
    k = r / np.where(theta > 0, theta, 1.0)[..., None]
    kx = np.zeros(r.shape[:-1] + (3, 3))
    kx[..., 0, 1], kx[..., 0, 2] = -k[..., 2], k[..., 1]
    kx[..., 1, 0], kx[..., 1, 2] = k[..., 2], -k[..., 0]
    kx[..., 2, 0], kx[..., 2, 1] = -k[..., 1], k[..., 0]
    s = np.sin(theta)[..., None, None]
    c = np.cos(theta)[..., None, None]
    return np.eye(3) + s * kx + (1.0 - c) * (kx @ kx)


def _forward_batch(model: dict, full_pose: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """full_pose (N, K, 3) axis-angle (hands_mean already applied), betas (N, B') -> verts (N, V, 3), Jtr (N, K, 3)."""
    v_template, shapedirs, posedirs = model["v_template"], model["shapedirs"], model["posedirs"]
    V, K = v_template.shape[0], model["kintree_table"].shape[1]
    N, nb = betas.shape
    parents = _parents(model["kintree_table"])
    v_shaped = v_template + (betas @ shapedirs[:, :, :nb].reshape(V * 3, nb).T).reshape(N, V, 3)
    J = np.einsum("kv,nvc->nkc", model["J_regressor"], v_shaped)
    R = _rodrigues(full_pose)  # (N, K, 3, 3)
    feat = (R[:, 1:] - np.eye(3)).reshape(N, -1)  # lrotmin: (R - I).ravel() of the non-root joints
    v_posed = v_shaped + (feat @ posedirs.reshape(V * 3, -1).T).reshape(N, V, 3)
    G = np.zeros((N, K, 4, 4))
    G[:, :, 3, 3] = 1.0
    for i in range(K):
        local = np.zeros((N, 4, 4))
        local[:, :3, :3] = R[:, i]
        local[:, 3, 3] = 1.0
        if parents[i] < 0:
            local[:, :3, 3] = J[:, i]
            G[:, i] = local
        else:
            p = parents[i]
            local[:, :3, 3] = J[:, i] - J[:, p]
            G[:, i] = G[:, p] @ local
    jtr = G[:, :, :3, 3].copy()
    A = G[:, :, :3, :].copy()  # (N, K, 3, 4): transforms of rest-pose points
    A[:, :, :, 3] -= np.einsum("nkab,nkb->nka", G[:, :, :3, :3], J)
    T = (model["weights"] @ A.reshape(N, K, 12)).reshape(N, V, 3, 4)
    verts = np.einsum("nvab,nvb->nva", T[..., :3], v_posed) + T[..., 3]
    return verts, jtr


def mano_forward(model: dict, pose: np.ndarray, betas: np.ndarray,
                 flat_hand_mean: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Pose MANO: shape blend, joint regression, pose blend, linear blend skinning along the kinematic tree.

    Args:
        model: :func:`load_mano`'s dict.
        pose: (3 K,) = (48,) axis-angle, global rotation first then the 15 finger joints in MANO's joint
            order (no PCA), or (N, 48) for a batch.
        betas: (B',) shape coefficients with B' <= B (10 for MANO; missing ones are 0), or (N, B').
        flat_hand_mean: False adds ``hands_mean`` to the 45 finger parameters (MANO's default and FreiHAND's
            ``use_mean_pose=True``); True poses relative to the flat hand.
    Returns:
        verts (V, 3) and joints (K, 3) = (778, 3), (16, 3) float64 metres in MANO's frame (no translation;
        the global rotation turns about rest joint 0), or (N, V, 3), (N, K, 3). The joints are the posed
        skeleton (``Jtr`` of MANO's ``verts_core``), MANO's joint order.
    Raises:
        ValueError on wrong pose/betas shapes.
    Source: MANO ``webuser/smpl_handpca_wrapper_HAND_only.py`` (``load_model``), ``verts.py``, ``lbs.py``,
    ``posemapper.py`` (``lrotmin``).
    """
    K = model["kintree_table"].shape[1]
    B = model["shapedirs"].shape[2]
    pose = np.asarray(pose, np.float64)
    betas = np.asarray(betas, np.float64)
    single = pose.ndim == 1
    pose2 = pose.reshape(1, -1) if single else pose
    betas2 = betas.reshape(1, -1) if betas.ndim == 1 else betas
    if pose2.ndim != 2 or pose2.shape[1] != 3 * K:
        raise ValueError(f"pose must be ({3 * K},) or (N, {3 * K}), got {pose.shape}")
    if betas2.ndim != 2 or betas2.shape[1] > B:
        raise ValueError(f"betas must be (B',) or (N, B') with B' <= {B}, got {betas.shape}")
    if betas2.shape[0] != pose2.shape[0]:
        if betas2.shape[0] != 1:
            raise ValueError(f"pose {pose.shape} and betas {betas.shape} disagree on the batch size")
        betas2 = np.repeat(betas2, pose2.shape[0], axis=0)
    full = pose2.copy()
    if not flat_hand_mean:
        full[:, 3:] += model["hands_mean"]
    verts, joints = _forward_batch(model, full.reshape(-1, K, 3), betas2)
    return (verts[0], joints[0]) if single else (verts, joints)


def freihand_joints(verts: np.ndarray, joints16: np.ndarray, tips: Sequence[int] = FREIHAND_TIPS) -> np.ndarray:
    """FreiHAND's 21 keypoints from a posed MANO mesh.

    Args:
        verts: (..., V, 3) posed MANO vertices. joints16: (..., 16, 3) posed MANO joints (MANO order:
            0 wrist, 1-3 index, 4-6 middle, 7-9 little, 10-12 ring, 13-15 thumb).
        tips: fingertip vertex indices thumb, index, middle, ring, little (:data:`FREIHAND_TIPS`, or
            :data:`AUTHORS_TIPS` for CMR/MobRecon's 333/444).
    Returns:
        (..., 21, 3) in FreiHAND order: wrist; thumb MCP, PIP, DIP, tip; index MCP, PIP, DIP, tip; middle;
        ring; little; same units and frame as the input.
    Raises:
        ValueError on wrong shapes or tip indices.
    Source: lmb-freiburg/freihand ``utils/mano_utils.py`` (``get_keypoints_from_mesh_ch``, ``kpId2vertices``).
    """
    verts = np.asarray(verts)
    joints16 = np.asarray(joints16)
    tips = [int(t) for t in tips]
    if joints16.shape[-2:] != (16, 3):
        raise ValueError(f"joints16 must be (..., 16, 3), got {joints16.shape}")
    if verts.ndim < 2 or verts.shape[-1] != 3 or verts.shape[:-2] != joints16.shape[:-2]:
        raise ValueError(f"verts must be (..., V, 3) matching joints16 {joints16.shape}, got {verts.shape}")
    if len(tips) != 5 or min(tips) < 0 or max(tips) >= verts.shape[-2]:
        raise ValueError(f"tips must be 5 vertex indices in 0..{verts.shape[-2] - 1}, got {tips}")
    out = np.empty(joints16.shape[:-2] + (21, 3), np.result_type(verts, joints16))
    out[..., list(MANO_TO_FREIHAND), :] = joints16
    out[..., list(FREIHAND_TIP_SLOTS), :] = verts[..., tips, :]
    return out


def mano_template(path: str | os.PathLike, tips: Sequence[int] = FREIHAND_TIPS) -> dict[str, np.ndarray]:
    """The mean-pose MANO mesh as a template dict (the form of :func:`cliphand.checkpoint.read_template`).

    Pose: ``hands_mean`` (``flat_hand_mean=False``), zero global rotation, zero betas; MANO's frame.
    Args:
        path: ``MANO_RIGHT.pkl``. tips: fingertip vertices (:func:`freihand_joints`).
    Returns:
        ``verts`` (778, 3) float32 metres, ``joints`` (21, 3) float32 metres FreiHAND order,
        ``faces`` (1538, 3) int64.
    Raises:
        DataError naming the file (see :func:`load_mano`).
    """
    model = load_mano(path)
    K, B = model["kintree_table"].shape[1], model["shapedirs"].shape[2]
    verts, j16 = mano_forward(model, np.zeros(3 * K), np.zeros(B), flat_hand_mean=False)
    if j16.shape != (16, 3):
        raise DataError(f"{path}: FreiHAND keypoints need MANO's 16 joints, the file has {j16.shape[0]}")
    try:
        joints = freihand_joints(verts, j16, tips)
    except ValueError as e:
        raise DataError(f"{path}: {e}") from e
    return {"verts": verts.astype(np.float32), "joints": joints.astype(np.float32),
            "faces": model["f"].astype(np.int64)}


def save_template_npz(path: str | os.PathLike, template: dict) -> None:
    """Write a template dict atomically as ``data/synth/template.npz``: ``verts`` (V, 3) float32 metres,
    ``faces`` (F, 3) int32, ``joints`` (21, 3) float32 metres (what :func:`cliphand.data.synth.synthesize`
    writes and :func:`cliphand.model.cliphand3d.load_template` reads).

    Raises: ValueError on missing arrays or wrong shapes.
    """
    verts = np.asarray(template["verts"], np.float32)
    joints = np.asarray(template["joints"], np.float32)
    faces = np.asarray(template["faces"])
    for name, a in (("verts", verts), ("joints", joints), ("faces", faces)):
        if a.ndim != 2 or a.shape[1] != 3:
            raise ValueError(f"template {name} must be (n, 3), got {a.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= len(verts)):
        raise ValueError(f"template faces index outside 0..{len(verts) - 1}")
    save_npz(path, verts=verts, faces=faces.astype(np.int32), joints=joints)


# --- FreiHAND -------------------------------------------------------------------------------------

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
