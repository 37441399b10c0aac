"""The recipe-search log (cliphand.report.experiment_log) and the CLIP-claim statistics (report_training)."""

import subprocess
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from cliphand.errors import DataError
from cliphand.pipeline import experiment_log as pipeline_log
from cliphand.pipeline.experiment_log import collect, unlisted_settings
from cliphand.report.experiment_log import COLUMNS, command, load_variants, read_csv, write_csv
from cliphand.report.training import welch_interval


def test_variants_file_and_commands(tmp_path):
    path = tmp_path / "experiments.yaml"
    path.write_text("variants:\n  - name: a\n    set: [pretrain.epochs=1, model.backbone=resnet18]\n"
                    "  - name: b\n    stage: finetune\n")
    variants = load_variants(path)
    assert command(variants[0]) == ("dvc exp run --queue pretrain -n a -S pretrain.epochs=1 -S model.backbone=resnet18")
    assert command(variants[1]) == "dvc exp run --queue finetune -n b"
    # a key params.yaml does not list (a schema default) needs DVC's +key=value; a listed one does not
    params = {"pretrain": {"epochs": 3}, "model": {}}
    assert command(variants[0], params) == (
        "dvc exp run --queue pretrain -n a -S pretrain.epochs=1 -S +model.backbone=resnet18")
    for bad, what in (("variants: []\n", "non-empty"), ("variants:\n  - name: a\n  - name: a\n", "repeats"),
                      ("variants:\n  - name: a\n    stage: ablate\n", "stage"),
                      ("variants:\n  - name: a\n    set: [epochs]\n", "key=value")):
        path.write_text(bad)
        with pytest.raises(DataError, match=what):
            load_variants(path)


BASE = {"loss": {"lixel": 0.1, "lixel_sigma": 1.0}, "pretrain": {"epochs": 3, "batch_size": 32},
        "augment": {"scale": [0.85, 1.15]}}


def _logged(**changes):
    """MLflow params as a stage logs them (flattened, str values) for BASE with ``changes`` applied."""
    flat = {"loss.lixel": "0.1", "loss.lixel_sigma": "1.0", "pretrain.epochs": "3", "pretrain.batch_size": "32",
            "augment.scale": "[0.85, 1.15]"}
    return flat | {k.replace("__", "."): str(v) for k, v in changes.items()}


def test_unlisted_settings_finds_overrides_left_from_earlier_variants():
    variant = {"name": "sigma2", "set": ["pretrain.epochs=1", "loss.lixel_sigma=2.0"]}
    assert unlisted_settings(variant, _logged(pretrain__epochs=1, loss__lixel_sigma=2.0), BASE) == []
    # run after a workspace `dvc exp run -S loss.lixel=0.3`: the earlier override leaked into this run
    assert unlisted_settings(variant, _logged(pretrain__epochs=1, loss__lixel_sigma=2.0, loss__lixel=0.3),
                             BASE) == ["loss.lixel=0.3"]
    # a listed key that did not take its listed value, and a key the baseline does not have
    assert unlisted_settings(variant, _logged(pretrain__epochs=2, loss__lixel_sigma=2.0, extra__key=1), BASE) == [
        "extra.key=1", "pretrain.epochs=2"]
    # a variant written with DVC's +key=value (a key the baseline does not list) names the same setting
    appended = {"name": "a", "set": ["+extra.key=1"]}
    assert unlisted_settings(appended, _logged(extra__key=1), BASE) == []


def test_collect_leaves_a_run_with_unlisted_settings_unmeasured(tmp_path, monkeypatch):
    import yaml

    monkeypatch.chdir(tmp_path)
    for cmd in (["git", "init", "-q"], ["git", "add", "params.yaml"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"]):
        if cmd[1] == "add":
            (tmp_path / "params.yaml").write_text(yaml.safe_dump(BASE))
        subprocess.run(cmd, cwd=tmp_path, check=True)
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()

    def run(run_id, params):
        return SimpleNamespace(info=SimpleNamespace(run_id=run_id), data=SimpleNamespace(
            params=params, tags={"dvc.baseline_rev": rev, "git.rev": rev},
            metrics={"final_val_pa_mpjpe_mm": 20.0, "final_real_dev_pa_mpjpe_mm": 19.0, "total_steps": 312}))

    runs = {"clean": run("r1", _logged(pretrain__epochs=1)),
            "leaked": run("r2", _logged(pretrain__epochs=1, loss__lixel=0.3))}
    monkeypatch.setattr(pipeline_log, "_latest_runs", lambda uri, stage: runs)
    variants = [{"name": "clean", "set": ["pretrain.epochs=1"]}, {"name": "leaked", "set": ["pretrain.epochs=1"]}]
    clean, leaked = collect(variants, "sqlite:///unused.db")
    assert (clean["run_id"], clean["real_dev_pa_mpjpe_mm"], clean["not_counted"]) == ("r1", 19.0, "")
    assert (leaked["run_id"], leaked["real_dev_pa_mpjpe_mm"]) == ("", "")
    assert "r2" in leaked["not_counted"] and "loss.lixel=0.3" in leaked["not_counted"]


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
