"""The schema of ``params.yaml`` (and of every profile merged over it): types, ranges, enumerations and the
rules between settings, checked before any stage does work (:func:`validate`, called by every stage's
:func:`cliphand.pipeline.stage.stage_context` and by ``cliphand profile``).

A wrong value fails at once with the key, the value and what is allowed, e.g.::

    params.yaml: pretrain.batch_size = -4: Input should be greater than 0

instead of training zero steps, a ZeroDivisionError, or an unknown backbone found only at pretrain after
the data stages ran. The groups whose keys are fixed forbid unknown keys (a typo is an error, not a
silently ignored setting); ``synth`` accepts exactly the keys of :data:`cliphand.defaults.SYNTH_DEFAULTS`,
each of the default's type. Built on pydantic (declared dependency; MLflow and DVC use it too).

The checked settings are typed (:class:`Params`, one model per group) and travel as such: a stage gets them
from :func:`cliphand.pipeline.stage.stage_context` and passes them (or one group) to the library, which reads
fields, never ``dict.get`` with a default of its own.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cliphand.defaults import BACKBONES, EXTERNAL, SYNTH_DEFAULTS, TRAIN_SPLITS
from cliphand.errors import DataError

PosInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
PosFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Prob = Annotated[float, Field(ge=0, le=1)]
Fraction = Annotated[float, Field(gt=0, le=1)]
NJoints = Annotated[int, Field(ge=1, le=21)]
Seed = Annotated[int, Field(ge=0)]

#: what a benchmark or an ablation row may be scored on (cliphand.data.splits; 'train' is not scored)
DATA_SPLITS = tuple(s for s in TRAIN_SPLITS if s != "train") + EXTERNAL


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Phase(_Strict):
    """``pretrain`` / ``finetune``: one training run (cliphand/train/loop.py)."""

    epochs: PosInt
    lr: PosFloat
    weight_decay: NonNegFloat
    schedule: Literal["cosine", "step"]
    warmup_steps: NonNegInt
    lr_decay: Fraction
    decay_every: Fraction
    val_limit: PosInt
    amp: bool
    max_steps_per_epoch: PosInt | None = None


class Pretrain(Phase):
    batch_size: PosInt


class Finetune(Phase):
    n_train: PosInt | None
    freeze_backbone: bool = False
    pretrained_lr_mult: PosFloat = 1.0


class Preprocess(_Strict):
    input_size: Annotated[int, Field(ge=32, multiple_of=32)]
    pad: Annotated[float, Field(ge=1.0)]
    depth_range: PosFloat


class Clip(_Strict):
    batch_size: Annotated[int, Field(ge=2)]           # in-batch negatives need two samples at least
    temperature_init: Annotated[float, Field(ge=1.0, le=100.0)]


class Loss(_Strict):
    alpha1: NonNegFloat
    alpha2: NonNegFloat
    alpha3: NonNegFloat
    alpha4: NonNegFloat
    lixel: NonNegFloat
    lixel_sigma: PosFloat


class Augment(_Strict):
    rotation_deg: Annotated[float, Field(ge=0, le=180)]
    scale: tuple[PosFloat, PosFloat]
    shift: Annotated[float, Field(ge=0, le=0.5)]
    photometric: Prob
    amplitude_mix: Prob
    amplitude_beta: Fraction

    @model_validator(mode="after")
    def _range(self):
        if self.scale[0] > self.scale[1]:
            raise ValueError(f"scale {list(self.scale)}: low must be <= high")
        return self


class Text(_Strict):
    """``text``: the prompts and the frozen text encoder (cliphand/text/)."""

    encoder: Literal["minilm", "open_clip"]
    features: Literal["joints", "pooled"]
    template: Literal["auto", "paper", "short"]
    open_clip_model: str
    open_clip_pretrained: str | None               # hub tag, a local checkpoint file, or null (random weights)
    n_joints: NJoints
    batch_size: PosInt
    allow_download: bool = False                   # let open_clip fetch hub weights (needs internet)

    @model_validator(mode="after")
    def _joints_need_minilm(self):
        if self.features == "joints" and self.encoder != "minilm":
            raise ValueError("features 'joints' (per-joint token features) needs encoder 'minilm'; "
                             "use features 'pooled' with open_clip")
        return self


class Row(_Strict):
    seeds: list[Seed] | None = None
    batch_size: Annotated[int, Field(ge=2)] | None = None
    n_joints: NJoints | None = None
    n_train: PosInt | None = None
    epochs: PosInt | None = None
    freeze_backbone: bool | None = None
    use_clip: bool | None = None
    use_projection: bool | None = None
    use_sparse_to_dense: bool | None = None


class Ablate(_Strict):
    epochs: PosInt
    n_train: PosInt | None
    batch_size: Annotated[int, Field(ge=2)]
    n_joints: NJoints
    freeze_backbone: bool = False
    eval_on: list[Literal[DATA_SPLITS]]                 # type: ignore[valid-type]
    seeds: list[Seed]
    runs: dict[str, Row | None]

    @model_validator(mode="after")
    def _rows(self):
        if "full" not in self.runs:
            raise ValueError("runs must hold the reference row 'full'")
        for name, row in self.runs.items():
            seeds = (row.seeds if row and row.seeds is not None else self.seeds)
            if not seeds or len(set(seeds)) != len(seeds):
                raise ValueError(f"runs.{name}: seeds {seeds} must be a non-empty list without repeats")
            bs = row.batch_size if row and row.batch_size else self.batch_size
            n = row.n_train if row and row.n_train else self.n_train
            if n is not None and bs > n:
                raise ValueError(f"runs.{name}: batch_size {bs} is larger than its n_train {n} (no full batch)")
        return self


class ModelSettings(_Strict):
    """``model``: the model's hyper-parameters, every one with its default (:class:`cliphand.model.cliphand3d.CLIPHand3D`;
    checkpoints store them). The defaults are sized for CPU training; the paper's setting is resnet50, 224 px,
    E = 512 and CLIP ViT-B/32 text features (configs/paper.yaml). Strict types: ``use_clip: 'yes'`` is an error."""

    model_config = ConfigDict(extra="forbid", strict=True)

    # visual encoder (§3.2)
    backbone: Literal[BACKBONES] = "efficientnet_lite0"   # type: ignore[valid-type]  (paper: resnet50)
    pretrained: str | None = "imagenet"   # null | imagenet (Lite: its PyPI wheel; ResNet: torchvision) | state_dict file
    input_size: Annotated[int, Field(ge=32, multiple_of=32)] = 128   # S, square input side, pixels (paper: 224)
    num_joints: Literal[21] = 21
    # joint regressor (§3.2, eq. 2)
    heatmap_size: PosInt = 32          # Hm lixels per axis: (S / head_stride) * 2**k (paper, I2L-MeshNet: 64 at 256)
    head_stride: Literal[16, 32] = 16  # 16: F3 + up-sampled F4 feed the x/y lixels; 32: F4 only (paper)
    deconv_channels: PosInt = 128      # C of the deconvolutions and of the pose-aware features Fp
    # feature matching head (§3.3)
    use_clip: bool = True              # ablation: False drops the head (no pose/text embeddings)
    embed_dim: PosInt = 256            # E (paper: 512)
    text_dim: PosInt = 384             # Dt of the frozen text features (MiniLM 384, CLIP ViT-B/32 512)
    text_max_len: PosInt = 77          # longest text sequence L the adapters accept
    adapter_heads: PosInt = 4
    adapter_ff: PosInt = 512
    adapter_dropout: Prob = 0.1
    logit_scale_init: float = math.log(100.0)   # initial log temperature (NOTES §5)
    logit_scale_max: PosFloat = 100.0  # exp(log temperature) clamped to [1, this]
    # mesh regressor (§3.4)
    mesh_levels: list[PosInt] = [85, 170, 340]       # node counts between the 21 joints and the V vertices
    mesh_dims: list[PosInt] = [256, 128, 64, 32]     # node feature size per level (21, 85, 170, 340)
    mesh_heads: PosInt = 4
    mesh_layers: PosInt = 1            # transformer layers per level
    mesh_ff_mult: PosInt = 2
    mesh_dropout: Prob = 0.0           # > 0 puts attention on the slow math path (2x mesh cost on CPU)
    mesh_fj_channels: PosInt = 64      # channels of F_J ([F0, 3D joint heatmap] -> conv)
    heatmap_sigma: PosFloat = 2.0      # of the 3D joint heatmap, heatmap pixels (App. A.2)
    mesh_proj_levels: list[NonNegInt] = [3, 3, 2, 1]  # pyramid level F_k sampled at the joints, per block
    use_projection: bool = True        # ablation: joint-based feature-pyramid projection
    use_sparse_to_dense: bool = True   # ablation: False = one linear map from the 21 joint nodes to V vertices
    mesh_residual: bool = True         # each level refines the up-sampled coarser coordinates (our addition)
    mesh_detach_joints: bool = False   # stop mesh-loss gradients into the joint regressor


class Benchmark(_Strict):
    data: Literal[DATA_SPLITS]                          # type: ignore[valid-type]
    text: Literal["test", "val"] | None


class Evaluate(_Strict):
    batch_size: PosInt
    retrieval_batch_sizes: list[Annotated[int, Field(ge=2)]]
    benchmarks: dict[str, Benchmark]


class Distributed(_Strict):
    """``distributed``: the torchrun launch of pretrain and finetune (cliphand/distributed.py)."""

    nproc_per_node: PosInt
    nnodes: PosInt
    node_rank: NonNegInt
    rdzv_endpoint: str
    backend: Literal["auto", "gloo", "nccl"]
    sync_batchnorm: bool

    @model_validator(mode="after")
    def _rank(self):
        if self.node_rank >= self.nnodes:
            raise ValueError(f"node_rank {self.node_rank} must be below nnodes {self.nnodes}")
        return self


class Data(_Strict):
    """``data``: the training source, the template mesh and the external datasets' release folders."""

    train: Literal["synth", "freihand"]
    template: Literal["synth", "mano"]
    mano_path: str | None
    freihand: dict[str, Any] = {"root": None, "versions": [0, 1, 2, 3], "val_fraction": 0.05}
    rhd: dict[str, Any] = {"root": None}
    stb: dict[str, Any] = {"root": None}

    @model_validator(mode="after")
    def _mano(self):
        if self.template == "mano" and not self.mano_path:
            raise ValueError("template 'mano' needs mano_path (your MANO_RIGHT.pkl)")
        return self


class Bench(_Strict):
    """``benchmark``: Table 6 on this machine, ONNX parity and latency, loader vs step (cliphand/bench/speed.py)."""

    checkpoint: str
    paper_profile: str | None
    warmup: NonNegInt
    iters: PosInt
    throughput_batch: PosInt
    throughput_warmup: NonNegInt
    throughput_iters: PosInt
    onnx: bool
    parity_samples: PosInt
    pipeline: dict[Literal["loader_iters", "step_iters", "text_iters"], PosInt]


class Report(_Strict):
    """``report``: the generated report (cliphand/report/build.py)."""

    overlays: NonNegInt


class Params(_Open):
    """The whole of ``params.yaml``, typed: one model per group (``download``, ``synth``, ``model`` and
    ``peers`` stay mappings: their keys are arguments of the code they configure, checked there)."""

    seed: Seed
    device: Literal["cpu", "cuda", "auto"]
    data: Data
    synth: dict[str, Any]
    preprocess: Preprocess
    text: Text
    model: ModelSettings
    clip: Clip
    loss: Loss
    augment: Augment
    pretrain: Pretrain
    finetune: Finetune
    evaluate: Evaluate
    ablate: Ablate
    distributed: Distributed
    benchmark: Bench
    report: Report
    download: dict[str, Any]
    peers: dict[str, Any]


def heatmap_upsampling(base: int, heatmap_size: int) -> int | None:
    """The lixel heatmap's up-sampling factor 2**k (k >= 0) over the head's feature size ``base`` (input size /
    head stride): ``heatmap_size = base * 2**k``; None when ``heatmap_size`` is not of that form (I2L-MeshNet's
    deconvolutions double the size each; :class:`cliphand.model.joint_regressor.JointRegressor`)."""
    ratio = heatmap_size // base if base > 0 else 0
    return ratio if heatmap_size > 0 and ratio * base == heatmap_size and not ratio & (ratio - 1) else None


def _check_against_defaults(group: str, values: dict, defaults: dict) -> list[str]:
    """Keys of ``values`` must be keys of ``defaults``, and each value of the default's kind."""
    errors = []
    for key, value in values.items():
        if key not in defaults:
            errors.append(f"{group}.{key} = {value!r}: unknown key; allowed: {', '.join(sorted(defaults))}")
            continue
        default = defaults[key]
        if default is None or value is None:
            continue
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif isinstance(default, (list, tuple)):
            ok = isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                          for v in value)
        else:
            ok = isinstance(value, type(default))
        if not ok:
            errors.append(f"{group}.{key} = {value!r}: must be of the kind of its default {default!r}")
    return errors


def _cross_field(p: Params, raw: dict) -> list[str]:
    """Rules between groups (the model's geometry, batch vs split sizes)."""

    errors = []
    m = p.model
    base = p.preprocess.input_size // m.head_stride
    if heatmap_upsampling(base, m.heatmap_size) is None:
        errors.append(f"model.heatmap_size = {m.heatmap_size!r}: must be preprocess.input_size / "
                      f"model.head_stride ({base}) times a power of two (e.g. {base}, {2 * base}, {4 * base})")
    n_synth = int(raw["synth"].get("n_train", 0) or 0)
    if p.data.train == "synth" and n_synth and p.pretrain.batch_size > n_synth:
        errors.append(f"pretrain.batch_size = {p.pretrain.batch_size}: larger than synth.n_train ({n_synth})")
    procs = p.distributed.nproc_per_node * p.distributed.nnodes
    for key, bs in (("pretrain.batch_size", p.pretrain.batch_size), ("clip.batch_size", p.clip.batch_size)):
        if bs % procs:
            errors.append(f"{key} = {bs}: the global batch must be divisible by the {procs} training processes "
                          "(distributed.nproc_per_node x nnodes)")
    n_ft = p.finetune.n_train if p.finetune.n_train is not None else (n_synth or None)
    if n_ft is not None and p.clip.batch_size > n_ft:
        errors.append(f"clip.batch_size = {p.clip.batch_size}: larger than finetune.n_train ({n_ft}), "
                      "so finetuning would have no full batch")
    return errors


def _format(exc: ValidationError, source: str) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            out.append(f"{source}: {loc} = {err['input']!r}: unknown key (a typo?)")
        elif err["type"] == "missing":
            out.append(f"{source}: {loc}: missing")
        else:
            out.append(f"{source}: {loc} = {err['input']!r}: {msg}")
    return out


def validate(params: dict, source: str = "params.yaml") -> Params:
    """Check ``params`` (the merged settings) against the schema and the rules between settings.

    Args:
        params: the parsed ``params.yaml`` (or a profile merged over it).
        source: the name used in messages.
    Returns:
        the typed :class:`Params`.
    Raises:
        DataError: one line per problem, each ``<source>: <dotted key> = <value>: <what is allowed>``.
    """
    if not isinstance(params, dict):
        raise DataError(f"{source}: expected a mapping of settings, got {type(params).__name__}")
    try:
        typed = Params.model_validate(params)
    except ValidationError as exc:
        raise DataError("invalid settings:\n" + "\n".join(_format(exc, source))) from None
    errors = [f"{source}: {e}" for e in _check_against_defaults(
        "synth", params["synth"], {**SYNTH_DEFAULTS, "n_train": 1, "n_val": 1, "n_test": 1, "workers": 0, "seed": 0})]
    if not errors:
        errors = [f"{source}: {e}" for e in _cross_field(typed, params)]
    for key in ("n_train", "n_val", "n_test"):
        value = params["synth"].get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            errors.append(f"{source}: synth.{key} = {value!r}: must be an integer >= 1")
    if errors:
        raise DataError("invalid settings:\n" + "\n".join(errors))
    return typed
