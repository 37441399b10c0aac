"""Feature matching head: pose and text embeddings per axis and their CLIP logits (paper §3.3, eqs. 1 and 3)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

AXES = ("x", "y", "z")


class TextAdapter(nn.Module):
    """Trainable text adapter Phi_a of one axis (paper eq. 1) over frozen text-encoder features.

    Linear(Dt -> E) + learned positional embedding, one pre-norm TransformerEncoderLayer with
    ``batch_first=True`` (self-attention runs over the L tokens of ONE prompt, never across the batch: the
    authors' release attends across the batch, NOTES §5), mean-pool over tokens, L2-normalise.

    Args:
        text_dim: Dt (384 for all-MiniLM-L6-v2, 512 for CLIP ViT-B/32).
        embed_dim: E.
        max_len: longest L accepted (size of the positional table).
        heads, ff_dim, dropout: of the transformer layer.

    Input: (B, L, Dt) any float dtype (float16 features are cast), L = 1 for pooled sentence features or
        L = N + 1 token/joint features. Output: (B, E) unit-length.
    Raises: ValueError when L > max_len or the last dim is not Dt.
    """

    def __init__(self, text_dim: int, embed_dim: int, max_len: int, heads: int, ff_dim: int, dropout: float):
        super().__init__()
        self.text_dim, self.max_len = text_dim, max_len
        self.proj = nn.Linear(text_dim, embed_dim)
        self.pos = nn.Parameter(torch.randn(max_len, embed_dim) * 0.01)
        self.block = nn.TransformerEncoderLayer(embed_dim, heads, ff_dim, dropout, batch_first=True, norm_first=True)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        if feats.dim() != 3 or feats.shape[-1] != self.text_dim or feats.shape[1] > self.max_len:
            raise ValueError(f"text features must be (B, L<={self.max_len}, {self.text_dim}), got {tuple(feats.shape)}")
        h = self.proj(feats.to(self.proj.weight.dtype)) + self.pos[: feats.shape[1]]
        h = self.norm(self.block(h)).mean(1)
        return F.normalize(h, dim=-1)


class FeatureMatchingHead(nn.Module):
    """CLIP-style feature matching between pose-aware features and joint-order prompts (paper §3.3).

    Pose side: per axis a the lixel logits (B, 21, Hm) are flattened and linearly projected to E, then
    L2-normalised. Text side: one :class:`TextAdapter` per axis (Phi_x, Phi_y, Phi_z). Learnable temperature
    per axis tau_a = exp(t_a), t_a initialised at ``logit_scale_init`` (log 100), exp clamped to
    [1, logit_scale_max] (NOTES §5; see :meth:`logit_scale`).

    Args:
        num_joints: 21; heatmap_size: Hm; text_dim: Dt; embed_dim: E; text_max_len, heads, ff_dim, dropout:
        of the adapters; logit_scale_init: initial log-temperature; logit_scale_max: clamp of exp(t).
    """

    def __init__(self, num_joints: int, heatmap_size: int, text_dim: int, embed_dim: int, text_max_len: int,
                 heads: int, ff_dim: int, dropout: float, logit_scale_init: float, logit_scale_max: float):
        super().__init__()
        self.logit_scale_max = float(logit_scale_max)
        self.pose_proj = nn.ModuleList(nn.Linear(num_joints * heatmap_size, embed_dim) for _ in AXES)
        self.adapters = nn.ModuleList(TextAdapter(text_dim, embed_dim, text_max_len, heads, ff_dim, dropout)
                                      for _ in AXES)
        self.log_scale = nn.Parameter(torch.full((3,), float(logit_scale_init)))

    def encode_pose(self, lixel_logits: torch.Tensor) -> torch.Tensor:
        """(B, 3, 21, Hm) lixel logits -> (B, 3, E) unit-length pose embeddings (axes x, y, z)."""
        return torch.stack([F.normalize(p(lixel_logits[:, a].flatten(1)), dim=-1)
                            for a, p in enumerate(self.pose_proj)], 1)

    def encode_text(self, text_feats: torch.Tensor) -> torch.Tensor:
        """(B, 3, L, Dt) frozen text features -> (B, 3, E) unit-length text embeddings (eq. 1)."""
        if text_feats.dim() != 4 or text_feats.shape[1] != 3:
            raise ValueError(f"text_feats must be (B, 3, L, Dt), got {tuple(text_feats.shape)}")
        return torch.stack([ad(text_feats[:, a]) for a, ad in enumerate(self.adapters)], 1)

    def logit_scale(self) -> torch.Tensor:
        """(3,) temperatures exp(t_a) clamped to [1, logit_scale_max].

        The clamp is applied CLIP-style so that the temperature keeps learning at the bound: the parameter is
        projected back into [0, log max] in place when it has left it (as CLIP clamps it after each step), and
        the clamp passes gradients straight through (float32 log(100) lies just above the double bound, so a
        plain clamp would give the initial value a zero gradient forever).
        """
        lo, hi = 0.0, math.log(self.logit_scale_max)
        t = self.log_scale
        if bool(((t < lo - 1e-4) | (t > hi + 1e-4)).any()):
            with torch.no_grad():
                t.clamp_(lo, hi)
        t = t + (t.clamp(lo, hi) - t).detach()
        return t.exp()

    def logits(self, pose_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """Similarity matrices M_lr, M_tb, M_nf (paper eq. 3).

        Args: pose_emb (B, 3, E), text_emb (B, 3, E), unit-length.
        Returns: (3, B, B); [a, i, j] = tau_a * <pose_i,a , text_j,a> (rows images, columns prompts); the
            InfoNCE loss takes cross-entropy over rows and over columns with targets arange(B).
        """
        sim = torch.einsum("iae,jae->aij", pose_emb, text_emb)
        return self.logit_scale()[:, None, None] * sim
