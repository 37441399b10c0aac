"""Known-answer tests of cliphand.evaluate.metrics (FreiHAND protocol, NOTES §4)."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cliphand.evaluate import metrics as M


def hand_like(rng, b=64, n=21, spread=0.04):
    """Random hand-sized point sets (metres), ~40 cm in front of the camera."""
    return rng.normal(scale=spread, size=(b, n, 3)) + np.array([0.0, 0.0, 0.4])


def mesh_like(rng, joints, v=300, spread=0.008):
    """Vertex clouds around the joints (surface-ish samples), metres."""
    idx = rng.integers(0, joints.shape[1], size=v)
    return joints[:, idx] + rng.normal(scale=spread, size=(len(joints), v, 3))


def test_procrustes_recovers_similarity_exactly():
    rng = np.random.default_rng(0)
    gt = hand_like(rng, b=1)[0]
    R = Rotation.from_euler("xyz", [30, -50, 110], degrees=True).as_matrix()
    pred = 2.7 * gt @ R.T + np.array([0.3, -0.1, 1.2])
    aligned = M.procrustes_align(pred, gt)
    # FreiHAND adds 1e-8 to both norms, which leaves residuals of a few nanometres
    assert np.abs(aligned - gt).max() < 1e-8
    scores = M.evaluate(pred[None], gt[None], pred[None], gt[None])
    assert scores["pa_mpjpe_mm"] < 1e-4 and scores["pa_mpvpe_mm"] < 1e-4
    # the first threshold is 0 and PCK uses <=, so the nanometre residuals cost half a step:
    # 1 - 0.5/99 (the official script behaves the same); unaligned root-relative errors are exact
    assert scores["auc_0_50"] == pytest.approx(1 - 0.5 / 99) and scores["f5"] == pytest.approx(1.0)
    assert scores["mpjpe_mm"] > 10  # unaligned root-relative error is not hidden


def test_procrustes_hand_computed():
    # GT: a cross of side 2 cm in the xy plane; prediction collapses y onto the x axis (any scale a).
    # Optimal similarity maps the x points onto (+-1,0,0) cm exactly; the two collapsed points stay at
    # the centroid -> errors 0, 0, 1, 1 cm -> PA-MPJPE 5 mm.
    gt = 0.01 * np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]], float)
    pred = np.array([[3.0, 0, 0], [-3.0, 0, 0], [0, 0, 0], [0, 0, 0]]) + 5.0
    aligned = M.procrustes_align(pred, gt)
    np.testing.assert_allclose(np.abs(aligned), 0.01 * np.array([[1, 0, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0]]), atol=1e-9)
    d = np.linalg.norm(aligned - gt, axis=1)
    np.testing.assert_allclose(d, [0, 0, 0.01, 0.01], atol=1e-9)


def test_batched_procrustes_equals_scipy_loop():
    rng = np.random.default_rng(1)
    gt = hand_like(rng, b=20)
    pred = hand_like(rng, b=20)
    batched = M.procrustes_align_batch(pred, gt)
    loop = np.stack([M.procrustes_align(p, g) for p, g in zip(pred, gt)])
    np.testing.assert_allclose(batched, loop, atol=1e-12)


def test_zero_predictor_behaves_as_freihand_readme():
    # FreiHAND's README: the zero predictor's aligned error is large (4.73 cm keypoints) and F@5 ~ 0.001,
    # F@15 ~ 0.03. Aligning a constant prediction puts every point at the GT centroid.
    rng = np.random.default_rng(2)
    gt_j = hand_like(rng, b=40)
    gt_v = mesh_like(rng, gt_j)
    zeros_j, zeros_v = np.zeros_like(gt_j), np.zeros_like(gt_v)
    s = M.evaluate(zeros_j, gt_j, zeros_v, gt_v)
    expect_j = np.linalg.norm(gt_j - gt_j.mean(1, keepdims=True), axis=-1).mean() * 1000
    expect_v = np.linalg.norm(gt_v - gt_v.mean(1, keepdims=True), axis=-1).mean() * 1000
    assert s["pa_mpjpe_mm"] == pytest.approx(expect_j, rel=1e-6)
    assert s["pa_mpvpe_mm"] == pytest.approx(expect_v, rel=1e-6)
    assert s["pa_mpjpe_mm"] > 40
    assert s["f5"] < 0.05 and s["f15"] < 0.2
    assert s["auc_0_50"] < 0.3


def test_auc_perfect_and_constant_60mm():
    d0 = np.zeros((10, 21))
    assert M.pck_auc(d0, M.THRESH_0_50) == pytest.approx(1.0)
    assert M.pck_auc(d0, M.THRESH_0_30) == pytest.approx(1.0)
    assert M.pck_auc(d0, M.THRESH_20_50) == pytest.approx(1.0)
    d60 = np.full((10, 21), 0.06)
    assert M.pck_auc(d60, M.THRESH_0_50) == 0.0
    assert M.pck_auc(d60, M.THRESH_20_50) == 0.0
    # half the keypoints perfect, half at 60 mm -> 0.5; a constant 25 mm error -> 1 - 25/50 up to the grid
    assert M.pck_auc(np.concatenate([d0, d60], 1)) == pytest.approx(0.5)
    assert M.pck_auc(np.full((3, 21), 0.025)) == pytest.approx(0.5, abs=0.011)
    curve = M.pck_curve(np.full((3, 21), 0.025))
    assert curve[0] == 0 and curve[-1] == 1 and np.all(np.diff(curve) >= 0)


def test_evaluate_perfect_prediction_and_keys():
    rng = np.random.default_rng(3)
    gt_j = hand_like(rng, b=5)
    gt_v = mesh_like(rng, gt_j)
    s = M.evaluate(gt_j.copy(), gt_j, gt_v.copy(), gt_v)
    for key in ("mpjpe_mm", "pa_mpjpe_mm", "pa_mpvpe_mm", "mpvpe_mm", "bihand_mpjpe_mm"):
        assert s[key] == pytest.approx(0.0, abs=1e-4)  # 1e-8 norm epsilon of FreiHAND's alignment
    for key in ("rr_auc_0_50", "rr_auc_0_30", "bihand_auc_20_50", "f5", "f15"):
        assert s[key] == pytest.approx(1.0)
    for key in ("auc_0_50", "auc_0_30", "pa_mesh_auc_0_50"):  # see test_procrustes_recovers_similarity_exactly
        assert s[key] == pytest.approx(1 - 0.5 / 99)
    curves = s.pop("curves")
    assert all(isinstance(v, float) for v in s.values())
    assert len(curves["thresholds_mm"]) == 100 and len(curves["pa_pck_0_50"]) == 100
    assert len(curves["bihand_pck_20_50"]) == 20


def test_root_relative_mpjpe_ignores_translation_only():
    rng = np.random.default_rng(4)
    gt = hand_like(rng, b=8)
    s = M.evaluate(gt + np.array([0.1, -0.2, 0.3]), gt)
    assert s["mpjpe_mm"] == pytest.approx(0.0, abs=1e-6)
    pred = gt.copy()
    pred[:, 5:] += np.array([0.0, 0.01, 0.0])  # 10 mm on 16 of 21 joints, root untouched
    assert M.evaluate(pred, gt)["mpjpe_mm"] == pytest.approx(10 * 16 / 21, rel=1e-6)


def test_fscore_is_strict_at_threshold():
    # coordinates are powers of two, so the distance is exactly 2**-7 m
    gt = np.array([[0.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0]])
    th = 2.0 ** -7
    pred = gt + np.array([th, 0, 0])
    assert M.fscore(pred, gt, th) == (0.0, 0.0, 0.0)
    assert M.fscore(pred, gt, th * 1.001)[0] == pytest.approx(1.0)
    # half the predictions far away: recall 1/2 (pred side), precision: GT points matched
    pred2 = np.concatenate([gt, gt + 10.0])
    f, p, r = M.fscore(pred2, gt, 0.005)
    assert (p, r) == (1.0, 0.5) and f == pytest.approx(2 * 0.5 / 1.5)


def test_bihand_alignment_undoes_scale_and_translation():
    rng = np.random.default_rng(5)
    gt = hand_like(rng, b=6)
    pred = (gt - gt[:, :1]) * 0.37 + 1.0
    s = M.evaluate(pred, gt)
    assert s["bihand_mpjpe_mm"] == pytest.approx(0.0, abs=1e-6)
    assert s["bihand_auc_20_50"] == pytest.approx(1.0)


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        M.evaluate(np.zeros((2, 21, 3)), np.zeros((3, 21, 3)))
    with pytest.raises(ValueError):
        M.evaluate(np.zeros((2, 20, 3)), np.zeros((2, 20, 3)))
    with pytest.raises(ValueError):
        M.evaluate(np.zeros((2, 21, 3)), np.zeros((2, 21, 3)), pred_verts=np.zeros((2, 5, 3)))
    with pytest.raises(ValueError):
        M.retrieval_top1(np.zeros((4, 3, 8)), np.zeros((4, 2, 8)), [2])


def test_retrieval_identical_and_random():
    rng = np.random.default_rng(6)
    emb = rng.normal(size=(512, 3, 32))
    r = M.retrieval_top1(emb, emb.copy(), [16, 64, 256, 1024])
    assert "p2t_top1_x_b1024" not in r  # B > n skipped
    for b in (16, 64, 256):
        for a in "xyz":
            assert r[f"p2t_top1_{a}_b{b}"] == 1.0 and r[f"t2p_top1_{a}_b{b}"] == 1.0
    assert r["n_chunks_b256"] == 2.0
    rnd = M.retrieval_top1(rng.normal(size=(4096, 3, 32)), rng.normal(size=(4096, 3, 32)), [16])
    for a in "xyz":
        assert rnd[f"p2t_top1_{a}_b16"] == pytest.approx(1 / 16, abs=0.02)
        assert rnd[f"t2p_top1_{a}_b16"] == pytest.approx(1 / 16, abs=0.02)


def test_retrieval_duplicate_prompts():
    rng = np.random.default_rng(7)
    n = 32
    pose = rng.normal(size=(n, 3, 16))
    text = rng.normal(size=(n, 3, 16))
    prompts = np.array([[f"x{i}", "same", f"z{i % 2}"] for i in range(n)])
    r = M.retrieval_top1(pose, text, [8], prompts=prompts)
    assert r["dup_frac_x_b8"] == 0.0 and r["dup_frac_y_b8"] == 1.0 and r["dup_frac_z_b8"] == 1.0
    # y: every prompt is the same text, so any retrieval counts; strict index rule stays near chance
    assert r["p2t_top1_y_b8"] == 1.0 and r["t2p_top1_y_b8"] == 1.0
    assert r["p2t_top1_strict_y_b8"] < 0.6
    # z: two prompt classes alternate; the equality rule is at least as high as the strict rule
    assert r["p2t_top1_z_b8"] >= r["p2t_top1_strict_z_b8"]
    assert r["p2t_top1_x_b8"] == r["p2t_top1_strict_x_b8"]
