"""Crop-scale statistics: the hand's scale and position in the training crops (joints x pad, then the
on-the-fly augmentation of params.yaml) cover the real-world set's own dataset crops."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from cliphand.config import Augment
from cliphand.data.crop_stats import augmented_uvd, box_statistics, coverage, summary
from cliphand.data.preprocess import crop_to_input
from cliphand.hand.geometry import project

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "realworld_testset"


def test_box_statistics_known_values():
    uv = np.zeros((1, 21, 2))
    uv[0, :, 0] = np.linspace(0.2, 0.6, 21)        # box 0.4 wide, 0.2 high, centred at (0.4, 0.6)
    uv[0, :, 1] = np.linspace(0.5, 0.7, 21)
    st = box_statistics(uv)
    assert st["side"][0] == pytest.approx(0.4) and st["cx"][0] == pytest.approx(-0.1)
    assert st["cy"][0] == pytest.approx(0.1)
    assert summary(st)["side"]["p50"] == pytest.approx(0.4)
    with pytest.raises(ValueError):
        box_statistics(np.zeros((2, 20, 3)))


def test_training_crops_cover_the_real_dataset_crops():
    if not (REAL / "params.mat").is_file():
        pytest.skip(f"{REAL} not present")
    from cliphand.data.readers.realworld import load_realworld

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    real = load_realworld(REAL, load_images=False)
    real_uv = project(real["joints"].astype(np.float64), real["K"].astype(np.float64)) / 256.0   # the dataset crop
    # training crops: the same kind of poses cropped as the preprocess stage crops synthetic renders
    # (square of pad x the joints' 2D box), then params.yaml's augmentation
    pad, size = float(params["preprocess"]["pad"]), int(params["preprocess"]["input_size"])
    train_uv = []
    blank = np.zeros((4, 4, 3), np.uint8)
    for joints, K in zip(real["joints"][::2].astype(np.float64), real["K"][::2].astype(np.float64)):
        _, Kc = crop_to_input(blank, K, joints, size, pad)
        train_uv.append(project(joints, Kc) / size)
    aug = Augment.model_validate(params["augment"])
    train = box_statistics(augmented_uvd(np.array(train_uv), aug, copies=8))
    test = box_statistics(real_uv)
    cov = coverage(train, test)
    assert all(v >= 0.95 for v in cov.values()), (cov, summary(train), summary(test))
    # and the check can fail: without the scale and shift augmentation the training crops are all alike
    narrow = aug.model_copy(update={"scale": (1.0, 1.0), "shift": 0.0, "rotation_deg": 0.0})
    cov_narrow = coverage(box_statistics(augmented_uvd(np.array(train_uv), narrow)), test)
    assert min(cov_narrow.values()) < 0.5
