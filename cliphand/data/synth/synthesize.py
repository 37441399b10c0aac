"""The ``synthesize`` stage: renders the synthetic train/val/test splits of the rigged WebXR hand
(:func:`cliphand.data.synth.sample.render_sample`) with a worker pool and writes them (file formats: the
design's "synthesize stage"); :func:`labelled_hand` loads the hand with the label joints of the chosen
convention.

Every sample is drawn from its own generator ``np.random.default_rng([seed, split_id, index])``
(split_id train 0, val 1, test 2), so the output does not depend on the number of workers.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import numpy as np

from cliphand.config import SynthSettings
from cliphand.data.synth.articulation import calibrate_label_offsets, load_gestures
from cliphand.data.synth.backgrounds import load_photos
from cliphand.data.synth.hand_model import RiggedHand
from cliphand.data.synth.sample import articulator, render_sample
from cliphand.io import atomic_path, save_npy, save_npz

SPLITS = {"train": 0, "val": 1, "test": 2}

_WORKER: dict = {}


def labelled_hand(glb_path: str | os.PathLike, convention: str,
                  gestures_path: str | os.PathLike | None) -> RiggedHand:
    """The rigged hand with the label joints of ``convention`` (``synth.label_convention``): ``webxr`` the
    asset's joints, ``ge`` offsets fitted to the Ge et al. gestures of ``gestures_path``
    (:func:`cliphand.data.synth.articulation.calibrate_label_offsets`).

    Raises:
        DataError: unreadable glb or gesture file; ValueError: an unknown convention, or ``ge`` without
            ``gestures_path``.
    """
    hand = RiggedHand.from_glb(glb_path)
    if convention == "webxr":
        return hand
    if convention != "ge":
        raise ValueError(f"synth.label_convention must be 'ge' or 'webxr', got {convention!r}")
    if not gestures_path:
        raise ValueError("synth.label_convention 'ge' needs the Ge et al. gesture file (gestures_path)")
    hand.label_offsets = calibrate_label_offsets(hand, load_gestures(gestures_path))
    return hand


def _init_worker(glb_path: str, gestures_path: str | None, cfg: SynthSettings,
                 label_offsets: np.ndarray | None) -> None:
    try:  # one BLAS thread per worker process
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:  # pragma: no cover
        pass
    _WORKER["hand"] = RiggedHand.from_glb(glb_path)
    _WORKER["hand"].label_offsets = label_offsets
    _WORKER["cfg"], _WORKER["gestures_path"] = cfg, gestures_path
    articulator(_WORKER["hand"], cfg, gestures_path)


def _render_chunk(task: tuple[int, int, int, int]) -> tuple[int, int, dict]:
    seed, split_id, start, stop = task
    hand, cfg, gestures = _WORKER["hand"], _WORKER["cfg"], _WORKER["gestures_path"]
    out = {k: [] for k in ("image", "K", "joints", "verts")}
    for i in range(start, stop):
        s = render_sample(hand, np.random.default_rng([seed, split_id, i]), cfg, gestures)
        for k in out:
            out[k].append(s[k])
    return split_id, start, {k: np.stack(v) for k, v in out.items()}


def synthesize(glb_path: str | os.PathLike, gestures_path: str | os.PathLike | None, out_dir: str | os.PathLike,
               cfg: SynthSettings, seed: int, chunk: int = 16) -> dict:
    """Render the synthetic splits and write them (design doc, "synthesize stage").

    Files: ``<out_dir>/<split>/images.npy`` uint8 (n, R, R, 3); ``<out_dir>/<split>/labels.npz`` with
    ``K`` (n, 3, 3) float32 pixels, ``joints`` (n, 21, 3) float32 and ``verts`` (n, V, 3) float32, metres,
    camera frame; ``<out_dir>/template.npz`` with ``verts`` (V, 3) float32 bind pose (template frame),
    ``faces`` (F, 3) int32, ``joints`` (21, 3) float32. Splits train/val/test; sample i of a split is
    drawn from ``default_rng([seed, split_id, i])``, so the files do not depend on ``cfg.workers``. Images are
    written into a memory-mapped temporary file and renamed when complete (atomic).

    Args:
        glb_path: the rigged hand (``right.glb``).
        gestures_path: the Ge et al. gestures (``handGestures.txt``): the pose prior (``cfg.p_gesture``) and the
            ``ge`` label convention; None: neither.
        out_dir: e.g. ``data/synth``.
        cfg: the settings: samples per split ``n_train``, ``n_val``, ``n_test`` (0 writes an empty split),
            processes ``workers`` (0 = ``os.cpu_count()``; 1 = in this process), and every sample's.
        seed: base seed.
        chunk: samples per task.
    Returns:
        {split: n} written.
    Raises:
        DataError: unreadable glb or gesture file. ValueError: label convention ``ge`` without gestures.
    """
    out_dir = Path(out_dir)
    gestures_path = str(gestures_path) if gestures_path else None
    hand = labelled_hand(glb_path, cfg.label_convention, gestures_path)
    articulator(hand, cfg, gestures_path)  # fail early on a bad gesture file
    R = cfg.render_size
    V = len(hand.verts)
    workers = cfg.workers or (os.cpu_count() or 1)
    sizes = {"train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test}
    from tqdm import tqdm

    save_npz(out_dir / "template.npz", verts=hand.verts.astype(np.float32), faces=hand.faces.astype(np.int32),
             joints=hand.joints21.astype(np.float32))
    load_photos()  # decode the background photographs once, before forking (the workers share them)
    pool = None
    if workers > 1 and sum(sizes.values()) > chunk:
        pool = mp.get_context("fork").Pool(workers, initializer=_init_worker,
                                           initargs=(str(glb_path), gestures_path, cfg, hand.label_offsets))
    else:
        _WORKER.update(hand=hand, cfg=cfg, gestures_path=gestures_path)
    try:
        with tqdm(total=sum(sizes.values()), desc="synthesize", unit="img") as bar:
            for split, n in sizes.items():
                sid = SPLITS[split]
                tasks = [(int(seed), sid, a, min(a + chunk, n)) for a in range(0, n, chunk)]
                K = np.zeros((n, 3, 3), np.float32)
                joints = np.zeros((n, 21, 3), np.float32)
                verts = np.zeros((n, V, 3), np.float32)
                if n == 0:  # a zero-length memory map cannot be created
                    save_npy(out_dir / split / "images.npy", np.zeros((0, R, R, 3), np.uint8))
                    save_npz(out_dir / split / "labels.npz", K=K, joints=joints, verts=verts)
                    continue
                with atomic_path(out_dir / split / "images.npy") as tmp:
                    images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, R, R, 3))
                    results = pool.imap_unordered(_render_chunk, tasks) if pool else map(_render_chunk, tasks)
                    for _, a, r in results:
                        b = a + len(r["image"])
                        images[a:b], K[a:b], joints[a:b], verts[a:b] = r["image"], r["K"], r["joints"], r["verts"]
                        bar.update(b - a)
                    images.flush()
                    del images
                save_npz(out_dir / split / "labels.npz", K=K, joints=joints, verts=verts)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return sizes
