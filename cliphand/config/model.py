"""``model``: the model's hyper-parameters (:class:`ModelSettings`), every one with its default."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field

from cliphand.config.types import NonNegInt, PosFloat, PosInt, Prob, StrictModel
from cliphand.defaults import BACKBONES


class ModelSettings(StrictModel):
    """``model``: the model's hyper-parameters, every one with its default (:class:`cliphand.model.cliphand3d.CLIPHand3D`;
    checkpoints store them). The defaults are sized for CPU training; the paper's setting is resnet50, 224 px,
    E = 512 and CLIP ViT-B/32 text features (configs/paper.yaml). Strict types: ``use_clip: 'yes'`` is an error."""

    # visual encoder (§3.2)
    backbone: Literal[BACKBONES] = "efficientnet_lite0"   # type: ignore[valid-type]  (paper: resnet50)
    pretrained: str | None = "imagenet"   # null | imagenet (Lite: its PyPI wheel; ResNet: torchvision) | state_dict file
    input_size: Annotated[int, Field(ge=32, multiple_of=32)] = 128   # S, square input side, pixels (paper: 224)
    num_joints: Literal[21] = 21
    # joint regressor (§3.2, eq. 2)
    heatmap_size: PosInt = 32          # Hm lixels per axis: (S / head_stride) * 2**k (paper, I2L-MeshNet: 64 at 256)
    head_stride: Literal[16, 32] = 16  # 16: F3 + up-sampled F4 feed the x/y lixels; 32: F4 only (paper)
    deconv_channels: PosInt = 128      # C of the deconvolutions and of the pose-aware features Fp
    # feature matching head (§3.3)
    use_clip: bool = True              # ablation: False drops the head (no pose/text embeddings)
    embed_dim: PosInt = 256            # E (paper: 512)
    text_dim: PosInt = 384             # Dt of the frozen text features (MiniLM 384, CLIP ViT-B/32 512)
    text_max_len: PosInt = 77          # longest text sequence L the adapters accept
    adapter_heads: PosInt = 4
    adapter_ff: PosInt = 512
    adapter_dropout: Prob = 0.1
    logit_scale_init: float = math.log(100.0)   # initial log temperature (NOTES §5)
    logit_scale_max: PosFloat = 100.0  # exp(log temperature) clamped to [1, this]
    # mesh regressor (§3.4)
    mesh_levels: list[PosInt] = [85, 170, 340]       # node counts between the 21 joints and the V vertices
    mesh_dims: list[PosInt] = [256, 128, 64, 32]     # node feature size per level (21, 85, 170, 340)
    mesh_heads: PosInt = 4
    mesh_layers: PosInt = 1            # transformer layers per level
    mesh_ff_mult: PosInt = 2
    mesh_dropout: Prob = 0.0           # > 0 puts attention on the slow math path (2x mesh cost on CPU)
    mesh_fj_channels: PosInt = 64      # channels of F_J ([F0, 3D joint heatmap] -> conv)
    heatmap_sigma: PosFloat = 2.0      # of the 3D joint heatmap, heatmap pixels (App. A.2)
    mesh_proj_levels: list[NonNegInt] = [3, 3, 2, 1]  # pyramid level F_k sampled at the joints, per block
    use_projection: bool = True        # ablation: joint-based feature-pyramid projection
    use_sparse_to_dense: bool = True   # ablation: False = one linear map from the 21 joint nodes to V vertices
    mesh_residual: bool = True         # each level refines the up-sampled coarser coordinates (our addition)
    mesh_detach_joints: bool = False   # stop mesh-loss gradients into the joint regressor
