"""Training losses of CLIP-Hand3D (Guo et al., ACM MM 2023, Sec. 3), one small function per loss.

Equations refer to the paper: eq. 3 / 7 contrastive pose-text loss, eq. 4 L1 on joints and vertices
(plus our supervision of the lixel distributions, :func:`lixel_loss`, as in SimCC / RTMPose),
eq. 5 mesh normal and edge-length losses (as in I2L-MeshNet and MobRecon), eq. 6 2D/3D consistency
between two augmented views of one image. Every function checks its input shapes and raises
``ValueError`` with a clear message on a mismatch; all return a scalar tensor (mean over elements).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def _check_mesh(pred_verts: torch.Tensor, gt_verts: torch.Tensor, faces: torch.Tensor, name: str) -> torch.Tensor:
    _require(pred_verts.ndim == 3 and pred_verts.shape[-1] == 3,
             f"{name}: pred_verts must be (B,V,3), got {tuple(pred_verts.shape)}")
    _require(pred_verts.shape == gt_verts.shape,
             f"{name}: pred_verts {tuple(pred_verts.shape)} and gt_verts {tuple(gt_verts.shape)} differ")
    faces = torch.as_tensor(faces, device=pred_verts.device).long()
    _require(faces.ndim == 2 and faces.shape[1] == 3, f"{name}: faces must be (F,3), got {tuple(faces.shape)}")
    _require(faces.numel() > 0 and int(faces.min()) >= 0 and int(faces.max()) < pred_verts.shape[1],
             f"{name}: face indices must lie in [0, {pred_verts.shape[1]})")
    return faces


def l1_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Eq. 4: mean absolute error, for joints (B,21,3) or vertices (B,V,3) in normalised uvd (any equal shapes).

    Raises:
        ValueError: shapes differ.
    """
    _require(pred.shape == gt.shape, f"l1_loss: pred {tuple(pred.shape)} and gt {tuple(gt.shape)} differ")
    return (pred - gt).abs().mean()


def lixel_loss(logits: torch.Tensor, uvd_gt: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """KL divergence of each per-axis lixel distribution from a Gaussian label distribution (our addition).

    The soft-argmax L1 of eq. 4 constrains only the mean of each lixel heatmap and leaves its shape free;
    a multimodal heatmap then predicts the mean of its modes (Nibali et al., DSNT, 2018; Gu et al., ICLR
    2022). As in SimCC / RTMPose (Li et al., ECCV 2022), the label of joint j on axis a is a Gaussian on the
    lixel grid centred at the continuous ground-truth coordinate, normalised to sum 1:
    ``q_i ∝ exp(-(i + 0.5 - c Hm)^2 / (2 sigma^2))`` with c the normalised coordinate (uvd convention,
    :func:`cliphand.model.joint_regressor.lixel_centres`), and the loss is ``KL(q || softmax(logits))``
    averaged over the joints and axes whose coordinate lies inside [0, 1] (a joint outside the crop has no
    lixel to sit on; its L1 term still applies).

    Args:
        logits: (B, 3, J, Hm) per-axis lixel logits (x, y, z).
        uvd_gt: (B, J, 3) normalised uvd ground truth.
        sigma: standard deviation of the label Gaussian, in lixels (> 0).
    Returns:
        scalar tensor in nats, >= 0; 0 only when every prediction equals its label distribution.
    Raises:
        ValueError: shapes mismatch or sigma <= 0.
    """
    _require(logits.ndim == 4 and logits.shape[1] == 3,
             f"lixel_loss: logits must be (B,3,J,Hm), got {tuple(logits.shape)}")
    _require(uvd_gt.shape == (logits.shape[0], logits.shape[2], 3),
             f"lixel_loss: uvd_gt must be ({logits.shape[0]},{logits.shape[2]},3), got {tuple(uvd_gt.shape)}")
    _require(sigma > 0, f"lixel_loss: sigma must be > 0 lixels, got {sigma}")
    hm = logits.shape[-1]
    coord = uvd_gt.permute(0, 2, 1).to(logits.dtype)                              # (B, 3, J)
    centres = torch.arange(hm, device=logits.device, dtype=logits.dtype) + 0.5      # lixel centres, lixels
    log_q = -((centres - coord[..., None] * hm) ** 2) / (2.0 * sigma ** 2)
    log_q = log_q - torch.logsumexp(log_q, dim=-1, keepdim=True)
    kl = (log_q.exp() * (log_q - torch.log_softmax(logits, dim=-1))).sum(-1)        # (B, 3, J)
    inside = ((coord >= 0) & (coord <= 1)).to(kl.dtype)
    return (kl * inside).sum() / inside.sum().clamp(min=1.0)


def normal_loss(pred_verts: torch.Tensor, gt_verts: torch.Tensor, faces: torch.Tensor,
                rel_eps: float = 0.1) -> torch.Tensor:
    """Eq. 5 (normal term, I2L-MeshNet / MobRecon): |cos| between predicted face edges and GT face normals.

    For each face (i, j, k) the three predicted edge directions (j-i, k-i, k-j), unit length, should be
    perpendicular to the GT unit normal ``(gt_j-gt_i) x (gt_k-gt_i)``; the loss is the mean |dot product|.
    An edge e is made unit as ``e / sqrt(|e|^2 + eps^2)`` with ``eps = rel_eps`` x the length of the same
    GT edge (our addition): a predicted edge of length zero (the residual mesh regressor starts with every
    vertex on its nearest joint) or a nearly zero one would otherwise get a gradient of order 1/|e| and blow
    the mesh apart (measured on the synthetic val split after one end-to-end finetune epoch: PA-MPVPE 43.3 mm
    with plain unit edges, 24.0 mm with the floor; README, the default recipe).

    Args:
        pred_verts, gt_verts: (B, V, 3), any common unit. faces: (F, 3) integer vertex indices.
        rel_eps: the length floor of an edge, as a fraction of its GT length (>= 0; 0 = plain unit vectors).
    Returns:
        scalar tensor, 0 when the prediction equals the GT (up to a similarity transform).
    Raises:
        ValueError: shapes or face indices are invalid.
    """
    faces = _check_mesh(pred_verts, gt_verts, faces, "normal_loss")
    i, j, k = faces[:, 0], faces[:, 1], faces[:, 2]

    def unit(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        e = pred_verts[:, b] - pred_verts[:, a]
        floor = rel_eps * (gt_verts[:, b] - gt_verts[:, a]).norm(dim=-1, keepdim=True)
        return e / ((e * e).sum(-1, keepdim=True) + floor ** 2 + 1e-12).sqrt()

    n_gt = F.normalize(torch.cross(gt_verts[:, j] - gt_verts[:, i], gt_verts[:, k] - gt_verts[:, i], dim=-1), dim=-1)
    cos = torch.stack([(e * n_gt).sum(-1).abs() for e in (unit(i, j), unit(i, k), unit(j, k))], dim=1)  # (B, 3, F)
    return cos.mean()


def edge_length_loss(pred_verts: torch.Tensor, gt_verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Eq. 5 (edge term, I2L-MeshNet / MobRecon): mean |len_pred - len_gt| over the three edges of every face.

    Args:
        pred_verts, gt_verts: (B, V, 3), same unit. faces: (F, 3) integer vertex indices.
    Returns:
        scalar tensor in the unit of the vertices.
    Raises:
        ValueError: shapes or face indices are invalid.
    """
    faces = _check_mesh(pred_verts, gt_verts, faces, "edge_length_loss")
    diffs = []
    for a, b in ((0, 1), (0, 2), (1, 2)):
        len_pred = (pred_verts[:, faces[:, a]] - pred_verts[:, faces[:, b]]).norm(dim=-1)
        len_gt = (gt_verts[:, faces[:, a]] - gt_verts[:, faces[:, b]]).norm(dim=-1)
        diffs.append((len_pred - len_gt).abs())
    return torch.stack(diffs, dim=1).mean()


def _check_affine(affine_ab: torch.Tensor, batch: int, name: str) -> None:
    _require(affine_ab.ndim == 3 and tuple(affine_ab.shape[1:]) == (2, 3) and affine_ab.shape[0] == batch,
             f"{name}: affine_ab must be ({batch},2,3), got {tuple(affine_ab.shape)}")


def apply_affine_uv(uv: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """Map points (B, N, 2) with per-sample 2x3 affines (B, 2, 3): ``uv @ A[:, :, :2].T + A[:, :, 2]``."""
    return uv @ affine[:, :, :2].transpose(1, 2) + affine[:, None, :, 2]


def consistency_loss_2d(uv_a: torch.Tensor, uv_b: torch.Tensor, affine_ab: torch.Tensor) -> torch.Tensor:
    """Eq. 6, 2D term: view a's 2D joints mapped into view b's frame should match view b's prediction (L1).

    View b is an in-plane rotation / scale / shift of view a; ``affine_ab`` maps normalised uv of view a
    (u = u_px / S) to normalised uv of view b. Gradients flow into both views' predictions.

    Args:
        uv_a, uv_b: (B, N, 2) normalised uv (the first two uvd channels may be passed as ``uvd[..., :2]``).
        affine_ab: (B, 2, 3) affine in normalised uv.
    Returns:
        scalar tensor.
    Raises:
        ValueError: shapes mismatch.
    """
    _require(uv_a.ndim == 3 and uv_a.shape[-1] == 2, f"consistency_loss_2d: uv_a must be (B,N,2), got {tuple(uv_a.shape)}")
    _require(uv_a.shape == uv_b.shape, f"consistency_loss_2d: uv_a {tuple(uv_a.shape)} and uv_b {tuple(uv_b.shape)} differ")
    _check_affine(affine_ab, uv_a.shape[0], "consistency_loss_2d")
    return (apply_affine_uv(uv_a, affine_ab.to(uv_a.dtype)) - uv_b).abs().mean()


def consistency_loss_3d(xyz_a: torch.Tensor, xyz_b: torch.Tensor, affine_ab: torch.Tensor | None = None,
                        root: int = 0) -> torch.Tensor:
    """Eq. 6, 3D term: root-relative 3D joints of the two views agree (L1).

    An in-plane image rotation by R with zoom s about the crop is (approximately) a camera roll about
    the optical axis: root-relative depth is unchanged and root-relative camera x, y rotate by R; the
    zoom does not change the metric 3D shape. Hence:

    - ``affine_ab=None``: only root-relative depth (channel 2) must agree. Use this for uvd inputs,
      whose u, v are already tied by :func:`consistency_loss_2d` and whose d is metric depth.
    - ``affine_ab`` given (metric xyz inputs): also ``rel_b[..., :2] = rel_a[..., :2] @ R.T`` with
      ``R = A[:, :, :2] / s``, ``s = sqrt(|det A[:, :, :2]|)``; the affine must have no reflection.
    rel = points minus the root joint.

    Args:
        xyz_a, xyz_b: (B, N, 3) joints of views a and b (metres camera frame, or normalised uvd with
            ``affine_ab=None``).
        affine_ab: optional (B, 2, 3) affine of :func:`consistency_loss_2d`.
        root: root joint index (wrist = 0).
    Returns:
        scalar tensor (mean over the compared channels).
    Raises:
        ValueError: shapes mismatch.
    """
    _require(xyz_a.ndim == 3 and xyz_a.shape[-1] == 3, f"consistency_loss_3d: xyz_a must be (B,N,3), got {tuple(xyz_a.shape)}")
    _require(xyz_a.shape == xyz_b.shape, f"consistency_loss_3d: xyz_a {tuple(xyz_a.shape)} and xyz_b {tuple(xyz_b.shape)} differ")
    rel_a = xyz_a - xyz_a[:, root:root + 1]
    rel_b = xyz_b - xyz_b[:, root:root + 1]
    if affine_ab is None:
        return (rel_a[..., 2] - rel_b[..., 2]).abs().mean()
    _check_affine(affine_ab, xyz_a.shape[0], "consistency_loss_3d")
    lin = affine_ab[:, :, :2].to(xyz_a.dtype)
    rot = lin / torch.linalg.det(lin).abs().sqrt()[:, None, None]
    rel_a_in_b = torch.cat([rel_a[..., :2] @ rot.transpose(1, 2), rel_a[..., 2:]], dim=-1)
    return (rel_a_in_b - rel_b).abs().mean()


def clip_loss(pose_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 3 / 7: symmetric InfoNCE between pose and text embeddings, per axis x, y, z, averaged over axes.

    Per axis a: ``L_a = logit_scale[a] * P_a @ T_a.T`` (B x B, cosine similarities; both sides are
    L2-normalised here, idempotent for already normalised inputs); the loss is
    ``(CE(L_a, arange B) + CE(L_a.T, arange B)) / 2``, then the mean over the three axes.

    Args:
        pose_emb: (B, 3, E) pose embeddings. text_emb: (B, 3, E) text embeddings.
        logit_scale: (3,) the multiplicative temperature per axis, already exponentiated
            (``exp(log_scale)`` clamped to [1, 100]; 100 at initialisation), not its log.
    Returns:
        (loss scalar, logits (3, B, B)); row i of ``logits[a]`` scores pose i against every text.
    Raises:
        ValueError: shapes mismatch or B < 1.
    """
    _require(pose_emb.ndim == 3 and pose_emb.shape[1] == 3 and pose_emb.shape[0] >= 1,
             f"clip_loss: pose_emb must be (B,3,E), got {tuple(pose_emb.shape)}")
    _require(pose_emb.shape == text_emb.shape,
             f"clip_loss: pose_emb {tuple(pose_emb.shape)} and text_emb {tuple(text_emb.shape)} differ")
    logit_scale = torch.as_tensor(logit_scale, dtype=pose_emb.dtype, device=pose_emb.device)
    _require(tuple(logit_scale.shape) == (3,), f"clip_loss: logit_scale must be (3,), got {tuple(logit_scale.shape)}")
    p = F.normalize(pose_emb, dim=-1).transpose(0, 1)  # (3, B, E)
    t = F.normalize(text_emb, dim=-1).transpose(0, 1)
    logits = logit_scale[:, None, None] * (p @ t.transpose(1, 2))  # (3, B, B)
    target = torch.arange(pose_emb.shape[0], device=pose_emb.device)
    losses = [(F.cross_entropy(lg, target) + F.cross_entropy(lg.T, target)) / 2 for lg in logits]
    return torch.stack(losses).mean(), logits
