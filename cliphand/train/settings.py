"""What one training run reads, typed and assembled in one place from ``params.yaml``'s groups.

A setting reaches its use in two hops: params.yaml → :class:`cliphand.config.Params` (checked) →
:class:`TrainRun` (this module) → read as a field by :func:`cliphand.train.loop.train`, its optimizer and its
steps. E.g. ``clip.batch_size`` is ``TrainRun.batch_size`` of a finetune, ``augment.photometric`` is
``TrainRun.augment.photometric``. No default is repeated here: every value comes from the checked params.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from cliphand.config import Augment, Loss, ModelSettings, NJoints, Params, Phase, PosFloat, PosInt, Seed
from cliphand.defaults import MODEL_SWITCHES


class TrainRun(Phase):
    """The settings of one training run (paper §4.2): the phase's group (``pretrain:`` or ``finetune:``: epochs,
    optimizer, schedule, validation) with the shared settings it needs. Built by :func:`train_run`; tests may
    build one directly.

    ``batch_size`` is the global batch B (pretrain: ``pretrain.batch_size``; finetune: ``clip.batch_size``, the
    CLIP loss's in-batch negatives); ``n_train`` the first n training samples (null: all); ``n_joints`` the
    prompts' N (finetune's text features); ``use_clip`` the CLIP loss on (``model.use_clip``).
    """

    phase: Literal["pretrain", "finetune"]
    batch_size: PosInt
    freeze_backbone: bool = False
    pretrained_lr_mult: PosFloat = 1.0
    n_train: PosInt | None = None
    seed: Seed
    device: str
    sync_batchnorm: bool
    input_size: PosInt
    depth_range: PosFloat
    augment: Augment
    loss: Loss
    use_clip: bool
    n_joints: NJoints


def train_run(p: Params, phase: Literal["pretrain", "finetune"], **overrides: Any) -> TrainRun:
    """The :class:`TrainRun` of ``phase`` under the settings ``p``, with ``overrides`` (an ablation row's
    ``epochs``, ``batch_size``, ``n_train``, ``n_joints``, ``freeze_backbone``, ``seed``, ``use_clip``) on top.

    Raises:
        pydantic.ValidationError: an override of the wrong type or range, or an unknown one.
    """
    group = getattr(p, phase).model_dump()
    values = {**group, "phase": phase, "seed": p.seed, "device": p.device,
              "sync_batchnorm": p.distributed.sync_batchnorm, "input_size": p.preprocess.input_size,
              "depth_range": p.preprocess.depth_range, "augment": p.augment, "loss": p.loss,
              "use_clip": p.model.use_clip, "n_joints": p.text.n_joints}
    if phase == "finetune":
        values["batch_size"] = p.clip.batch_size
    values.update(overrides)
    return TrainRun.model_validate(values)


def model_settings(p: Params, text_dim: int | None = None, switches: dict | None = None) -> ModelSettings:
    """The model's settings (:class:`cliphand.model.cliphand3d.CLIPHand3D`; stored in its checkpoints):
    ``model:`` with the input size S (``preprocess.input_size``), the text feature size Dt of the cached
    features, the CLIP temperature (``clip.temperature_init``, stored as its log) and an ablation row's module
    switches (:data:`cliphand.defaults.MODEL_SWITCHES`)."""
    update = {"input_size": p.preprocess.input_size, "logit_scale_init": math.log(p.clip.temperature_init),
              **{k: v for k, v in (switches or {}).items() if k in MODEL_SWITCHES}}
    if text_dim is not None:
        update["text_dim"] = int(text_dim)
    return ModelSettings.model_validate({**p.model.model_dump(), **update})
