"""Which dataset split goes where: the training source's splits and the external benchmarks.

Prepared splits (``data/prep/<name>``, written by the preprocess stage):

- ``train``, ``val``, ``test``: the training source chosen by ``data.train``:
  ``synth`` (default, the rendered WebXR hand: ``data/synth/{train,val,test}``) or ``freihand``
  (FreiHAND v2 in its release layout under ``data.freihand.root``: training minus a held-out
  ``val_fraction`` of its label ids → ``train``; those ids, all colour versions → ``val``;
  the 3,960-image evaluation set → ``test``).
- external benchmarks, each read only when an ``evaluate.benchmarks`` entry or ``ablate.eval_on``
  names it: ``realworld`` (Ge et al. CVPR 2019, ``download.realworld`` → ``data/raw/realworld``),
  ``rhd_eval`` (RHD evaluation set, ``data.rhd.root``), ``stb_eval`` (STB-SK B1, ``data.stb.root``).

Each split is scored under its source's protocol (``meta.json`` → ``protocol``; see
:mod:`cliphand.evaluate.protocols`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from cliphand.config import Params
from cliphand.defaults import EXTERNAL, TRAIN_SPLITS
from cliphand.errors import DataError
from cliphand.paths import Paths
from cliphand.data.preprocess import write_split
from cliphand.data.readers.sources import HandSamples
from cliphand.data.templates import write_template



def _root(p: Params, key: str, paths: Paths) -> Path:
    """The release folder of dataset ``key`` (``data.<key>.root``). Raises DataError when unset or not a folder."""
    root = getattr(p.data, key).root
    if not root:
        raise DataError(f"params.yaml: data.{key}.root is not set; point it at your {key.upper()} folder "
                        f"(the dataset cannot be shipped with cliphand)")
    path = paths.resolve(root)
    if not path.is_dir():
        raise DataError(f"{path}: data.{key}.root is not a folder")
    return path


def synth_split(src: Path, split: str) -> HandSamples:
    """A synthesize-stage split (the folder ``src``: images.npy, labels.npz) as :class:`HandSamples`
    (protocol ``freihand``). Raises DataError when its labels are missing."""
    labels_path = src / "labels.npz"
    if not labels_path.is_file():
        raise DataError(f"{labels_path}: file is missing (run the synthesize stage)")
    images = np.load(src / "images.npy", mmap_mode="r")
    with np.load(labels_path) as z:
        labels = {k: z[k] for k in z.files}
    return HandSamples(name=f"synth_{split}", images=images, K=labels["K"], joints=labels["joints"],
                       ids=np.arange(len(images)), verts=labels["verts"], protocol="freihand")


def load_split(name: str, p: Params, paths: Paths) -> HandSamples:
    """Read one split in its original layout.

    Args:
        name: ``train`` | ``val`` | ``test`` (of ``data.train``) or one of :data:`EXTERNAL`.
        p: the settings (``data``). paths: the pipeline's files (the synthetic renders, the raw real photos).
    Raises:
        DataError: unknown name, an unset dataset root, or the reader's own errors.
    """
    if name in TRAIN_SPLITS:
        if p.data.train == "synth":
            return synth_split(paths.synth_split(name), name)
        from cliphand.data.readers.freihand import load_freihand

        fh = p.data.freihand
        split = {"train": "train", "val": "val", "test": "evaluation"}[name]
        return load_freihand(_root(p, "freihand", paths), split, versions=tuple(fh.versions),
                             val_fraction=fh.val_fraction)
    if name == "realworld":
        from cliphand.data.readers.realworld import load_realworld

        real = load_realworld(paths.realworld_raw, mirror=True)
        n, side = len(real["ids"]), real["images"].shape[1]
        # the dataset's own crops (the whole 256 x 256 image), never a box from the ground-truth joints
        return HandSamples(name="realworld", images=real["images"], K=real["K"], joints=real["joints"],
                           ids=real["ids"], mirrored=np.ones(n, bool), protocol="realworld",
                           boxes=np.tile(np.array([0.0, 0.0, side]), (n, 1)))
    if name == "rhd_eval":
        from cliphand.data.readers.rhd import load_rhd

        return load_rhd(_root(p, "rhd", paths), "evaluation")
    if name == "stb_eval":
        from cliphand.data.readers.stb import load_stb

        return load_stb(_root(p, "stb", paths), "test")
    raise DataError(f"unknown data split {name!r}; expected one of {TRAIN_SPLITS + EXTERNAL}")


def splits_to_prepare(p: Params) -> list[str]:
    """``train``, ``val``, ``test`` and every external split that a benchmark or an ablation row reads (the
    schema allows only known names)."""
    wanted = [b.data for b in p.evaluate.benchmarks.values()] + list(p.ablate.eval_on)
    return list(TRAIN_SPLITS) + [e for e in EXTERNAL if e in wanted]


def prepare_all(p: Params, paths: Paths) -> dict:
    """Prepare every split the settings name (:func:`splits_to_prepare`) into ``data/prep/<split>`` and the
    template mesh into ``data/prep/template.npz``.

    Returns:
        summary: ``samples`` and ``protocols`` per split, ``template``, ``images_per_s``, ``splits`` (meta).
    Raises:
        DataError: an unset dataset root, a missing or malformed file (the message names it).
    """
    pp = p.preprocess
    template = write_template(p.data, paths, paths.template)
    counts, protocols, meta = {}, {}, {}
    t0 = time.perf_counter()
    for name in splits_to_prepare(p):
        info = write_split(paths.prep_split(name), load_split(name, p, paths), pp.input_size, pp.depth_range, pp.pad)
        counts[name], protocols[name], meta[name] = info["n"], info["protocol"], info
    return {"samples": counts, "protocols": protocols, "template": template,
            "images_per_s": round(sum(counts.values()) / max(1e-9, time.perf_counter() - t0), 1), "splits": meta}
