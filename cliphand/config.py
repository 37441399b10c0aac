"""Settings: ``params.yaml`` is the single source; this module only reads and merges it.

A profile file (``configs/smoke.yaml``, ``configs/paper.yaml``) holds overrides that are deep-merged
over ``params.yaml``; :func:`write_profile` writes the merged result as a new ``params.yaml`` so that
DVC sees ordinary parameters.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import yaml

from .errors import DataError


def repo_root() -> Path:
    """The repository root of this run: the folder holding ``params.yaml`` found upwards from the current
    directory, else the current directory.

    Never ``$DVC_ROOT``: queued and ``--temp`` experiments run in a copy under ``.dvc/tmp/exps/...`` while
    DVC still points ``DVC_ROOT`` at the main repository; resolving params or data from it would make a
    queued run ignore its ``-S`` values and write into the main workspace. ``DVC_ROOT`` only locates the
    shared tracking store (:func:`cliphand.tracking.tracking_uri`)."""
    here = Path.cwd().resolve()
    for p in (here, *here.parents):
        if (p / "params.yaml").exists():
            return p
    return here


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


def set_dotted(params: dict, dotted: str, value: Any) -> None:
    """In-place ``params['a']['b'] = value`` for ``'a.b'`` (creates missing mappings)."""
    parts = dotted.split(".")
    node = params
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def resolve_path(path: str | os.PathLike, root: Path | None = None) -> Path:
    """A path from params: absolute as is, relative to the repository root otherwise."""
    p = Path(path)
    return p if p.is_absolute() else (root or repo_root()) / p


def fingerprint(obj: Any) -> str:
    """Short stable hash of a JSON-serialisable object (used to match checkpoints to their settings)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


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
    from .io import save_text

    merged = deep_merge(load_yaml(base), load_yaml(profile))
    save_text(out, yaml.safe_dump(merged, sort_keys=False))
    return merged
