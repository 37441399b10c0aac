"""Settings: profile merging, dotted access, the `cliphand profile` command."""

import pytest
import yaml

from cliphand.cli import main
from cliphand.profiles import deep_merge, get, load_yaml
from cliphand.errors import DataError


def test_deep_merge_merges_and_replaces():
    base = {"a": {"b": 1, "c": 2}, "runs": {"x": {}, "y": {}}}
    over = {"a": {"c": 3}, "runs": {"__replace__": True, "z": {"n": 1}}}
    out = deep_merge(base, over)
    assert out == {"a": {"b": 1, "c": 3}, "runs": {"z": {"n": 1}}}
    assert base["a"]["c"] == 2  # inputs untouched


def test_get_and_set_dotted():
    p = {"clip": {"batch_size": 32}}
    assert get(p, "clip.batch_size") == 32
    assert get(p, "clip.missing", None) is None
    with pytest.raises(KeyError, match="clip.missing"):
        get(p, "clip.missing")


def test_load_yaml_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="nope.yaml"):
        load_yaml(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(DataError, match="list.yaml"):
        load_yaml(tmp_path / "list.yaml")


def test_profile_command_writes_merged_params(tmp_path, capsys, repo_root):
    base = load_yaml(repo_root / "params.yaml")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"clip": {"batch_size": 8}}))
    assert main(["profile", str(tmp_path / "p.yaml"), "--base", str(tmp_path / "params.yaml"), "--set-args"]) == 0
    assert capsys.readouterr().out.strip() == "-S clip.batch_size=8"
    out = tmp_path / "merged.yaml"
    assert main(["profile", str(tmp_path / "p.yaml"), "--base", str(tmp_path / "params.yaml"), "--out", str(out)]) == 0
    assert load_yaml(out) == {**base, "clip": {**base["clip"], "batch_size": 8}}
    # a profile with a bad value is refused before anything is written
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"pretrain": {"batch_size": 0}}))
    assert main(["profile", str(tmp_path / "bad.yaml"), "--base", str(tmp_path / "params.yaml"),
                 "--out", str(tmp_path / "never.yaml")]) == 2
    assert "pretrain.batch_size = 0" in capsys.readouterr().err and not (tmp_path / "never.yaml").exists()


def test_smoke_profile_only_names_known_keys(repo_root):
    """Every key of configs/smoke.yaml is a setting the code knows (a typo would silently do nothing)."""
    from cliphand.profiles import flatten
    from cliphand.config import ModelSettings, SynthSettings

    base = flatten(load_yaml(repo_root / "params.yaml"))
    known = set(base) | {f"model.{k}" for k in ModelSettings.model_fields} | {f"synth.{k}" for k in SynthSettings.model_fields}
    for key in flatten(load_yaml(repo_root / "configs/smoke.yaml")):
        if not key.startswith("ablate.runs."):
            assert key in known, f"configs/smoke.yaml: unknown setting {key}"
