"""The steps of the experiment, from settings (params.yaml) to files: pretrain, finetune (also used by
every ablation row) and evaluation. The DVC stages in ``stages/`` only call these.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from .checkpoint import build_model, load_checkpoint, read_template, save_checkpoint
from .config import resolve_path
from .data.loader import PreparedSet
from .errors import DataError
from .evaluation import evaluate_split
from .training import train

ABLATION_SWITCHES = ("use_clip", "use_projection", "use_sparse_to_dense")


def prep_dir(root: Path, name: str) -> Path:
    """``data/prep/<name>``."""
    return resolve_path(f"data/prep/{name}", root)


def text_path(root: Path, split: str, n_joints: int) -> Path:
    """``data/text/<split>_n<N>.npz`` (split: train, val, test)."""
    return resolve_path(f"data/text/{split}_n{int(n_joints)}.npz", root)


def phase_cfg(params: dict, phase: str, overrides: dict | None = None) -> dict:
    """Settings of one training run: the phase's own block plus the shared ones it needs."""
    cfg = dict(params[phase])
    cfg.update(seed=params.get("seed", 0), augment=params.get("augment", {}), loss=params.get("loss", {}),
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
    for key in ABLATION_SWITCHES:
        if overrides and key in overrides:
            cfg[key] = overrides[key]
    return cfg


def run_pretrain(params: dict, root: Path, out: Path, log=None) -> list[dict]:
    """Pretrain the visual encoder and joint regressor (paper §4.2) and save ``out``."""
    template = read_template(resolve_path("data/synth/template.npz", root))
    train_set = PreparedSet(prep_dir(root, "synth_train"))
    val_set = PreparedSet(prep_dir(root, "synth_val"))
    cfg = phase_cfg(params, "pretrain")
    mcfg = model_cfg(params)
    model = build_model(mcfg, template)
    history = train(model, train_set, cfg, phase="pretrain", work_path=out.with_suffix(".resume.pt"),
                    val_set=val_set, log=log)
    save_checkpoint(out, model, mcfg, template, {"phase": "pretrain", "history": history,
                                                 "input_size": cfg["input_size"], "depth_range": cfg["depth_range"]})
    return history


def run_finetune(params: dict, root: Path, out: Path, overrides: dict | None = None, log=None) -> list[dict]:
    """Fine-tune the full model end to end from the pretrained checkpoint and save ``out``.

    Args:
        overrides: ablation settings: ``batch_size``, ``n_joints``, ``epochs``, ``n_train`` (use the first
            n training samples) and the model switches ``use_clip``, ``use_projection``,
            ``use_sparse_to_dense``.
    """
    overrides = dict(overrides or {})
    n_joints = int(overrides.pop("n_joints", params["text"]["n_joints"]))
    n_train = overrides.pop("n_train", None)
    pre = resolve_path("data/models/pretrain.pt", root)
    _, pre_ckpt = load_checkpoint(pre)
    template = pre_ckpt["template"]
    train_set = PreparedSet(prep_dir(root, "synth_train"), text_path(root, "train", n_joints), limit=n_train)
    val_set = PreparedSet(prep_dir(root, "synth_val"))
    mcfg = model_cfg(params, train_set.text.shape[2:], overrides)
    cfg = phase_cfg(params, "finetune", {k: v for k, v in overrides.items() if k not in ABLATION_SWITCHES[1:]})
    cfg["n_joints"] = n_joints
    model = build_model(mcfg, template)
    state = torch.load(pre, map_location="cpu", weights_only=False)["model"]
    own = model.state_dict()
    model.load_state_dict({k: v for k, v in state.items() if k in own and own[k].shape == v.shape}, strict=False)
    faces = torch.as_tensor(np.asarray(template["faces"]), dtype=torch.long)
    history = train(model, train_set, cfg, phase="finetune", work_path=out.with_suffix(".resume.pt"), faces=faces,
                    val_set=val_set, log=log)
    save_checkpoint(out, model, mcfg, template, {"phase": "finetune", "history": history, "n_joints": n_joints,
                                                 "input_size": cfg["input_size"], "depth_range": cfg["depth_range"]})
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
    return evaluate_split(model, dataset, int(meta["input_size"]), float(meta["depth_range"]),
                          int(ev.get("batch_size", 64)), ev.get("retrieval_batch_sizes", (16, 32, 64, 128, 256)))

