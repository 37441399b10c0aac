"""The schema of ``params.yaml`` (and of every profile merged over it): types, ranges, enumerations and the
rules between settings, checked before any stage does work (:func:`validate`, called by every stage's
:func:`cliphand.pipeline.stage.stage_context` and by ``cliphand profile``).

A wrong value fails at once with the key, the value and what is allowed, e.g.::

    params.yaml: pretrain.batch_size = -4: Input should be greater than 0

instead of training zero steps, a ZeroDivisionError, or an unknown backbone found only at pretrain after
the data stages ran. The groups whose keys are fixed forbid unknown keys (a typo is an error, not a
silently ignored setting). Built on pydantic (declared dependency; MLflow and DVC use it too).

The groups with many settings, each with its default, have their own module: :mod:`cliphand.config.model`
(``model``), :mod:`cliphand.config.synth` (``synth``) and :mod:`cliphand.config.sources` (``download`` and the
datasets of ``data``); the value types are in :mod:`cliphand.config.types`.

The checked settings are typed (:class:`Params`, one model per group) and travel as such: a stage gets them
from :func:`cliphand.pipeline.stage.stage_context` and passes them (or one group) to the library, which reads
fields, never ``dict.get`` with a default of its own.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cliphand.config.model import ModelSettings
from cliphand.config.synth import SynthSettings
from cliphand.config.sources import DatasetRoot, Download, FreihandSource
from cliphand.config.types import (ClosedModel, Fraction, NJoints, NonNegFloat, NonNegInt, PosFloat, PosInt, Prob,
                                   Seed, TestRotations)
from cliphand.defaults import EXTERNAL, TRAIN_SPLITS
from cliphand.errors import DataError

__all__ = ["DATA_SPLITS", "ModelSettings", "Params", "SynthSettings", "heatmap_upsampling", "validate"]

#: what a benchmark or an ablation row may be scored on (cliphand.data.splits; 'train' is not scored)
DATA_SPLITS = tuple(s for s in TRAIN_SPLITS if s != "train") + EXTERNAL


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Phase(ClosedModel):
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


class Preprocess(ClosedModel):
    input_size: Annotated[int, Field(ge=32, multiple_of=32)]
    pad: Annotated[float, Field(ge=1.0)]
    depth_range: PosFloat


class Clip(ClosedModel):
    batch_size: Annotated[int, Field(ge=2)]           # in-batch negatives need two samples at least
    temperature_init: Annotated[float, Field(ge=1.0, le=100.0)]


class Loss(ClosedModel):
    alpha1: NonNegFloat
    alpha2: NonNegFloat
    alpha3: NonNegFloat
    alpha4: NonNegFloat
    lixel: NonNegFloat
    lixel_sigma: PosFloat


class Augment(ClosedModel):
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


class Text(ClosedModel):
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


class Row(ClosedModel):
    seeds: list[Seed] | None = None
    batch_size: Annotated[int, Field(ge=2)] | None = None
    n_joints: NJoints | None = None
    n_train: PosInt | None = None
    epochs: PosInt | None = None
    freeze_backbone: bool | None = None
    use_clip: bool | None = None
    use_projection: bool | None = None
    use_sparse_to_dense: bool | None = None


class Ablate(ClosedModel):
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


class Benchmark(ClosedModel):
    data: Literal[DATA_SPLITS]                          # type: ignore[valid-type]
    text: Literal["test", "val"] | None


class Evaluate(ClosedModel):
    """``evaluate``: the evaluate stage (its benchmarks) and test-time rotation (:mod:`cliphand.evaluate.test_time`),
    which the evaluate stage, the benchmark stage's second set of rows and ``cliphand predict`` use."""

    batch_size: PosInt
    retrieval_batch_sizes: list[Annotated[int, Field(ge=2)]]
    benchmarks: dict[str, Benchmark]
    test_rotations_deg: TestRotations = [0.0]      # extra passes on the upright-turned crop; [] = one pass (paper)


class Distributed(ClosedModel):
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


class Data(ClosedModel):
    """``data``: the training source, the template mesh and the external datasets' release folders."""

    train: Literal["synth", "freihand"]
    template: Literal["synth", "mano"]
    mano_path: str | None
    freihand: FreihandSource = FreihandSource()
    rhd: DatasetRoot = DatasetRoot()
    stb: DatasetRoot = DatasetRoot()

    @model_validator(mode="after")
    def _mano(self):
        if self.template == "mano" and not self.mano_path:
            raise ValueError("template 'mano' needs mano_path (your MANO_RIGHT.pkl)")
        return self


class Bench(ClosedModel):
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


class Report(ClosedModel):
    """``report``: the generated report (cliphand/report/build.py)."""

    overlays: NonNegInt


class MediaPipeSettings(ClosedModel):
    """``peers.mediapipe``: MediaPipe Hands' own settings for the peer row (NOTES §3; passed to
    ``mediapipe.solutions.hands.Hands`` by :class:`cliphand.peers.mediapipe_hands.MediaPipeHands`)."""

    static_image_mode: bool = True            # the palm detector runs on every image (no tracking)
    max_num_hands: PosInt = 1
    model_complexity: Literal[0, 1] = 1
    min_detection_confidence: Prob = 0.3


class Peers(ClosedModel):
    """``peers``: the peer methods run on the real-world set (optional: ``pip install '.[peers]'``)."""

    mediapipe: MediaPipeSettings = MediaPipeSettings()


class Params(_Open):
    """The whole of ``params.yaml``, typed: one model per group."""

    seed: Seed
    device: Literal["cpu", "cuda", "auto"]
    data: Data
    synth: SynthSettings
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
    download: Download
    peers: Peers


def heatmap_upsampling(base: int, heatmap_size: int) -> int | None:
    """The lixel heatmap's up-sampling factor 2**k (k >= 0) over the head's feature size ``base`` (input size /
    head stride): ``heatmap_size = base * 2**k``; None when ``heatmap_size`` is not of that form (I2L-MeshNet's
    deconvolutions double the size each; :class:`cliphand.model.joint_regressor.JointRegressor`)."""
    ratio = heatmap_size // base if base > 0 else 0
    return ratio if heatmap_size > 0 and ratio * base == heatmap_size and not ratio & (ratio - 1) else None


def _cross_field(p: Params) -> list[str]:
    """Rules between groups (the model's geometry, batch vs split sizes)."""

    errors = []
    m = p.model
    base = p.preprocess.input_size // m.head_stride
    if heatmap_upsampling(base, m.heatmap_size) is None:
        errors.append(f"model.heatmap_size = {m.heatmap_size!r}: must be preprocess.input_size / "
                      f"model.head_stride ({base}) times a power of two (e.g. {base}, {2 * base}, {4 * base})")
    for key in ("n_train", "n_val", "n_test"):  # every split feeds a later stage
        if getattr(p.synth, key) < 1:
            errors.append(f"synth.{key} = {getattr(p.synth, key)}: the pipeline uses every split: must be >= 1")
    n_synth = p.synth.n_train
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
    errors = [f"{source}: {e}" for e in _cross_field(typed)]
    if errors:
        raise DataError("invalid settings:\n" + "\n".join(errors))
    return typed
