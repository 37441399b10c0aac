"""Tests of cliphand.data.preprocess: crop intrinsics, uvd targets, file round trip and validation."""

import numpy as np
import pytest

from cliphand.data.preprocess import crop_to_input, load_prepared, prepare_split, write_prepared
from cliphand.errors import DataError
from cliphand.hand.geometry import project, uvd_to_xyz

S, DEPTH_RANGE = 64, 0.3


def synthetic(n=4, H=240, W=320, V=30, seed=0):
    """Random hand-sized joints/vertices ~45 cm in front of a 320x240 camera, plus noise images."""
    rng = np.random.default_rng(seed)
    K = np.tile(np.array([[300.0, 0, 160], [0, 310.0, 120], [0, 0, 1]]), (n, 1, 1))
    centre = np.stack([rng.uniform(-0.05, 0.05, n), rng.uniform(-0.04, 0.04, n), rng.uniform(0.4, 0.5, n)], -1)
    joints = centre[:, None] + rng.normal(scale=0.03, size=(n, 21, 3))
    verts = joints[:, rng.integers(0, 21, V)] + rng.normal(scale=0.01, size=(n, V, 3))
    images = rng.integers(0, 256, size=(n, H, W, 3), dtype=np.uint8)
    return images, K, joints, verts


def test_crop_intrinsics_consistent_with_affine():
    images, K, joints, _ = synthetic(n=1)
    for jitter in (None, (0.1, 0.2)):
        crop, K2 = crop_to_input(images[0], K[0], joints[0], S, pad=1.3, rng=np.random.default_rng(1), jitter=jitter)
        assert crop.shape == (S, S, 3) and crop.dtype == np.uint8
        uv = project(joints[0], K[0])
        uv2 = project(joints[0], K2)
        # K' = A K with A = diag(s, s, 1) + translation: the same affine maps the original projections
        s = K2[0, 0] / K[0, 0, 0]
        assert K2[1, 1] / K[0, 1, 1] == pytest.approx(s)
        t = np.array([K2[0, 2] - s * K[0, 0, 2], K2[1, 2] - s * K[0, 1, 2]])
        np.testing.assert_allclose(uv2, s * uv + t, atol=1e-3)
        if jitter is None:  # bbox centred, longest side = S / pad
            assert (uv2.max(0) + uv2.min(0)) / 2 == pytest.approx([S / 2, S / 2], abs=1e-6)
            assert (uv2.max(0) - uv2.min(0)).max() == pytest.approx(S / 1.3, rel=1e-9)


def test_crop_pixels_follow_intrinsics():
    # bright squares around projected points in the source must appear, centred, where K' projects them
    H, W = 400, 400
    K = np.array([[350.0, 0, 200], [0, 350.0, 200], [0, 0, 1]])
    pts = np.array([[-0.06, -0.05, 0.5], [0.07, 0.02, 0.5], [0.0, 0.06, 0.45], [0.02, -0.03, 0.55]])
    img = np.zeros((H, W, 3), np.uint8)
    uv = project(pts, K)
    for u, v in uv:
        img[int(v) - 6:int(v) + 7, int(u) - 6:int(u) + 7] = 255
    crop, K2 = crop_to_input(img, K, pts, 128, pad=1.5)
    s = K2[0, 0] / K[0, 0]
    grey = crop[..., 0].astype(float)
    yy, xx = np.mgrid[0:128, 0:128] + 0.5  # continuous coordinates of pixel centres
    for (u, v), (u2, v2) in zip(uv, project(pts, K2)):
        assert crop[int(v2), int(u2)].min() > 200
        # the blob's centre in the source is (int(u) + 0.5, int(v) + 0.5); its weighted centroid in
        # the crop must sit at the same point mapped by the crop affine
        c_src = np.array([int(u) + 0.5 - u, int(v) + 0.5 - v])  # offset of the blob centre from (u, v)
        win = (np.abs(xx - u2) < 8 * s + 2) & (np.abs(yy - v2) < 8 * s + 2)
        w = grey * win
        centroid = np.array([(w * xx).sum(), (w * yy).sum()]) / w.sum()
        np.testing.assert_allclose(centroid, np.array([u2, v2]) + s * c_src, atol=0.1)
    assert crop.mean() < 64  # mostly background


def test_prepare_split_uvd_round_trip():
    images, K, joints, verts = synthetic()
    out = prepare_split(images, K, joints, verts, S, DEPTH_RANGE, pad=1.3, ids=np.arange(10, 14))
    assert out["images"].shape == (4, S, S, 3) and out["images"].dtype == np.uint8
    assert out["uvd"].shape == (4, 21, 3) and out["verts_uvd"].shape == (4, 30, 3)
    np.testing.assert_array_equal(out["ids"], np.arange(10, 14))
    np.testing.assert_allclose(out["root_depth"], joints[:, 0, 2], rtol=1e-6)
    assert np.all(out["uvd"][:, 0, 2] == pytest.approx(0.5))  # root depth at the centre of d
    # u, v are crop pixels / S and the whole hand is inside the crop
    np.testing.assert_allclose(out["uvd"][..., :2] * S, project(joints, out["K"].astype(np.float64)), atol=1e-3)
    pts_uv = np.concatenate([out["uvd"], out["verts_uvd"]], 1)[..., :2]
    assert pts_uv.min() > 0 and pts_uv.max() < 1
    back = uvd_to_xyz(out["uvd"].astype(np.float64), out["K"].astype(np.float64),
                      out["root_depth"].astype(np.float64), S, DEPTH_RANGE)
    np.testing.assert_allclose(back, joints, atol=1e-5)
    back_v = uvd_to_xyz(out["verts_uvd"].astype(np.float64), out["K"].astype(np.float64),
                        out["root_depth"].astype(np.float64), S, DEPTH_RANGE)
    np.testing.assert_allclose(back_v, verts, atol=1e-5)
    # without vertices: no mesh arrays
    out2 = prepare_split(images, K, joints, None, S, DEPTH_RANGE)
    assert "verts" not in out2 and "verts_uvd" not in out2
    with pytest.raises(ValueError):
        prepare_split(images, K[:3], joints, None, S, DEPTH_RANGE)


def test_write_and_load_prepared(tmp_path):
    images, K, joints, verts = synthetic()
    arrays = prepare_split(images, K, joints, verts, S, DEPTH_RANGE)
    d = tmp_path / "prep" / "val"
    write_prepared(d, arrays)
    assert sorted(p.name for p in d.iterdir()) == ["images.npy", "labels.npz"]  # no temp files left
    back = load_prepared(d, mmap=True)
    assert isinstance(back["images"], np.memmap)
    for k, v in arrays.items():
        np.testing.assert_array_equal(np.asarray(back[k]), v)
    assert load_prepared(d, mmap=False)["images"].shape == (4, S, S, 3)


def test_load_prepared_rejects_bad_files(tmp_path):
    images, K, joints, verts = synthetic()
    arrays = prepare_split(images, K, joints, verts, S, DEPTH_RANGE)
    with pytest.raises(DataError, match="images.npy.*missing"):
        load_prepared(tmp_path / "nothing")
    bad = dict(arrays, joints=arrays["joints"][:, :20])
    write_prepared(tmp_path / "a", bad)
    with pytest.raises(DataError, match=r"labels\.npz.*'joints'"):
        load_prepared(tmp_path / "a")
    bad = dict(arrays, images=arrays["images"][:3])
    write_prepared(tmp_path / "b", bad)
    with pytest.raises(DataError, match=r"labels\.npz.*n=3"):
        load_prepared(tmp_path / "b")
    bad = {k: v for k, v in arrays.items() if k != "verts_uvd"}
    write_prepared(tmp_path / "c", bad)
    with pytest.raises(DataError, match="together"):
        load_prepared(tmp_path / "c")
    write_prepared(tmp_path / "d", arrays)
    (tmp_path / "d" / "labels.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"labels\.npz.*cannot read"):
        load_prepared(tmp_path / "d")
    write_prepared(tmp_path / "e", arrays)
    np.save(tmp_path / "e" / "images.npy", arrays["images"].astype(np.float32))
    with pytest.raises(DataError, match=r"images\.npy.*uint8"):
        load_prepared(tmp_path / "e")
