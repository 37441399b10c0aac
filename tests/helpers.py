"""Small synthetic fixtures shared by the tests of training, evaluation and the report."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from cliphand.data.preprocess import prepare_split, write_prepared
from cliphand.text.cache import save_text_cache
from cliphand.train.settings import TrainRun

TINY_MODEL = {"input_size": 64, "heatmap_size": 16, "deconv_channels": 32, "embed_dim": 32, "adapter_ff": 64,
              "mesh_levels": [30, 60], "mesh_dims": [32, 16, 16], "mesh_fj_channels": 8, "text_dim": 24}


AUG = {"rotation_deg": 20, "scale": [0.9, 1.1], "shift": 0.05, "photometric": 0.2, "amplitude_mix": 0.5,
       "amplitude_beta": 0.1}
NO_AUG = {"rotation_deg": 0, "scale": [1, 1], "shift": 0.0, "photometric": 0, "amplitude_mix": 0.0, "amplitude_beta": 0.1}
#: a short run of the tiny model (64 px, global batch 8) with the default loss weights
TINY_RUN = {"epochs": 2, "batch_size": 8, "lr": 1e-3, "weight_decay": 1e-4, "schedule": "cosine", "warmup_steps": 2,
            "lr_decay": 0.25, "decay_every": 0.5, "val_limit": 8, "amp": False, "seed": 0, "device": "cpu",
            "sync_batchnorm": True, "input_size": 64, "depth_range": 0.3, "augment": AUG, "use_clip": True,
            "n_joints": 21, "loss": {"alpha1": 1.0, "alpha2": 0.05, "alpha3": 0.1, "alpha4": 0.1, "lixel": 0.1,
                                     "lixel_sigma": 1.0}}


def tiny_run(phase: str, **over) -> TrainRun:
    """:data:`TINY_RUN` of ``phase`` with ``over`` on top, as the training loop takes it."""
    return TrainRun.model_validate({**TINY_RUN, "phase": phase, **over})


def tiny_template(v: int = 120, seed: int = 0) -> dict[str, np.ndarray]:
    """A random hand-sized template: 21 joints, ``v`` vertices near them, random triangles (metres)."""
    rng = np.random.default_rng(seed)
    joints = rng.normal(scale=0.04, size=(21, 3)).astype(np.float32)
    verts = (joints[rng.integers(0, 21, v)] + rng.normal(scale=0.01, size=(v, 3))).astype(np.float32)
    faces = np.stack([rng.choice(v, 3, replace=False) for _ in range(2 * v)]).astype(np.int32)
    return {"verts": verts, "joints": joints, "faces": faces}


def write_tiny_split(folder: Path, template: dict, n: int = 24, size: int = 64, seed: int = 0,
                     text_path: Path | None = None, text_len: int = 22, text_dim: int = 24) -> None:
    """Random images of posed copies of ``template`` ~0.5 m in front of a camera, prepared like the
    preprocess stage (``folder/images.npy``, ``labels.npz``), and optionally a random text cache."""
    rng = np.random.default_rng(seed)
    K = np.tile(np.array([[200.0, 0, 80], [0, 200.0, 80], [0, 0, 1]]), (n, 1, 1))
    shift = np.stack([rng.uniform(-0.02, 0.02, n), rng.uniform(-0.02, 0.02, n), rng.uniform(0.45, 0.55, n)], -1)
    joints = template["joints"][None] + shift[:, None] + rng.normal(scale=0.005, size=(n, 21, 3))
    verts = template["verts"][None] + shift[:, None] + rng.normal(scale=0.005, size=(n, len(template["verts"]), 3))
    images = rng.integers(0, 256, size=(n, 160, 160, 3), dtype=np.uint8)
    write_prepared(folder, prepare_split(images, K, joints, verts, size, 0.3, 1.3))
    if text_path is not None:
        from cliphand.text.prompts import sample_prompts

        prompts, orders, subsets = zip(*(sample_prompts(joints[i], 21, 0, i, "short") for i in range(n)))
        save_text_cache(text_path, {
            "feats": rng.normal(size=(n, 3, text_len, text_dim)).astype(np.float16),
            "orders": np.asarray(orders, np.int16), "subsets": np.asarray(subsets, np.int16),
            "prompts": np.asarray(prompts, str), "fingerprint": "random", "template": "short", "seed": 0,
            "n_joints": 21})


def realworld_copy(rw_dir: Path, dst: Path, n_images: int = 5) -> Path:
    """The real-world set's params.mat, pose_gt.mat and its first ``n_images`` images in ``dst``."""
    (dst / "images").mkdir(parents=True)
    for name in ("params.mat", "pose_gt.mat"):
        shutil.copy(rw_dir / name, dst / name)
    for p in sorted((rw_dir / "images").glob("*.jpg"))[:n_images]:
        shutil.copy(p, dst / "images" / p.name)
    return dst


class Exploit:
    """A pickle payload that would create the file ``target`` when unpickled by plain ``pickle.load`` (the
    safe-loading tests check that it is refused and the file never appears)."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))
