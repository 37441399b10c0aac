"""The recipe-search log (cliphand.report.experiment_log) and the CLIP-claim statistics (report_training)."""

import numpy as np
import pytest
from scipy import stats

from cliphand.errors import DataError
from cliphand.report.experiment_log import COLUMNS, command, load_variants, read_csv, write_csv
from cliphand.report.training import welch_interval


def test_variants_file_and_commands(tmp_path):
    path = tmp_path / "experiments.yaml"
    path.write_text("variants:\n  - name: a\n    set: [pretrain.epochs=1, model.backbone=resnet18]\n"
                    "  - name: b\n    stage: finetune\n")
    variants = load_variants(path)
    assert command(variants[0]) == ("dvc exp run pretrain -n a -S pretrain.epochs=1 -S model.backbone=resnet18")
    assert command(variants[1]) == "dvc exp run finetune -n b"
    for bad, what in (("variants: []\n", "non-empty"), ("variants:\n  - name: a\n  - name: a\n", "repeats"),
                      ("variants:\n  - name: a\n    stage: ablate\n", "stage"),
                      ("variants:\n  - name: a\n    set: [epochs]\n", "key=value")):
        path.write_text(bad)
        with pytest.raises(DataError, match=what):
            load_variants(path)


def test_log_csv_round_trip(tmp_path):
    rows = [{"name": "a", "stage": "pretrain", "settings": "x=1", "steps": 312, "wall_min": 4.2,
             "val_pa_mpjpe_mm": 12.5, "kept": "yes", "why": "best, by 3 mm"}]
    write_csv(rows, tmp_path / "log.csv")
    back = read_csv(tmp_path / "log.csv")
    assert list(back[0]) == list(COLUMNS) and back[0]["why"] == "best, by 3 mm" and back[0]["steps"] == "312"
    assert read_csv(tmp_path / "absent.csv") == []


def test_welch_interval_matches_scipy_and_covers_truth():
    a, b = [10.0, 10.4, 9.8], [11.1, 10.7, 11.5, 11.0]
    w = welch_interval(a, b)
    t = stats.ttest_ind(b, a, equal_var=False)
    ci = t.confidence_interval(0.95)
    assert w["diff"] == pytest.approx(np.mean(b) - np.mean(a))
    assert (w["lo"], w["hi"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    rng = np.random.default_rng(0)   # coverage of the true difference (+0.5) near 95 %
    hits = sum(lo <= 0.5 <= hi for lo, hi in ((w["lo"], w["hi"]) for w in
               (welch_interval(rng.normal(0, 1, 3), rng.normal(0.5, 1, 3)) for _ in range(400))))
    assert 0.9 < hits / 400 <= 1.0
    with pytest.raises(ValueError):
        welch_interval([1.0], [1.0, 2.0])
