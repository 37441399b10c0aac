"""Visual encoder: a torchvision ResNet returning the stem output F0 and the pyramid F1..F4 (paper §3.2)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torchvision
from torch import nn

from ..errors import DataError

#: output channels of (F0, F1, F2, F3, F4) per supported ResNet
CHANNELS = {
    "resnet18": (64, 64, 128, 256, 512),
    "resnet34": (64, 64, 128, 256, 512),
    "resnet50": (64, 256, 512, 1024, 2048),
}


def _imagenet_state_dict(name: str) -> dict:
    """torchvision's ImageNet weights for ``name`` (downloads into the torch hub cache if absent).

    Raises:
        RuntimeError: the weights are neither cached nor downloadable (e.g. offline).
    """
    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        return weights.get_state_dict(progress=False)
    except Exception as exc:  # network errors come in many types (URLError, OSError, HTTPError ...)
        raise RuntimeError(
            f"ImageNet weights for {name} could not be had offline or downloaded ({type(exc).__name__}: {exc}); "
            f"put a torchvision state_dict file on disk and pass its path as model.pretrained, or set "
            f"model.pretrained to null to train from random weights") from exc


def _file_state_dict(path: str | os.PathLike) -> dict:
    """Load a torchvision ResNet state_dict (optionally wrapped under 'state_dict' or 'model').

    Raises:
        DataError: the file is missing or does not hold a tensor mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: pretrained backbone weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(f"{path}: cannot be read as a torch state_dict ({exc})") from exc
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{path}: expected a mapping of parameter names to tensors")
    return state


class Backbone(nn.Module):
    """ResNet visual encoder of CLIP-Hand3D (paper §3.2; the paper uses ResNet-50 at 224x224).

    Args:
        name: 'resnet18', 'resnet34' or 'resnet50' (torchvision architectures).
        pretrained: None (random init, the offline default), 'imagenet' (torchvision's weights enum;
            downloads unless cached) or a path to a local torchvision state_dict file.

    Input: images (B, 3, S, S) float, ImageNet-normalised; S a multiple of 32.
    Output: list [F0, F1, F2, F3, F4] with
        F0 (B, 64, S/4, S/4)  stem output (conv1, bn, relu, max-pool),
        F1 (B, C1, S/4, S/4)  layer1,   F2 (B, C2, S/8, S/8)   layer2,
        F3 (B, C3, S/16, S/16) layer3,  F4 (B, C4, S/32, S/32) layer4;
    channels in ``self.channels`` (e.g. resnet18: 64, 64, 128, 256, 512).

    Raises:
        ValueError: unknown name; DataError: bad weights file (missing file or key mismatch);
        RuntimeError: 'imagenet' weights unavailable offline.
    """

    def __init__(self, name: str = "resnet18", pretrained: str | None = None):
        super().__init__()
        if name not in CHANNELS:
            raise ValueError(f"model.backbone must be one of {sorted(CHANNELS)}, got {name!r}")
        self.channels = CHANNELS[name]
        net = getattr(torchvision.models, name)(weights=None)
        if pretrained:
            state = _imagenet_state_dict(name) if pretrained == "imagenet" else _file_state_dict(pretrained)
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}
            missing, unexpected = net.load_state_dict(state, strict=False)
            missing = [k for k in missing if not k.startswith("fc.")]
            if missing or unexpected:
                raise DataError(f"{pretrained}: not a torchvision {name} state_dict "
                                f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        f0 = self.stem(images)
        f1 = self.layer1(f0)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        return [f0, f1, f2, f3, f4]
