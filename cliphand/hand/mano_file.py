"""Reading the MANO model file without chumpy.

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
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from cliphand.errors import DataError
from cliphand.io import ArrayUnpickler

#: Arrays :func:`load_mano` returns (all required in the file).
MANO_KEYS = ("v_template", "f", "J_regressor", "weights", "kintree_table", "shapedirs", "posedirs",
             "hands_components", "hands_mean")

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


def kinematic_parents(kintree: np.ndarray) -> np.ndarray:
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
        kinematic_parents(kt)
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
