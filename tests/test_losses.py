"""Known-answer tests of cliphand.train.losses (paper eqs. 3-7)."""

import math

import pytest
import torch

from cliphand.train import losses as L


def tetra(batch=2):
    """A tetrahedron (4 vertices, 4 faces) with a random rigid motion per sample."""
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.float64)
    faces = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(batch):
        q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
        out.append(v @ q.T + torch.randn(3, generator=g, dtype=torch.float64))
    return torch.stack(out), faces


def rot_affine(angle, scale, shift):
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[[scale * c, -scale * s, shift[0]], [scale * s, scale * c, shift[1]]]], dtype=torch.float64)


def test_l1_known_value_and_shapes():
    a = torch.zeros(2, 21, 3)
    assert L.l1_loss(a, a.clone()) == 0
    assert L.l1_loss(a, a + 0.25).item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="differ"):
        L.l1_loss(a, torch.zeros(2, 20, 3))


def test_mesh_losses_zero_on_identical_positive_otherwise():
    v, faces = tetra()
    assert L.edge_length_loss(v, v.clone(), faces).item() == pytest.approx(0.0, abs=1e-12)
    assert L.normal_loss(v, v.clone(), faces).item() == pytest.approx(0.0, abs=1e-12)
    # uniform scale by 2: every edge grows by its own length; three faces have edges (1, 1, sqrt2),
    # one (sqrt2, sqrt2, sqrt2) -> mean (6 + 6 sqrt2) / 12 = (1 + sqrt2) / 2
    assert L.edge_length_loss(2 * v, v, faces).item() == pytest.approx((1 + math.sqrt(2)) / 2, rel=1e-12)
    # a similarity transform keeps the normals (scale-invariant term) ...
    assert L.normal_loss(3 * v + 1, v, faces).item() == pytest.approx(0.0, abs=1e-9)
    # ... a displaced vertex does not
    bent = v.clone()
    bent[:, 3] += torch.tensor([0.5, 0.5, 0.5], dtype=torch.float64)
    assert L.normal_loss(bent, v, faces).item() > 1e-3
    assert L.edge_length_loss(bent, v, faces).item() > 1e-3


def test_normal_loss_gradient_bounded_on_a_collapsed_mesh():
    # the residual mesh regressor starts with vertices on their nearest joint: zero-length edges. Plain unit
    # vectors give gradients of order 1 / |e| there (the mesh blew apart in finetuning); the GT-relative floor
    # keeps them of order 1 / (0.1 x GT edge length)
    v, faces = tetra()
    collapsed = torch.zeros_like(v) + v[:, :1]
    collapsed[:, 3] += 1e-6                                 # tiny edges, as after a first small step
    collapsed.requires_grad_(True)
    L.normal_loss(collapsed, v, faces).backward()
    assert torch.isfinite(collapsed.grad).all() and collapsed.grad.abs().max() < 100
    plain = collapsed.detach().clone().requires_grad_(True)
    L.normal_loss(plain, v, faces, rel_eps=0.0).backward()
    assert plain.grad.abs().max() > 1e4                      # what the floor prevents


def test_mesh_losses_check_shapes_and_faces():
    v, faces = tetra()
    with pytest.raises(ValueError, match="differ"):
        L.normal_loss(v, v[:, :3], faces)
    with pytest.raises(ValueError, match="faces"):
        L.edge_length_loss(v, v, faces[:, :2])
    with pytest.raises(ValueError, match="face indices"):
        L.edge_length_loss(v, v, faces + 10)


def test_consistency_2d_known_affine():
    g = torch.Generator().manual_seed(1)
    uv_a = torch.rand(1, 21, 2, generator=g, dtype=torch.float64)
    A = rot_affine(0.4, 1.1, (0.05, -0.02))
    uv_b = uv_a @ A[:, :, :2].transpose(1, 2) + A[:, :, 2][:, None]
    assert L.consistency_loss_2d(uv_a, uv_b, A).item() == pytest.approx(0.0, abs=1e-12)
    assert L.consistency_loss_2d(uv_a, uv_b + 0.1, A).item() == pytest.approx(0.1)
    assert L.consistency_loss_2d(uv_a, uv_a, A).item() > 1e-3
    with pytest.raises(ValueError, match="affine"):
        L.consistency_loss_2d(uv_a, uv_b, A[:, :, :2])
    with pytest.raises(ValueError, match="differ"):
        L.consistency_loss_2d(uv_a, uv_b[:, :20], A)


def test_consistency_3d_rotation_and_depth():
    g = torch.Generator().manual_seed(2)
    xyz_a = torch.randn(1, 21, 3, generator=g, dtype=torch.float64) * 0.03 + torch.tensor([0, 0, 0.5], dtype=torch.float64)
    A = rot_affine(-0.7, 1.3, (0.1, 0.1))
    c, s = math.cos(-0.7), math.sin(-0.7)
    R = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    xyz_b = xyz_a.clone()
    xyz_b[..., :2] = xyz_a[..., :2] @ R.T
    xyz_b = xyz_b + torch.tensor([0.02, -0.01, 0.1], dtype=torch.float64)  # any root translation
    assert L.consistency_loss_3d(xyz_a, xyz_b, A).item() == pytest.approx(0.0, abs=1e-12)
    assert L.consistency_loss_3d(xyz_a, xyz_b).item() == pytest.approx(0.0, abs=1e-12)  # depth only
    assert L.consistency_loss_3d(xyz_a, xyz_a, A).item() > 1e-3  # unrotated x, y disagree
    deeper = xyz_b.clone()
    deeper[:, 1:, 2] += 0.01
    assert L.consistency_loss_3d(xyz_a, deeper).item() == pytest.approx(0.01 * 20 / 21)
    with pytest.raises(ValueError):
        L.consistency_loss_3d(xyz_a, xyz_b[..., :2])


def test_clip_loss_known_values_gradient_and_shapes():
    B, E = 6, 8
    eye = torch.eye(E)[:B]
    emb = eye[:, None, :].repeat(1, 3, 1)  # orthonormal, identical pose and text
    scale = torch.full((3,), 100.0)
    loss, logits = L.clip_loss(emb, emb.clone(), scale)
    assert logits.shape == (3, B, B)
    assert torch.allclose(logits[0], 100 * torch.eye(B))
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    # all embeddings equal -> uniform softmax -> loss log B
    same = torch.ones(B, 3, E)
    loss_u, _ = L.clip_loss(same, same, scale)
    assert loss_u.item() == pytest.approx(math.log(B), rel=1e-6)
    # random, learnable: positive and gradients reach both sides and the temperature
    g = torch.Generator().manual_seed(3)
    p = torch.randn(B, 3, E, generator=g, requires_grad=True)
    t = torch.randn(B, 3, E, generator=g, requires_grad=True)
    log_scale = torch.full((3,), math.log(10.0), requires_grad=True)
    loss_r, _ = L.clip_loss(p, t, log_scale.exp())
    assert loss_r.item() > 0
    loss_r.backward()
    for x in (p, t, log_scale):
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="differ"):
        L.clip_loss(p, t[:, :, :4], scale)
    with pytest.raises(ValueError, match=r"\(B,3,E\)"):
        L.clip_loss(torch.zeros(B, 2, E), torch.zeros(B, 2, E), scale)
    with pytest.raises(ValueError, match="logit_scale"):
        L.clip_loss(p, t, torch.ones(2))


def test_lixel_loss_smallest_at_target_and_grows_away():
    hm, sigma = 32, 1.0
    gt = torch.tensor([[[0.40, 0.55, 0.70]]])                       # (1, 1, 3): one joint
    centres = torch.arange(hm) + 0.5

    def logits_at(c):  # (1, 3, 1, hm): log of a Gaussian of the label's width centred at c (normalised)
        return (-((centres - torch.as_tensor(c)[:, None] * hm) ** 2) / (2 * sigma ** 2))[None, :, None, :]

    at = L.lixel_loss(logits_at(gt[0, 0]), gt, sigma)
    assert float(at) < 1e-6
    prev = float(at)
    for shift in (0.5, 1.0, 2.0, 4.0):                                 # lixels away from the label
        loss = float(L.lixel_loss(logits_at(gt[0, 0] + shift / hm), gt, sigma))
        assert loss > prev
        prev = loss
    # a broader or narrower heatmap at the right place also costs more than the label itself
    assert float(L.lixel_loss(logits_at(gt[0, 0]) / 4, gt, sigma)) > float(at) + 0.1
    assert float(L.lixel_loss(logits_at(gt[0, 0]) * 4, gt, sigma)) > float(at) + 0.1


def test_lixel_loss_ignores_joints_outside_and_checks_inputs():
    logits = torch.randn(2, 3, 21, 16, requires_grad=True)
    gt = torch.rand(2, 21, 3)
    gt_out = gt.clone()
    gt_out[0, 3, 0] = 1.7                                             # outside the crop on x
    base = L.lixel_loss(logits, gt)
    L.lixel_loss(logits, gt_out).backward()
    assert torch.all(logits.grad[0, 0, 3] == 0) and torch.isfinite(base)
    with pytest.raises(ValueError, match="logits"):
        L.lixel_loss(torch.randn(2, 21, 16), gt)
    with pytest.raises(ValueError, match="uvd_gt"):
        L.lixel_loss(logits, torch.rand(2, 20, 3))
    with pytest.raises(ValueError, match="sigma"):
        L.lixel_loss(logits, gt, 0.0)
