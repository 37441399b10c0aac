"""The paper profile (configs/paper.yaml) end to end for a few steps on CPU, on data in the original
release layouts: FreiHAND v2 (training + evaluation), RHD and STB fixtures and a MANO-layout pickle read
without chumpy. Only what cannot exist offline is overridden: the dataset and MANO paths, the CLIP and
ImageNet weights (random instead), the device and the schedule (one step per phase, batch 4)."""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys

import numpy as np
import pytest

from cliphand.config import validate
from cliphand.paths import Paths
from cliphand.profiles import deep_merge, load_yaml
from cliphand.data.splits import prepare_all
from cliphand.data.readers.freihand import write_prediction_json
from cliphand.evaluate import metrics as M
from cliphand.evaluate.protocols import PROTOCOLS
from cliphand.train.experiment import run_evaluation, run_finetune, run_pretrain
from cliphand.text.cache import embed_splits
from fixtures_benchmarks import write_freihand_fixture, write_rhd_fixture, write_stb_fixture
from test_mano import _model_arrays, _write_pkl

pytestmark = pytest.mark.filterwarnings("ignore:OpenCLIPEncoder")


@pytest.fixture(scope="module")
def paper_params(repo_root) -> dict:
    return deep_merge(load_yaml(repo_root / "params.yaml"), load_yaml(repo_root / "configs/paper.yaml"))


def test_profile_is_the_papers_setting(paper_params):
    p = paper_params
    assert p["model"]["backbone"] == "resnet50" and p["preprocess"]["input_size"] == 224
    assert p["model"]["pretrained"] == "imagenet" and p["model"]["mesh_levels"] == [98, 195, 389]
    assert (p["text"]["encoder"], p["text"]["open_clip_model"], p["text"]["open_clip_pretrained"]) == \
        ("open_clip", "ViT-B-32", "openai")
    assert p["clip"]["batch_size"] == 48 and p["ablate"]["batch_size"] == 32
    for phase in ("pretrain", "finetune"):
        assert p[phase]["epochs"] == 200 and p[phase]["lr"] == 1e-3
        assert p[phase]["lr_decay"] == 0.25 and p[phase]["decay_every"] * 200 == 50
    assert p["data"]["train"] == "freihand" and p["data"]["template"] == "mano"
    assert {b["data"] for b in p["evaluate"]["benchmarks"].values()} >= {"test", "rhd_eval", "stb_eval"}
    assert p["device"] == "auto"


def test_profile_set_args_are_valid_dvc_overrides(repo_root):
    """The README's one-liner: every value as `-S key=value`, new keys with Hydra's leading '+'."""
    out = subprocess.run([sys.executable, "-m", "cliphand.cli", "profile", "configs/paper.yaml", "--set-args"],
                         cwd=repo_root, capture_output=True, text=True, check=True).stdout
    args = shlex.split(out)
    assert args[::2] == ["-S"] * (len(args) // 2)
    sets = dict(a.split("=", 1) for a in args[1::2])
    assert sets["model.backbone"] == '"resnet50"' and sets["preprocess.input_size"] == "224"
    assert sets["+evaluate.benchmarks.rhd.data"] == '"rhd_eval"' and "evaluate.benchmarks.rhd.data" not in sets
    readme = (repo_root / "README.md").read_text()
    assert "dvc exp run -n paper $(cliphand profile configs/paper.yaml --set-args)" in readme


def test_paper_profile_few_steps_on_release_layout_fixtures(tmp_path, paper_params):
    root = tmp_path / "repo"
    root.mkdir()
    fh = write_freihand_fixture(tmp_path / "FreiHAND_pub_v2", n_train=6, n_eval=4)
    write_rhd_fixture(tmp_path / "RHD_published_v2")
    write_stb_fixture(tmp_path / "STB", frames=1)
    mano = _write_pkl(tmp_path / "MANO_RIGHT.pkl", _model_arrays())
    offline = {
        "device": "cpu",
        "data": {"freihand": {"root": str(tmp_path / "FreiHAND_pub_v2")}, "rhd": {"root": str(tmp_path / "RHD_published_v2")},
                 "stb": {"root": str(tmp_path / "STB")}, "mano_path": str(mano)},
        "model": {"pretrained": None},                      # no ImageNet weights offline
        "text": {"open_clip_pretrained": None},             # no CLIP weights offline: random text encoder
        "pretrain": {"epochs": 1, "batch_size": 4, "max_steps_per_epoch": 1, "val_limit": 4},
        "finetune": {"epochs": 1, "max_steps_per_epoch": 1, "val_limit": 4},
        "clip": {"batch_size": 4},
        "evaluate": {"batch_size": 8, "retrieval_batch_sizes": [4]},
        "ablate": {"runs": {"__replace__": True, "full": {}}},
    }
    raw = deep_merge(paper_params, offline)
    raw["evaluate"]["benchmarks"].pop("realworld")  # the real photos are covered by the default pipeline
    params, paths = validate(raw, "paper profile + offline"), Paths(root)

    summary = prepare_all(params, paths)
    assert summary["template"] == {"kind": "mano", "vertices": 778, "faces": 1538}
    assert summary["samples"] == {"train": 20, "val": 4, "test": 4, "rhd_eval": 3, "stb_eval": 2}
    assert summary["protocols"] == {"train": "freihand", "val": "freihand", "test": "freihand",
                                    "rhd_eval": "bihand", "stb_eval": "bihand"}
    images = np.load(root / "data/prep/train/images.npy", mmap_mode="r")
    assert images.shape == (20, 224, 224, 3)

    text = embed_splits(params, paths)
    assert text["train_n21"]["feature_shape"] == [1, 512]  # pooled CLIP ViT-B/32 text feature
    pre = run_pretrain(params, paths, paths.pretrain_model)
    fin = run_finetune(params, paths, paths.finetune_model)
    assert len(pre) == len(fin) == 1 and math.isfinite(fin[0]["loss_total"]) and "loss_clip" in fin[0]

    for name, bench in params.evaluate.benchmarks.items():
        scores, preds = run_evaluation(paths.finetune_model, paths, bench.data, bench.text, params)
        protocol = {"test": "freihand", "rhd_eval": "bihand", "stb_eval": "bihand"}[bench.data]
        assert scores["protocol"] == protocol, name
        assert all(math.isfinite(scores[k]) for k in PROTOCOLS[protocol]), name
        assert preds["verts"].shape[1:] == (778, 3)
    # FreiHAND evaluation set: the official scorer's file round-trips to the same PA-MPJPE / F-scores
    scores, preds = run_evaluation(paths.finetune_model, paths, "test", "test", params)
    write_prediction_json(tmp_path / "pred.json", preds["joints"], preds["verts"])
    xyz, verts = (np.asarray(a) for a in json.loads((tmp_path / "pred.json").read_text()))
    official = M.evaluate(xyz, fh["evaluation"]["xyz"], verts, fh["evaluation"]["verts"])  # pred.json scored again
    assert official["pa_mpjpe_mm"] == pytest.approx(scores["pa_mpjpe_mm"], abs=1e-3)
    assert official["f15"] == pytest.approx(scores["f15"], abs=1e-6)
    assert "retrieval" in scores and "p2t_top1_x_b4" in scores["retrieval"]
