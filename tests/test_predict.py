"""``cliphand predict`` (cliphand/predict/run.py) with a tiny random-weight checkpoint and real photos of left hands."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cliphand.predict.camera import (FALLBACK_DEPTH_M, default_intrinsics, solve_root_depth, square_box,
                                     whole_image_box)
from cliphand.predict.inputs import read_image
from cliphand.data.preprocess import crop_to_input
from cliphand.predict.prediction import crop_mirrored, predict_image
from cliphand.predict.run import run_predict
from cliphand.model.checkpoint import build_model, load_checkpoint, save_checkpoint
from cliphand.cli import main
from cliphand.errors import DataError
from cliphand.hand.geometry import project, uvd_to_xyz, xyz_to_uvd
from cliphand.peers.mediapipe_hands import Detection
from cliphand.hand.skeleton import JOINT_NAMES

from helpers import TINY_MODEL, tiny_template

META = {"input_size": 64, "depth_range": 0.3}


@pytest.fixture(scope="module")
def ckpt_path(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    template = tiny_template()
    model = build_model(TINY_MODEL, template)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, model, template, META)
    return path


@pytest.fixture(scope="module")
def tiny(ckpt_path):
    model, ckpt = load_checkpoint(ckpt_path)
    return model, ckpt["meta"], np.asarray(ckpt["template"]["faces"])


@pytest.fixture(scope="module")
def photos(shared_data) -> list[Path]:
    files = sorted((shared_data / "realworld_testset" / "images").glob("*.jpg"))
    assert len(files) >= 3
    return files[:3]


def _cli(*args) -> int:
    return main(["predict", *map(str, args), "--device", "cpu", "--no-progress"])


def _read_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    lines = path.read_text().splitlines()
    v = np.array([[float(t) for t in ln.split()[1:]] for ln in lines if ln.startswith("v ")])
    f = np.array([[int(t) for t in ln.split()[1:]] for ln in lines if ln.startswith("f ")]) - 1
    return v, f


def _signed_volume(v: np.ndarray, f: np.ndarray) -> float:
    t = v[f]
    return float(np.einsum("ij,ij->i", t[:, 0], np.cross(t[:, 1], t[:, 2])).sum() / 6)


def _all_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# ----------------------------------------------------------------------------------------------- root depth
@pytest.mark.parametrize("seed", range(4))
def test_root_depth_recovered_exactly(seed):
    rng = np.random.default_rng(seed)
    joints = tiny_template(seed=seed)["joints"].astype(np.float64)
    joints -= joints[0]
    joints[9] = joints[9] / np.linalg.norm(joints[9]) * 0.03 + np.array([0.02, -0.07, 0.0])  # a mostly in-plane bone
    joints *= 0.08 / np.linalg.norm(joints[9] - joints[0])
    root = np.array([rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05), rng.uniform(0.3, 1.2)])
    joints = joints + root
    K = np.array([[310.0, 0, 30.5], [0, 290.0, 33.0], [0, 0, 1]])
    uvd = xyz_to_uvd(joints, K, np.asarray(root[2]), 64, 0.3)
    z, source = solve_root_depth(uvd, K, 64, 0.3, bone_length=0.08)
    assert source == "bone length"
    assert abs(z - root[2]) < 1e-6
    assert np.abs(uvd_to_xyz(uvd, K, np.asarray(z), 64, 0.3) - joints).max() < 1e-6


def test_root_depth_fallback_when_no_root():
    K = np.array([[100.0, 0, 32], [0, 100.0, 32], [0, 0, 1]])
    uvd = np.full((21, 3), 0.5)
    uvd[9] = [0.5 + 2 / 64, 0.5, 0.5 + 0.2 / 0.3]  # 2 px away but 0.2 m behind the wrist: longer than the bone
    z, source = solve_root_depth(uvd, K, 64, 0.3, bone_length=0.1)
    assert source.startswith("fallback: f * bone / pixel length")
    assert z == pytest.approx(100 * 0.1 / 2)
    uvd[9] = uvd[0]
    assert solve_root_depth(uvd, K, 64, 0.3) == (FALLBACK_DEPTH_M, "fallback: fixed")


def test_square_and_whole_image_boxes():
    assert square_box((50, 60, 100, 80), pad=1.3) == pytest.approx((35.0, 35.0, 130.0))
    assert whole_image_box(200, 100) == (0.0, -50.0, 200.0)
    with pytest.raises(ValueError):
        square_box((0, 0, 0, 10))
    K = default_intrinsics(640, 480)
    assert np.allclose(K, [[640, 0, 320], [0, 640, 240], [0, 0, 1]])


# ----------------------------------------------------------------------------------------------- one photo
def test_crop_mirrored_fills_outside_the_photo_with_its_mirror_image():
    rng = np.random.default_rng(0)
    image = rng.integers(30, 255, (60, 80, 3), dtype=np.uint8)          # no black pixel anywhere
    K = np.array([[90.0, 0, 41.0], [0, 90.0, 28.0], [0, 0, 1]])
    inside = (10.0, 5.0, 40.0)
    for square in (inside, (-20.0, -15.0, 70.0), (50.0, 30.0, 64.0)):   # inside; past the top-left; bottom-right
        crop, Kc = crop_mirrored(image, K, square, 32)
        black, Kb = crop_to_input(image, K, None, 32, box=np.array(square))
        np.testing.assert_allclose(Kc, Kb, atol=1e-9)                   # the same geometry ...
        if square == inside:
            np.testing.assert_array_equal(crop, black)                  # ... and the same pixels inside
        else:
            assert (black.max(-1) == 0).any() and not (crop.max(-1) == 0).any()  # ... but no black border
    # the mirrored border continues the photo: its top-left corner pixel sits at the crop pixel K' maps it to
    crop, Kc = crop_mirrored(image, K, (-16.0, -16.0, 64.0), 64)        # 1:1, the photo starts at pixel 16
    np.testing.assert_array_equal(crop[16:20, 16:20], image[:4, :4])
    np.testing.assert_array_equal(crop[15, 16:20], image[0, :4])       # mirrored about the edge (symmetric)


def test_single_photo_cli(tmp_path, ckpt_path, photos):
    out = tmp_path / "out"
    assert _cli(photos[0], "--out", out, "--checkpoint", ckpt_path, "--no-detector") == 0
    stem = photos[0].stem
    assert _all_files(out) == sorted([f"{stem}.json", f"{stem}.obj", f"{stem}_overlay.png"])
    d = json.loads((out / f"{stem}.json").read_text())
    assert d["input"] == str(photos[0]) and d["mesh_file"] == f"{stem}.obj"
    assert d["image_size"] == {"width": 256, "height": 256}
    assert d["hand_source"] == "whole_image" and d["box"] == [0.0, 0.0, 256.0]
    assert d["handedness"] == "right" and d["handedness_source"] == "default" and d["mirrored"] is False
    assert d["intrinsics_source"] == "default"
    K = np.array(d["intrinsics"])
    assert np.allclose(K, [[256, 0, 128], [0, 256, 128], [0, 0, 1]])
    assert d["joint_names"] == list(JOINT_NAMES) and len(JOINT_NAMES) == 21
    joints, rel, uv = (np.array(d[k]) for k in ("joints_cam_m", "joints_root_relative_m", "joints_uv_px"))
    assert joints.shape == (21, 3) and rel.shape == (21, 3) and uv.shape == (21, 2)
    assert np.all(joints[:, 2] > 0) and d["root_depth_m"] == pytest.approx(joints[0, 2])
    assert np.allclose(rel, joints - joints[0]) and np.all(rel[0] == 0)
    assert np.abs(project(joints, K) - uv).max() < 1e-3
    assert d["root_depth_source"] == "bone length"
    assert np.linalg.norm(joints[9] - joints[0]) == pytest.approx(0.095, abs=1e-9)
    assert np.abs(rel).max() < 1.0  # a hand within a metre of its wrist (metres, not mm)
    assert np.all((uv > -1e-6) & (uv < 256 + 1e-6))  # the soft-argmax stays inside the crop = the image
    verts, faces = _read_obj(out / d["mesh_file"])
    assert verts.shape == (d["n_vertices"], 3) and faces.shape == (d["n_faces"], 3)
    assert np.all(verts[:, 2] > 0) and faces.min() >= 0 and faces.max() < len(verts)
    with Image.open(out / d["overlay_file"]) as im:
        assert im.size == (256, 256) and im.mode == "RGB"
        overlay = np.asarray(im)
    assert np.abs(overlay.astype(int) - np.asarray(Image.open(photos[0]).convert("RGB"), int)).max() > 50


def test_intrinsics_options(tmp_path, ckpt_path, photos):
    out = tmp_path / "a"
    assert _cli(photos[0], "--out", out, "--checkpoint", ckpt_path, "--no-detector", "--focal", "500",
                "--principal", "120,130", "--mesh-format", "ply") == 0
    d = json.loads((out / f"{photos[0].stem}.json").read_text())
    assert np.allclose(d["intrinsics"], [[500, 0, 120], [0, 500, 130], [0, 0, 1]])
    assert d["intrinsics_source"] == "user (--focal, --principal)"
    ply = (out / d["mesh_file"]).read_text()
    assert d["mesh_file"].endswith(".ply") and ply.startswith("ply\n")
    assert f"element vertex {d['n_vertices']}\n" in ply and f"element face {d['n_faces']}\n" in ply
    kfile = tmp_path / "K.json"
    kfile.write_text(json.dumps({"K": [[400, 0, 100], [0, 410, 140], [0, 0, 1]]}))
    summary = run_predict(photos[0], tmp_path / "b", ckpt_path, device="cpu", intrinsics=kfile,
                          use_detector=False, progress=False)
    d = json.loads((tmp_path / "b" / f"{photos[0].stem}.json").read_text())
    assert summary["n_written"] == 1 and d["intrinsics_source"] == f"file {kfile}"
    assert np.allclose(d["intrinsics"], [[400, 0, 100], [0, 410, 140], [0, 0, 1]])
    uv = project(np.array(d["joints_cam_m"]), np.array(d["intrinsics"]))
    assert np.abs(uv - np.array(d["joints_uv_px"])).max() < 1e-3
    kfile.write_text("[[1, 2], [3, 4]]")
    with pytest.raises(DataError, match="K.json"):
        run_predict(photos[0], tmp_path / "c", ckpt_path, device="cpu", intrinsics=kfile, use_detector=False)
    assert not (tmp_path / "c").exists()


# ----------------------------------------------------------------------------------------------- folders
def test_folder_with_a_corrupt_file(tmp_path, ckpt_path, photos, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for p in photos:
        shutil.copy(p, src / p.name)
    (src / "zz_bad.jpg").write_bytes(b"not a jpeg at all")
    (src / "notes.txt").write_text("ignored")
    out = tmp_path / "out"
    assert _cli(src, "--out", out, "--checkpoint", ckpt_path, "--no-detector") == 1  # one failed
    captured = capsys.readouterr()
    assert "zz_bad.jpg" in captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert (summary["n"], summary["n_written"], summary["n_failed"]) == (4, 3, 1)
    assert summary["failed"][0]["file"] == str(src / "zz_bad.jpg")
    expected = sorted(f"{p.stem}{s}" for p in photos for s in (".json", ".obj", "_overlay.png"))
    assert _all_files(out) == expected  # no output for the bad file, no temp files


def test_folder_progress_bar(tmp_path, ckpt_path, photos, capsys):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(photos[0], src / photos[0].name)
    summary = run_predict(src, tmp_path / "out", ckpt_path, device="cpu", use_detector=False, progress=True)
    assert summary["n_written"] == 1 and summary["kind"] == "folder"
    assert "1/1" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------- box, hands
def test_box_cli(tmp_path, ckpt_path, photos):
    out = tmp_path / "out"
    assert _cli(photos[0], "--out", out, "--checkpoint", ckpt_path, "--box", "50,60,100,80") == 0
    d = json.loads((out / f"{photos[0].stem}.json").read_text())
    assert d["hand_source"] == "box" and d["box"] == pytest.approx([35.0, 35.0, 130.0])
    uv = np.array(d["joints_uv_px"])
    assert np.all((uv > 35 - 1e-6) & (uv < 165 + 1e-6))  # predicted joints lie in the crop square
    with pytest.raises(SystemExit) as exc:
        _cli(photos[0], "--out", out, "--checkpoint", ckpt_path, "--box", "1,2,3")
    assert exc.value.code == 2
    assert _cli(photos[0], "--out", out, "--checkpoint", ckpt_path, "--box", "1,2,0,5") == 2


class _StubModel(torch.nn.Module):
    """A deterministic stand-in with hand-like, image-dependent outputs: the template in normalised uvd, shifted
    along u by the left/right brightness difference of the input (so a mirrored input moves the hand)."""

    def __init__(self, template):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        scale = torch.tensor([2.5, 2.5, 1 / 0.3], dtype=torch.float64)
        self.register_buffer("joints", 0.5 + torch.as_tensor(template["joints"], dtype=torch.float64) * scale)
        self.register_buffer("verts", 0.5 + torch.as_tensor(template["verts"], dtype=torch.float64) * scale)

    def forward(self, images):
        half = images.shape[-1] // 2
        shift = (images[..., :half].mean((1, 2, 3)) - images[..., half:].mean((1, 2, 3))).double()[:, None] * 0.1
        out = {}
        for key in ("joints", "verts"):
            pts = getattr(self, key)[None].repeat(len(images), 1, 1)
            pts[..., 0] += shift
            out["uvd" if key == "joints" else key] = pts
        return out


@pytest.mark.parametrize("off_centre", [False, True])
def test_left_hand_is_mirrored_back(tiny, photos, off_centre):
    _, meta, faces = tiny
    model = _StubModel(tiny_template())
    image = np.asarray(Image.open(photos[1]).convert("RGB"))[:, 20:220]  # 256 high, 200 wide
    flipped = np.ascontiguousarray(image[:, ::-1])
    w = image.shape[1]
    kw_r, kw_l = {}, {}
    if off_centre:  # a box and a principal point off the image centre, mirrored for the flipped image
        K = np.array([[300.0, 0, 80], [0, 310, 140], [0, 0, 1]])
        K_flip = K.copy()
        K_flip[0, 2] = w - K[0, 2]
        kw_r = {"K": K, "box": (30, 40, 90, 120)}
        kw_l = {"K": K_flip, "box": (w - 30 - 90, 40, 90, 120)}
    right = predict_image(model, meta, image, faces, hand="right", **kw_r)
    left = predict_image(model, meta, flipped, faces, hand="left", **kw_l)
    assert np.ptp(right.joints_uv[:, 0]) > 20 and right.root_depth_source == "bone length"
    assert (right.mirrored, left.mirrored) == (False, True) and left.handedness_source == "user"
    if off_centre:
        assert right.box == pytest.approx((-3.0, 22.0, 156.0)) and left.box == pytest.approx((w - 153.0, 22.0, 156.0))
    else:
        assert right.box == left.box == (-28.0, 0.0, 256.0)
    assert np.abs(left.joints_uv[:, 0] - (w - right.joints_uv[:, 0])).max() < 1e-3
    assert np.abs(left.joints_uv[:, 1] - right.joints_uv[:, 1]).max() < 1e-3
    assert np.abs(left.verts_uv[:, 0] - (w - right.verts_uv[:, 0])).max() < 1e-3
    assert left.root_depth_m == pytest.approx(right.root_depth_m, abs=1e-9)
    assert np.abs(left.joints_cam * [-1, 1, 1] - right.joints_cam).max() < 1e-6
    assert np.abs(left.verts_cam * [-1, 1, 1] - right.verts_cam).max() < 1e-6
    assert np.array_equal(left.faces, right.faces[:, [0, 2, 1]])
    # the mirrored mesh keeps its orientation: same signed volume as the unmirrored one
    vol_r, vol_l = _signed_volume(right.verts_cam, right.faces), _signed_volume(left.verts_cam, left.faces)
    assert abs(vol_r) > 0 and vol_l == pytest.approx(vol_r, rel=1e-6)
    # a mirrored crop is not the same input: hand='left' on the unflipped image differs from 'right'
    assert np.abs(predict_image(model, meta, image, faces, hand="left").joints_uv - right.joints_uv).max() > 1
    # the same with the tiny network (float32: equal up to rounding)
    net = tiny[0]
    right = predict_image(net, meta, image, faces, hand="right")
    left = predict_image(net, meta, flipped, faces, hand="left")
    assert np.abs(left.joints_uv[:, 0] - (w - right.joints_uv[:, 0])).max() < 1e-3
    assert np.abs(left.joints_uv[:, 1] - right.joints_uv[:, 1]).max() < 1e-3


class _FakeDetector:
    def __init__(self, det):
        self.det, self.calls = det, 0

    def detect(self, image):
        self.calls += 1
        return self.det


def test_detector_paths_without_mediapipe(tiny, photos):
    model, meta, faces = tiny
    image = np.asarray(Image.open(photos[0]).convert("RGB"))
    none = _FakeDetector(None)
    pred = predict_image(model, meta, image, faces, detector=none)
    assert none.calls == 1 and pred.hand_source == "whole_image (no detection)" and pred.handedness == "right"
    uv = np.stack([np.linspace(60, 160, 21), np.linspace(40, 200, 21)], -1)
    found = _FakeDetector(Detection(world=np.zeros((21, 3)), uv=uv, label="Right", score=0.9))
    pred = predict_image(model, meta, image, faces, detector=found)
    assert pred.hand_source == "mediapipe" and pred.box == pytest.approx(found.det.box(1.3))
    assert pred.handedness == "left" and pred.handedness_source == "mediapipe" and pred.mirrored
    assert predict_image(model, meta, image, faces, detector=found, selfie=True).handedness == "right"
    assert predict_image(model, meta, image, faces, detector=found, hand="right").handedness == "right"
    boxed = predict_image(model, meta, image, faces, detector=found, box=(10, 10, 50, 50))
    assert boxed.hand_source == "box" and found.calls == 3  # a user box skips the detector


def test_mediapipe_on_a_real_photo(tiny, photos):
    pytest.importorskip("mediapipe")
    from cliphand.peers.mediapipe_hands import MediaPipeHands

    model, meta, faces = tiny
    image = np.asarray(Image.open(photos[0]).convert("RGB"))
    with MediaPipeHands() as hands:
        pred = predict_image(model, meta, image, faces, detector=hands)
    assert pred.hand_source == "mediapipe" and pred.detection is not None
    det_uv = np.array(pred.detection["uv_px"])
    assert det_uv.shape == (21, 2) and np.all((det_uv >= 0) & (det_uv <= 256))
    x0, y0, side = pred.box
    assert 0 < x0 + side / 2 < 256 and 0 < y0 + side / 2 < 256 and 40 < side < 1.5 * 256
    assert pred.handedness == "left" and pred.mirrored  # the real-world set holds left hands
    assert pred.timings_ms["detect"] > 0


# ----------------------------------------------------------------------------------------------- errors
def test_errors_name_the_file_and_leave_nothing(tmp_path, ckpt_path, photos, capsys, monkeypatch):
    out = tmp_path / "out"
    missing = tmp_path / "nope.jpg"
    assert _cli(missing, "--out", out, "--checkpoint", ckpt_path) == 1
    assert f"error: {missing}: input not found" in capsys.readouterr().err
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert _cli(broken, "--out", out, "--checkpoint", ckpt_path) == 1
    err = capsys.readouterr().err
    assert str(broken) in err and "cannot read image" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _cli(empty, "--out", out, "--checkpoint", ckpt_path) == 1
    assert "no images" in capsys.readouterr().err
    assert _cli(photos[0], "--out", out, "--checkpoint", tmp_path / "none.pt") == 1
    assert "none.pt: checkpoint not found" in capsys.readouterr().err
    (tmp_path / "a.txt").write_text("x")
    assert _cli(tmp_path / "a.txt", "--out", out, "--checkpoint", ckpt_path) == 1
    assert "unsupported file type" in capsys.readouterr().err
    assert _cli(photos[0], "--out", out, "--checkpoint", ckpt_path, "--bone-length", "0") == 1
    assert "bone length must be positive" in capsys.readouterr().err
    assert _all_files(out) == []

    def boom(*args, **kwargs):
        raise RuntimeError("render failed")

    monkeypatch.setattr("cliphand.predict.outputs.draw_overlay", boom)
    with pytest.raises(RuntimeError, match="render failed"):
        run_predict(photos[0], out, ckpt_path, device="cpu", use_detector=False, progress=False)
    assert _all_files(out) == []  # nothing half-written: no mesh without its JSON, no temp files


# ----------------------------------------------------------------------------------------------- video
def _write_video(path: Path, frames: list[np.ndarray]) -> None:
    av = pytest.importorskip("av")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_video_frames(tmp_path, ckpt_path, photos, capsys):
    frames = [np.asarray(Image.open(photos[i % 2]).convert("RGB")) for i in range(4)]
    video = tmp_path / "clip.mp4"
    _write_video(video, frames)
    out = tmp_path / "out"
    assert _cli(video, "--out", out, "--checkpoint", ckpt_path, "--no-detector") == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["kind"] == "video" and summary["n_written"] == 4 and summary["out"] == str(out / "clip")
    names = _all_files(out / "clip")
    assert names == sorted(f"frame_{i:06d}{s}" for i in range(4) for s in (".json", ".obj", "_overlay.png"))
    d = json.loads((out / "clip" / "frame_000002.json").read_text())
    assert d["frame_index"] == 2 and d["input"] == str(video) and d["image_size"] == {"width": 256, "height": 256}
    assert np.array(d["joints_cam_m"]).shape == (21, 3)
    out2 = tmp_path / "out2"
    assert run_predict(video, out2, ckpt_path, device="cpu", use_detector=False, every=3,
                       progress=False)["n_written"] == 2
    assert _all_files(out2 / "clip")[0::3] == ["frame_000000.json", "frame_000003.json"]
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    assert _cli(bad, "--out", out, "--checkpoint", ckpt_path) == 1
    assert f"{bad}: cannot open video" in capsys.readouterr().err


def test_video_without_pyav(tmp_path, ckpt_path, monkeypatch):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "av" else real(name, *a))
    with pytest.raises(DataError, match="pip install av"):
        run_predict(video, tmp_path / "out", ckpt_path, device="cpu")


def test_onnx_runtime_gives_the_pytorch_prediction(tmp_path, ckpt_path, tiny, photos):
    from cliphand.bench.export import export_onnx

    model, meta, _ = tiny
    onnx_path = tmp_path / "tiny.onnx"
    export_onnx(model, onnx_path, meta["input_size"])
    for tag, extra in (("one", ("--rotations", "none")), ("tta", ())):   # one pass; default test-time rotation
        assert _cli(photos[0], "--out", tmp_path / f"pt{tag}", "--checkpoint", ckpt_path, "--no-detector", *extra) == 0
        assert _cli(photos[0], "--out", tmp_path / f"ox{tag}", "--checkpoint", ckpt_path, "--no-detector",
                    "--onnx", onnx_path, *extra) == 0
        a, b = (json.loads((tmp_path / f"{d}{tag}" / f"{photos[0].stem}.json").read_text()) for d in ("pt", "ox"))
        assert a["model"]["test_rotations_deg"] == ([] if tag == "one" else [0.0])
        ja, jb = np.array(a["joints_cam_m"]), np.array(b["joints_cam_m"])
        # the random tiny model puts the wrist tens of metres away (its bone is tiny in the image): compare the
        # shape root-relative in metres and the absolute depth relatively; with test-time rotation the two
        # runtimes' 1e-6 differences also move the upright angle a little, which that far depth magnifies
        assert np.abs((ja - ja[0]) - (jb - jb[0])).max() < 1e-4
        assert abs(ja[0, 2] - jb[0, 2]) / ja[0, 2] < (1e-4 if tag == "one" else 1e-3)
        assert np.abs(np.array(a["joints_uv_px"]) - np.array(b["joints_uv_px"])).max() < 1e-2
    # an export of another model size is refused with the file named
    big = build_model({**TINY_MODEL, "input_size": 128, "heatmap_size": 32}, tiny_template())
    export_onnx(big, tmp_path / "other.onnx", 128)
    with pytest.raises(DataError, match="other.onnx: made for input"):
        run_predict(photos[0], tmp_path / "bad", ckpt_path, use_detector=False, onnx=tmp_path / "other.onnx",
                    progress=False)
    assert not (tmp_path / "bad").exists() or _all_files(tmp_path / "bad") == []


# ----------------------------------------------------------------------------------------------- hostile input
def test_hostile_images_in_a_folder(tmp_path, ckpt_path, photos, monkeypatch):
    """Zero-byte, truncated and huge images: each gives a per-file error or is downscaled to the cap; the
    folder goes on, and an unexpected error on one image does not stop it either."""
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(photos[0], src / "a_good.jpg")
    (src / "b_empty.jpg").write_bytes(b"")
    data = photos[1].read_bytes()
    (src / "c_truncated.jpg").write_bytes(data[: len(data) // 2])
    big = Image.open(photos[2]).convert("RGB").resize((5000, 5000), Image.NEAREST)
    big.save(src / "d_big.jpg", quality=80)
    monkeypatch.setattr("cliphand.predict.inputs.MAX_SIDE", 1000)
    calls = {"n": 0}
    real = predict_image

    def flaky(*args, **kwargs):  # the third image predicted (e_unlucky) blows up with an unexpected error
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("out of memory")
        return real(*args, **kwargs)

    shutil.copy(photos[0], src / "e_unlucky.jpg")
    monkeypatch.setattr("cliphand.predict.run.predict_image", flaky)
    warnings = []
    s = run_predict(src, tmp_path / "out", ckpt_path, device="cpu", use_detector=False, progress=False,
                    warn=warnings.append)
    assert (s["n"], s["n_written"], s["n_failed"]) == (5, 2, 3)
    failed = {Path(f["file"]).name: f["error"] for f in s["failed"]}
    assert sorted(failed) == ["b_empty.jpg", "c_truncated.jpg", "e_unlucky.jpg"]
    assert "b_empty.jpg: cannot read image (the file is empty)" in failed["b_empty.jpg"]
    assert "c_truncated.jpg: cannot read image" in failed["c_truncated.jpg"]
    assert "e_unlucky.jpg: RuntimeError: out of memory" in failed["e_unlucky.jpg"]
    assert len(warnings) == 3
    big = json.loads((tmp_path / "out" / "d_big.json").read_text())
    assert big["image_size"] == {"width": 5000, "height": 5000}
    assert big["downscaled"] == {"factor": pytest.approx(0.2), "read_size": [1000, 1000], "max_side": 1000}
    assert _all_files(tmp_path / "out") == sorted(f"{n}{x}" for n in ("a_good", "d_big")
                                                  for x in (".json", ".obj", "_overlay.png"))


def test_huge_image_is_downscaled_and_reported_in_file_pixels(tmp_path, ckpt_path, photos, monkeypatch):
    img = Image.open(photos[0]).convert("RGB")
    big = img.resize((2048, 2048), Image.BILINEAR)
    big.save(tmp_path / "big.png")
    small_ref = run_predict(tmp_path / "big.png", tmp_path / "ref", ckpt_path, device="cpu", box=(400, 400, 1200, 1200),
                            progress=False)
    monkeypatch.setattr("cliphand.predict.inputs.MAX_SIDE", 512)
    arr, scale = read_image(tmp_path / "big.png")
    assert arr.shape == (512, 512, 3) and scale == pytest.approx(0.25)
    run_predict(tmp_path / "big.png", tmp_path / "cap", ckpt_path, device="cpu", box=(400, 400, 1200, 1200),
                progress=False)
    ref = json.loads((tmp_path / "ref" / "big.json").read_text())
    cap = json.loads((tmp_path / "cap" / "big.json").read_text())
    assert cap["image_size"] == {"width": 2048, "height": 2048} and cap["downscaled"]["factor"] == pytest.approx(0.25)
    assert cap["box"] == pytest.approx(ref["box"]) and np.allclose(cap["intrinsics"], ref["intrinsics"])
    # the same hand square at a quarter of the resolution: the same joints in file pixels, within a few pixels
    assert np.abs(np.array(cap["joints_uv_px"]) - np.array(ref["joints_uv_px"])).max() < 40
    assert small_ref["n_written"] == 1
