"""Tests of cliphand.data.download: npm integrity checks, verified local copies, the real-world test set."""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cliphand.config.sources import RealworldSource, WebxrSource
from cliphand.data import download as D
from cliphand.errors import DataError

WEBXR, REALWORLD = WebxrSource(), RealworldSource()  # params.yaml's download.webxr and .realworld defaults


def webxr(**overrides) -> dict:
    """The keyword arguments of D.fetch_webxr_hand for the default package, with ``overrides``."""
    return {**WEBXR.model_dump(), **overrides}


def realworld(**overrides) -> dict:
    return {"repo": REALWORLD.repo, "subdir": REALWORLD.subdir, **overrides}

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def shared_dir() -> Path:
    assert SHARED.is_dir(), f"{SHARED} is missing: the tests need ../shared/data beside the repository"
    return SHARED


def make_tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_sri_integrity_accepts_right_rejects_wrong(tmp_path):
    payload = b"glTF fake hand" * 100
    tgz = make_tarball(tmp_path / "pkg.tgz", {"package/dist/hand.glb": payload, "package/LICENSE.md": b"MIT"})
    right = "sha512-" + base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode()
    assert D.sri_sha512(tgz) == right
    assert D.verify_integrity(tgz, right) == right
    wrong = "sha512-" + base64.b64encode(hashlib.sha512(b"other").digest()).decode()
    with pytest.raises(DataError, match="pkg.tgz: integrity mismatch"):
        D.verify_integrity(tgz, wrong)
    with pytest.raises(ValueError):
        D.verify_integrity(tgz, "sha1-abc")
    assert D.read_tar_member(tgz, "package/dist/hand.glb") == payload
    with pytest.raises(DataError, match="no member 'package/nope.glb'"):
        D.read_tar_member(tgz, "package/nope.glb")


def test_webxr_local_copy_needs_matching_sha256(tmp_path, shared_dir):
    local = shared_dir / "webxr_generic_hand"
    out = tmp_path / "raw" / "right.glb"
    # npm absent -> verified local copy
    info = D.fetch_webxr_hand(out, **webxr(local_dir=local, npm="no-such-npm-client"))
    assert info["route"] == "local" and info["sha256"] == WEBXR.glb_sha256
    assert out.read_bytes() == (local / "right.glb").read_bytes()
    # wrong expected hash -> refused, nothing written
    with pytest.raises(DataError, match="differs from the expected"):
        D.fetch_webxr_hand(tmp_path / "x.glb",
                           **webxr(local_dir=local, npm="no-such-npm-client", glb_sha256="0" * 64))
    assert not (tmp_path / "x.glb").exists()
    # no expected hash -> the local copy cannot be verified
    with pytest.raises(DataError, match="cannot be verified"):
        D.fetch_webxr_hand(tmp_path / "y.glb", **webxr(local_dir=local, npm="no-such-npm-client", glb_sha256=None))


def test_webxr_nothing_works_names_the_source(tmp_path):
    with pytest.raises(DataError) as e:
        D.fetch_webxr_hand(tmp_path / "right.glb", **webxr(local_dir=tmp_path / "empty", npm="no-such-npm-client"))
    msg = str(e.value)
    for part in ("@webxr-input-profiles/assets", "1.0.20", "dist/profiles/generic-hand/right.glb",
                 "npm pack @webxr-input-profiles/assets@1.0.20", "not installed"):
        assert part in msg
    assert not (tmp_path / "right.glb").exists()


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm client not installed")
def test_webxr_via_npm_for_real(tmp_path, shared_dir):
    out = tmp_path / "right.glb"
    try:
        info = D.fetch_webxr_hand(out, **webxr(local_dir=None, timeout=120))
    except DataError as e:
        if "npm pack" in str(e) and "failed" in str(e):
            pytest.skip(f"package registry unreachable: {e}")
        raise
    assert info["route"] == "npm" and info["integrity"] == WEBXR.integrity
    assert info["sha256"] == WEBXR.glb_sha256 == D.sha256_file(out)
    assert out.read_bytes() == (shared_dir / "webxr_generic_hand" / "right.glb").read_bytes()


def test_webxr_npm_integrity_mismatch_is_fatal(tmp_path):
    if shutil.which("npm") is None:
        pytest.skip("npm client not installed")
    wrong = "sha512-" + base64.b64encode(hashlib.sha512(b"x").digest()).decode()
    try:
        D.fetch_webxr_hand(tmp_path / "r.glb", **webxr(integrity=wrong, local_dir=None, timeout=120))
    except DataError as e:
        if "npm pack" in str(e) and "failed" in str(e):
            pytest.skip(f"package registry unreachable: {e}")
        assert "integrity mismatch" in str(e)
    else:
        pytest.fail("a wrong integrity value was accepted")
    assert not (tmp_path / "r.glb").exists()


def test_realworld_local_copy(tmp_path, shared_dir):
    src = shared_dir / "realworld_testset"
    out = tmp_path / "raw" / "realworld"
    info = D.fetch_realworld(out, **realworld(local_dir=src))
    assert info["route"] == "local" and info["n_images"] == 400 and info["n_labels"] == 583
    assert info["sha256"]["pose_gt.mat"] == D.sha256_file(src / "pose_gt.mat")
    assert sorted(p.name for p in out.iterdir()) == ["LICENSE", "README.md", "images", "params.mat", "pose_gt.mat"]
    assert len(list((out / "images").glob("*.jpg"))) == 400
    assert [p.name for p in out.parent.iterdir()] == ["realworld"], "temporary folder left behind"
    # running again replaces the folder in one piece
    (out / "stale.txt").write_text("old")
    D.fetch_realworld(out, **realworld(local_dir=src))
    assert not (out / "stale.txt").exists()


def test_realworld_invalid_copy_leaves_nothing(tmp_path, shared_dir):
    import scipy.io as sio

    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    shutil.copyfile(shared_dir / "realworld_testset" / "images" / "00000.jpg", src / "images" / "00000.jpg")
    shutil.copyfile(shared_dir / "realworld_testset" / "params.mat", src / "params.mat")
    sio.savemat(src / "pose_gt.mat", {"pose_gt": np.zeros((583, 20, 3), np.float32)})  # wrong joint count
    out = tmp_path / "out" / "realworld"
    with pytest.raises(DataError, match=r"pose_gt.mat: pose_gt must be finite \(M, 21, 3\)"):
        D.fetch_realworld(out, **realworld(local_dir=src))
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_realworld_missing_everywhere_names_source(tmp_path):
    out = tmp_path / "realworld"
    repo = str(tmp_path / "no-such-repo")  # unreachable repository, offline and fast
    with pytest.raises(DataError) as e:
        D.fetch_realworld(out, **realworld(local_dir=tmp_path / "missing", repo=repo))
    msg = str(e.value)
    assert "no local folder" in msg and str(tmp_path / "missing") in msg
    assert repo in msg and "data/real_world_testset" in msg and "git clone" in msg
    assert not out.exists() and list(tmp_path.iterdir()) == []
