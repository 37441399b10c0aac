"""The steps of the experiment, from settings (params.yaml) to files: pretrain, finetune (also used by
every ablation row), ablation rows over seeds and evaluation. The DVC stages in ``stages/`` call these with
the checked settings (:class:`cliphand.config.Params`) and the pipeline's files (:class:`cliphand.paths.Paths`);
the tests call them directly, e.g. for the paper profile. The data steps live beside their data:
:func:`cliphand.data.splits.prepare_all`, :func:`cliphand.text.cache.embed_splits`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from cliphand import distributed
from cliphand.config import Params
from cliphand.data.loader import PreparedSet
from cliphand.data.preprocess import read_meta
from cliphand.defaults import MODEL_SWITCHES
from cliphand.errors import DataError
from cliphand.evaluate.protocols import evaluate_split
from cliphand.hand.template import read_template
from cliphand.model.checkpoint import build_model, load_checkpoint, load_matching, load_weights, save_checkpoint
from cliphand.paths import Paths
from cliphand.train.loop import train
from cliphand.train.settings import model_settings, train_run

#: the development subset of the real photos: label ids divisible by this (issue 9: select recipes on it and
#: on the synthetic val split, never on the other real photos)
REAL_DEV_EVERY = 4


def validation_sets(paths: Paths, limit: int) -> dict[str, PreparedSet]:
    """Splits scored after every training epoch: ``val`` (the first ``limit`` samples of the synthetic
    validation split) and ``real_dev`` (the real photos whose label id is divisible by
    :data:`REAL_DEV_EVERY`, 100 of the 400) when ``data/prep/realworld`` exists."""
    sets = {"val": PreparedSet(paths.prep_split("val")).head(int(limit))}
    real = paths.prep_split("realworld")
    if (real / "labels.npz").is_file():
        rw = PreparedSet(real)
        sets["real_dev"] = rw.select(rw.labels["ids"] % REAL_DEV_EVERY == 0)
    return sets


def _save_final(out: Path, model, template: dict, meta: dict, work: Path) -> None:
    """Rank 0 writes the final checkpoint ``out`` and only then removes the resume file ``work``: a kill
    before that resumes from the last epoch (in a data-parallel run the other ranks write nothing)."""
    if distributed.world().main:
        save_checkpoint(out, model, template, meta)
        work.unlink(missing_ok=True)


def run_pretrain(p: Params, paths: Paths, out: Path, log=None) -> list[dict]:
    """Pretrain the visual encoder and joint regressor (paper §4.2) on ``data/prep/train`` and save ``out``."""
    template = read_template(paths.template)
    train_set = PreparedSet(paths.prep_split("train"))
    run = train_run(p, "pretrain")
    mcfg = model_settings(p)
    torch.manual_seed(run.seed)  # the initial weights follow the seed
    model = build_model(mcfg, template)
    work = out.with_suffix(".resume.pt")
    history = train(model, train_set, run, work_path=work,
                    val_sets=validation_sets(paths, run.val_limit), log=log)
    _save_final(out, model, template, {"phase": "pretrain", "history": history, "input_size": run.input_size,
                                             "depth_range": run.depth_range}, work)
    return history


def run_finetune(p: Params, paths: Paths, out: Path, overrides: dict | None = None, log=None,
                 validate: bool = True) -> list[dict]:
    """Fine-tune the full model end to end from the pretrained checkpoint and save ``out``.

    Args:
        overrides: an ablation row's settings: ``batch_size``, ``n_joints``, ``epochs``, ``n_train`` (the first
            n training samples; default ``finetune.n_train``, null = all), ``freeze_backbone``, ``seed`` and
            the model switches ``use_clip``, ``use_projection``, ``use_sparse_to_dense``.
        validate: score :func:`validation_sets` after every epoch (the ablation rows, scored on their
            evaluation splits afterwards, skip it).
    """
    overrides = dict(overrides or {})
    run = train_run(p, "finetune", **{k: v for k, v in overrides.items() if k not in MODEL_SWITCHES[1:]})
    pre = load_weights(paths.pretrain_model)
    template = pre["template"]
    train_set = PreparedSet(paths.prep_split("train"), paths.text_cache("train", run.n_joints), limit=run.n_train)
    mcfg = model_settings(p, text_dim=train_set.text.shape[3], switches=overrides)
    torch.manual_seed(run.seed)  # the weights not taken from pretraining follow the seed
    model = build_model(mcfg, template)
    load_matching(model, pre["model"])
    faces = torch.as_tensor(np.asarray(template["faces"]), dtype=torch.long)
    work = out.with_suffix(".resume.pt")
    history = train(model, train_set, run, work_path=work, faces=faces,
                    val_sets=validation_sets(paths, run.val_limit) if validate else None, log=log)
    _save_final(out, model, template, {"phase": "finetune", "history": history, "n_joints": run.n_joints,
                                             "input_size": run.input_size, "depth_range": run.depth_range}, work)
    return history


def run_evaluation(ckpt_path: Path, paths: Paths, data: str, text_split: str | None, p: Params,
                   n_joints: int | None = None, rotations: Sequence[float] | None = None) -> tuple[dict, dict]:
    """Evaluate a checkpoint on ``data/prep/<data>`` (with the cached text of ``text_split`` for retrieval)
    under the split's protocol (:func:`cliphand.evaluate.protocols.evaluate_split`), with the test-time rotation
    offsets ``rotations`` (None: ``evaluate.test_rotations_deg``; the ablations pass ``()``, one forward pass).

    Raises:
        DataError: the text cache of ``text_split`` is missing.
    """
    model, ckpt = load_checkpoint(ckpt_path)
    meta = ckpt["meta"]
    n = int(n_joints or meta.get("n_joints", p.text.n_joints))
    tp = paths.text_cache(text_split, n) if text_split else None
    if tp is not None and not tp.exists():
        raise DataError(f"{tp}: text cache for retrieval not found (run embed_text)")
    dataset = PreparedSet(paths.prep_split(data), tp)
    protocol = read_meta(paths.prep_split(data)).get("protocol", "freihand")
    return evaluate_split(model, dataset, int(meta["input_size"]), float(meta["depth_range"]), p.evaluate.batch_size,
                          p.evaluate.retrieval_batch_sizes, protocol=protocol, device=p.device,
                          rotations=p.evaluate.test_rotations_deg if rotations is None else rotations)


def seed_summary(per_seed: list[dict]) -> tuple[dict, dict]:
    """Mean and sample standard deviation (ddof=1; 0 with one seed) of every numeric metric over seeds.

    Args:
        per_seed: one ``{split: {metric: value}}`` dict per seed (same keys in each).
    Returns:
        (mean, std): dicts of the same nesting (``split -> metric -> float``); nested dicts such as
        ``retrieval`` are averaged key by key; non-numeric entries are taken from the first seed.
    """
    def walk(items: list):
        first = items[0]
        if isinstance(first, dict):
            pairs = {k: walk([it[k] for it in items]) for k in first if all(k in it for it in items)}
            return ({k: v[0] for k, v in pairs.items()},
                    {k: v[1] for k, v in pairs.items() if v[1] is not None and v[1] != {}})
        if isinstance(first, (int, float)) and not isinstance(first, bool):
            arr = np.asarray(items, np.float64)
            return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
        return first, None

    return walk(per_seed)


def run_ablation_row(p: Params, paths: Paths, row: str, out_dir: Path, log=None) -> dict:
    """One ablation row (paper Tables 3-5) over its seeds: finetune from ``data/models/pretrain.pt`` with the
    row's settings and evaluate on ``ablate.eval_on`` with one forward pass per image (no test-time rotation:
    the rows compare training settings, under the paper's protocol).

    Settings: ``ablate.{epochs, batch_size, n_joints, n_train, freeze_backbone}`` overridden by
    ``ablate.runs.<row>``; seeds: the row's ``seeds`` or ``ablate.seeds``.

    Returns:
        the metrics dict: ``settings``, ``seeds``, ``train_seconds``, per split the mean over seeds
        (``<split>``: metric -> mean), ``std`` (split -> metric -> sample std, ddof=1) and ``per_seed``
        (seed -> split -> metrics). Checkpoints: ``out_dir/seed<k>.pt``.
    """
    ab = p.ablate
    row_settings = ab.runs[row].model_dump(exclude_unset=True) if ab.runs[row] is not None else {}
    settings = {"epochs": ab.epochs, "batch_size": ab.batch_size, "n_joints": ab.n_joints, "n_train": ab.n_train,
                "freeze_backbone": ab.freeze_backbone, **row_settings}
    seeds = [int(s) for s in settings.pop("seeds", None) or ab.seeds]
    text_of = {"val": "val", "test": "test"}
    same_n = int(settings["n_joints"]) == p.text.n_joints
    per_seed, seconds = {}, 0.0
    for seed in seeds:
        out = Path(out_dir) / f"seed{seed}.pt"
        history = run_finetune(p, paths, out, overrides={**settings, "seed": seed}, log=log, validate=False)
        seconds += sum(h["seconds"] for h in history)
        per_seed[str(seed)] = {data: run_evaluation(out, paths, data, text_of.get(data) if same_n else None, p,
                                                rotations=())[0]
                               for data in ab.eval_on}
    mean, std = seed_summary(list(per_seed.values()))
    return {"settings": settings, "seeds": seeds, "train_seconds": seconds, **mean, "std": std,
            "per_seed": per_seed}
