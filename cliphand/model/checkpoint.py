"""Model checkpoints that carry what is needed to rebuild the model: its settings, the template mesh
(vertices, joints, faces) and the input geometry (input size, depth range).

Written atomically (temp file, then rename). A checkpoint holds tensors and plain Python types only
(the template as tensors), so it loads with ``torch.load(..., weights_only=True)``: a file from elsewhere
cannot run code when loaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cliphand.errors import DataError
from cliphand.io import atomic_path
from cliphand.config import ModelSettings
from cliphand.model.cliphand3d import CLIPHand3D


#: format tag of the files written by :func:`save_checkpoint`
FORMAT = "cliphand-checkpoint-1"


def build_model(model_cfg: ModelSettings | dict, template: dict[str, np.ndarray]) -> CLIPHand3D:
    """Instantiate :class:`CLIPHand3D` from settings and a template mesh dict (see :func:`cliphand.hand.template.read_template`)."""
    return CLIPHand3D(model_cfg, template["verts"], template["joints"], template["faces"])


def save_checkpoint(path: str | Path, model: CLIPHand3D, template: dict, meta: dict) -> None:
    """Save the weights, the model's settings (``model.cfg``, every field), the template and ``meta``
    (input_size, depth_range, history ...) atomically."""
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save({"format": FORMAT, "model": model.state_dict(), "model_cfg": model.cfg.model_dump(),
                    "template": {k: torch.as_tensor(np.asarray(v)) for k, v in template.items()}, "meta": meta}, tmp)


def load_weights(path: str | Path) -> dict:
    """Read a file written by :func:`save_checkpoint` with ``weights_only=True`` (tensors and plain types only)
    and return its dict, with the template back as NumPy arrays.

    Raises:
        DataError: the file is missing, is not a torch file of tensors and plain types (e.g. a pickle that
            would run code), or lacks a cliphand checkpoint's keys; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure: corrupt, foreign or unsafe
        raise DataError(f"{path}: not a cliphand checkpoint (it must load with torch.load(weights_only=True): "
                        f"{str(exc).splitlines()[0][:200]})") from exc
    missing = [k for k in ("format", "model", "model_cfg", "template", "meta") if not isinstance(ckpt, dict) or k not in ckpt]
    if missing or ckpt.get("format") != FORMAT:
        raise DataError(f"{path}: not a cliphand checkpoint (missing {missing or ['format ' + FORMAT]}); "
                        "write one with `dvc repro` (pretrain/finetune stages)")
    ckpt["template"] = {k: v.numpy() for k, v in ckpt["template"].items()}
    return ckpt


def load_matching(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load the tensors of ``state`` whose names and shapes ``model`` has (strict=False); the rest of the
    model keeps its weights: the heads a pretrained checkpoint lacks, the text adapters of a run without CLIP."""
    own = model.state_dict()
    model.load_state_dict({k: v for k, v in state.items() if k in own and own[k].shape == v.shape}, strict=False)


def load_checkpoint(path: str | Path, model_cfg_override: dict | None = None) -> tuple[CLIPHand3D, dict]:
    """Rebuild the model of a checkpoint.

    Args:
        model_cfg_override: settings merged over the saved ones (e.g. ablation switches) before building;
            weights whose shapes no longer exist are skipped (strict=False), e.g. the text adapters of
            a run without CLIP.
    Returns:
        (model in eval mode, checkpoint dict with ``model_cfg``, ``template``, ``meta``).
    Raises:
        DataError: missing or unreadable file, or not a cliphand checkpoint (:func:`load_weights`).
    """
    ckpt = load_weights(path)
    cfg = {**ckpt["model_cfg"], **(model_cfg_override or {})}
    model = build_model(cfg, ckpt["template"])
    load_matching(model, ckpt["model"])
    model.eval()
    ckpt["model_cfg"] = cfg
    return model, ckpt
