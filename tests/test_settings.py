"""The settings schema (cliphand/config/): the shipped settings and profiles pass; each bad value fails
before any work with the key, the value and what is allowed."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from cliphand.profiles import deep_merge, load_params, load_yaml
from cliphand.errors import DataError
from cliphand.config import validate

ROOT = Path(__file__).resolve().parents[1]
PARAMS = load_params(ROOT / "params.yaml")


def set_dotted(params: dict, dotted: str, value) -> None:
    """In place: ``params['a']['b'] = value`` for ``'a.b'``."""
    *parents, last = dotted.split(".")
    for part in parents:
        params = params[part]
    params[last] = value


@pytest.mark.parametrize("profile", [None, "configs/smoke.yaml", "configs/paper.yaml", "configs/gpu.yaml"])
def test_shipped_settings_are_valid(profile):
    params = PARAMS if profile is None else deep_merge(PARAMS, load_yaml(ROOT / profile))
    typed = validate(params)
    assert typed.pretrain.epochs >= 1 and typed.preprocess.input_size % 32 == 0


BAD = [
    ("pretrain.batch_size", -4, r"pretrain\.batch_size = -4: .*greater than 0"),
    ("pretrain.batch_size", 0, r"pretrain\.batch_size = 0"),
    ("pretrain.epochs", 0, r"pretrain\.epochs = 0: .*greater than 0"),
    ("finetune.lr", -1e-3, r"finetune\.lr = -0\.001"),
    ("pretrain.schedule", "linear", r"pretrain\.schedule = 'linear': .*'cosine' or 'step'"),
    ("model.backbone", "resnet101", r"model\.backbone = 'resnet101': Input should be 'efficientnet_lite0'"),
    ("model.heatmap_size", 48, r"model\.heatmap_size = 48: must be preprocess\.input_size / model\.head_stride \(8\)"),
    ("preprocess.input_size", 100, r"preprocess\.input_size = 100: .*multiple of 32"),
    ("clip.batch_size", 5000, r"clip\.batch_size = 5000: larger than finetune\.n_train \(1500\)"),
    ("clip.batch_size", 1, r"clip\.batch_size = 1: .*greater than or equal to 2"),
    ("text.n_joints", 22, r"text\.n_joints = 22: .*less than or equal to 21"),
    ("ablate.seeds", [0, 0], r"seeds \[0, 0\] must be a non-empty list without repeats"),
    ("ablate.eval_on", ["tset"], r"ablate\.eval_on\.0 = 'tset'"),
    ("augment.scale", [1.2, 0.8], r"scale \[1\.2, 0\.8\]: low must be <= high"),
    ("device", "tpu", r"device = 'tpu': .*'cpu', 'cuda' or 'auto'"),
    ("evaluate.test_rotations_deg", [0, 120], r"evaluate\.test_rotations_deg\.1 = 120: .*less than or equal to 90"),
    ("pretrian", {"epochs": 3}, None),  # a typo at the top level: allowed (unknown groups are ignored) ...
    ("pretrain.epoch", 3, r"pretrain\.epoch = 3: unknown key"),       # ... but not inside a known group
    ("model.backbone_name", "resnet18", r"model\.backbone_name = 'resnet18': unknown key"),
    ("synth.n_train", 0, r"synth\.n_train = 0: the pipeline uses every split: must be >= 1"),
    ("synth.n_val", 2.5, r"synth\.n_val = 2\.5: Input should be a valid integer"),
    ("synth.p_blur", 2, r"synth\.p_blur = 2: .*less than or equal to 1"),
    ("synth.p_blur", True, r"synth\.p_blur = True: Input should be a valid number"),
    ("synth.fov_degs", [1, 2], r"synth\.fov_degs = \[1, 2\]: unknown key"),
    ("synth.hand_scale", [1.1, 0.9], r"synth\.hand_scale = \[1\.1, 0\.9\]: range \[1\.1, 0\.9\]: low must be <= high"),
    ("synth.label_convention", "mano", r"synth\.label_convention = 'mano': Input should be 'ge' or 'webxr'"),
    ("model.use_clip", "yes", r"model\.use_clip = 'yes': Input should be a valid boolean"),
    ("data.template", "mano", r"needs mano_path"),
    ("text.encoder", "open_clip", r"features 'joints' .*needs encoder 'minilm'"),
    ("ablate.runs", {"bs8": {"batch_size": 8}}, r"reference row 'full'"),
    ("distributed.nproc_per_node", 0, r"distributed\.nproc_per_node = 0: .*greater than 0"),
    ("distributed.node_rank", 1, r"node_rank 1 must be below nnodes 1"),
    ("distributed.backend", "mpi", r"distributed\.backend = 'mpi': .*'auto', 'gloo' or 'nccl'"),
    ("distributed.nproc_per_node", 3, r"pretrain\.batch_size = 16: the global batch must be divisible by the 3"),
]


@pytest.mark.parametrize("key,value,match", BAD, ids=[f"{k}={v!r}" for k, v, _ in BAD])
def test_bad_value_names_key_value_and_what_is_allowed(key, value, match):
    params = copy.deepcopy(PARAMS)
    set_dotted(params, key, value)
    if match is None:
        validate(params)
        return
    with pytest.raises(DataError, match=match) as info:
        validate(params)
    assert "params.yaml" in str(info.value)


def test_every_stage_checks_the_settings_before_work(tmp_path, monkeypatch):
    """stage_context validates params.yaml on entry: a bad value stops the stage before MLflow or data."""
    from cliphand.pipeline.stage import stage_context

    params = copy.deepcopy(PARAMS)
    set_dotted(params, "pretrain.batch_size", -1)
    import yaml

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"pretrain\.batch_size = -1"):
        with stage_context("download"):
            raise AssertionError("the stage body must not run")
    assert not (tmp_path / "mlflow.db").exists()
