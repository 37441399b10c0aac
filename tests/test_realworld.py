"""Tests of the real-world test set loader on ../shared/data/realworld_testset and on broken copies."""

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from cliphand.data.readers.realworld import crop_intrinsics, load_realworld, projection_inside_fraction
from cliphand.errors import DataError
from cliphand.hand.geometry import project
from helpers import realworld_copy


@pytest.fixture(scope="module")
def rw_dir() -> Path:
    path = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "realworld_testset"
    if not (path / "pose_gt.mat").is_file():
        pytest.skip(f"{path} is not available")
    return path


@pytest.fixture(scope="module")
def raw(rw_dir):
    return load_realworld(rw_dir, mirror=False)


@pytest.fixture(scope="module")
def mirrored(rw_dir):
    return load_realworld(rw_dir, mirror=True)


def test_loads_400_present_samples_in_metres(raw):
    assert raw["images"].shape == (400, 256, 256, 3) and raw["images"].dtype == np.uint8
    assert raw["joints"].shape == (400, 21, 3) and raw["joints"].dtype == np.float32
    assert raw["K"].shape == (400, 3, 3)
    assert len(np.unique(raw["ids"])) == 400 and raw["ids"].max() <= 582
    # metres: wrist -> middle MCP about 8 cm, hands 25-50 cm from the camera
    bone = np.linalg.norm(raw["joints"][:, 9] - raw["joints"][:, 0], axis=-1)
    assert 0.06 < np.median(bone) < 0.10
    assert 0.2 < raw["joints"][..., 2].mean() < 0.6
    # ids point at the right labels and files
    assert all(p == f"images/{i:05d}.jpg" for p, i in zip(raw["paths"], raw["ids"]))


def test_crop_intrinsics_follow_readme(rw_dir, raw):
    params = scipy.io.loadmat(rw_dir / "params.mat")
    i = int(raw["ids"][0])
    (fx, fy, u0, v0), (x, y, w) = params["cam_param"][i], params["bbox"][i][:3]
    r = 256 / w
    np.testing.assert_allclose(raw["K"][0], [[fx * r, 0, (u0 - x) * r], [0, fy * r, (v0 - y) * r], [0, 0, 1]], rtol=1e-6)
    K = crop_intrinsics(np.array([[1000.0, 1000.0, 640.0, 360.0]]), np.array([[100, 50, 512, 512]]))
    np.testing.assert_allclose(K[0], [[500, 0, 270], [0, 500, 155], [0, 0, 1]])


def test_projections_inside_crop(raw, mirrored):
    assert projection_inside_fraction(raw["joints"], raw["K"]) == 1.0
    assert projection_inside_fraction(mirrored["joints"], mirrored["K"]) == 1.0
    # a wrong principal point (the full frame's) puts the joints off the crop
    bad = raw["K"].copy()
    bad[:, 0, 2] += 300
    assert projection_inside_fraction(raw["joints"], bad) < 0.1


def test_mirroring_flips_image_x_and_principal_point(raw, mirrored):
    np.testing.assert_array_equal(mirrored["images"], raw["images"][:, :, ::-1])
    np.testing.assert_allclose(mirrored["joints"][..., 0], -raw["joints"][..., 0])
    np.testing.assert_allclose(mirrored["joints"][..., 1:], raw["joints"][..., 1:])
    np.testing.assert_allclose(mirrored["K"][:, 0, 2], 256 - raw["K"][:, 0, 2], atol=1e-3)
    uv_raw = project(raw["joints"].astype(np.float64), raw["K"].astype(np.float64))
    uv_mir = project(mirrored["joints"].astype(np.float64), mirrored["K"].astype(np.float64))
    np.testing.assert_allclose(uv_mir[..., 0], 256 - uv_raw[..., 0], atol=1e-3)
    np.testing.assert_allclose(uv_mir[..., 1], uv_raw[..., 1], atol=1e-3)
    # the flipped image and the flipped intrinsics agree pixel by pixel: the colour under each
    # projected joint is the same in both sets
    iu_raw, iv = np.floor(uv_raw).astype(int).transpose(2, 0, 1)
    iu_mir = np.floor(uv_mir[..., 0]).astype(int)
    b = np.arange(400)[:, None]
    np.testing.assert_array_equal(mirrored["images"][b, iv, iu_mir], raw["images"][b, iv, iu_raw])


def test_subset_copy_skips_missing_images(rw_dir, tmp_path):
    d = realworld_copy(rw_dir, tmp_path / "rw", n_images=3)
    out = load_realworld(d)
    assert len(out["ids"]) == 3 and out["images"].shape == (3, 256, 256, 3)


def test_corrupt_jpg_raises_dataerror(rw_dir, tmp_path):
    d = realworld_copy(rw_dir, tmp_path / "rw", n_images=3)
    victim = sorted((d / "images").glob("*.jpg"))[1]
    victim.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    with pytest.raises(DataError, match=victim.name):
        load_realworld(d)


def test_wrong_shape_mat_raises_dataerror(rw_dir, tmp_path):
    d = realworld_copy(rw_dir, tmp_path / "rw", n_images=2)
    pose = scipy.io.loadmat(d / "pose_gt.mat")["pose_gt"]
    scipy.io.savemat(d / "pose_gt.mat", {"pose_gt": pose[:, :20]})
    with pytest.raises(DataError, match=r"pose_gt\.mat.*shape"):
        load_realworld(d)


def test_wrong_units_and_missing_files_raise(rw_dir, tmp_path):
    d = realworld_copy(rw_dir, tmp_path / "rw", n_images=2)
    pose = scipy.io.loadmat(d / "pose_gt.mat")["pose_gt"]
    scipy.io.savemat(d / "pose_gt.mat", {"pose_gt": pose / 100})  # metres instead of cm
    with pytest.raises(DataError, match="centimetres"):
        load_realworld(d)
    (d / "pose_gt.mat").unlink()
    with pytest.raises(DataError, match=r"pose_gt\.mat.*missing"):
        load_realworld(d)
    d2 = realworld_copy(rw_dir, tmp_path / "rw2", n_images=2)
    (d2 / "params.mat").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"params\.mat"):
        load_realworld(d2)


def test_bad_intrinsics_fail_projection_check(rw_dir, tmp_path):
    d = realworld_copy(rw_dir, tmp_path / "rw", n_images=4)
    params = scipy.io.loadmat(d / "params.mat")
    params = {k: v for k, v in params.items() if not k.startswith("__")}
    params["cam_param"] = params["cam_param"] * np.array([1, 1, 0, 0])  # principal point at the corner
    scipy.io.savemat(d / "params.mat", params)
    with pytest.raises(DataError, match="inside"):
        load_realworld(d)
