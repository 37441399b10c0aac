"""Training loop: both phases run, losses fall on a fixed batch, a non-finite loss stops with a clear
error, and an interrupted run resumes from its per-epoch checkpoint to the same weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cliphand.model.checkpoint import build_model, load_checkpoint, save_checkpoint
from cliphand.data.loader import PreparedSet
from cliphand.errors import DataError, TrainingError
from cliphand.evaluate.protocols import evaluate_split
from cliphand.train.loop import train
from helpers import NO_AUG, TINY_MODEL, Exploit, tiny_run, tiny_template, write_tiny_split

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    template = tiny_template()
    write_tiny_split(root / "train", template, n=24, text_path=root / "train_text.npz")
    write_tiny_split(root / "val", template, n=8, seed=1)
    return root, template


def _model(template, **over):
    torch.manual_seed(0)
    return build_model({**TINY_MODEL, **over}, template)


def test_finetune_runs_and_evaluates(tiny):
    root, template = tiny
    model = _model(template)
    ds = PreparedSet(root / "train", root / "train_text.npz")
    hist = train(model, ds, tiny_run("finetune"), work_path=root / "ft.resume.pt",
                 faces=torch.as_tensor(template["faces"], dtype=torch.long), val_sets={"val": PreparedSet(root / "val")})
    assert len(hist) == 2 and (root / "ft.resume.pt").exists()    # the caller removes it after the final save
    for key in ("loss_joint", "loss_vert", "loss_normal", "loss_edge", "loss_consistency", "loss_clip", "loss_lixel",
                "val_mpjpe_mm", "val_pa_mpjpe_mm"):
        assert np.isfinite(hist[-1][key]), key
    scores, preds = evaluate_split(model, PreparedSet(root / "train", root / "train_text.npz"), 64, 0.3,
                                   retrieval_batch_sizes=(8,))
    assert scores["n_samples"] == 24 and scores["pa_mpjpe_mm"] > 0 and "f15" in scores
    assert scores["retrieval"]["chance_b8"] == pytest.approx(1 / 8)
    assert preds["joints"].shape == (24, 21, 3) and preds["verts"].shape == (24, 120, 3)
    assert scores["forward_passes"] == 1 and "one_pass" not in scores and "joints_one_pass" not in preds
    # test-time rotation: two more passes; the first pass alone is scored as before, the retrieval is unchanged
    rot, rot_preds = evaluate_split(model, PreparedSet(root / "train", root / "train_text.npz"), 64, 0.3,
                                    retrieval_batch_sizes=(8,), rotations=[-10.0, 10.0])
    assert rot["forward_passes"] == 3 and rot["test_rotations_deg"] == [-10.0, 10.0]
    assert rot["one_pass"]["pa_mpjpe_mm"] == pytest.approx(scores["pa_mpjpe_mm"], rel=1e-6)
    assert rot["one_pass"]["f15"] == pytest.approx(scores["f15"], rel=1e-6)
    np.testing.assert_allclose(rot_preds["joints_one_pass"], preds["joints"], atol=1e-6)
    assert not np.allclose(rot_preds["joints"], preds["joints"], atol=1e-4)   # the views did change the average
    assert rot["retrieval"] == scores["retrieval"]


def test_pretrain_reduces_joint_loss(tiny):
    root, template = tiny
    model = _model(template)
    ds = PreparedSet(root / "train").head(8)
    hist = train(model, ds, tiny_run("pretrain", epochs=25, augment=NO_AUG), work_path=root / "pre.resume.pt")
    assert hist[-1]["loss_joint"] < 0.7 * hist[0]["loss_joint"]


def test_non_finite_loss_names_the_term(tiny, tmp_path):
    root, template = tiny
    ds = PreparedSet(root / "train")
    ds.labels["uvd"] = ds.labels["uvd"].copy()
    ds.labels["uvd"][:] = np.nan
    with pytest.raises(TrainingError, match="term 'joint'"):
        train(_model(template), ds, tiny_run("pretrain"), work_path=tmp_path / "r.pt")


def test_resume_after_interruption_gives_same_weights(tiny, tmp_path):
    root, template = tiny
    faces = torch.as_tensor(template["faces"], dtype=torch.long)
    ds = PreparedSet(root / "train", root / "train_text.npz")
    ref = _model(template)
    train(ref, ds, tiny_run("finetune"), work_path=tmp_path / "a.pt", faces=faces)

    def interrupt(record, epoch):
        if epoch == 1:
            raise KeyboardInterrupt

    model = _model(template)
    with pytest.raises(KeyboardInterrupt):
        train(model, ds, tiny_run("finetune"), work_path=tmp_path / "b.pt", faces=faces, log=interrupt)
    assert (tmp_path / "b.pt").exists()
    resumed = _model(template)  # a fresh process: new weights, state comes from the checkpoint
    hist = train(resumed, ds, tiny_run("finetune"), work_path=tmp_path / "b.pt", faces=faces)
    assert [h["epoch"] for h in hist] == [1, 2]
    for (name, a), b in zip(ref.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=f"{name} differs after resume")


def test_checkpoint_round_trip_and_bad_file(tiny, tmp_path):
    _, template = tiny
    model = _model(template).eval()
    save_checkpoint(tmp_path / "m.pt", model, template, {"input_size": 64, "depth_range": 0.3})
    again, ckpt = load_checkpoint(tmp_path / "m.pt")
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(model(x)["verts"], again(x)["verts"])
    assert ckpt["meta"]["input_size"] == 64
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="bad.pt"):
        load_checkpoint(tmp_path / "bad.pt")


def test_untrusted_checkpoint_runs_no_code_and_foreign_file_is_refused(tmp_path):
    target = tmp_path / "pwned.txt"
    torch.save({"model": {}, "payload": Exploit(target)}, tmp_path / "evil.pt")
    with pytest.raises(DataError, match="evil.pt.*not a cliphand checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not target.exists()                                   # weights_only=True never called open()
    torch.save({"model": {"w": torch.zeros(2)}}, tmp_path / "foreign.pt")   # safe, but not ours
    with pytest.raises(DataError, match="foreign.pt.*missing"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_resume_ignores_a_checkpoint_of_other_data_or_model(tiny, tmp_path, capsys):
    import shutil

    root, template = tiny
    ds = PreparedSet(root / "train").head(16)
    cfg = tiny_run("pretrain", augment=NO_AUG)
    seen = []

    def stop(record, epoch):
        seen.append(record)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_model(template), ds, cfg, work_path=tmp_path / "r.pt", log=stop)
    for name in ("same", "data", "model"):
        shutil.copy(tmp_path / "r.pt", tmp_path / f"{name}.pt")
    other = PreparedSet(root / "train").select(np.arange(8, 24))   # same size, other images
    assert other.content_hash() != ds.content_hash() == PreparedSet(root / "train").head(16).content_hash()
    first = seen[0]["loss_joint"]
    capsys.readouterr()
    hist = train(_model(template), ds, cfg, work_path=tmp_path / "same.pt")
    assert hist[0]["loss_joint"] == first and "resuming" in capsys.readouterr().out   # epoch 1 from the file
    hist = train(_model(template), other, cfg, work_path=tmp_path / "data.pt")
    assert hist[0]["loss_joint"] != first and "resuming" not in capsys.readouterr().out  # other data: from the start
    train(_model(template, embed_dim=16), ds, cfg, work_path=tmp_path / "model.pt")
    assert "resuming" not in capsys.readouterr().out                                     # other model settings


def test_frozen_backbone_keeps_encoder_and_its_statistics(tiny):
    root, template = tiny
    model = _model(template)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ds = PreparedSet(root / "train", root / "train_text.npz")
    train(model, ds, tiny_run("finetune", epochs=1, freeze_backbone=True),
          work_path=root / "frozen.resume.pt", faces=torch.as_tensor(template["faces"], dtype=torch.long))
    after = model.state_dict()
    enc = [k for k in after if k.startswith("backbone.")]
    assert enc and all(torch.equal(before[k], after[k]) for k in enc)        # weights and BN running stats
    assert not torch.equal(before["joint_regressor.out_x.weight"], after["joint_regressor.out_x.weight"])
    assert not torch.equal(before["mesh_regressor.vert_head.0.weight"], after["mesh_regressor.vert_head.0.weight"])


def test_warmup_then_cosine_schedule():
    from cliphand.train.loop import make_optimizer

    net = torch.nn.Linear(2, 2)
    opt, sched = make_optimizer(net, tiny_run("finetune", lr=1.0, weight_decay=0.0, epochs=2, warmup_steps=4,
                                              schedule="cosine"), steps_per_epoch=10)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])                  # linear warm-up
    assert lrs[4] == pytest.approx(1.0) and lrs[-1] < 0.02                    # cosine down to ~0
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))
    opt, sched = make_optimizer(net, tiny_run("finetune", lr=1.0, weight_decay=0.0, epochs=4, schedule="step",
                                              warmup_steps=0, lr_decay=0.25, decay_every=0.5), steps_per_epoch=5)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 1.0 and lrs[9] == 1.0 and lrs[10] == 0.25                # x0.25 after half the epochs
    with pytest.raises(ValueError, match="schedule"):  # the settings' type refuses it before any optimizer
        tiny_run("finetune", schedule="linear")


def test_pretrained_modules_learn_slower_and_warmup_is_capped():
    from cliphand.train.loop import make_optimizer

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone, self.joint_regressor, self.mesh_regressor = (torch.nn.Linear(2, 2) for _ in range(3))

    net = Net()
    opt, sched = make_optimizer(net, tiny_run("finetune", lr=1.0, weight_decay=0.0, epochs=1, warmup_steps=100,
                                              pretrained_lr_mult=0.1), steps_per_epoch=10)
    pre, new = opt.param_groups
    assert len(pre["params"]) == 4 and len(new["params"]) == 2
    lrs = []
    for _ in range(10):
        lrs.append((pre["lr"], new["lr"]))
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx((0.05, 0.5)) and lrs[1] == pytest.approx((0.1, 1.0))   # warm-up of 2 = 10 // 5
    assert all(a == pytest.approx(0.1 * b) for a, b in lrs)
