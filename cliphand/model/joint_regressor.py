"""Joint regressor: lixel (1D) heatmaps along x, y, z and soft-argmax to uvd joints (paper §3.2, eq. 2)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cliphand.config import heatmap_upsampling


def lixel_centres(size: int, device=None, dtype=None) -> torch.Tensor:
    """Normalised coordinate of each lixel's centre: ``(i + 0.5) / size`` for i = 0..size-1, shape (size,).

    Lixel i covers [i/size, (i+1)/size) of the normalised uvd range [0, 1]; in pixels of the S x S model
    input it covers u_px in [i*S/size, (i+1)*S/size) (continuous coordinates, image spanning [0, S]).
    """
    return (torch.arange(size, device=device, dtype=dtype) + 0.5) / size


def soft_argmax(logits: torch.Tensor) -> torch.Tensor:
    """Soft-argmax over the last axis, in normalised coordinates.

    Args:
        logits: (..., Hm) lixel logits.
    Returns:
        (...) expected coordinate ``sum_i softmax(logits)_i * (i + 0.5) / Hm`` in [0.5/Hm, 1 - 0.5/Hm]; a
        one-hot heatmap at lixel i gives exactly ``(i + 0.5) / Hm`` (geometry.py's normalised u, v or d).
    """
    prob = torch.softmax(logits, dim=-1)
    return (prob * lixel_centres(logits.shape[-1], logits.device, prob.dtype)).sum(-1)


def _conv1d_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm1d(cout), nn.ReLU(inplace=True))


class JointRegressor(nn.Module):
    """Lixel-based 3D joint regressor (paper §3.2, eq. 2; the I2L-MeshNet PoseNet design, with an optional
    stride-16 skip).

    The 2D feature map F (C channels, Hm x Hm) comes from
      - ``stride=32`` (the paper / I2L-MeshNet): F4 up-sampled by stride-2 deconvolutions;
      - ``stride=16`` (default, our change): F3 plus F4 up-sampled x2 (1x1 convolutions to C first, FPN-style),
        a 3x3 convolution, then stride-2 deconvolutions. The x/y lixels then see stride-16 features, not only
        the 4x4 F4 of a 128-pixel input.
    Then
      x: F averaged over rows    -> (B, C, Hm) -> Conv1d 3 + BN + ReLU = Fp_x -> Conv1d 1 -> 21 x-logits,
      y: F averaged over columns -> (B, C, Hm) -> Conv1d 3 + BN + ReLU = Fp_y -> Conv1d 1 -> 21 y-logits,
      z: F4 global-average-pooled -> Conv1d 1 to C*Hm, reshaped (B, C, Hm) -> BN + ReLU
         -> Conv1d 3 + BN + ReLU = Fp_z -> Conv1d 1 -> 21 z-logits.
    The soft-argmax of each lixel heatmap gives (u, v, d) in normalised uvd (cliphand.hand.geometry):
    u = sum_i p_x(i) (i + 0.5) / Hm and likewise v (rows) and d (depth lixels spanning the depth range).

    Args:
        in_channels: channels of (F3, F4), or of F4 alone (an int) with ``stride=32``.
        feat_size: spatial side of F4 (S/32).
        heatmap_size: Hm = (S / stride) * 2**k, k >= 0.
        channels: C, deconvolution / lixel feature channels.
        num_joints: 21.
        stride: 16 or 32, the coarsest stride whose features reach the x/y lixels.

    Input: the backbone's list [F0..F4] (only F3 and F4 are read), or F4 alone with ``stride=32``.
    Output dict: 'uvd' (B, 21, 3) in [0, 1]; 'lixel_logits' (B, 3, 21, Hm) (axes x, y, z);
        'pose_feats' (B, 3, C, Hm) the pose-aware features Fp_x, Fp_y, Fp_z; 'feat2d' (B, C, Hm, Hm).

    Raises:
        ValueError: heatmap_size is not (S / stride) * 2**k, or stride is not 16 or 32.
    """

    def __init__(self, in_channels, feat_size: int, heatmap_size: int, channels: int, num_joints: int, stride: int):
        super().__init__()
        if stride not in (16, 32):
            raise ValueError(f"model.head_stride must be 16 or 32, got {stride}")
        c3, c4 = (None, int(in_channels)) if isinstance(in_channels, int) else (int(in_channels[0]), int(in_channels[1]))
        if stride == 16 and c3 is None:
            raise ValueError("JointRegressor with stride 16 needs the channels of (F3, F4)")
        base = feat_size * (32 // stride)
        ratio = heatmap_upsampling(base, heatmap_size)
        if ratio is None:
            raise ValueError(f"model.heatmap_size ({heatmap_size}) must be input_size/{stride} ({base}) times a "
                             f"power of two")
        self.heatmap_size, self.num_joints, self.channels, self.stride = heatmap_size, num_joints, channels, stride
        cin = c4
        if stride == 16:
            self.lateral = nn.Conv2d(c3, channels, 1)
            self.top = nn.Conv2d(c4, channels, 1)
            self.merge = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                                       nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
            cin = channels
        layers = []
        for _ in range(ratio.bit_length() - 1):
            layers += [nn.ConvTranspose2d(cin, channels, 4, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
            cin = channels
        if not layers and stride == 32:  # heatmap_size == feat_size: a 1x1 projection instead of deconvolutions
            layers = [nn.Conv2d(cin, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        self.deconv = nn.Sequential(*layers)
        self.feat_x = _conv1d_bn_relu(channels, channels)
        self.feat_y = _conv1d_bn_relu(channels, channels)
        self.z_expand = nn.Sequential(nn.Conv1d(c4, channels * heatmap_size, 1, bias=False))
        self.z_bn = nn.Sequential(nn.BatchNorm1d(channels), nn.ReLU(inplace=True))
        self.feat_z = _conv1d_bn_relu(channels, channels)
        self.out_x = nn.Conv1d(channels, num_joints, 1)
        self.out_y = nn.Conv1d(channels, num_joints, 1)
        self.out_z = nn.Conv1d(channels, num_joints, 1)

    def forward(self, feats) -> dict:
        f4 = feats if torch.is_tensor(feats) else feats[4]
        b = f4.shape[0]
        x = f4
        if self.stride == 16:
            f3 = feats[3]
            x = self.merge(self.lateral(f3) + F.interpolate(self.top(f4), size=f3.shape[-2:], mode="nearest"))
        feat2d = self.deconv(x)                                    # (B, C, Hm, Hm)
        fx = self.feat_x(feat2d.mean(2))                           # average over rows -> along x
        fy = self.feat_y(feat2d.mean(3))                           # average over columns -> along y
        g = f4.mean((2, 3))[:, :, None]                            # (B, C4, 1)
        fz = self.z_expand(g).view(b, self.channels, self.heatmap_size)
        fz = self.feat_z(self.z_bn(fz))
        logits = torch.stack([self.out_x(fx), self.out_y(fy), self.out_z(fz)], 1)  # (B, 3, 21, Hm)
        uvd = soft_argmax(logits).permute(0, 2, 1)                 # (B, 21, 3)
        return {"uvd": uvd, "lixel_logits": logits, "pose_feats": torch.stack([fx, fy, fz], 1), "feat2d": feat2d}
