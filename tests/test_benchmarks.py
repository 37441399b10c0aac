"""Tests of the FreiHAND v2, RHD and STB readers on tiny folders in the original release layouts
(written by tests/fixtures_benchmarks.py; the RHD one from three real RHD samples), and of their
scoring conventions."""

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image
from scipy.spatial.transform import Rotation


from cliphand.data.readers import rhd

from cliphand.data.readers import stb
from cliphand.data.readers.freihand import load_freihand, load_json_array, write_prediction_json
from cliphand.data.readers.rhd import RHD_TO_FREIHAND, load_rhd
from cliphand.data.readers.sources import HandSamples, ImageFiles
from cliphand.data.readers.stb import STB_TO_FREIHAND, load_stb
from cliphand.errors import DataError
from cliphand.hand.geometry import project
from cliphand.evaluate import metrics as M
from cliphand.evaluate.metrics import bihand_align
from helpers import Exploit
from fixtures_benchmarks import hand_joints, write_freihand_fixture, write_rhd_fixture, write_stb_fixture

N_TRAIN, N_EVAL = 6, 4


@pytest.fixture(scope="module")
def fh_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("freihand")
    gt = write_freihand_fixture(root, n_train=N_TRAIN, n_eval=N_EVAL)
    return root, gt


@pytest.fixture(scope="module")
def rhd_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("rhd")
    return root, write_rhd_fixture(root)


@pytest.fixture(scope="module")
def stb_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("stb")
    return root, write_stb_fixture(root, frames=2)


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------------------------------ FreiHAND
def test_freihand_loads_fixture(fh_dir):
    root, gt = fh_dir
    tr, ev = gt["training"], gt["evaluation"]
    train = load_freihand(root, "train", with_mano=True)
    val = load_freihand(root, "val")
    test = load_freihand(root, "evaluation")
    assert isinstance(train, HandSamples) and isinstance(train.images, ImageFiles)
    assert (len(train), len(val), len(test)) == (4 * (N_TRAIN - 1), 4, N_EVAL)
    assert train.name == "freihand_train" and test.protocol == "freihand"
    # image index v * n + i shares the labels of i
    lab = train.extra["label_ids"]
    np.testing.assert_array_equal(train.ids, train.extra["versions"] * N_TRAIN + lab)
    np.testing.assert_allclose(train.joints, tr["xyz"][lab])
    np.testing.assert_allclose(train.K, tr["K"][lab])
    np.testing.assert_allclose(train.verts, tr["verts"][lab])
    np.testing.assert_allclose(train.scale, tr["scale"][lab])
    np.testing.assert_allclose(train.extra["mano"], tr["mano"][lab, 0])
    assert train.verts.shape == (len(train), 778, 3) and train.joints.shape == (len(train), 21, 3)
    np.testing.assert_allclose(test.joints, ev["xyz"])
    np.testing.assert_array_equal(test.ids, np.arange(N_EVAL))
    assert [p.name for p in test.images.paths] == [f"{i:08d}.jpg" for i in range(N_EVAL)]
    # metres, whole-image crops, right hands
    bone = np.linalg.norm(train.joints[:, 9] - train.joints[:, 0], axis=-1)
    assert np.all((bone > 0.05) & (bone < 0.15))
    for s in (train, val, test):
        np.testing.assert_array_equal(s.boxes, np.tile([0.0, 0.0, 224.0], (len(s), 1)))
        assert not s.mirrored.any()
    assert train.images[7].shape == (224, 224, 3) and train.images[7].dtype == np.uint8
    assert train.images.paths[7].name == f"{train.ids[7]:08d}.jpg"
    assert load_freihand(root, "evaluation", with_verts=False).verts is None


def test_freihand_val_split_disjoint_with_all_versions(fh_dir):
    root, _ = fh_dir
    train, val = load_freihand(root, "train"), load_freihand(root, "val")
    tr_lab, va_lab = set(train.extra["label_ids"]), set(val.extra["label_ids"])
    assert tr_lab.isdisjoint(va_lab) and tr_lab | va_lab == set(range(N_TRAIN))
    assert va_lab == {N_TRAIN - 1}  # the last label (at least one)
    for s in (train, val):
        for i in set(s.extra["label_ids"]):
            assert sorted(s.extra["versions"][s.extra["label_ids"] == i]) == [0, 1, 2, 3]
    assert set(train.ids).isdisjoint(val.ids)
    val2 = load_freihand(root, "val", val_ids=[0, 2], versions=(1, 3))
    train2 = load_freihand(root, "train", val_ids=[0, 2], versions=(1, 3))
    assert set(val2.extra["label_ids"]) == {0, 2} and set(train2.extra["label_ids"]) == {1, 3, 4, 5}
    assert set(val2.extra["versions"]) == {1, 3} and len(val2) == 4
    assert len(load_freihand(root, "val", val_fraction=0.5)) == 4 * 3
    with pytest.raises(ValueError):
        load_freihand(root, "val", val_ids=[0, 0])
    with pytest.raises(ValueError):
        load_freihand(root, "train", versions=(4,))
    with pytest.raises(ValueError):
        load_freihand(root, "test")


def _rewrite(path: Path, fn):
    path.write_text(json.dumps(fn(np.asarray(json.loads(path.read_text()))).tolist()))


@pytest.mark.parametrize("case, name", [
    ("missing_file", "training_verts.json"),
    ("wrong_shape", "training_K.json"),
    ("count", "training_scale.json"),
    ("millimetres", "training_xyz.json"),
    ("verts_mm", "training_verts.json"),
    ("not_json", "training_xyz.json"),
    ("ragged", "training_xyz.json"),
    ("missing_image", "00000013.jpg"),
    ("extra_image", "rgb"),
    ("bad_K", "training_K.json"),
])
def test_freihand_bad_input_names_the_file(fh_dir, tmp_path, case, name):
    root = _copy(fh_dir[0], tmp_path)
    if case == "missing_file":
        (root / "training_verts.json").unlink()
    elif case == "wrong_shape":
        _rewrite(root / "training_K.json", lambda a: a[:, :, :2])
    elif case == "count":
        _rewrite(root / "training_scale.json", lambda a: a[:-1])
    elif case == "millimetres":
        _rewrite(root / "training_xyz.json", lambda a: a * 1000.0)
    elif case == "verts_mm":
        _rewrite(root / "training_verts.json", lambda a: a * 1000.0)
    elif case == "not_json":
        (root / "training_xyz.json").write_text('{"xyz": [1, 2')
    elif case == "ragged":
        xyz = json.loads((root / "training_xyz.json").read_text())
        xyz[2] = xyz[2][:20]
        (root / "training_xyz.json").write_text(json.dumps(xyz))
    elif case == "missing_image":
        (root / "training" / "rgb" / "00000013.jpg").rename(root / "training" / "rgb" / "x.jpg")
    elif case == "extra_image":
        shutil.copy(root / "training" / "rgb" / "00000000.jpg", root / "training" / "rgb" / "00000099.jpg")
    elif case == "bad_K":
        _rewrite(root / "training_K.json", lambda a: a * np.array([1.0, 1.0, 10.0]))  # principal point x10
    with pytest.raises(DataError, match=name):
        load_freihand(root, "train")


def test_freihand_missing_folder_and_undecodable_image(fh_dir, tmp_path):
    with pytest.raises(DataError, match="missing"):
        load_freihand(tmp_path / "nowhere", "train")
    root = _copy(fh_dir[0], tmp_path)
    shutil.rmtree(root / "evaluation" / "rgb")
    with pytest.raises(DataError, match="rgb"):
        load_freihand(root, "evaluation")
    (root / "training" / "rgb" / "00000000.jpg").write_bytes(b"not a jpeg")
    train = load_freihand(root, "train")  # images are decoded lazily
    with pytest.raises(DataError, match="00000000.jpg"):
        train.images[0]


def test_load_json_array_matches_json(tmp_path):
    rng = np.random.default_rng(0)
    for inner, indent in (((21, 3), None), ((3, 3), 2), ((), None), ((1, 61), 1)):
        arr = rng.normal(size=(5,) + inner) * 10.0 ** rng.integers(-6, 3, size=(5,) + inner)
        path = tmp_path / "a.json"
        path.write_text(json.dumps(arr.tolist(), indent=indent))
        np.testing.assert_array_equal(load_json_array(path, inner), np.asarray(json.loads(path.read_text())))
    path.write_text(json.dumps(rng.normal(size=(4, 21, 3)).tolist()))
    with pytest.raises(DataError, match=r"a\.json.*shape \(4, 21, 3\), expected \(n, 778, 3\)"):
        load_json_array(path, (778, 3))
    path.write_text("[]")
    with pytest.raises(DataError, match="a.json"):
        load_json_array(path, (21, 3))
    path.write_text("[[1.0, NaN]]")
    with pytest.raises(DataError, match="non-finite"):
        load_json_array(path, (2,))


def test_prediction_json_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    xyz, verts = rng.normal(scale=0.05, size=(3, 21, 3)), rng.normal(scale=0.05, size=(3, 778, 3))
    path = tmp_path / "out" / "pred.json"
    write_prediction_json(path, list(xyz), list(verts))
    assert os.listdir(path.parent) == ["pred.json"]  # no temporary file left behind
    obj = json.loads(path.read_text())  # the official scorer's format: [xyz_list, verts_list]
    assert len(obj) == 2 and len(obj[0]) == 3 and np.shape(obj[0][0]) == (21, 3) and np.shape(obj[1][2]) == (778, 3)
    np.testing.assert_allclose(np.asarray(obj[0]), xyz, atol=1e-7)
    np.testing.assert_allclose(np.asarray(obj[1]), verts, atol=1e-7)
    with pytest.raises(ValueError, match="778"):
        write_prediction_json(path, xyz, verts[:, :700])
    with pytest.raises(ValueError, match="21, 3"):
        write_prediction_json(path, xyz[:, :20], verts)
    with pytest.raises(ValueError):
        write_prediction_json(path, xyz[:2], verts)


def _fscore_of_point(point, gt_verts, th):
    d = np.linalg.norm(gt_verts - point, axis=-1)
    recall = float(d.min() < th)  # every predicted vertex is the same point
    precision = float(np.mean(d < th))
    return 2 * recall * precision / (recall + precision) if recall + precision > 0 else 0.0


def test_freihand_evaluate_zero_predictor_analytic(fh_dir):
    root, _ = fh_dir
    test = load_freihand(root, "evaluation")
    zj, zv = np.zeros_like(test.joints), np.zeros_like(test.verts)
    res = M.evaluate(zj, test.joints, zv, test.verts)
    # a constant prediction aligns onto the GT centroid
    pa_j = np.linalg.norm(test.joints - test.joints.mean(1, keepdims=True), axis=-1).mean() * 1000
    pa_v = np.linalg.norm(test.verts - test.verts.mean(1, keepdims=True), axis=-1).mean() * 1000
    assert res["pa_mpjpe_mm"] == pytest.approx(pa_j, rel=1e-9)
    assert res["pa_mpvpe_mm"] == pytest.approx(pa_v, rel=1e-9)
    for key, th in (("f5", 0.005), ("f15", 0.015)):
        want = np.mean([_fscore_of_point(v.mean(0), v, th) for v in test.verts])
        assert res[key] == pytest.approx(want, abs=1e-12) and res[key] < 0.2
    perfect = M.evaluate(test.joints, test.joints, test.verts, test.verts)
    assert perfect["pa_mpjpe_mm"] < 1e-3 and perfect["f5"] == 1.0
    assert perfect["auc_0_50"] > 0.99  # distances ~1e-9 m miss only the threshold t = 0
    with pytest.raises(ValueError):
        M.evaluate(zj[:2], test.joints, zv, test.verts)


def test_freihand_zero_predictor_official_figures():
    """NOTES §4: FreiHAND's README figures for the zero predictor on the evaluation set (v2)."""
    root = os.environ.get("CLIPHAND_FREIHAND")
    if not root or not (Path(root) / "evaluation_xyz.json").is_file():
        pytest.skip("set CLIPHAND_FREIHAND to a FreiHAND v2 folder to run")
    test = load_freihand(root, "evaluation")
    assert len(test) == 3960
    res = M.evaluate(np.zeros_like(test.joints), test.joints, np.zeros_like(test.verts), test.verts)
    assert round(res["pa_mpjpe_mm"] / 10, 2) == 4.73
    assert round(res["pa_mpvpe_mm"] / 10, 2) == 5.07
    assert round(res["f5"], 3) == 0.001
    assert round(res["f15"], 3) == 0.031


# ----------------------------------------------------------------------------------------------- RHD
def test_rhd_loads_real_samples(rhd_dir):
    root, samples = rhd_dir
    ev = load_rhd(root, "evaluation")
    tr = load_rhd(root, "train")
    assert ev.name == "rhd_evaluation" and tr.name == "rhd_training" and len(ev) == len(tr) == 3
    assert ev.protocol == "bihand" and ev.boxes is None
    np.testing.assert_array_equal(ev.ids, [111, 1111, 11111])
    np.testing.assert_array_equal(ev.mirrored, [s["hand_type"] == "left" for s in samples])
    np.testing.assert_array_equal(ev.extra["side"], [s["hand_type"] for s in samples])
    assert ev.images[0].shape == (320, 320, 3)
    for i, s in enumerate(samples):
        want = s["joints_rhd"][RHD_TO_FREIHAND] * (np.array([-1.0, 1, 1]) if s["hand_type"] == "left" else 1.0)
        np.testing.assert_allclose(ev.joints[i], want, atol=1e-6)  # metres (float32 pickle)
        # projection of the (mirrored) joints = the annotated keypoints (u -> 320 - u when mirrored)
        uv = s["uv_vis"][RHD_TO_FREIHAND, :2].copy()
        if s["hand_type"] == "left":
            uv[:, 0] = 320.0 - uv[:, 0]
        assert np.abs(project(ev.joints[i], ev.K[i]) - uv).max() < 0.1
        np.testing.assert_allclose(ev.extra["uv"][i], uv, atol=1e-4)
        assert ev.extra["visible"][i].all()


def test_rhd_joint_order_is_freihand(rhd_dir):
    root, samples = rhd_dir
    ev = load_rhd(root, "evaluation")
    np.testing.assert_array_equal(RHD_TO_FREIHAND[RHD_TO_FREIHAND], np.arange(21))
    for i, s in enumerate(samples):
        j = ev.joints[i]
        # RHD keypoint 1 is the thumb tip, 4 the thumb's base; RHD 12 is the middle MCP
        assert np.allclose(np.abs(j[4]), np.abs(s["joints_rhd"][1]), atol=1e-6)
        assert np.allclose(np.abs(j[9]), np.abs(s["joints_rhd"][12]), atol=1e-6)
        d = np.linalg.norm(j - j[0], axis=-1)
        mcps, tips = np.arange(1, 21, 4), np.arange(4, 21, 4)
        assert d[mcps].mean() < d[tips].mean()  # (one real finger is curled: its tip is near the palm)
        for f in range(5):
            mcp, tip = mcps[f], tips[f]
            assert d[mcp] < d[mcp + 1], f"finger {f}: MCP farther from the wrist than the PIP"
            bones = np.linalg.norm(np.diff(j[[0, mcp, mcp + 1, mcp + 2, tip]], axis=0), axis=-1)
            assert np.all((bones > 0.01) & (bones < 0.1))
        assert 0.07 < d[9] < 0.12  # wrist -> middle MCP, metres


def test_rhd_mirrored_projection_matches_flipped_image(rhd_dir):
    root, samples = rhd_dir
    ev = load_rhd(root, "evaluation")
    for i, s in enumerate(samples):
        orig = np.asarray(Image.open(root / "evaluation" / "color" / f"{s['id']:05d}.png").convert("RGB"))
        loaded = ev.images[i]
        uv_orig = project(s["joints_rhd"][RHD_TO_FREIHAND], s["K"])
        uv_new = project(ev.joints[i], ev.K[i])
        if ev.mirrored[i]:
            np.testing.assert_allclose(uv_new[:, 0], 320.0 - uv_orig[:, 0], atol=1e-9)
        same = [np.array_equal(orig[int(vo), int(uo)], loaded[int(vn), int(un)])
                for (uo, vo), (un, vn) in zip(uv_orig, uv_new)]
        assert all(same)
        if ev.mirrored[i]:
            np.testing.assert_array_equal(loaded, orig[:, ::-1])
            assert ev.K[i, 0, 2] == pytest.approx(320.0 - s["K"][0, 2])


def _edit_pickle(path: Path, fn):
    with open(path, "rb") as f:
        anno = pickle.load(f)
    fn(anno)
    with open(path, "wb") as f:
        pickle.dump(anno, f, protocol=2)


def test_rhd_hand_choice(rhd_dir, tmp_path):
    root = _copy(rhd_dir[0], tmp_path)
    pkl = root / "evaluation" / "anno_evaluation.pickle"

    def flip_visibility(anno):
        anno[11111]["uv_vis"][:21, 2] = 1.0  # the (shifted) left hand: all visible
        anno[11111]["uv_vis"][21:, 2] = 0.0
        anno[11111]["uv_vis"][21:26, 2] = 1.0  # right hand: 5 visible
        anno[111]["uv_vis"][21:, 2] = 1.0  # left hand 21 visible, right 21: tie -> right
    _edit_pickle(pkl, flip_visibility)
    ev = load_rhd(root, "evaluation")
    np.testing.assert_array_equal(ev.extra["side"], ["right", "left", "left"])
    np.testing.assert_array_equal(ev.mirrored, [False, True, True])
    # BiHand's rule: more mask pixels (left labels 2-17, right 18-33)
    mask_dir = root / "evaluation" / "mask"
    mask_dir.mkdir()
    for sid, (n_left, n_right) in {111: (50, 10), 1111: (5, 40), 11111: (20, 20)}.items():
        m = np.zeros((320, 320), np.uint8)
        m.reshape(-1)[:n_left] = 5
        m.reshape(-1)[1000:1000 + n_right] = 30
        Image.fromarray(m).save(mask_dir / f"{sid:05d}.png")
    ev = load_rhd(root, "evaluation", side_rule="mask")
    np.testing.assert_array_equal(ev.extra["side"], ["left", "right", "right"])
    with pytest.raises(ValueError):
        load_rhd(root, "evaluation", side_rule="area")


@pytest.mark.parametrize("case, name", [
    ("millimetres", "anno_evaluation.pickle"),
    ("missing_pickle", "anno_evaluation.pickle"),
    ("wrong_shape", "anno_evaluation.pickle"),
    ("not_pickle", "anno_evaluation.pickle"),
    ("wrong_K", "anno_evaluation.pickle"),
    ("missing_image", "01111.png"),
    ("extra_image", "color"),
    ("missing_split", "evaluation"),
])
def test_rhd_bad_input_names_the_file(rhd_dir, tmp_path, case, name):
    root = _copy(rhd_dir[0], tmp_path)
    pkl = root / "evaluation" / "anno_evaluation.pickle"
    if case == "millimetres":
        def mm(anno):
            for v in anno.values():
                v["xyz"] = v["xyz"] * 1000.0
        _edit_pickle(pkl, mm)
    elif case == "missing_pickle":
        pkl.unlink()
    elif case == "wrong_shape":
        _edit_pickle(pkl, lambda anno: anno[1111].update(xyz=anno[1111]["xyz"][:21]))
    elif case == "not_pickle":
        pkl.write_bytes(b"garbage")
    elif case == "wrong_K":
        _edit_pickle(pkl, lambda anno: [v.update(K=v["K"] * np.array([2.0, 2.0, 1.0])[:, None]) for v in anno.values()])
    elif case == "missing_image":
        (root / "evaluation" / "color" / "01111.png").unlink()
    elif case == "extra_image":
        shutil.copy(root / "evaluation" / "color" / "01111.png", root / "evaluation" / "color" / "00005.png")
    elif case == "missing_split":
        shutil.rmtree(root / "evaluation")
    with pytest.raises(DataError, match=name):
        load_rhd(root, "evaluation")


def test_rhd_pickle_from_python2_protocol(rhd_dir, tmp_path):
    """RHD's pickles come from Python 2: str keys of the sample dicts load as str with latin1."""
    root = _copy(rhd_dir[0], tmp_path)
    pkl = root / "training" / "anno_training.pickle"
    anno = rhd.read_annotations(pkl)
    assert anno["xyz"].shape == (3, 42, 3) and anno["K"].shape == (3, 3, 3)
    np.testing.assert_array_equal(anno["ids"], [111, 1111, 11111])
    with open(pkl, "rb") as f:
        raw = pickle.load(f)
    with open(pkl, "wb") as f:  # protocol 0 is what Python 2's default dump wrote
        pickle.dump({k: {kk: vv.tolist() for kk, vv in v.items()} for k, v in raw.items()}, f, protocol=0)
    np.testing.assert_allclose(rhd.read_annotations(pkl)["xyz"], anno["xyz"])


def test_rhd_pickle_that_would_run_code_is_refused(tmp_path):
    pkl, target = tmp_path / "anno_training.pickle", tmp_path / "pwned.txt"
    with open(pkl, "wb") as f:
        pickle.dump({0: {"xyz": Exploit(target)}}, f, protocol=2)
    with pytest.raises(DataError, match="anno_training.pickle.*refusing to load class .*open"):
        rhd.read_annotations(pkl)
    assert not target.exists()


# ----------------------------------------------------------------------------------------------- STB
def test_stb_loads_fixture(stb_dir):
    root, gt = stb_dir
    test = load_stb(root, "test")
    train = load_stb(root, "train")
    assert (len(test), len(train)) == (2 * 2, 10 * 2)
    assert test.name == "stb_test" and test.protocol == "bihand" and test.boxes is None
    assert test.mirrored.all() and train.mirrored.all()
    assert set(train.extra["sequence"]) == set(stb.SPLITS["train"]) and not any(
        s.startswith("B1") for s in train.extra["sequence"])
    np.testing.assert_array_equal(test.ids, [0, 1, 10000, 10001])
    np.testing.assert_array_equal(test.extra["frame"], [0, 1, 0, 1])
    want = np.concatenate([gt["B1Counting"], gt["B1Random"]]) * np.array([-1.0, 1, 1])  # left -> right
    np.testing.assert_allclose(test.joints, want, atol=1e-9)
    np.testing.assert_allclose(test.K[:, 0, 2], 640.0 - 314.78337)
    np.testing.assert_allclose(test.K[:, [0, 1, 1], [0, 1, 2]], [[607.92271, 607.88192, 236.42484]] * 4)
    assert test.images[0].shape == (480, 640, 3)
    custom = load_stb(root, sequences=["B3Random"])
    assert custom.name == "stb_custom" and len(custom) == 2 and custom.ids[0] == 5 * 10000
    with pytest.raises(ValueError):
        load_stb(root, sequences=["B7Random"])


def test_stb_mirroring_keeps_projection_on_the_flipped_image(stb_dir):
    root, _ = stb_dir
    test = load_stb(root, "test")
    for i in range(len(test)):
        img = test.images[i]
        ys, xs = np.nonzero(img.sum(-1) == 765)  # the white dot drawn at the wrist (original image)
        u, v = project(test.joints[i, :1], test.K[i])[0]
        assert abs(xs.mean() + 0.5 - u) < 1.0 and abs(ys.mean() + 0.5 - v) < 1.0


def test_stb_conventions():
    R = Rotation.from_rotvec(stb.SK_ROT_VEC).as_matrix()
    x_c = np.array([[10.0, -20.0, 500.0], [0.0, 0.0, 300.0]])
    np.testing.assert_allclose(stb.depth_to_color(x_c @ R.T + np.asarray(stb.SK_TRANS_MM)), x_c, atol=1e-9)
    np.testing.assert_array_equal(STB_TO_FREIHAND[STB_TO_FREIHAND], np.arange(21))
    np.testing.assert_array_equal(STB_TO_FREIHAND[1:5], [17, 18, 19, 20])  # thumb is STB's last finger
    np.testing.assert_array_equal(STB_TO_FREIHAND[17:21], [1, 2, 3, 4])  # little is STB's first
    j = np.zeros((1, 21, 3))
    j[0, 0], j[0, 9] = [0.0, 0.04, 0.5], [0.0, 0.0, 0.5]
    np.testing.assert_allclose(stb.palm_to_wrist(j)[0, 0], [0.0, 0.088, 0.5])


@pytest.mark.parametrize("case, name", [
    ("metres", "B1Counting_SK.mat"),
    ("missing_mat", "B1Random_SK.mat"),
    ("wrong_shape", "B1Counting_SK.mat"),
    ("no_variable", "B1Counting_SK.mat"),
    ("missing_image", "SK_color_1.png"),
    ("extra_image", "B1Random"),
])
def test_stb_bad_input_names_the_file(stb_dir, tmp_path, case, name):
    root = _copy(stb_dir[0], tmp_path)
    mat = root / "labels" / "B1Counting_SK.mat"
    para = scipy.io.loadmat(mat)["handPara"]
    if case == "metres":
        scipy.io.savemat(mat, {"handPara": para / 1000.0})
    elif case == "missing_mat":
        (root / "labels" / "B1Random_SK.mat").unlink()
    elif case == "wrong_shape":
        scipy.io.savemat(mat, {"handPara": para[:, :20]})
    elif case == "no_variable":
        scipy.io.savemat(mat, {"para": para})
    elif case == "missing_image":
        (root / "images" / "B1Counting" / "SK_color_1.png").unlink()
    elif case == "extra_image":
        shutil.copy(root / "images" / "B1Random" / "SK_color_0.png", root / "images" / "B1Random" / "SK_color_7.png")
    with pytest.raises(DataError, match=name):
        load_stb(root, "test")


# ------------------------------------------------------------------------------------ BiHand scoring
def test_bihand_evaluate_invariances():
    gt = hand_joints(8, seed=3)
    perfect = M.evaluate(gt, gt, with_curves=True)
    assert perfect["bihand_mpjpe_mm"] == pytest.approx(0.0, abs=1e-6)
    assert perfect["bihand_auc_20_50"] == pytest.approx(1.0)
    assert len(perfect["curves"]["bihand_pck_20_50"]) == 20
    for factor, shift in ((3.0, [0.1, -0.2, 1.0]), (0.25, [0.0, 0.0, -0.3])):
        res = M.evaluate(gt * factor + np.asarray(shift), gt)
        assert res["bihand_mpjpe_mm"] == pytest.approx(0.0, abs=1e-6)
        assert res["bihand_auc_20_50"] == pytest.approx(1.0)
    R = Rotation.from_euler("z", 0.5).as_matrix()
    rotated = (gt - gt[:, :1]) @ R.T + gt[:, :1]
    res = M.evaluate(rotated, gt)
    assert res["bihand_mpjpe_mm"] > 10.0 and res["bihand_auc_20_50"] < 1.0
    with pytest.raises(ValueError):
        M.evaluate(gt[:, :20], gt[:, :20])


def test_bihand_evaluate_on_real_rhd_samples(rhd_dir):
    root, _ = rhd_dir
    ev = load_rhd(root, "evaluation")
    noisy = ev.joints + np.random.default_rng(0).normal(scale=0.01, size=ev.joints.shape)
    res = M.evaluate(noisy, ev.joints)
    assert 5.0 < res["bihand_mpjpe_mm"] < 40.0 and 0.0 < res["bihand_auc_20_50"] <= 1.0
    d = np.linalg.norm(bihand_align(noisy, ev.joints) - ev.joints, axis=-1)
    assert res["bihand_mpjpe_mm"] == pytest.approx(d.mean() * 1000)
