"""Settings: ``params.yaml`` is the single source; this module only reads and merges it.

A profile file (``configs/smoke.yaml``, ``configs/paper.yaml``) holds overrides that are deep-merged
over ``params.yaml``; :func:`write_profile` writes the merged result as a new ``params.yaml`` so that
DVC sees ordinary parameters.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from cliphand.errors import DataError
from cliphand.paths import repo_root


def load_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML mapping; DataError naming the file when it is missing or not a mapping."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: settings file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def deep_merge(base: dict, override: dict) -> dict:
    """Return ``base`` with ``override`` merged in recursively (override wins; inputs untouched).

    A mapping in ``override`` that holds ``__replace__: true`` replaces the base's mapping instead of
    being merged into it (e.g. a profile's own list of ablation rows).
    """
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and value.get("__replace__"):
            out[key] = {k: copy.deepcopy(v) for k, v in value.items() if k != "__replace__"}
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_params(path: str | os.PathLike | None = None) -> dict:
    """Load ``params.yaml`` (default: at :func:`repo_root`)."""
    return load_yaml(path or repo_root() / "params.yaml")


def get(params: dict, dotted: str, default: Any = ...) -> Any:
    """``get(p, 'clip.batch_size')`` → ``p['clip']['batch_size']``; KeyError naming the key if absent
    and no default is given."""
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is ...:
                raise KeyError(f"params.yaml has no key '{dotted}'")
            return default
        node = node[part]
    return node


def flatten(params: dict, prefix: str = "") -> dict[str, Any]:
    """``{'a': {'b': 1}}`` → ``{'a.b': 1}`` (lists kept as values)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def write_profile(profile: str | os.PathLike, base: str | os.PathLike, out: str | os.PathLike) -> dict:
    """Merge a profile of overrides over ``base`` and write the result to ``out`` (YAML)."""
    from cliphand.io import save_text

    merged = deep_merge(load_yaml(base), load_yaml(profile))
    save_text(out, yaml.safe_dump(merged, sort_keys=False))
    return merged
