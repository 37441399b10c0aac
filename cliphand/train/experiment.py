"""The steps of the experiment, from settings (params.yaml) to files: pretrain, finetune (also used by
every ablation row), ablation rows over seeds and evaluation. The DVC stages in ``stages/`` only call
these (and the tests call them directly, e.g. for the paper profile). The data steps live beside their
data: :func:`cliphand.data.splits.prepare_all`, :func:`cliphand.text.cache.embed_splits`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from cliphand import distributed
from cliphand.model.checkpoint import build_model, load_checkpoint, load_weights, save_checkpoint
from cliphand.hand.template import read_template
from cliphand.paths import resolve_path
from cliphand.data.loader import PreparedSet
from cliphand.data.preprocess import read_meta
from cliphand.defaults import MODEL_SWITCHES
from cliphand.errors import DataError
from cliphand.evaluate.protocols import evaluate_split
from cliphand.train.loop import train

def prep_dir(root: Path, name: str) -> Path:
    """``data/prep/<name>``."""
    return resolve_path(f"data/prep/{name}", root)


def text_path(root: Path, split: str, n_joints: int) -> Path:
    """``data/text/<split>_n<N>.npz`` (split: train, val, test)."""
    return resolve_path(f"data/text/{split}_n{int(n_joints)}.npz", root)


def phase_cfg(params: dict, phase: str, overrides: dict | None = None) -> dict:
    """Settings of one training run: the phase's own block plus the shared ones it needs."""
    cfg = dict(params[phase])
    cfg.update(seed=params.get("seed", 0), device=params.get("device", "cpu"), augment=params.get("augment", {}),
               sync_batchnorm=params.get("distributed", {}).get("sync_batchnorm", True),
               loss=params.get("loss", {}),
               input_size=params["preprocess"]["input_size"], depth_range=params["preprocess"]["depth_range"])
    if phase == "finetune":
        cfg["batch_size"] = params["clip"]["batch_size"]
        cfg["use_clip"] = params["model"].get("use_clip", True)
    cfg.update(overrides or {})
    return cfg


def model_cfg(params: dict, text_shape: tuple[int, int] | None = None, overrides: dict | None = None) -> dict:
    """Model settings: ``params['model']`` + the input size + the text feature size Dt + the CLIP
    temperature (``clip.temperature_init``, stored as its log) + ablation switches."""
    cfg = dict(params["model"])
    cfg["input_size"] = int(params["preprocess"]["input_size"])
    cfg["logit_scale_init"] = math.log(float(params["clip"]["temperature_init"]))
    if text_shape is not None:
        cfg["text_dim"] = int(text_shape[1])
    for key in MODEL_SWITCHES:
        if overrides and key in overrides:
            cfg[key] = overrides[key]
    return cfg


#: the development subset of the real photos: label ids divisible by this (issue 9: select recipes on it and
#: on the synthetic val split, never on the other real photos)
REAL_DEV_EVERY = 4


def validation_sets(params: dict, root: Path, limit: int) -> dict[str, PreparedSet]:
    """Splits scored after every training epoch: ``val`` (the first ``limit`` samples of the synthetic
    validation split) and ``real_dev`` (the real photos whose label id is divisible by
    :data:`REAL_DEV_EVERY`, 100 of the 400) when ``data/prep/realworld`` exists."""
    sets = {"val": PreparedSet(prep_dir(root, "val")).head(int(limit))}
    real = prep_dir(root, "realworld")
    if (real / "labels.npz").is_file():
        rw = PreparedSet(real)
        sets["real_dev"] = rw.select(rw.labels["ids"] % REAL_DEV_EVERY == 0)
    return sets


def run_pretrain(params: dict, root: Path, out: Path, log=None) -> list[dict]:
    """Pretrain the visual encoder and joint regressor (paper §4.2) and save ``out``."""
    template = read_template(resolve_path("data/prep/template.npz", root))
    train_set = PreparedSet(prep_dir(root, "train"))
    cfg = phase_cfg(params, "pretrain")
    mcfg = model_cfg(params)
    torch.manual_seed(int(cfg["seed"]))  # the initial weights follow the seed
    model = build_model(mcfg, template)
    work = out.with_suffix(".resume.pt")
    history = train(model, train_set, cfg, phase="pretrain", work_path=work, model_cfg=mcfg,
                    val_sets=validation_sets(params, root, cfg["val_limit"]), log=log)
    if distributed.world().main:  # in a data-parallel run, rank 0 writes
        save_checkpoint(out, model, mcfg, template, {"phase": "pretrain", "history": history,
                                                     "input_size": cfg["input_size"], "depth_range": cfg["depth_range"]})
        work.unlink(missing_ok=True)  # only now: a kill before this line resumes from the last epoch
    return history


def run_finetune(params: dict, root: Path, out: Path, overrides: dict | None = None, log=None,
                 validate: bool = True) -> list[dict]:
    """Fine-tune the full model end to end from the pretrained checkpoint and save ``out``.

    Args:
        overrides: ablation settings: ``batch_size``, ``n_joints``, ``epochs``, ``n_train`` (use the first
            n training samples; default ``finetune.n_train``, null = all), ``freeze_backbone``, ``seed`` and
            the model switches ``use_clip``, ``use_projection``, ``use_sparse_to_dense``.
        validate: score :func:`validation_sets` after every epoch (the ablation rows, scored on their
            evaluation splits afterwards, skip it).
    """
    overrides = dict(overrides or {})
    n_joints = int(overrides.pop("n_joints", params["text"]["n_joints"]))
    n_train = overrides.pop("n_train", params["finetune"].get("n_train"))
    pre = resolve_path("data/models/pretrain.pt", root)
    _, pre_ckpt = load_checkpoint(pre)
    template = pre_ckpt["template"]
    train_set = PreparedSet(prep_dir(root, "train"), text_path(root, "train", n_joints), limit=n_train)
    mcfg = model_cfg(params, train_set.text.shape[2:], overrides)
    cfg = phase_cfg(params, "finetune", {k: v for k, v in overrides.items() if k not in MODEL_SWITCHES[1:]})
    cfg["n_joints"] = n_joints
    torch.manual_seed(int(cfg["seed"]))  # the weights not taken from pretraining follow the seed
    model = build_model(mcfg, template)
    state = load_weights(pre)["model"]
    own = model.state_dict()
    model.load_state_dict({k: v for k, v in state.items() if k in own and own[k].shape == v.shape}, strict=False)
    faces = torch.as_tensor(np.asarray(template["faces"]), dtype=torch.long)
    work = out.with_suffix(".resume.pt")
    history = train(model, train_set, cfg, phase="finetune", work_path=work, faces=faces, model_cfg=mcfg,
                    val_sets=validation_sets(params, root, cfg["val_limit"]) if validate else None, log=log)
    if distributed.world().main:  # in a data-parallel run, rank 0 writes
        save_checkpoint(out, model, mcfg, template, {"phase": "finetune", "history": history, "n_joints": n_joints,
                                                     "input_size": cfg["input_size"], "depth_range": cfg["depth_range"]})
        work.unlink(missing_ok=True)  # only now: a kill before this line resumes from the last epoch
    return history


def run_evaluation(ckpt_path: Path, root: Path, data: str, text_split: str | None, params: dict,
                   n_joints: int | None = None) -> tuple[dict, dict]:
    """Evaluate a checkpoint on ``data/prep/<data>`` (with cached text of ``text_split`` for retrieval)."""
    model, ckpt = load_checkpoint(ckpt_path)
    meta = ckpt["meta"]
    n = int(n_joints or meta.get("n_joints", params["text"]["n_joints"]))
    tp = text_path(root, text_split, n) if text_split else None
    if tp is not None and not tp.exists():
        raise DataError(f"{tp}: text cache for retrieval not found (run embed_text)")
    dataset = PreparedSet(prep_dir(root, data), tp)
    ev = params.get("evaluate", {})
    protocol = read_meta(prep_dir(root, data)).get("protocol", "freihand")
    return evaluate_split(model, dataset, int(meta["input_size"]), float(meta["depth_range"]),
                          int(ev.get("batch_size", 64)), ev.get("retrieval_batch_sizes", (16, 32, 64, 128, 256)),
                          protocol=protocol, device=params.get("device", "cpu"))



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


def run_ablation_row(params: dict, root: Path, row: str, out_dir: Path, log=None) -> dict:
    """One ablation row (paper Tables 3-5) over its seeds: finetune from ``data/models/pretrain.pt`` with the
    row's settings and evaluate on ``ablate.eval_on``.

    Settings: ``ablate.{epochs, batch_size, n_joints, n_train}`` overridden by ``ablate.runs.<row>``;
    seeds: the row's ``seeds`` or ``ablate.seeds`` (default ``[params.seed]``).

    Returns:
        the metrics dict: ``settings``, ``seeds``, ``train_seconds``, per split the mean over seeds
        (``<split>``: metric -> mean), ``std`` (split -> metric -> sample std, ddof=1) and ``per_seed``
        (seed -> split -> metrics). Checkpoints: ``out_dir/seed<k>.pt``.
    """
    ab = params["ablate"]
    settings = {"epochs": ab["epochs"], "batch_size": ab["batch_size"], "n_joints": ab["n_joints"],
                "n_train": ab["n_train"], "freeze_backbone": bool(ab.get("freeze_backbone", False)),
                **(ab["runs"][row] or {})}
    seeds = [int(s) for s in settings.pop("seeds", None) or ab.get("seeds") or [params.get("seed", 0)]]
    text_of = {"val": "val", "test": "test"}
    same_n = int(settings["n_joints"]) == int(params["text"]["n_joints"])
    per_seed, seconds = {}, 0.0
    for seed in seeds:
        out = Path(out_dir) / f"seed{seed}.pt"
        history = run_finetune(params, root, out, overrides={**settings, "seed": seed}, log=log, validate=False)
        seconds += sum(h["seconds"] for h in history)
        per_seed[str(seed)] = {data: run_evaluation(out, root, data, text_of.get(data) if same_n else None, params)[0]
                               for data in ab["eval_on"]}
    mean, std = seed_summary(list(per_seed.values()))
    return {"settings": settings, "seeds": seeds, "train_seconds": seconds, **mean, "std": std,
            "per_seed": per_seed}
