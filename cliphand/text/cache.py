"""Text-feature cache of the embed_text stage: data/text/<split>_n<N>.npz (paper §3.1).

The text encoder is frozen, so the three prompts of every sample are encoded once and stored:

- ``feats``   float16 (n, 3, L, D): encoder features of the x, y, z prompts (L = 1 pooled, N + 1 joints);
- ``orders``  int16 (n, 3, N): joint indices (0..20) in ascending order along x, y, z;
- ``subsets`` int16 (n, N): the sample's N joints, ascending index order;
- ``prompts`` str (n, 3): the prompts themselves;
- ``fingerprint`` str: the encoder's ``fingerprint()``; ``template`` str; ``seed``, ``n_joints`` int.

The prompts of sample i depend only on (seed, i, joints[i]) (``prompts.sample_prompts``), so a
cache is reproducible and any sample can be recomputed alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cliphand.config import Params
from cliphand.paths import Paths
from cliphand.errors import DataError
from cliphand.io import save_npz
from cliphand.text import prompts as P
from cliphand.text.encoders import build_encoder

KEYS = ("feats", "orders", "subsets", "prompts", "fingerprint", "template", "seed", "n_joints")


def build_text_cache(joints: np.ndarray, n_joints: int, seed: int, encoder, prompt_cfg: dict | None = None,
                     batch_size: int = 192, progress: bool = True) -> dict:
    """Build and encode the per-axis prompts of every sample.

    Args:
        joints: (n, 21, 3) camera-frame joints, metres (x right, y down, z forward).
        n_joints: N joints per prompt (1..21; 21 = all, the paper's default).
        seed: prompt seed; sample i uses ``np.random.default_rng([seed, i])`` for its subset.
        encoder: a text encoder (``cliphand.text.encoders``).
        prompt_cfg: {'template': 'auto' | 'paper' | 'short'} ('auto' = the encoder's default).
        batch_size: prompts per ``encoder.encode`` call (the encoder batches further inside).
        progress: show a tqdm bar.
    Returns dict with the keys of the module docstring (feats float16 (n, 3, L, D)).
    Raises DataError on a wrong joints shape or non-finite joints; ValueError if a prompt would be
    truncated by the encoder's tokenizer.
    """
    joints = np.asarray(joints, dtype=np.float32)
    if joints.ndim != 3 or joints.shape[1:] != (21, 3) or len(joints) == 0:
        raise DataError(f"text cache: joints must have shape (n>0, 21, 3), got {joints.shape}")
    bad = np.where(~np.isfinite(joints).all(axis=(1, 2)))[0]
    if len(bad):
        raise DataError(f"text cache: joints of samples {bad[:10].tolist()} are not finite")
    template = P.resolve_template((prompt_cfg or {}).get("template", "auto"), encoder.name)
    n = len(joints)
    prompts = np.empty((n, 3), dtype=object)
    orders = np.empty((n, 3, n_joints), dtype=np.int16)
    subsets = np.empty((n, n_joints), dtype=np.int16)
    for i in range(n):
        p, o, s = P.sample_prompts(joints[i], n_joints, seed, i, template)
        prompts[i], orders[i], subsets[i] = p, o, s
    flat = prompts.reshape(-1).tolist()
    P.check_token_budget(flat, encoder)  # fail before any encoding
    L = encoder.tokens_per_prompt(n_joints)
    feats = np.empty((n * 3, L, encoder.dim), dtype=np.float16)
    with tqdm(total=len(flat), desc=f"encode prompts ({encoder.name})", unit="prompt", disable=not progress) as bar:
        for b in range(0, len(flat), batch_size):
            chunk = flat[b:b + batch_size]
            feats[b:b + len(chunk)] = encoder.encode(chunk)
            bar.update(len(chunk))
    return {"feats": feats.reshape(n, 3, L, encoder.dim), "orders": orders, "subsets": subsets,
            "prompts": prompts.astype(str), "fingerprint": encoder.fingerprint(), "template": template.name,
            "seed": int(seed), "n_joints": int(n_joints)}


def save_text_cache(path: str | os.PathLike, cache: dict) -> None:
    """Write a cache from ``build_text_cache`` to ``path`` (.npz, atomic, no pickled objects)."""
    missing = [k for k in KEYS if k not in cache]
    if missing:
        raise ValueError(f"text cache for {path} lacks keys {missing}")
    save_npz(path, feats=np.asarray(cache["feats"], dtype=np.float16),
             orders=np.asarray(cache["orders"], dtype=np.int16), subsets=np.asarray(cache["subsets"], dtype=np.int16),
             prompts=np.asarray(cache["prompts"]).astype(str), fingerprint=np.asarray(str(cache["fingerprint"])),
             template=np.asarray(str(cache["template"])), seed=np.asarray(int(cache["seed"])),
             n_joints=np.asarray(int(cache["n_joints"])))


def load_text_cache(path: str | os.PathLike, expected_n: int | None = None,
                    expected_fingerprint: str | None = None) -> dict:
    """Read and validate a text cache.

    Args:
        path: the .npz written by ``save_text_cache``.
        expected_n: number of samples it must hold (e.g. the split's image count), or None.
        expected_fingerprint: the encoder fingerprint it must have been made with, or None.
    Returns dict: feats float16 (n, 3, L, D), orders int16 (n, 3, N), subsets int16 (n, N),
    prompts str (n, 3), fingerprint / template str, seed / n_joints int.
    Raises DataError naming the file if it is missing, unreadable, lacks a key, has inconsistent
    shapes, joint indices outside 0..20, orders that are not permutations of the subsets, or does not
    match ``expected_n`` / ``expected_fingerprint``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"text cache {path} does not exist (run the embed_text stage)")
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - any unreadable file is a data error
        raise DataError(f"text cache {path} cannot be read: {type(e).__name__}: {e}") from e
    missing = [k for k in KEYS if k not in d]
    if missing:
        raise DataError(f"text cache {path} lacks arrays {missing}")

    def bad(msg):
        return DataError(f"text cache {path}: {msg}")

    feats, orders, subsets, prompts = d["feats"], d["orders"], d["subsets"], d["prompts"]
    N = int(d["n_joints"])
    if feats.ndim != 4 or feats.shape[1] != 3:
        raise bad(f"feats must have shape (n, 3, L, D), got {feats.shape}")
    n = feats.shape[0]
    if orders.shape != (n, 3, N):
        raise bad(f"orders must have shape {(n, 3, N)}, got {orders.shape}")
    if subsets.shape != (n, N):
        raise bad(f"subsets must have shape {(n, N)}, got {subsets.shape}")
    if prompts.shape != (n, 3):
        raise bad(f"prompts must have shape {(n, 3)}, got {prompts.shape}")
    if feats.shape[2] not in (1, N + 1):
        raise bad(f"feats has L = {feats.shape[2]} tokens per prompt; expected 1 (pooled) or N + 1 = {N + 1}")
    if n and (orders.min() < 0 or orders.max() > 20):
        raise bad("orders hold joint indices outside 0..20")
    if n and not np.array_equal(np.sort(orders, axis=2), np.broadcast_to(np.sort(subsets, axis=1)[:, None], orders.shape)):
        raise bad("orders are not permutations of the sample's joint subset")
    if not np.isfinite(feats).all():
        raise bad("feats contain non-finite values")
    if expected_n is not None and n != expected_n:
        raise bad(f"holds {n} samples, expected {expected_n} (stale cache? re-run embed_text)")
    fp = str(d["fingerprint"])
    if expected_fingerprint is not None and fp != expected_fingerprint:
        raise bad(f"made with encoder {fp!r}, expected {expected_fingerprint!r} (re-run embed_text)")
    return {"feats": feats, "orders": orders, "subsets": subsets, "prompts": prompts, "fingerprint": fp,
            "template": str(d["template"]), "seed": int(d["seed"]), "n_joints": N}


def embed_splits(p: Params, paths: Paths) -> dict:
    """Encode the per-axis joint-order prompts (paper §3.1) of the train/val/test splits once with the frozen
    text encoder → ``data/text/<split>_n<N>.npz``.

    Prompts follow the camera-frame pose of the prepared sample, which is the pose of training view a
    (photometric augmentation only), so the cache stays valid under augmentation (cliphand.data.augment).
    Train caches are built for every N the pipeline uses (``text.n_joints`` and the ablation rows) and only for
    the samples that are finetuned on (the first ``finetune.n_train`` / ``ablate.n_train``; pretraining uses no
    text); val/test caches for ``text.n_joints``.
    """
    text, ab = p.text, p.ablate
    main_n = text.n_joints
    ns = sorted({main_n, ab.n_joints} | {r.n_joints for r in ab.runs.values() if r is not None and r.n_joints})
    encoder = build_encoder(text)
    # the train caches cover only what is finetuned on: the first finetune.n_train samples (pretraining needs
    # no text), the first ablate.n_train for the ablation-only N values
    ft_n, ab_n = p.finetune.n_train, ab.n_train
    main_limit = None if ft_n is None or ab_n is None else max(ft_n, ab_n)
    jobs = [("train", n, main_limit if n == main_n else ab_n) for n in ns] + [("val", main_n, None),
                                                                              ("test", main_n, None)]
    metrics = {"encoder": encoder.fingerprint(), "n_values": ns}
    for split, n, limit in jobs:
        joints = np.load(paths.prep_split(split) / "labels.npz")["joints"][:limit]
        cache = build_text_cache(joints, n, p.seed, encoder, {"template": text.template}, batch_size=text.batch_size)
        save_text_cache(paths.text_cache(split, n), cache)
        metrics[f"{split}_n{n}"] = {"samples": int(len(cache["prompts"])), "feature_shape": list(cache["feats"].shape[2:])}
    return metrics
