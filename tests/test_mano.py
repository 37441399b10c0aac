"""Tests of the chumpy-free MANO reader, the numpy MANO forward pass and FreiHAND's mesh conventions.

The real MANO file is never available here: the tests write a synthetic, MANO-shaped pickle in MANO's
layout (chumpy objects included, through a fake ``chumpy`` package that exists only while pickling).
"""

from __future__ import annotations

import importlib
import io
import json
import pickle
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.spatial.transform import Rotation

from cliphand.cli import main
from cliphand.errors import DataError
from cliphand.data.readers.freihand_mesh import build_freihand_verts, freihand_mesh
from cliphand.config import Data
from cliphand.data.templates import write_template
from cliphand.paths import Paths
from cliphand.hand.mano import AUTHORS_TIPS, FREIHAND_ROOT, FREIHAND_TIPS, freihand_joints, mano_forward, mano_template
from cliphand.hand.mano_file import MANO_KEYS, load_mano
from cliphand.hand.template import read_template

V, K, F = 778, 16, 1538
PARENTS = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]
ROOT = 4294967295  # MANO's uint32 root parent


# --- a synthetic MANO file ------------------------------------------------------------------------

def _rest_joints() -> np.ndarray:
    """Hand-like rest joints (metres), MANO order: wrist, index, middle, little, ring, thumb (3 each)."""
    j = np.zeros((K, 3))
    bases = {1: (-0.02, 0.08), 4: (0.0, 0.09), 7: (0.04, 0.07), 10: (0.02, 0.085), 13: (-0.04, 0.03)}
    for first, (x, y) in bases.items():
        for k in range(3):
            j[first + k] = (x - (0.01 * k if first == 13 else 0.0), y + 0.025 * k, 0.005 * k)
    return j


def _model_arrays(seed: int = 0, one_hot: bool = False, blend: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    part = np.arange(V) % K  # vertex -> joint it belongs to
    J = _rest_joints()
    offs = rng.normal(0, 0.006, (V, 3))
    for k in range(K):  # centre each part's offsets so that the regressed joint is J exactly
        offs[part == k] -= offs[part == k].mean(0)
    v_template = J[part] + offs
    reg = np.zeros((K, V))
    reg[part, np.arange(V)] = 1.0
    reg /= reg.sum(1, keepdims=True)
    weights = np.zeros((V, K))
    weights[np.arange(V), part] = 1.0
    if not one_hot:  # blend with the parent joint
        par = np.array(PARENTS)[part]
        mix = rng.uniform(0.0, 0.4, V) * (par >= 0)
        weights[np.arange(V), part] -= mix
        weights[np.arange(V)[par >= 0], par[par >= 0]] += mix[par >= 0]
    q, _ = np.linalg.qr(rng.normal(size=(45, 45)))
    scale = 1e-3 if blend else 0.0
    return {
        "v_template": v_template, "f": rng.integers(0, V, (F, 3)).astype(np.uint32),
        "J_regressor": sp.csc_matrix(reg), "weights": weights,
        "kintree_table": np.array([[ROOT] + PARENTS[1:], list(range(K))], np.uint32),
        "shapedirs": rng.normal(0, 1e-3, (V, 3, 10)), "posedirs": rng.normal(0, scale, (V, 3, 135)),
        "hands_components": q, "hands_mean": rng.normal(0, 0.2, 45), "hands_coeffs": rng.normal(size=(20, 45)),
        "J": J, "bs_style": "lbs", "bs_type": "lrotmin",
    }


class _FakeChumpy:
    """A fake ``chumpy`` package in sys.modules while it is in use (restored afterwards)."""

    def __init__(self, setstate_raises: bool = False):
        self.setstate_raises = setstate_raises

    def __enter__(self):
        chumpy, ch = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
        raises = self.setstate_raises

        class Ch:
            def __init__(self, x):  # state as chumpy's Ch.__getstate__: __dict__ without _parents/_cache
                self.x = np.asarray(x)
                self.dterms = ["x"]
                self._dirty_vars = {"x"}
                self._itr = None
                self._depends_on_deps = {}

            def __getstate__(self):
                return dict(self.__dict__)

            def __setstate__(self, d):
                if raises:
                    raise AssertionError("the real chumpy class was used")
                self.__dict__.update(d)

        Ch.__module__ = "chumpy.ch"
        Ch.__qualname__ = "Ch"
        ch.Ch = Ch
        chumpy.ch = ch
        chumpy.Ch = Ch
        self.saved = {k: sys.modules.get(k) for k in ("chumpy", "chumpy.ch")}
        sys.modules["chumpy"], sys.modules["chumpy.ch"] = chumpy, ch
        self.Ch = Ch
        return self

    def __exit__(self, *exc):
        for k, m in self.saved.items():
            if m is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = m


def _write_pkl(path: Path, arrays: dict, chumpy_keys=("shapedirs", "J")) -> Path:
    with _FakeChumpy() as fake:
        d = {k: (fake.Ch(v) if k in chumpy_keys else v) for k, v in arrays.items()}
        with open(path, "wb") as fh:
            pickle.dump(d, fh, protocol=2)
    return path


@pytest.fixture(scope="module")
def arrays() -> dict:
    return _model_arrays()


@pytest.fixture(scope="module")
def pkl(tmp_path_factory, arrays) -> Path:
    return _write_pkl(tmp_path_factory.mktemp("mano") / "MANO_RIGHT.pkl", arrays)


@pytest.fixture(scope="module")
def model(pkl) -> dict:
    return load_mano(pkl)


# --- load_mano ------------------------------------------------------------------------------------

def test_load_without_chumpy(pkl, arrays, monkeypatch):
    assert b"chumpy.ch" in pkl.read_bytes()  # the file really holds chumpy objects
    monkeypatch.setitem(sys.modules, "chumpy", None)  # `import chumpy` fails even where it is installed
    with pytest.raises(ImportError):
        importlib.import_module("chumpy")
    m = load_mano(pkl)
    shapes = {"v_template": (V, 3), "f": (F, 3), "J_regressor": (K, V), "weights": (V, K),
              "kintree_table": (2, K), "shapedirs": (V, 3, 10), "posedirs": (V, 3, 135),
              "hands_components": (45, 45), "hands_mean": (45,), "J": (K, 3)}
    for key, shape in shapes.items():
        assert isinstance(m[key], np.ndarray) and m[key].shape == shape, key
    assert m["f"].dtype == np.int64 and m["kintree_table"].dtype == np.int64
    assert m["shapedirs"].dtype == np.float64 and m["J_regressor"].dtype == np.float64
    np.testing.assert_array_equal(m["shapedirs"], arrays["shapedirs"])
    np.testing.assert_array_equal(m["J_regressor"], arrays["J_regressor"].toarray())
    np.testing.assert_array_equal(m["kintree_table"][0], PARENTS)
    np.testing.assert_array_equal(m["f"], arrays["f"])
    assert "chumpy" not in {type(v).__module__ for v in m.values()}


class _Py2Pickler(pickle._Pickler):
    """Writes bytes and str as Python 2 ``str`` (BINSTRING), as MANO's Python-2 pickle has them."""

    def _binstring(self, raw: bytes) -> None:
        n = len(raw)
        head = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)
        self.write(head + raw)

    def save_bytes(self, obj):
        self._binstring(obj)
        self.memoize(obj)

    def save_str(self, obj):
        self._binstring(obj.encode("latin1"))
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def test_python2_style_pickle(tmp_path, arrays):
    """Python 2 str opcodes, Python 2 module names (numpy.core, scipy.sparse.csc, copy_reg, __builtin__)."""
    buf = io.BytesIO()
    with _FakeChumpy() as fake:
        d = {k: (fake.Ch(v) if k in ("shapedirs", "J") else v) for k, v in arrays.items()}
        d["weights"] = np.asfortranarray(d["weights"])
        _Py2Pickler(buf, protocol=2).dump(d)
    data = buf.getvalue()
    assert b"_codecs" not in data and b"__builtin__\nset" in data
    data = data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    data = data.replace(b"scipy.sparse._csc\n", b"scipy.sparse.csc\n")
    assert b"numpy.core.multiarray\n_reconstruct" in data and b"scipy.sparse.csc\ncsc_matrix" in data
    path = tmp_path / "py2.pkl"
    path.write_bytes(data)
    m = load_mano(path)
    np.testing.assert_array_equal(m["shapedirs"], arrays["shapedirs"])
    np.testing.assert_array_equal(m["weights"], arrays["weights"])
    np.testing.assert_array_equal(m["J_regressor"], arrays["J_regressor"].toarray())
    np.testing.assert_array_equal(m["kintree_table"][0], PARENTS)
    # protocol 0 (copy_reg._reconstructor + REDUCE for the chumpy object) loads too
    with _FakeChumpy() as fake:
        path0 = tmp_path / "p0.pkl"
        path0.write_bytes(pickle.dumps(dict(arrays, shapedirs=fake.Ch(arrays["shapedirs"])), protocol=0))
    assert b"copy_reg\n_reconstructor" in path0.read_bytes()
    np.testing.assert_array_equal(load_mano(path0)["shapedirs"], arrays["shapedirs"])


def test_load_never_uses_installed_chumpy(pkl):
    # a "chumpy" that is importable but must not be used: its Ch refuses to unpickle
    with _FakeChumpy(setstate_raises=True):
        m = load_mano(pkl)
    assert m["shapedirs"].shape == (V, 3, 10)


def test_chumpy_object_without_value(tmp_path, arrays):
    with _FakeChumpy() as fake:
        bad = fake.Ch(np.zeros(3))
        del bad.x
        d = dict(arrays, shapedirs=bad)
        path = tmp_path / "noval.pkl"
        with open(path, "wb") as fh:
            pickle.dump(d, fh, protocol=2)
    with pytest.raises(DataError, match=r"noval\.pkl.*shapedirs.*'x'"):
        load_mano(path)


def test_chumpy_derived_objects():
    from cliphand.hand.mano_file import _chumpy_value, _standin_class

    def obj(module, name, state):
        o = _standin_class(module, name)()
        o.__setstate__(state)
        return o

    base = obj("chumpy.ch", "Ch", {"x": np.arange(6.0), "dterms": ["x"], "_dirty_vars": set()})
    np.testing.assert_array_equal(_chumpy_value(base, 0), np.arange(6.0))
    reshape = obj("chumpy.reordering", "Reshape", {"a": base, "newshape": (2, 3), "dterms": ["a"]})
    np.testing.assert_array_equal(_chumpy_value(reshape, 0), np.arange(6.0).reshape(2, 3))
    select = obj("chumpy.reordering", "Select", {"a": reshape, "idxs": np.array([5, 0]), "preferred_shape": (2,)})
    np.testing.assert_array_equal(_chumpy_value(select, 0), [5.0, 0.0])
    add = obj("chumpy.ch_ops", "add", {"a": base, "b": base})
    np.testing.assert_array_equal(_chumpy_value(add, 0), 2 * np.arange(6.0))
    with pytest.raises(ValueError, match="chumpy.ch_ops.sum.*no value"):
        _chumpy_value(obj("chumpy.ch_ops", "sum", {"a": base, "axis": 0}), 0)


def test_refuses_other_classes(tmp_path, arrays):
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as fh:
        pickle.dump(dict(arrays, extra=Path("x")), fh, protocol=2)
    with pytest.raises(DataError, match=r"evil\.pkl.*refusing"):
        load_mano(path)


def test_load_errors(tmp_path, arrays):
    with pytest.raises(DataError, match=r"nothere\.pkl.*not found"):
        load_mano(tmp_path / "nothere.pkl")
    junk = tmp_path / "junk.pkl"
    junk.write_text("this is not a pickle\n")
    with pytest.raises(DataError, match=r"junk\.pkl.*not a readable"):
        load_mano(junk)
    lst = tmp_path / "list.pkl"
    lst.write_bytes(pickle.dumps([1, 2], protocol=2))
    with pytest.raises(DataError, match=r"list\.pkl.*dict"):
        load_mano(lst)
    for key in ("posedirs", "hands_mean"):
        path = _write_pkl(tmp_path / f"no_{key}.pkl", {k: v for k, v in arrays.items() if k != key})
        with pytest.raises(DataError, match=rf"no_{key}\.pkl.*lacks keys.*{key}"):
            load_mano(path)
    cases = {"weights": arrays["weights"][:, :15], "posedirs": arrays["posedirs"][..., :100],
             "J_regressor": sp.csc_matrix(arrays["J_regressor"].toarray()[:, :700]),
             "shapedirs": arrays["shapedirs"][:700], "hands_mean": np.zeros(44), "v_template": np.zeros((V, 2))}
    for key, value in cases.items():
        path = _write_pkl(tmp_path / f"bad_{key}.pkl", dict(arrays, **{key: value}))
        with pytest.raises(DataError, match=rf"bad_{key}\.pkl.*{key}.*shape"):
            load_mano(path)
    path = _write_pkl(tmp_path / "bad_f.pkl", dict(arrays, f=np.full((F, 3), V, np.uint32)))
    with pytest.raises(DataError, match=r"bad_f\.pkl.*f indexes"):
        load_mano(path)


# --- forward pass ---------------------------------------------------------------------------------

def test_zero_pose_flat_mean_is_template(model):
    verts, joints = mano_forward(model, np.zeros(48), np.zeros(10), flat_hand_mean=True)
    np.testing.assert_allclose(verts, model["v_template"], rtol=0, atol=1e-15)
    np.testing.assert_allclose(joints, model["J_regressor"] @ model["v_template"], rtol=0, atol=1e-15)
    np.testing.assert_allclose(joints, _rest_joints(), atol=1e-12)


def test_betas_are_shape_blend(model):
    betas = np.linspace(-2, 2, 10)
    verts, joints = mano_forward(model, np.zeros(48), betas, flat_hand_mean=True)
    v_shaped = model["v_template"] + model["shapedirs"] @ betas
    np.testing.assert_allclose(verts, v_shaped, atol=1e-14)
    np.testing.assert_allclose(joints, model["J_regressor"] @ v_shaped, atol=1e-14)
    v5, _ = mano_forward(model, np.zeros(48), betas[:5], flat_hand_mean=True)  # fewer betas: the rest are 0
    np.testing.assert_allclose(v5, model["v_template"] + model["shapedirs"][..., :5] @ betas[:5], atol=1e-14)


@pytest.mark.parametrize("flat", [True, False])
def test_global_rotation_is_rigid_about_joint0(model, flat):
    rng = np.random.default_rng(1)
    pose = np.concatenate([np.zeros(3), rng.normal(0, 0.3, 45)])
    betas = rng.normal(0, 1, 10)
    v0, j0 = mano_forward(model, pose, betas, flat_hand_mean=flat)
    rot = np.array([0.3, -1.1, 0.7])
    v1, j1 = mano_forward(model, np.concatenate([rot, pose[3:]]), betas, flat_hand_mean=flat)
    R = Rotation.from_rotvec(rot).as_matrix()
    c = j0[0]
    np.testing.assert_allclose(v1, (v0 - c) @ R.T + c, atol=1e-12)
    np.testing.assert_allclose(j1, (j0 - c) @ R.T + c, atol=1e-12)


def test_hands_mean_is_added(model):
    rng = np.random.default_rng(2)
    pose = rng.normal(0, 0.3, 48)
    a = mano_forward(model, pose, np.zeros(10), flat_hand_mean=False)
    b = mano_forward(model, np.concatenate([pose[:3], pose[3:] + model["hands_mean"]]), np.zeros(10),
                     flat_hand_mean=True)
    np.testing.assert_allclose(a[0], b[0], atol=1e-14)
    np.testing.assert_allclose(a[1], b[1], atol=1e-14)


def test_lbs_one_hot_is_rigid_per_part(tmp_path):
    m = load_mano(_write_pkl(tmp_path / "onehot.pkl", _model_arrays(seed=3, one_hot=True, blend=False)))
    rng = np.random.default_rng(4)
    pose = rng.normal(0, 0.5, 48)
    verts, joints = mano_forward(m, pose, np.zeros(10), flat_hand_mean=True)
    rest_v, rest_j = m["v_template"], m["J_regressor"] @ m["v_template"]
    parents = np.array(PARENTS)
    # bone lengths of the skeleton are preserved ...
    bone = lambda j: np.linalg.norm(j[1:] - j[parents[1:]], axis=1)  # noqa: E731
    np.testing.assert_allclose(bone(joints), bone(rest_j), atol=1e-12)
    # ... the joints regressed from the posed mesh are the skeleton's joints ...
    np.testing.assert_allclose(m["J_regressor"] @ verts, joints, atol=1e-12)
    # ... and each vertex keeps its distance to its joint, turning with the joint's global rotation
    part = np.arange(V) % K
    np.testing.assert_allclose(np.linalg.norm(verts - joints[part], axis=1),
                               np.linalg.norm(rest_v - rest_j[part], axis=1), atol=1e-12)
    Rg = [Rotation.from_rotvec(pose[0:3]).as_matrix()]
    for i in range(1, K):
        Rg.append(Rg[parents[i]] @ Rotation.from_rotvec(pose[3 * i:3 * i + 3]).as_matrix())
    for i in range(K):
        sel = part == i
        np.testing.assert_allclose(verts[sel] - joints[i], (rest_v[sel] - rest_j[i]) @ Rg[i].T, atol=1e-12)


def test_pose_blend_uses_R_minus_I(model):
    # one finger joint rotated, global rotation zero, weights irrelevant at the pose-blend step: compare the
    # posed mesh with one whose posedirs were dropped; the difference before skinning is posedirs @ (R - I)
    rng = np.random.default_rng(5)
    pose = np.zeros(48)
    pose[3 * 5:3 * 5 + 3] = rng.normal(0, 0.5, 3)
    no_blend = dict(model, posedirs=np.zeros_like(model["posedirs"]))
    v_b, _ = mano_forward(model, pose, np.zeros(10), flat_hand_mean=True)
    v_n, _ = mano_forward(no_blend, pose, np.zeros(10), flat_hand_mean=True)
    feat = np.zeros(135)
    feat[9 * 4:9 * 5] = (Rotation.from_rotvec(pose[15:18]).as_matrix() - np.eye(3)).ravel()
    blend = model["posedirs"] @ feat
    # vertices weighted only to joints not below joint 5 (wrist, index, little, ring, thumb) are not moved
    w = model["weights"]
    still = w[:, [5, 6]].sum(1) == 0
    assert still.sum() > 600
    np.testing.assert_allclose(v_b[still] - v_n[still], blend[still], atol=1e-14)


def test_batch_matches_single(model):
    rng = np.random.default_rng(6)
    poses, betas = rng.normal(0, 0.4, (3, 48)), rng.normal(0, 1, (3, 10))
    vb, jb = mano_forward(model, poses, betas)
    for i in range(3):
        v, j = mano_forward(model, poses[i], betas[i])
        np.testing.assert_allclose(vb[i], v, atol=1e-14)
        np.testing.assert_allclose(jb[i], j, atol=1e-14)
    with pytest.raises(ValueError):
        mano_forward(model, np.zeros(45), np.zeros(10))
    with pytest.raises(ValueError):
        mano_forward(model, np.zeros(48), np.zeros(11))


# --- FreiHAND keypoints and placement -------------------------------------------------------------

def test_freihand_joint_order():
    j16 = np.arange(16 * 3, dtype=float).reshape(16, 3)
    verts = np.zeros((V, 3))
    for k, t in enumerate(FREIHAND_TIPS):
        verts[t] = -(k + 1)
    out = freihand_joints(verts, j16)
    assert out.shape == (21, 3)
    np.testing.assert_array_equal(out[0], j16[0])
    fingers = {"thumb": (1, [13, 14, 15]), "index": (5, [1, 2, 3]), "middle": (9, [4, 5, 6]),
               "ring": (13, [10, 11, 12]), "little": (17, [7, 8, 9])}
    for k, (name, (first, mano)) in enumerate(fingers.items()):
        np.testing.assert_array_equal(out[first:first + 3], j16[mano], err_msg=name)
        np.testing.assert_array_equal(out[first + 3], np.full(3, -(k + 1.0)), err_msg=name)
    assert FREIHAND_TIPS == (744, 320, 443, 555, 672) and AUTHORS_TIPS[1:3] == (333, 444)
    verts[333], verts[444] = 7.0, 8.0
    out2 = freihand_joints(np.stack([verts, verts]), np.stack([j16, j16]), tips=AUTHORS_TIPS)
    assert out2.shape == (2, 21, 3)
    np.testing.assert_array_equal(out2[:, 8], 7.0)
    np.testing.assert_array_equal(out2[:, 12], 8.0)


def _freihand_params(rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    params = np.concatenate([rng.normal(0, 0.3, (n, 48)), rng.normal(0, 1, (n, 10)),
                             rng.uniform(80, 150, (n, 2)), rng.uniform(1500, 2500, (n, 1))], axis=1)
    Ks = np.zeros((n, 3, 3))
    Ks[:, 0, 0], Ks[:, 1, 1] = rng.uniform(450, 550, n), rng.uniform(450, 550, n)
    Ks[:, 0, 2], Ks[:, 1, 2], Ks[:, 2, 2] = 112.0, 112.0, 1.0
    return params, Ks


def test_freihand_root_placement(model):
    rng = np.random.default_rng(7)
    params, Ks = _freihand_params(rng, 2)
    p, K = params[0], Ks[0]
    verts, joints = freihand_mesh(model, p, K)
    uv_root, scale = p[58:60], p[60]
    focal = 0.5 * (K[0, 0] + K[1, 1])
    root = joints[FREIHAND_ROOT]
    # FreiHAND (utils/model.py): xyz_root = [u - px, v - py, focal] / scale, focal = (fx + fy) / 2
    assert root[2] == pytest.approx(focal / scale, rel=1e-12)  # depth = focal / scale
    np.testing.assert_allclose(root[:2] * scale, uv_root - K[:2, 2], atol=1e-9)
    Kf = K.copy()
    Kf[0, 0] = Kf[1, 1] = focal  # projecting with the mean focal length gives uv_root exactly
    uvw = Kf @ root
    np.testing.assert_allclose(uvw[:2] / uvw[2], uv_root, atol=1e-9)
    # with fx == fy the real K projects the root onto uv_root
    K2 = K.copy()
    K2[1, 1] = K2[0, 0]
    _, j2 = freihand_mesh(model, p, K2)
    uvw = K2 @ j2[FREIHAND_ROOT]
    np.testing.assert_allclose(uvw[:2] / uvw[2], uv_root, atol=1e-9)
    # the mesh is MANO (hands_mean added) moved by a pure translation
    v_m, j_m = mano_forward(model, p[:48], p[48:58], flat_hand_mean=False)
    t = verts - v_m
    np.testing.assert_allclose(t, np.broadcast_to(t[0], t.shape), atol=1e-12)
    np.testing.assert_allclose(joints, freihand_joints(v_m, j_m) + t[0], atol=1e-12)
    np.testing.assert_allclose(freihand_mesh(model, p[None], K)[0], verts)  # (1, 61) as in the JSON
    with pytest.raises(ValueError):
        freihand_mesh(model, np.concatenate([p[:60], [0.0]]), K)


# --- template -------------------------------------------------------------------------------------

def test_mano_template(pkl, model, tmp_path):
    t = mano_template(pkl)
    assert t["verts"].shape == (V, 3) and t["verts"].dtype == np.float32
    assert t["joints"].shape == (21, 3) and t["joints"].dtype == np.float32
    assert t["faces"].shape == (F, 3) and t["faces"].dtype == np.int64
    v, j = mano_forward(model, np.zeros(48), np.zeros(10), flat_hand_mean=False)
    np.testing.assert_allclose(t["verts"], v, atol=1e-7)
    np.testing.assert_allclose(t["joints"], freihand_joints(v, j), atol=1e-7)
    out = tmp_path / "synth" / "template.npz"
    out.parent.mkdir()
    summary = write_template(Data(train="synth", template="mano", mano_path=str(pkl)), Paths(tmp_path), out)
    assert summary == {"kind": "mano", "vertices": V, "faces": F}
    with np.load(out) as z:
        assert z["verts"].dtype == np.float32 and z["faces"].dtype == np.int32 and z["joints"].dtype == np.float32
    verts, joints, faces = read_template(out).values()
    np.testing.assert_array_equal(verts, t["verts"])
    np.testing.assert_array_equal(joints, t["joints"])
    np.testing.assert_array_equal(faces, t["faces"])
    assert [p.name for p in out.parent.iterdir()] == ["template.npz"]  # no temporary left behind


# --- building FreiHAND's meshes -------------------------------------------------------------------

def _freihand_folder(root: Path, model: dict, n: int, refs: bool = True) -> tuple[np.ndarray, np.ndarray]:
    params, Ks = _freihand_params(np.random.default_rng(8), n)
    root.mkdir(parents=True, exist_ok=True)
    (root / "training_mano.json").write_text(json.dumps([[list(p)] for p in params]))
    (root / "training_K.json").write_text(json.dumps(Ks.tolist()))
    verts, joints = zip(*(freihand_mesh(model, p, K) for p, K in zip(params, Ks)))
    if refs:
        (root / "training_verts.json").write_text(json.dumps(np.array(verts).tolist()))
        (root / "training_xyz.json").write_text(json.dumps(np.array(joints).tolist(), indent=1))
    return np.array(verts), np.array(joints)


def test_cli_mano_verts(tmp_path, pkl, model, capsys):
    root = tmp_path / "FreiHAND"
    verts, _ = _freihand_folder(root, model, 5)
    out = tmp_path / "data" / "freihand_train_verts.npy"
    rc = main(["mano-verts", "--freihand", str(root), "--mano", str(pkl), "--out", str(out)])
    assert rc == 0
    stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert stats["n"] == 5 and stats["n_available"] == 5
    assert stats["verts_max_abs_diff_m"] < 1e-12 and stats["joints_max_abs_diff_m"] < 1e-12
    got = np.load(out, mmap_mode="r")
    assert got.shape == (5, V, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, verts, atol=1e-6)

    rc = main(["mano-verts", "--freihand", str(root), "--mano", str(pkl), "--out", str(out), "--limit", "2"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "training_verts.json: max abs difference" in text
    assert np.load(out).shape == (2, V, 3)


def test_build_without_refs_and_errors(tmp_path, pkl, model):
    root = tmp_path / "fh"
    _freihand_folder(root, model, 3, refs=False)
    stats = build_freihand_verts(root, pkl, tmp_path / "v.npy", progress=False, chunk=2)
    assert stats["n"] == 3 and stats["verts_max_abs_diff_m"] is None and stats["joints_max_abs_diff_m"] is None
    # a reference that disagrees is reported, one that is too short is an error
    (root / "training_xyz.json").write_text(json.dumps(np.zeros((3, 21, 3)).tolist()))
    stats = build_freihand_verts(root, pkl, tmp_path / "v.npy", progress=False)
    assert stats["joints_max_abs_diff_m"] > 0.1
    (root / "training_xyz.json").write_text(json.dumps(np.zeros((2, 21, 3)).tolist()))
    with pytest.raises(DataError, match=r"training_xyz\.json.*fewer"):
        build_freihand_verts(root, pkl, tmp_path / "v.npy", progress=False)
    (root / "training_xyz.json").unlink()
    (root / "training_K.json").write_text(json.dumps(np.zeros((2, 3, 3)).tolist()))
    with pytest.raises(DataError, match=r"training_K\.json.*2 entries"):
        build_freihand_verts(root, pkl, tmp_path / "v.npy", progress=False)
    (root / "training_K.json").unlink()
    with pytest.raises(DataError, match=r"training_K\.json.*missing"):
        build_freihand_verts(root, pkl, tmp_path / "v.npy", progress=False)
    assert main(["mano-verts", "--freihand", str(root), "--mano", str(pkl), "--out", str(tmp_path / "x.npy")]) == 1


def test_keys_constant():
    assert set(MANO_KEYS) == {"v_template", "f", "J_regressor", "weights", "kintree_table", "shapedirs",
                              "posedirs", "hands_components", "hands_mean"}
