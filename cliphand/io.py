"""Atomic file writing (write to a temporary file beside the target, then rename: a crash or an
interruption never leaves a half-written file under the final name), and reading the pipeline's JSON/npz
outputs with errors that name the file."""

from __future__ import annotations

import contextlib
import copyreg
import hashlib
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from cliphand.errors import DataError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it to ``path``.

    Args:
        path: final file name. Its parent folder is created.
        suffix: suffix of the temporary name (default: the target's own, so that libraries that
            look at the extension, e.g. ``np.savez`` or ``PIL``, behave).
    On an exception the temporary file is removed and the exception propagates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix,
                               dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.is_file():
            os.chmod(tmp, 0o644)  # mkstemp creates 0600; give the file ordinary permissions
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_npz(path: str | os.PathLike, **arrays: Any) -> None:
    """``np.savez`` (uncompressed, fast to load) to ``path`` atomically."""
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """``np.save`` to ``path`` atomically (loadable with ``mmap_mode='r'``)."""
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array)


def save_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    with atomic_path(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_json(path: str | os.PathLike) -> dict | None:
    """A metrics file as a dict, None when absent.

    Raises:
        DataError: the file exists but is not a JSON object.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray] | None:
    """All arrays of an .npz, None when absent; DataError naming the file when unreadable."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a data error
        raise DataError(f"{path}: not a readable .npz ({exc})") from exc


_NUMPY_MODULES = {"numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
                  "numpy._core.numeric"}
_NUMPY_NAMES = {"_reconstruct", "scalar", "_frombuffer", "ndarray", "dtype"}
_BUILTIN_NAMES = {"object", "set", "frozenset", "list", "dict", "tuple", "slice", "complex", "bytearray",
                  "bytes", "str", "int", "float", "bool"}


class ArrayUnpickler(pickle.Unpickler):
    """Restricted unpickler for data files of the public releases (RHD annotations, MANO models): NumPy
    arrays and scalars, builtin containers and numbers only. A pickle can run arbitrary code when loaded;
    this one can only build data, and any other class raises ``pickle.UnpicklingError`` naming it.

    Usage: ``ArrayUnpickler(file, encoding="latin1").load()`` (``latin1`` for Python 2 pickles)."""

    def find_class(self, module: str, name: str) -> Any:
        if module in _NUMPY_MODULES and name in _NUMPY_NAMES:
            if module.startswith("numpy.core"):          # numpy >= 2 moved numpy.core to numpy._core
                try:
                    return super().find_class("numpy._core" + module[len("numpy.core"):], name)
                except (ImportError, AttributeError):
                    pass
            return super().find_class(module, name)
        if module in ("copy_reg", "copyreg") and name == "_reconstructor":
            return copyreg._reconstructor
        if module in ("__builtin__", "builtins") and name in _BUILTIN_NAMES:
            return super().find_class(module, name)
        if module == "_codecs" and name == "encode":  # bytes in protocol-2 pickles written by Python 3
            return super().find_class(module, name)
        if module == "collections" and name == "OrderedDict":
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load class {module}.{name} (only arrays and containers are allowed)")


def fingerprint(obj: Any) -> str:
    """Short stable hash of a JSON-serialisable object (used to match checkpoints to their settings)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
