"""CLIP-Hand3D: backbone + joint regressor + feature matching head + mesh regressor (paper §3, Fig. 2).

All model hyper-parameters and their defaults live in :class:`cliphand.config.ModelSettings` (mirrored by
``params.yaml``'s ``model:`` group). The defaults are sized for CPU training (efficientnet_lite0, 128x128 input, E = 256); the
paper's setting is resnet50, 224x224, E = 512, CLIP ViT-B/32 text features (text_dim 512).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cliphand.config import ModelSettings
from cliphand.model.backbone import Backbone
from cliphand.model.clip_head import FeatureMatchingHead
from cliphand.model.joint_regressor import JointRegressor
from cliphand.model.mesh_levels import build_levels
from cliphand.model.mesh_regressor import MeshRegressor

class CLIPHand3D(nn.Module):
    """CLIP-Hand3D (Guo et al., ACM MM 2023, §3; Fig. 2), adapted (see :class:`cliphand.config.ModelSettings` and module docstrings).

    Args:
        cfg: the model's settings (:class:`cliphand.config.ModelSettings`, or a mapping of some of its fields,
            e.g. a checkpoint's; missing fields take their defaults; an unknown one is a ValueError).
        template_verts: (V, 3) template mesh vertices, metres (bind pose). template_joints: (J, 3) its joints
            (FreiHAND order). faces: (F, 3) triangles (kept as a buffer for export and rendering).

    forward(images (B, 3, S, S) ImageNet-normalised, text_feats (B, 3, L, Dt) or None) -> dict:
        'uvd' (B, 21, 3) soft-argmax joints, normalised uvd (cliphand.hand.geometry);
        'lixel_logits' (B, 3, 21, Hm) per-axis lixel logits (x, y, z);
        'verts' (B, V, 3) normalised uvd vertices;
        'verts_coarse' list of (B, n_l, 3), levels 21, 85, 170, 340 by default (targets: :meth:`coarse_targets`);
        with use_clip and text_feats given: 'pose_emb' (B, 3, E), 'text_emb' (B, 3, E) unit-length,
        'logit_scale' (3,). The text adapters run only when text_feats is given (never at inference);
        with use_clip False, text_feats is ignored.
    """

    def __init__(self, cfg: ModelSettings | dict | None, template_verts, template_joints, faces=None):
        super().__init__()
        self.cfg = c = cfg if isinstance(cfg, ModelSettings) else ModelSettings.model_validate(cfg or {})
        verts = np.asarray(template_verts, np.float32)
        joints = np.asarray(template_joints, np.float32)
        if joints.shape != (c.num_joints, 3) or verts.ndim != 2 or verts.shape[1] != 3:
            raise ValueError(f"template must be verts (V, 3) and joints ({c.num_joints}, 3), "
                             f"got {verts.shape} and {joints.shape}")
        s = int(c.input_size)
        if s % 32:
            raise ValueError(f"model.input_size must be a multiple of 32, got {s}")
        self.backbone = Backbone(c.backbone, c.pretrained)
        ch = self.backbone.channels
        self.joint_regressor = JointRegressor((ch[3], ch[4]), s // 32, int(c.heatmap_size),
                                              int(c.deconv_channels), int(c.num_joints), int(c.head_stride))
        self.clip_head = None
        if c.use_clip:
            self.clip_head = FeatureMatchingHead(
                c.num_joints, c.heatmap_size, c.text_dim, c.embed_dim, c.text_max_len,
                c.adapter_heads, c.adapter_ff, c.adapter_dropout, c.logit_scale_init, c.logit_scale_max)
        mids = list(c.mesh_levels) if c.use_sparse_to_dense else []
        dims = list(c.mesh_dims)[: len(mids) + 1]
        self.levels = build_levels(verts, joints, [len(joints), *mids, len(verts)])
        self.mesh_regressor = MeshRegressor(
            self.levels, ch[0], ch[1:4], c.heatmap_size, dims, c.mesh_heads, c.mesh_layers, c.mesh_ff_mult,
            c.mesh_dropout, c.mesh_fj_channels, c.heatmap_sigma, c.mesh_proj_levels, c.use_projection,
            c.mesh_residual, c.mesh_detach_joints)
        self.register_buffer("faces", torch.as_tensor(np.zeros((0, 3)) if faces is None else np.asarray(faces),
                                                      dtype=torch.long))

    def pose_features(self, images: torch.Tensor) -> dict:
        """Pose feature generation (Table 6's first part): backbone + joint regressor.

        Returns the joint regressor's dict ('uvd', 'lixel_logits', 'pose_feats', 'feat2d') plus 'feats'
        [F0..F4]. Raises ValueError when images are not (B, 3, S, S).
        """
        s = self.cfg.input_size
        if images.dim() != 4 or images.shape[1:] != (3, s, s):
            raise ValueError(f"images must be (B, 3, {s}, {s}), got {tuple(images.shape)}")
        feats = self.backbone(images)
        return {**self.joint_regressor(feats), "feats": feats}

    def mesh(self, pose: dict) -> dict:
        """Mesh regressor (Table 6's second part) from :meth:`pose_features`' output."""
        return self.mesh_regressor(pose["feats"], pose["uvd"])

    def forward(self, images: torch.Tensor, text_feats: torch.Tensor | None = None) -> dict:
        pose = self.pose_features(images)
        out = {"uvd": pose["uvd"], "lixel_logits": pose["lixel_logits"], **self.mesh(pose)}
        if self.clip_head is not None and text_feats is not None:
            out["pose_emb"] = self.clip_head.encode_pose(pose["lixel_logits"])
            out["text_emb"] = self.clip_head.encode_text(text_feats)
            out["logit_scale"] = self.clip_head.logit_scale()
        return out

    def logits(self, out: dict) -> torch.Tensor:
        """(3, B, B) M_lr, M_tb, M_nf (eq. 3) from a forward output that holds the embeddings."""
        return self.clip_head.logits(out["pose_emb"], out["text_emb"])

    def coarse_targets(self, joints_uvd: torch.Tensor, verts_uvd: torch.Tensor) -> list[torch.Tensor]:
        """Deep-supervision targets matching out['verts_coarse'] from GT joints (B, 21, 3) and verts (B, V, 3) uvd."""
        return self.mesh_regressor.coarse_targets(joints_uvd, verts_uvd)

    def inference_modules(self) -> nn.ModuleDict:
        """The modules run at inference (backbone, joint regressor, mesh regressor; no text adapters), e.g. for
        counting inference parameters or exporting."""
        return nn.ModuleDict({"backbone": self.backbone, "joint_regressor": self.joint_regressor,
                              "mesh_regressor": self.mesh_regressor})
