"""Mesh regressor: sparse-to-dense node transformer with joint-based feature-pyramid projection (paper §3.4)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from cliphand.model.joint_regressor import lixel_centres
from cliphand.model.mesh_levels import MeshLevels


def gaussian_1d(coord: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """1D Gaussians on a lixel grid.

    Args: coord (...) normalised coordinates in [0, 1] (uvd convention); size: lixels; sigma: heatmap pixels.
    Returns: (..., size) ``exp(-(i - (coord*size - 0.5))**2 / (2 sigma**2))``, peak 1 at the lixel centre.
    """
    centres = lixel_centres(size, coord.device, coord.dtype) * size - 0.5   # = 0, 1, ..., size-1
    return torch.exp(-((centres - (coord[..., None] * size - 0.5)) ** 2) / (2.0 * sigma ** 2))


def render_heatmap3d(uvd: torch.Tensor, size: int, sigma: float = 2.0) -> torch.Tensor:
    """3D Gaussian joint heatmaps (paper §3.4, App. A.2: sigma = 2 heatmap pixels).

    Args: uvd (B, J, 3) normalised uvd; size: Hm lixels per axis; sigma in heatmap pixels.
    Returns: (B, J, Hm_d, Hm_v, Hm_u) with value 1 at each joint's centre, separable in u, v, d.
    """
    gx, gy, gz = (gaussian_1d(uvd[..., a], size, sigma) for a in range(3))
    return gz[..., :, None, None] * gy[..., None, :, None] * gx[..., None, None, :]


def sample_at(feat: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear features at normalised image points (grid_sample, align_corners=False).

    Args: feat (B, C, h, w) covering the whole input image; uv (B, N, 2) in [0, 1] (u right, v down).
    Returns: (B, N, C); points outside the image read zeros.
    """
    grid = (uv * 2.0 - 1.0)[:, None]                                         # (B, 1, N, 2)
    return F.grid_sample(feat, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, :, 0].transpose(1, 2)


def _shrink(linear: nn.Linear, factor: float = 0.01) -> nn.Linear:
    with torch.no_grad():
        linear.weight.mul_(factor)
        linear.bias.zero_()
    return linear


class MeshRegressor(nn.Module):
    """Coarse-to-fine mesh regressor of CLIP-Hand3D (paper §3.4).

    1. Joint feature F_J: the 3D Gaussian heatmap of the predicted joints (J x Hm x Hm x Hm, sigma 2, App. A.2)
       is concatenated with F0 (resized to Hm x Hm) and passed through a 1x1 conv, BN, ReLU, 3x3 conv, BN,
       ReLU (fj channels). The 1x1 conv over the J*Hm heatmap channels is computed in factorised form
       (the heatmap is separable), exactly equal to the conv on the explicit heatmap but without building it.
    2. Level-0 nodes (the 21 joints): per joint [flattened joint map of F_J (1x1 conv to J maps,
       pooled to Hm/2), F_J sampled at the joint, its uvd, its template position] -> Linear -> dims[0].
    3. Per level l (sizes e.g. 21, 85, 170, 340; dims 256, 128, 64, 32): node tokens with positional encoding
       = template coordinates concatenated and projected; joint-based feature-pyramid projection: F_k
       (k = proj_levels[l], one pyramid level per block) sampled at the predicted 2D joints, concatenated with
       the template joint positions and projected to 21 extra tokens; ``layers`` pre-norm transformer layers
       (batch_first: attention over the nodes of ONE sample); a Linear head gives coarse coordinates.
       Up-sampling to the next level is a learned linear map over the node axis (as in the release),
       initialised from nearest-neighbour assignment, then Linear(d_l + 3 -> d_{l+1}) on [features, position].
    4. The last level is up-sampled to all V vertices and an MLP gives vertex coordinates in normalised uvd.
    With ``residual`` (our addition for short CPU training) each level predicts an offset added to the
    up-sampled coordinates of the previous level (level 0: to the predicted joint uvd), and the coordinate
    heads start near zero, so the initial mesh is the joints spread over the template by nearest neighbour.

    Args:
        levels: :class:`MeshLevels` with sizes [J, ..., V] (two sizes = no intermediate level: one linear map
            from the joint nodes straight to V vertices, the ``use_sparse_to_dense=False`` ablation).
        f0_channels: channels of F0. pyramid_channels: channels of (F1, F2, F3). heatmap_size: Hm.
        dims: node feature size per level, len = len(levels.sizes) - 1.
        heads, layers, ff_mult, dropout: transformer blocks. fj_channels: F_J channels. sigma: heatmap sigma.
        proj_levels: pyramid index k in {1, 2, 3} per block. use_projection: joint-based feature-pyramid
        projection on/off. residual: see above. detach_joints: stop mesh gradients into the joint regressor
        through the heatmap and the sampling points.

    Inputs: feats [F0, F1, F2, F3, ...] from the backbone; uvd (B, J, 3) predicted joints.
    Output dict: 'verts' (B, V, 3) normalised uvd; 'verts_coarse' list of (B, n_l, 3), one per level before V.

    Raises: ValueError on inconsistent sizes.
    """

    def __init__(self, levels: MeshLevels, f0_channels: int, pyramid_channels, heatmap_size: int,
                 dims, heads: int, layers: int, ff_mult: int, dropout: float, fj_channels: int, sigma: float,
                 proj_levels, use_projection: bool, residual: bool, detach_joints: bool):
        super().__init__()
        sizes = levels.sizes
        nblocks = len(sizes) - 1
        dims = [int(d) for d in dims]
        if len(dims) != nblocks:
            raise ValueError(f"mesh dims {dims} must have one entry per level before V (sizes {sizes})")
        if use_projection and (len(proj_levels) < nblocks or any(k not in (1, 2, 3) for k in proj_levels[:nblocks])):
            raise ValueError(f"mesh proj_levels {list(proj_levels)} must give a pyramid index 1-3 for each of {nblocks} blocks")
        if any(d % heads for d in dims):
            raise ValueError(f"mesh dims {dims} must be divisible by heads={heads}")
        nj, hm = sizes[0], heatmap_size
        self.num_joints, self.heatmap_size, self.sigma = nj, hm, float(sigma)
        self.use_projection, self.residual, self.detach_joints = use_projection, residual, detach_joints
        self.proj_levels = [int(k) for k in proj_levels[:nblocks]]
        self.sizes = sizes

        # template positions, centred on the joints' mean and scaled to unit max radius
        allpos = np.concatenate(levels.positions)
        centre = levels.positions[0].mean(0)
        scale = float(np.linalg.norm(allpos - centre, axis=1).max()) or 1.0
        for l, p in enumerate(levels.positions):
            self.register_buffer(f"pos{l}", torch.as_tensor((p - centre) / scale, dtype=torch.float32))
        for l, idx in enumerate(levels.indices[1:-1], start=1):
            self.register_buffer(f"index{l}", torch.as_tensor(idx, dtype=torch.long))

        # 1. F_J from [F0, 3D joint heatmap]
        self.hm_weight = nn.Parameter(torch.randn(fj_channels, nj, hm) / math.sqrt(nj * hm + f0_channels))
        self.f0_conv = nn.Conv2d(f0_channels, fj_channels, 1, bias=False)
        self.fj = nn.Sequential(nn.BatchNorm2d(fj_channels), nn.ReLU(inplace=True),
                                nn.Conv2d(fj_channels, fj_channels, 3, padding=1, bias=False),
                                nn.BatchNorm2d(fj_channels), nn.ReLU(inplace=True))
        # 2. level-0 joint node features
        self.pool_size = max(hm // 2, 1)
        self.joint_maps = nn.Conv2d(fj_channels, nj, 1)
        self.node0 = nn.Linear(self.pool_size ** 2 + fj_channels + 3 + 3, dims[0])
        # 3. blocks
        self.blocks = nn.ModuleList(
            nn.TransformerEncoder(nn.TransformerEncoderLayer(d, heads, ff_mult * d, dropout, batch_first=True,
                                                             norm_first=True), layers, enable_nested_tensor=False)
            for d in dims)
        self.block_norms = nn.ModuleList(nn.LayerNorm(d) for d in dims)
        if use_projection:
            self.joint_tokens = nn.ModuleList(nn.Linear(pyramid_channels[k - 1] + 3, d)
                                              for k, d in zip(self.proj_levels, dims))
        self.coarse_heads = nn.ModuleList(self._head(nn.Linear(d, 3)) for d in dims)
        ups = levels.upsample_inits()                                        # (n_{l+1}, n_l) each
        self.upsample = nn.ParameterList(nn.Parameter(torch.as_tensor(u)) for u in ups)
        self.lift = nn.ModuleList(nn.Linear(dims[l] + 3, dims[l + 1]) for l in range(nblocks - 1))
        # 4. vertex head
        d = dims[-1]
        self.vert_head = nn.Sequential(nn.Linear(d + 3, 2 * d), nn.ReLU(inplace=True), self._head(nn.Linear(2 * d, 3)))

    def _head(self, linear: nn.Linear) -> nn.Linear:
        return _shrink(linear) if self.residual else linear

    def pos(self, level: int) -> torch.Tensor:
        """(n_l, 3) normalised template positions of level ``level``'s nodes."""
        return getattr(self, f"pos{level}")

    def coarse_targets(self, joints_uvd: torch.Tensor, verts_uvd: torch.Tensor) -> list[torch.Tensor]:
        """Ground truth matching 'verts_coarse': [joints (B, J, 3)] + [verts_uvd[:, index_l] (B, n_l, 3)]."""
        return [joints_uvd] + [verts_uvd[:, getattr(self, f"index{l}")] for l in range(1, len(self.sizes) - 1)]

    def joint_feature(self, f0: torch.Tensor, uvd: torch.Tensor) -> torch.Tensor:
        """F_J (B, fj, Hm, Hm) from F0 and the 3D heatmap of ``uvd`` (B, J, 3) (factorised 1x1 conv)."""
        hm = self.heatmap_size
        if f0.shape[-2:] != (hm, hm):
            f0 = F.interpolate(f0, size=(hm, hm), mode="bilinear", align_corners=False)
        gx, gy, gz = (gaussian_1d(uvd[..., a], hm, self.sigma) for a in range(3))   # (B, J, Hm) each
        a = torch.einsum("cjd,bjd->bcj", self.hm_weight, gz)
        heat = torch.einsum("bcj,bjh,bjw->bchw", a, gy, gx)
        return self.fj(self.f0_conv(f0) + heat)

    def forward(self, feats: list[torch.Tensor], uvd: torch.Tensor) -> dict:
        b = uvd.shape[0]
        joints = uvd.detach() if self.detach_joints else uvd
        uv = joints[..., :2]
        fj = self.joint_feature(feats[0], joints)
        maps = F.adaptive_avg_pool2d(self.joint_maps(fj), self.pool_size).flatten(2)   # (B, J, p*p)
        pos0 = self.pos(0).expand(b, -1, -1)
        h = self.node0(torch.cat([maps, sample_at(fj, uv), joints, pos0], -1))     # (B, J, d0)
        coords = joints
        coarse = []
        jpos = self.pos(0).expand(b, -1, -1)
        for l, block in enumerate(self.blocks):
            if l > 0:
                up = self.upsample[l - 1]
                h = self.lift[l - 1](torch.cat([torch.einsum("ds,bsc->bdc", up, h), self.pos(l).expand(b, -1, -1)], -1))
                coords = torch.einsum("ds,bsc->bdc", up, coords)
            n = h.shape[1]
            tokens = h
            if self.use_projection:
                jt = self.joint_tokens[l](torch.cat([sample_at(feats[self.proj_levels[l]], uv), jpos], -1))
                tokens = torch.cat([h, jt], 1)
            h = self.block_norms[l](block(tokens)[:, :n])
            delta = self.coarse_heads[l](h)
            coords = coords + delta if self.residual else delta
            coarse.append(coords)
        up = self.upsample[-1]
        hv = torch.cat([torch.einsum("ds,bsc->bdc", up, h), self.pos(len(self.sizes) - 1).expand(b, -1, -1)], -1)
        delta = self.vert_head(hv)
        verts = torch.einsum("ds,bsc->bdc", up, coords) + delta if self.residual else delta
        return {"verts": verts, "verts_coarse": coarse}
