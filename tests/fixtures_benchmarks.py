"""Writers of tiny FreiHAND v2, RHD and STB folders in their original release layouts, for tests.

Import them as ``from fixtures_benchmarks import write_freihand_fixture`` (tests/ is on ``sys.path``
through its conftest, like ``helpers``). Every writer returns the ground truth it wrote.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image
from scipy.spatial.transform import Rotation

from cliphand.data.readers.stb import SEQUENCES, SK_ROT_VEC, SK_TRANS_MM, STB_TO_FREIHAND, WRIST_FROM_PALM

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RHD_SAMPLES = SHARED / "rhd_samples"

# A right hand, palm towards the camera, fingers up (-y), metres, FreiHAND order: MCP positions,
# finger directions in the image plane and phalanx lengths (MCP->PIP, PIP->DIP, DIP->tip).
_WRIST = np.array([0.0, 0.045, 0.0])
_MCP = np.array([[0.025, 0.020, -0.005], [0.025, -0.040, 0.0], [0.005, -0.046, 0.0],
                 [-0.014, -0.041, 0.0], [-0.030, -0.032, 0.0]])
_DIR = np.array([[0.7, -0.7, -0.1], [0.1, -1.0, 0.0], [0.0, -1.0, 0.0], [-0.1, -1.0, 0.0], [-0.25, -1.0, 0.0]])
_LEN = np.array([[0.035, 0.030, 0.025], [0.040, 0.025, 0.020], [0.045, 0.028, 0.022],
                 [0.040, 0.026, 0.020], [0.032, 0.020, 0.018]])


def hand_joints(n: int, seed: int = 0, depth: tuple[float, float] = (0.5, 0.7)) -> np.ndarray:
    """(n, 21, 3) right-hand-like joints, metres, camera frame, FreiHAND order, wrist near the optical axis."""
    rng = np.random.default_rng(seed)
    base = np.zeros((21, 3))
    base[0] = _WRIST
    for f in range(5):
        d = _DIR[f] / np.linalg.norm(_DIR[f])
        base[1 + 4 * f] = _MCP[f]
        for k in range(3):
            base[2 + 4 * f + k] = base[1 + 4 * f + k] + _LEN[f, k] * d
    out = np.empty((n, 21, 3))
    for i in range(n):
        R = Rotation.from_euler("xyz", rng.uniform([-0.3, -0.3, -0.4], [0.3, 0.3, 0.4])).as_matrix()
        t = np.array([rng.uniform(-0.02, 0.02), rng.uniform(-0.02, 0.02), rng.uniform(*depth)])
        out[i] = (base - base[9]) @ R.T + t + rng.normal(scale=0.002, size=(21, 3))
    return out


def _write_image(path: Path, h: int, w: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), rng.integers(40, 200, 3), np.uint8)
    img[h // 4: h // 2, w // 3: w // 2] = rng.integers(0, 255, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def _dump(path: Path, arr: np.ndarray) -> None:
    path.write_text(json.dumps(np.asarray(arr).tolist()))


def write_freihand_fixture(root: Path, n_train: int = 6, n_eval: int = 4, seed: int = 0) -> dict:
    """FreiHAND v2 layout: ``{training,evaluation}_{xyz,K,verts,scale,mano}.json`` and
    ``training/rgb`` (4 x n_train JPEGs), ``evaluation/rgb`` (n_eval JPEGs), 224x224.

    Returns:
        {"training": {...}, "evaluation": {...}} with ``xyz`` (n,21,3), ``K``, ``verts`` (n,778,3),
        ``scale`` (n,), ``mano`` (n,1,61); metres / pixels.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = {}
    for prefix, n, n_img in (("training", n_train, 4 * n_train), ("evaluation", n_eval, n_eval)):
        xyz = hand_joints(n, seed=seed + len(prefix))
        K = np.tile(np.eye(3), (n, 1, 1))
        K[:, 0, 0] = K[:, 1, 1] = rng.uniform(450, 550, n)
        K[:, :2, 2] = 112 + rng.uniform(-5, 5, (n, 2))
        verts = xyz[:, rng.integers(0, 21, 778)] + rng.normal(scale=0.006, size=(n, 778, 3))
        scale = np.linalg.norm(xyz[:, 10] - xyz[:, 9], axis=-1)
        mano = rng.normal(scale=0.1, size=(n, 1, 61))
        data = {"xyz": xyz, "K": K, "verts": verts, "scale": scale, "mano": mano}
        for key, arr in data.items():
            _dump(root / f"{prefix}_{key}.json", arr)
        for i in range(n_img):
            _write_image(root / prefix / "rgb" / f"{i:08d}.jpg", 224, 224, seed + i)
        out[prefix] = data
    return out


def read_rhd_samples() -> list[dict]:
    """The three real RHD samples (mmpose conversion): per sample ``id``, ``file``, ``hand_type``,
    ``joints_rhd`` (21,3) metres RHD order, ``uv_vis`` (21,3) and ``K`` (3,3)."""
    doc = json.loads((RHD_SAMPLES / "test_rhd.json").read_text())
    images = {im["id"]: im for im in doc["images"]}
    out = []
    for ann in doc["annotations"]:
        im = images[ann["image_id"]]
        (fx, fy), (cx, cy) = im["cam_param"]["focal"], im["cam_param"]["princpt"]
        out.append({"id": int(im["id"]), "file": im["file_name"], "hand_type": ann["hand_type"],
                    "joints_rhd": np.asarray(ann["joint_cam"], np.float64) / 1000.0,
                    "uv_vis": np.asarray(ann["keypoints"], np.float64),
                    "K": np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])})
    return out


def write_rhd_fixture(root: Path, splits: tuple[str, ...] = ("training", "evaluation")) -> list[dict]:
    """RHD layout from the three real samples: ``<split>/anno_<split>.pickle`` (dict id -> xyz (42,3) m,
    uv_vis (42,3), K (3,3)) and ``<split>/color/%05d.png`` (the real renders), for each split.

    The annotated hand goes to its side (0-20 left, 21-41 right); the other side gets a copy shifted
    0.3 m along x, projected, with every keypoint invisible. Returns :func:`read_rhd_samples`.
    """
    root = Path(root)
    samples = read_rhd_samples()
    for split in splits:
        anno = {}
        for s in samples:
            other = s["joints_rhd"] + np.array([0.3, 0.0, 0.0])
            uv_other = other @ s["K"].T
            uv_other = np.concatenate([uv_other[:, :2] / uv_other[:, 2:], np.zeros((21, 1))], 1)
            mine = (s["joints_rhd"], s["uv_vis"])
            theirs = (other, uv_other)
            left, right = (mine, theirs) if s["hand_type"] == "left" else (theirs, mine)
            anno[s["id"]] = {"xyz": np.concatenate([left[0], right[0]]).astype(np.float32),
                             "uv_vis": np.concatenate([left[1], right[1]]).astype(np.float32),
                             "K": s["K"].astype(np.float32)}
            (root / split / "color").mkdir(parents=True, exist_ok=True)
            shutil.copy(RHD_SAMPLES / s["file"], root / split / "color" / f"{s['id']:05d}.png")
        with open(root / split / f"anno_{split}.pickle", "wb") as f:
            pickle.dump(anno, f, protocol=2)
    return samples


def write_stb_fixture(root: Path, frames: int = 2, sequences: tuple[str, ...] = SEQUENCES, seed: int = 0,
                      marker: bool = True) -> dict[str, np.ndarray]:
    """STB-SK layout: ``labels/<seq>_SK.mat`` ('handPara' (3, 21, frames), mm, depth-camera frame, STB
    order, palm-centre root, left hand) and ``images/<seq>/SK_color_{i}.png`` (640x480).

    The labels are built backwards from known colour-camera left-hand joints (wrist root, FreiHAND
    order): palm = mcp + (wrist - mcp) / f, STB order, mm, ``X_d = R X_c + t``. With ``marker``, each
    image has a white 3x3 dot at the projection of the wrist (unmirrored).

    Returns:
        {seq: (frames, 21, 3) expected colour-camera joints, metres, FreiHAND order, *left* hand}.
    """
    root = Path(root)
    R = Rotation.from_rotvec(SK_ROT_VEC).as_matrix()
    K = np.array([[607.92271, 0.0, 314.78337], [0.0, 607.88192, 236.42484], [0.0, 0.0, 1.0]])
    k, f = WRIST_FROM_PALM
    inverse = np.argsort(STB_TO_FREIHAND)  # stb = freihand[inverse]
    out = {}
    for s_idx, seq in enumerate(sequences):
        left = hand_joints(frames, seed=seed + s_idx) * np.array([-1.0, 1.0, 1.0])
        palm_based = left.copy()
        palm_based[:, 0] = left[:, k] + (left[:, 0] - left[:, k]) / f
        stb_c = palm_based[:, inverse] * 1000.0
        stb_d = stb_c @ R.T + np.asarray(SK_TRANS_MM)
        (root / "labels").mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(root / "labels" / f"{seq}_SK.mat", {"handPara": stb_d.transpose(2, 1, 0)})
        for i in range(frames):
            rng = np.random.default_rng(seed + 100 * s_idx + i)
            img = np.full((480, 640, 3), rng.integers(20, 120, 3), np.uint8)
            if marker:
                u, v = (K @ left[i, 0])[:2] / left[i, 0, 2]
                img[int(v) - 1: int(v) + 2, int(u) - 1: int(u) + 2] = 255
            path = root / "images" / seq / f"SK_color_{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(path)
            (path.parent / f"SK_depth_{i}.png").touch()  # other files of the release are ignored
        out[seq] = left
    return out
