"""Tests of cliphand.text.encoders and cliphand.text.cache (frozen text encoders, cached prompt features)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cliphand.errors import DataError
from cliphand.io import save_npz
from cliphand.config import Text
from cliphand.text import prompts as P
from cliphand.text.cache import build_text_cache, load_text_cache, save_text_cache
from cliphand.text.encoders import MiniLMEncoder, OpenCLIPEncoder, build_encoder, order_sensitivity


#: the text settings of params.yaml
TEXT = {"encoder": "minilm", "features": "joints", "template": "auto", "open_clip_model": "ViT-B-32",
        "open_clip_pretrained": "openai", "n_joints": 21, "batch_size": 64}


@pytest.fixture(scope="module")
def minilm():
    """The real pre-trained MiniLM (packaged weights, offline), per-joint features."""
    return MiniLMEncoder(features="joints", batch_size=32)


@pytest.fixture(scope="module")
def clip_random():
    """open_clip ViT-B-32 with RANDOM weights (no CLIP weights exist offline): exercises the code path only."""
    with pytest.warns(UserWarning, match="RANDOM"):
        return OpenCLIPEncoder("ViT-B-32", pretrained=None)


def random_poses(n, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 0.03, (n, 21, 3)) + [0, 0, 0.5]).astype(np.float32)


def test_minilm_shapes_pooled_and_joints(minilm):
    prompts = [P.build_prompt(range(21), 0, "paper"), P.build_prompt(range(20, -1, -1), 1, "paper")]
    f = minilm.encode(prompts)
    assert f.dtype == np.float32 and f.shape == (2, 22, 384)
    assert minilm.tokens_per_prompt(21) == 22 and minilm.dim == 384
    np.testing.assert_allclose(np.linalg.norm(f, axis=-1), 1.0, atol=1e-5)
    # row 0 is the pooled sentence embedding: equal to the 'pooled' mode and to sentence-transformers' own
    minilm.features = "pooled"
    try:
        g = minilm.encode(prompts)
    finally:
        minilm.features = "joints"
    assert g.shape == (2, 1, 384) and minilm.tokens_per_prompt(21) == 22
    np.testing.assert_allclose(f[:, 0], g[:, 0], atol=1e-5)
    np.testing.assert_allclose(g[:, 0], minilm.model.encode(prompts), atol=1e-5)
    # a joint's row follows the joint: 'wrist' is first in prompt 0 and last in prompt 1
    cos = lambda a, b: float(a @ b)  # noqa: E731
    assert cos(f[0, 1], f[1, 21]) > cos(f[0, 1], f[1, 1])
    # N = 10 joints -> 11 rows
    sub = P.build_prompt([0, 3, 5, 8, 9, 12, 13, 16, 17, 20], 2, "paper")
    assert minilm.encode([sub]).shape == (1, 11, 384)
    with pytest.raises(ValueError, match="different numbers of joints"):
        minilm.encode([sub, prompts[0]])
    with pytest.raises(ValueError, match="not a joint name"):
        minilm.encode(["From left to right, the joints are: wrist, elbow."])


def test_joint_features_carry_order_pooled_do_not(minilm):
    r = order_sensitivity(minilm, n=16, seed=0)
    pooled, joints = r["pooled"], r["joints"]
    # pooled MiniLM embeddings are nearly order-blind (NOTES §1) ...
    assert pooled["mean"] > 0.97 and pooled["swap"] > 0.999
    # ... the per-joint sequence separates orderings by far more
    assert joints["mean"] < 0.85 and joints["max"] < pooled["min"]
    assert (1 - joints["mean"]) > 10 * (1 - pooled["mean"])
    assert (1 - joints["swap"]) > 10 * (1 - pooled["swap"])


def test_clip_random_weights_code_path(clip_random):
    # RANDOM weights: only shapes, normalisation and the tokenizer path are meaningful here
    prompts = [P.build_prompt(range(21), a, "short") for a in range(3)]
    f = clip_random.encode(prompts)
    assert f.shape == (3, 1, 512) and f.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(f, axis=-1), 1.0, atol=1e-5)
    assert not np.allclose(f[0], f[1])
    assert "random" in clip_random.fingerprint() and clip_random.tokens_per_prompt(21) == 1
    assert clip_random.count_tokens(prompts[0]) == 77
    with pytest.raises(ValueError, match="83 tokens > limit 77"):
        clip_random.encode([P.build_prompt(range(21), 0, "paper")])


def test_clip_pretrained_tag_offline():
    with pytest.raises(RuntimeError, match="open_clip_pretrained"):
        OpenCLIPEncoder("ViT-B-32", pretrained="openai")


def test_build_encoder_and_local_checkpoint(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        OpenCLIPEncoder("ViT-B-32", pretrained=str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="pooled"):
        OpenCLIPEncoder("ViT-B-32", pretrained=None, features="joints")  # rejected before any model is built
    with pytest.raises(ValueError, match="encoder"):  # the settings' type refuses it before any encoder
        Text(**{**TEXT, "encoder": "bert"})
    # a small architecture with RANDOM weights, saved to a file and read back through the local-file route
    cfg = {**TEXT, "encoder": "open_clip", "features": "pooled", "open_clip_model": "ViT-S-32-alt",
           "open_clip_pretrained": None, "batch_size": 8}
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="RANDOM"):
        a = build_encoder(Text(**cfg))
    assert isinstance(a, OpenCLIPEncoder) and a.batch_size == 8 and a.dim == 256
    assert a.fingerprint() == "open_clip|model=ViT-S-32-alt|pretrained=none(random weights)|features=pooled"
    ck = tmp_path / "small.pt"
    torch.save(a.model.state_dict(), ck)
    b = build_encoder(Text(**{**cfg, "open_clip_pretrained": str(ck)}))
    p = [P.build_prompt([0, 4, 8], 0, "short")]
    np.testing.assert_allclose(a.encode(p), b.encode(p), atol=1e-6)
    assert "small.pt@sha256:" in b.fingerprint()


def test_text_cache_round_trip(minilm, tmp_path):
    joints = random_poses(5)
    c = build_text_cache(joints, 10, seed=3, encoder=minilm, prompt_cfg={"template": "auto"}, progress=False)
    assert c["feats"].shape == (5, 3, 11, 384) and c["feats"].dtype == np.float16
    assert c["orders"].shape == (5, 3, 10) and c["orders"].dtype == np.int16
    assert c["prompts"].shape == (5, 3) and c["template"] == "paper"
    for i in range(5):  # prompt of sample i depends only on (seed, i, joints[i])
        p, o, s = P.sample_prompts(joints[i], 10, 3, i, "paper")
        assert list(c["prompts"][i]) == p
        np.testing.assert_array_equal(c["orders"][i], o)
        for a in range(3):
            assert np.all(np.diff(joints[i, o[a], a]) >= 0)
    one = minilm.encode([c["prompts"][2, 1]])
    np.testing.assert_allclose(c["feats"][2, 1].astype(np.float32), one[0], atol=2e-3)

    path = tmp_path / "text" / "train_n10.npz"
    save_text_cache(path, c)
    d = load_text_cache(path, expected_n=5, expected_fingerprint=minilm.fingerprint())
    np.testing.assert_array_equal(d["feats"], c["feats"])
    np.testing.assert_array_equal(d["orders"], c["orders"])
    assert d["prompts"].tolist() == c["prompts"].tolist() and d["n_joints"] == 10 and d["seed"] == 3
    with pytest.raises(DataError, match="train_n10.npz.*expected 6"):
        load_text_cache(path, expected_n=6)
    with pytest.raises(DataError, match="expected 'other'"):
        load_text_cache(path, expected_fingerprint="other")


def test_text_cache_bad_files(tmp_path):
    with pytest.raises(DataError, match="nope.npz does not exist"):
        load_text_cache(tmp_path / "nope.npz")
    n = 2
    good = dict(feats=np.zeros((n, 3, 1, 8), np.float16), orders=np.tile(np.arange(21, dtype=np.int16), (n, 3, 1)),
                subsets=np.tile(np.arange(21, dtype=np.int16), (n, 1)), prompts=np.full((n, 3), "x"),
                fingerprint=np.asarray("fp"), template=np.asarray("short"), seed=np.asarray(0),
                n_joints=np.asarray(21))
    save_npz(tmp_path / "ok.npz", **good)
    assert load_text_cache(tmp_path / "ok.npz")["feats"].shape == (2, 3, 1, 8)
    save_npz(tmp_path / "bad.npz", **{**good, "feats": np.zeros((n, 2, 1, 8), np.float16)})
    with pytest.raises(DataError, match=r"bad.npz: feats must have shape"):
        load_text_cache(tmp_path / "bad.npz")
    save_npz(tmp_path / "bad2.npz", **{**good, "orders": np.zeros((n, 3, 21), np.int16)})
    with pytest.raises(DataError, match=r"bad2.npz: orders are not permutations"):
        load_text_cache(tmp_path / "bad2.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="junk.npz cannot be read"):
        load_text_cache(tmp_path / "junk.npz")
    with pytest.raises(DataError, match=r"shape \(n>0, 21, 3\)"):
        build_text_cache(np.zeros((2, 20, 3)), 21, 0, encoder=None)
