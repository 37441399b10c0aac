"""Tests of the synthetic data generator: rigged hand, articulation, rasterizer, samples, synthesize."""

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from cliphand.config import SynthSettings
from cliphand.data.synth.articulation import COLUMNS, LIMITS_DEG, Articulator, limits_array, load_gestures, palm_frame
from cliphand.data.synth.backgrounds import photo_paths, random_background
from cliphand.data.synth.hand_model import JOINTS21, SKIN_JOINT_NAMES, RiggedHand
from cliphand.hand.skeleton import FINGERS
from cliphand.data.synth.render import rasterize, shade
from cliphand.data.synth.sample import render_sample
from cliphand.data.synth.synthesize import synthesize
from cliphand.errors import DataError
from cliphand.hand.geometry import project

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
GLB = SHARED / "webxr_generic_hand" / "right.glb"
GESTURES = SHARED / "ge_synthetic_gestures" / "handGestures.txt"


@pytest.fixture(scope="module")
def hand():
    if not GLB.is_file():
        pytest.skip(f"{GLB} not present")
    return RiggedHand.from_glb(GLB)


@pytest.fixture(scope="module")
def art(hand):
    return Articulator(hand)


# --- hand model ---------------------------------------------------------------------------------

def test_bind_pose_reproduces_template(hand):
    assert hand.verts.shape == (1360, 3) and hand.faces.shape == (2314, 3) and hand.faces.dtype == np.int32
    assert hand.weights.shape == (1360, 25)
    np.testing.assert_allclose(hand.weights.sum(1), 1.0, atol=1e-6)
    for rot in (None, np.tile(np.eye(3), (25, 1, 1))):
        v, j = hand.pose(rot)
        assert np.abs(v - hand.verts).max() < 1e-6
        assert np.abs(j - hand.joints21).max() < 1e-9
    # metres: wrist to middle-finger base about 9.2 cm (README)
    assert 0.08 < np.linalg.norm(hand.joints21[9] - hand.joints21[0]) < 0.10


def test_joints21_mapping(hand):
    names = [SKIN_JOINT_NAMES[i] for i in JOINTS21]
    assert names[0] == "wrist"
    assert names[1:5] == ["thumb-metacarpal", "thumb-phalanx-proximal", "thumb-phalanx-distal", "thumb-tip"]
    assert names[5:9] == [f"index-finger-{p}" for p in ("phalanx-proximal", "phalanx-intermediate",
                                                        "phalanx-distal", "tip")]
    assert names[17] == "pinky-finger-phalanx-proximal" and names[20] == "pinky-finger-tip"
    j = hand.joints21
    dist = np.linalg.norm(j - j[0], axis=1)
    for f in range(5):
        chain = dist[1 + 4 * f: 5 + 4 * f]
        assert np.all(np.diff(chain) > 0), f"finger {f}: joints not ordered base to tip"
    # radial side: index MCP and thumb on the same side of the middle finger
    radial = -palm_frame(j)[:, 1]
    assert (j[5] - j[9]) @ radial > 0 and (j[4] - j[9]) @ radial > 0 and (j[17] - j[9]) @ radial < 0


def test_rotation_of_one_joint_moves_only_its_subtree(hand):
    R = np.tile(np.eye(3), (25, 1, 1))
    R[SKIN_JOINT_NAMES.index("index-finger-phalanx-intermediate")] = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]])
    _, j = hand.pose(R)
    moved = np.linalg.norm(j - hand.joints21, axis=1) > 1e-9
    assert moved.tolist() == [k in (7, 8) for k in range(21)]  # index DIP and tip only


def test_bad_glb(tmp_path):
    missing = tmp_path / "nope.glb"
    with pytest.raises(DataError, match="nope.glb"):
        RiggedHand.from_glb(missing)
    junk = tmp_path / "junk.glb"
    junk.write_bytes(b"not a gltf at all")
    with pytest.raises(DataError, match="junk.glb"):
        RiggedHand.from_glb(junk)
    import pygltflib
    empty = tmp_path / "noskin.glb"
    g = pygltflib.GLTF2(scenes=[pygltflib.Scene(nodes=[0])], nodes=[pygltflib.Node(name="n")])
    g.save_binary(str(empty))
    with pytest.raises(DataError, match="noskin.glb.*skin"):
        RiggedHand.from_glb(empty)


# --- articulation -------------------------------------------------------------------------------

def test_sampled_angles_within_limits(art):
    lim = limits_array()
    assert lim.shape == (5, 5, 2) and set(LIMITS_DEG) == set(FINGERS)
    rng = np.random.default_rng(0)
    A = np.stack([art.sample(rng) for _ in range(300)])
    assert np.all(A >= lim[..., 0] - 1e-9) and np.all(A <= lim[..., 1] + 1e-9)
    # the sampler actually explores: fists and open hands both occur
    pip = A[:, 1:, COLUMNS.index("flex2")].mean(1)
    assert pip.min() < 15 and pip.max() > 80


def test_flexion_curls_towards_palm_and_abduction_is_radial(hand, art):
    n = palm_frame(hand.joints21)[:, 2]
    radial = -palm_frame(hand.joints21)[:, 1]  # e2 points to the little finger
    palm_c = hand.joints21[[0, 5, 9, 13, 17]].mean(0)
    for f in range(1, 5):
        a = np.zeros((5, 5))
        a[f, [0, 2, 3]] = 40.0
        _, j = hand.pose(art.rotations(a))
        tip = 4 + 4 * f
        d = j[tip] - hand.joints21[tip]
        assert d @ n > 0.01, f"{FINGERS[f]}: tip did not move to the palm side"
        assert np.linalg.norm(j[tip] - palm_c) < np.linalg.norm(hand.joints21[tip] - palm_c) - 0.01
    a = np.zeros((5, 5))
    a[1, 1] = 15.0
    _, j = hand.pose(art.rotations(a))
    assert (j[8] - hand.joints21[8]) @ radial > 0.005
    # thumb flexion brings the thumb tip towards the little finger
    a = np.zeros((5, 5))
    a[0, [0, 2, 3]] = [40, 50, 60]
    _, j = hand.pose(art.rotations(a))
    assert np.linalg.norm(j[4] - hand.joints21[17]) < np.linalg.norm(hand.joints21[4] - hand.joints21[17]) - 0.02


def test_fit_angles_recovers_pose(hand, art):
    rng = np.random.default_rng(3)
    for _ in range(10):
        a = art.sample(rng)
        a[:, 4] = 0.0
        _, j = hand.pose(art.rotations(a))
        np.testing.assert_allclose(art.fit_angles(j), a, atol=1e-6)


def test_gestures_prior(hand):
    if not GESTURES.is_file():
        pytest.skip(f"{GESTURES} not present")
    G = load_gestures(GESTURES)
    assert G.shape == (500, 21, 3)
    assert 0.05 < np.median(np.linalg.norm(G[:, 9] - G[:, 0], axis=1)) < 0.12  # metres
    art = Articulator(hand, G)
    # mirrored to right hands correctly: fingers flex (not hyperextend) on average
    assert np.median(art.gesture_angles[:, 1:, COLUMNS.index("flex2")]) > 20


# --- rasterizer ---------------------------------------------------------------------------------

def test_rasterize_single_triangle_coverage_and_depth():
    K = np.eye(3)  # pixel (v, u) centre <-> camera ray (u, v, 1)
    verts = np.array([[0.0, 0, 1], [10, 0, 1], [0, 10, 1]])
    depth, face, bary = rasterize(verts, np.array([[0, 1, 2]]), K, 12, 12)
    vv, uu = np.mgrid[0:12, 0:12]
    expected = (uu + vv <= 10)
    assert (face == 0).sum() == 66 and np.array_equal(face == 0, expected)
    np.testing.assert_allclose(depth[expected], 1.0, rtol=1e-12)
    assert np.all(np.isinf(depth[~expected]))
    assert np.all(face[~expected] == -1)
    np.testing.assert_allclose(bary[expected].sum(1), 1.0)


def test_rasterize_occlusion_and_perspective():
    K = np.array([[20.0, 0, 10], [0, 20, 10], [0, 0, 1]])
    near = np.array([[-0.2, -0.2, 1.0], [0.2, -0.2, 1.0], [0.0, 0.3, 1.0]])
    far = np.array([[-1.0, -1.0, 2.0], [1.0, -1.0, 2.0], [0.0, 1.0, 3.0]])  # tilted
    verts = np.concatenate([far, near])
    for faces in (np.array([[0, 1, 2], [3, 4, 5]]), np.array([[3, 4, 5], [0, 1, 2]])):
        depth, face, bary = rasterize(verts, faces, K, 20, 20)
        near_id = int(np.nonzero(faces[:, 0] == 3)[0][0])
        assert face[10, 10] == near_id and depth[10, 10] == pytest.approx(1.0)
        # a pixel outside the near triangle sees the far one at its true (perspective) depth
        v, u = 3, 10
        ff = face[v, u]
        assert faces[ff, 0] == 0
        p = (bary[v, u][:, None] * verts[faces[ff]]).sum(0)  # 3D point from barycentrics
        assert depth[v, u] == pytest.approx(p[2])
        np.testing.assert_allclose(project(p[None], K)[0], [u, v], atol=1e-9)
        n = np.cross(far[1] - far[0], far[2] - far[0])
        ray = np.array([(u - 10) / 20, (v - 10) / 20, 1.0])
        t = (n @ far[0]) / (n @ ray)  # ray-plane intersection
        assert depth[v, u] == pytest.approx(t * ray[2], rel=1e-9)


def test_shade_lit_side_brighter():
    K = np.array([[20.0, 0, 10], [0, 20, 10], [0, 0, 1]])
    verts = np.array([[-1.0, -1, 2], [1, -1, 2], [0, 1, 2]])
    faces = np.array([[0, 1, 2]])
    _, f, b = rasterize(verts, faces, K, 20, 20)
    lit, m = shade(verts, faces, f, b, [0.8, 0.6, 0.5], [0, 0, -1], ambient=0.1, specular=0.0)
    dark, _ = shade(verts, faces, f, b, [0.8, 0.6, 0.5], [1, 0, 0.2], ambient=0.1, specular=0.0)
    assert m.sum() > 50 and np.all(lit[~m] == 0)
    assert lit[m].mean() > dark[m].mean() + 0.2


# --- samples and the stage ----------------------------------------------------------------------

CFG = SynthSettings(render_size=96)


def test_backgrounds():
    paths = photo_paths()
    assert len(paths) >= 1 and all(p.is_file() and "site-packages" in str(p) for p in paths)
    rng = np.random.default_rng(0)
    for _ in range(10):
        bg = random_background(rng, 40, 50)
        assert bg.shape == (40, 50, 3) and bg.min() >= 0 and bg.max() <= 1


def test_render_sample_joints_on_hand(hand):
    if not GESTURES.is_file():
        pytest.skip(f"{GESTURES} not present")
    hits = []
    for i in range(8):
        s = render_sample(hand, np.random.default_rng([7, 0, i]), CFG, GESTURES)
        assert s["image"].shape == (96, 96, 3) and s["image"].dtype == np.uint8
        assert s["joints"].shape == (21, 3) and s["verts"].shape == (1360, 3) and s["K"].shape == (3, 3)
        assert s["verts"][:, 2].min() > 0.04
        uv = np.rint(project(s["joints"].astype(np.float64), s["K"].astype(np.float64))).astype(int)
        inside = np.all((uv >= 0) & (uv < 96), axis=1)
        assert inside.mean() > 0.6
        hits.append(s["mask"][uv[inside, 1], uv[inside, 0]].mean())
        # the image differs from the background where the hand is (the hand was drawn)
        assert s["mask"].sum() > 200
    assert np.mean(hits) > 0.9


def test_synth_settings_refuse_bad_values():
    """A typo, a wrong type, a reversed range or an impossible chance is an error naming the setting."""
    for bad, name in (({"fov_degs": [1, 2]}, "fov_degs"), ({"p_blur": True}, "p_blur"),
                      ({"hand_scale": [1.1, 0.9]}, "hand_scale"), ({"p_occlusion": 1.5}, "p_occlusion"),
                      ({"jpeg_quality": [40.5, 90]}, "jpeg_quality"), ({"jpeg_quality": [95, 40]}, "jpeg_quality"), ({"noise_std": [0, 1, 2]}, "noise_std"),
                      ({"p_photo_bg": 0.8, "p_collage_bg": 0.3}, "p_photo_bg")):
        with pytest.raises(ValidationError, match=name):
            SynthSettings(**bad)
    assert SynthSettings(fov_deg=[20, 45]).fov_deg == [20.0, 45.0]  # YAML ints are accepted for floats


def test_synthesize_independent_of_workers(tmp_path):
    if not (GLB.is_file() and GESTURES.is_file()):
        pytest.skip("shared data not present")
    outs = []
    for w in (1, 2):
        out = tmp_path / f"w{w}"
        synthesize(GLB, GESTURES, out, SynthSettings(render_size=96, n_train=5, n_val=2, n_test=0, workers=w), seed=11,
                   chunk=2)
        outs.append(out)
    for split, n in (("train", 5), ("val", 2), ("test", 0)):
        a = np.load(outs[0] / split / "images.npy")
        b = np.load(outs[1] / split / "images.npy")
        assert a.shape == (n, 96, 96, 3) and a.dtype == np.uint8
        assert np.array_equal(a, b)
        la, lb = np.load(outs[0] / split / "labels.npz"), np.load(outs[1] / split / "labels.npz")
        for k, shape in (("K", (n, 3, 3)), ("joints", (n, 21, 3)), ("verts", (n, 1360, 3))):
            assert la[k].shape == shape and la[k].dtype == np.float32
            assert np.array_equal(la[k], lb[k])
    tr = np.load(outs[0] / "train" / "images.npy")
    assert not np.array_equal(tr[0], tr[1])  # samples differ
    t = np.load(outs[0] / "template.npz")
    assert t["verts"].shape == (1360, 3) and t["faces"].dtype == np.int32 and t["joints"].shape == (21, 3)
    assert not list(outs[0].rglob(".*"))  # no temporary files left


def test_bad_gesture_file(tmp_path):
    with pytest.raises(DataError, match="missing.txt"):
        load_gestures(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("\nloc_bn_palm_L 1 2\n")
    with pytest.raises(DataError, match="bad.txt"):
        load_gestures(bad)


# --- forearm, skin, lights, backgrounds (photo-likeness of the renders) ---------------------------

from cliphand.data.synth import backgrounds as bgmod# noqa: E402
from cliphand.data.synth.forearm import CLOTH, CUFF, SKIN, fit_wrist, forearm_mesh  # noqa: E402
from cliphand.data.synth.hand_model import JOINTS21 as _J21  # noqa: E402
from cliphand.data.synth.render import vertex_normals  # noqa: E402
from cliphand.data.synth.appearance import nail_weights  # noqa: E402

PLAIN = {"render_size": 96, "p_upright": 1.0, "p_occlusion": 0.0, "p_blur": 0.0, "p_jpeg": 0.0, "noise_std": [0.0, 0.0],
         "p_sleeve": 0.0}


def _edges(faces):
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), 1)
    return np.unique(e, axis=0, return_counts=True)


def test_forearm_mesh_geometry(hand):
    fit = fit_wrist(hand)
    # the wrist cross-section: about 5-6 cm wide, 3.5-4.5 cm thick (README of the asset: metres)
    assert 0.025 < fit.radii[0] < 0.035 and 0.015 < fit.radii[1] < fit.radii[0] and 0.01 < fit.stub < 0.04
    m = forearm_mesh(fit, 0.2, flex_deg=0.0, dev_deg=0.0, taper=1.3)
    _, cnt = _edges(m["faces"])
    assert np.all(cnt == 2)  # a closed surface
    assert np.all(m["part"] == SKIN)
    e1 = fit.frame[:, 0]
    wrist = hand.bind_joints[0]
    along = (m["verts"] - wrist) @ e1  # towards the fingers
    assert along.max() < 0.01 and along.min() == pytest.approx(-0.2, abs=0.005)  # starts in the palm, runs away
    np.testing.assert_allclose(np.linalg.norm(m["normals"], axis=1), 1.0, atol=1e-9)
    # bent and sleeved: the far end turns by the bend, the sleeve is wider than the arm
    b = forearm_mesh(fit, 0.2, flex_deg=20.0, dev_deg=0.0, taper=1.3, sleeve_start=0.08, sleeve_widen=1.3)
    ang = np.degrees(np.arccos(np.clip(b["end_dir"] @ -e1, -1, 1)))
    assert 15 < ang < 25
    assert {SKIN, CLOTH, CUFF} == set(np.unique(b["part"]).tolist())
    assert b["dist"][b["part"] == CLOTH].min() == pytest.approx(0.08)
    assert b["dist"][b["part"] == SKIN].max() <= 0.08 + 1e-9


def test_forearm_drawn_and_labels_unchanged(hand):
    if not GESTURES.is_file():
        pytest.skip(f"{GESTURES} not present")
    n_arm = 0
    for i in range(4):
        with_arm = render_sample(hand, np.random.default_rng([3, 0, i]), SynthSettings(**PLAIN, p_forearm=1.0), GESTURES)
        no_arm = render_sample(hand, np.random.default_rng([3, 0, i]), SynthSettings(**PLAIN, p_forearm=0.0), GESTURES)
        # the forearm has its own generator: same pose, camera, labels and (up to the arm) image
        for k in ("joints", "verts", "K"):
            assert np.array_equal(with_arm[k], no_arm[k])
        m1, m0 = with_arm["mask"], no_arm["mask"]
        K = with_arm["K"].astype(np.float64)
        uv = project(with_arm["joints"].astype(np.float64), K)
        wrist, mcp = uv[0], uv[9]
        # the mask stays the hand's own silhouette: the arm only hides the hand mesh's short stub at the wrist
        assert not (m1 & ~m0).any() and m1.sum() > 0.7 * m0.sum()
        ys, xs = np.nonzero(m0 & ~m1)
        assert np.all(np.hypot(xs - wrist[0], ys - wrist[1]) < 0.6 * np.linalg.norm(mcp - wrist) + 2)
        d = (wrist - mcp) / np.linalg.norm(wrist - mcp)  # image direction away from the fingers
        diff = np.abs(with_arm["image"].astype(int) - no_arm["image"].astype(int)).sum(2) > 30
        assert not (diff & m1).any()  # the hand's pixels are untouched
        # pixels beyond the hand's silhouette on the far side of the wrist show the forearm
        pts = [wrist + d * k for k in np.arange(1, 60, 0.5)]
        pts = [np.rint(p).astype(int) for p in pts if np.all((p >= 0) & (p <= 95))]
        beyond = [p for p in pts if not m0[p[1], p[0]]]  # outside the hand (and its stub)
        if len(beyond) < 4:
            continue  # the forearm leaves the image right at the wrist
        n_arm += 1
        hit = np.mean([diff[p[1], p[0]] for p in beyond[1:10]])
        assert hit > 0.7
        ys, xs = np.nonzero(diff)
        assert (np.array([xs.mean(), ys.mean()]) - wrist) @ (mcp - wrist) < 0  # away from the fingers
    assert n_arm >= 2


def test_nails_on_dorsal_fingertips(hand):
    w = nail_weights(hand)
    assert w.shape == (1360,) and w.min() >= 0 and w.max() <= 1
    nails = np.nonzero(w > 0.5)[0]
    b = hand.bind_joints
    n_palm = palm_frame(b[_J21])[:, 2]  # out of the palm
    normals = vertex_normals(hand.verts, hand.faces, hand.weld)
    tips = {0: (3, 4), 1: (8, 9), 2: (13, 14), 3: (18, 19), 4: (23, 24)}  # distal phalanx, tip (skin joints)
    for f, (dj, tj) in tips.items():
        own = nails[(hand.weights[nails, dj] + hand.weights[nails, tj]) > 0.5]
        assert len(own) >= 3, f"finger {f}: {len(own)} nail vertices"
        assert np.all(np.linalg.norm(hand.verts[own] - b[tj], axis=1) < 0.02)  # near the fingertip
        back = hand.bind_world[dj, :3, 1] if f == 0 else -n_palm  # thumb: its own back (WebXR +Y)
        assert np.all(normals[own] @ back > 0.3)
        axis = b[tj] - b[dj]
        rel = hand.verts[own] - b[dj]
        radial = rel - np.outer(rel @ axis / (axis @ axis), axis)
        assert np.all(radial @ back > 0)  # on the back of the finger, not the pad
    assert np.isin(nails, [v for dj, tj in tips.values()
                           for v in np.nonzero(hand.weights[:, dj] + hand.weights[:, tj] > 0.5)[0]]).all()


def test_photo_paths_existing_and_skimage(monkeypatch):
    import importlib.util
    paths = bgmod.photo_paths()
    assert paths and all(p.is_file() for p in paths)
    names = {p.name for p in paths}
    if importlib.util.find_spec("skimage") is not None:
        assert {"astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg"} <= names
    monkeypatch.setattr(bgmod, "PHOTO_FILES", bgmod.PHOTO_FILES + (("no_such_package_xyz", "a.png"),
                                                                   ("matplotlib", "mpl-data/no_such.jpg")))
    assert bgmod.photo_paths() == paths  # missing packages and files are skipped


def test_photo_crop_greyscale_and_turns():
    grey = (np.arange(60 * 80).reshape(60, 80) % 251).astype(np.uint8)
    rgb = np.stack([grey, 255 - grey, grey // 2], 2)
    rng = np.random.default_rng(0)
    for _ in range(20):
        for photos in ((grey,), (rgb,)):
            out = bgmod.photo_crop(rng, 30, 50, photos=photos)
            assert out.shape == (30, 50, 3) and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1


def test_collage_background():
    rng = np.random.default_rng(1)
    for _ in range(6):
        bg = bgmod.random_background(rng, 64, 80, p_photo=0.0, p_collage=1.0)
        assert bg.shape == (64, 80, 3) and bg.dtype == np.float32 and bg.min() >= 0 and bg.max() <= 1
        assert bg.std() > 0.01  # cluttered, not flat


def test_shade_per_vertex_specular_fill_and_hemisphere():
    K = np.array([[20.0, 0, 10], [0, 20, 10], [0, 0, 1]])
    verts = np.array([[-1.0, -1, 2], [1, -1, 2], [0, 1, 2]])
    faces = np.array([[0, 1, 2]])
    _, f, b = rasterize(verts, faces, K, 20, 20)
    kw = dict(ambient=0.1, shininess=5.0)
    a, m = shade(verts, faces, f, b, [0.5, 0.5, 0.5], [0, 0, -1], specular=0.3, **kw)
    a2, _ = shade(verts, faces, f, b, [0.5, 0.5, 0.5], [0, 0, -1], specular=np.full(3, 0.3), **kw)
    np.testing.assert_allclose(a, a2, atol=1e-6)
    filled, _ = shade(verts, faces, f, b, [0.5, 0.5, 0.5], [1, 0, 0.2], specular=0.0, fill_dir=[0, 0, -1],
                      fill_color=[0.5, 0.5, 0.5], **kw)
    unfilled, _ = shade(verts, faces, f, b, [0.5, 0.5, 0.5], [1, 0, 0.2], specular=0.0, **kw)
    assert filled[m].mean() > unfilled[m].mean() + 0.1
    # a surface facing up (normal -y in the camera frame) takes the sky colour, facing down the ground's
    up = np.tile([0.0, -0.8, -0.6], (3, 1))  # towards the camera and up
    sky, ground = [0.8, 0.0, 0.0], [0.0, 0.0, 0.8]
    hs, _ = shade(verts, faces, f, b, [1, 1, 1], [0, 0, -1], light_color=[0, 0, 0], ambient=0.0, specular=0.0,
                  normals=up, sky=sky, ground=ground)
    np.testing.assert_allclose(hs[m], [[0.72, 0.0, 0.08]] * m.sum(), atol=1e-6)  # t = (1 - n_y) / 2 = 0.9


def test_render_sample_reproducible_and_settings(hand):
    if not GESTURES.is_file():
        pytest.skip(f"{GESTURES} not present")
    for i in range(3):
        a = render_sample(hand, np.random.default_rng([5, 1, i]), CFG, GESTURES)
        b = render_sample(hand, np.random.default_rng([5, 1, i]), CFG, GESTURES)
        for k in ("image", "K", "joints", "verts", "mask"):
            assert np.array_equal(a[k], b[k])
    c = render_sample(hand, np.random.default_rng([5, 1, 99]), CFG, GESTURES)
    assert not np.array_equal(a["image"], c["image"])


# --- label convention ---------------------------------------------------------------------------

def test_label_offsets_move_labels_rigidly_with_their_bone(hand, art):
    rng = np.random.default_rng(0)
    off = rng.normal(0, 0.005, (21, 3))
    moved = RiggedHand(**{**hand.__dict__, "label_offsets": off})
    np.testing.assert_allclose(moved.joints21, hand.joints21 + off)
    angles = art.sample(rng)
    _, j0 = hand.pose(art.rotations(angles))
    _, j1 = moved.pose(art.rotations(angles))
    A = hand.transforms(art.rotations(angles))
    carrier = moved.label_carriers
    expect = np.einsum("jab,jb->ja", A[carrier, :3, :3], hand.joints21 + off) + A[carrier, :3, 3]
    np.testing.assert_allclose(j1, expect, atol=1e-12)
    assert np.abs(j1 - j0).max() > 1e-3
    with pytest.raises(ValueError, match="label_offsets"):
        RiggedHand(**{**hand.__dict__, "label_offsets": np.zeros((20, 3))})


def test_calibrated_labels_follow_the_gesture_convention(hand):
    """The WebXR tips sit mid-way along the distal phalanx; fitted to the Ge et al. gestures the label tips
    move out to the fingertip (about 1 cm) and the best articulation of each gesture fits better."""
    if not GESTURES.is_file():
        pytest.skip(f"{GESTURES} not present")
    from cliphand.data.synth.articulation import calibrate_label_offsets
    from cliphand.evaluate.metrics import procrustes_align

    def label_fit_error(hand, poses):
        """(N, 21) metres: each pose's best articulation of the hand's label joints, after similarity alignment."""
        art = Articulator(hand)
        return np.array([np.linalg.norm(procrustes_align(hand.pose(art.rotations(art.fit_angles(X)))[1], X) - X, axis=1)
                         for X in np.asarray(poses, np.float64)])

    gestures = load_gestures(GESTURES)
    fit, held_out = gestures[::5], gestures[1::5]
    off = calibrate_label_offsets(hand, fit, iters=2)
    cal = RiggedHand(**{**hand.__dict__, "label_offsets": off})
    before = label_fit_error(hand, held_out).mean()
    after = label_fit_error(cal, held_out).mean()
    assert after < 0.6 * before, (before, after)              # about 5.4 -> 2.4 mm on held-out gestures
    for tip in (4, 8, 12, 16, 20):                            # tips move outwards along the distal bone
        bone = hand.joints21[tip] - hand.joints21[tip - 1]
        assert off[tip] @ bone / np.linalg.norm(bone) > 0.004


def test_bone_scales_change_the_hand_shape(hand, art):
    same = hand.with_bone_scales(np.ones(25))
    np.testing.assert_allclose(same.verts, hand.verts, atol=1e-12)
    np.testing.assert_allclose(same.joints21, hand.joints21, atol=1e-12)
    scales = np.ones(25)
    scales[7:10] = 1.1                                         # index finger's phalanges and tip 10 % longer
    longer = hand.with_bone_scales(scales)
    bone = lambda h, a, b: np.linalg.norm(h.joints21[b] - h.joints21[a])  # noqa: E731
    assert bone(longer, 5, 6) == pytest.approx(1.1 * bone(hand, 5, 6), rel=1e-9)   # MCP -> PIP
    assert bone(longer, 9, 10) == pytest.approx(bone(hand, 9, 10), rel=1e-9)       # middle finger unchanged
    assert np.abs(longer.verts - hand.verts).max() > 0.003     # the skin follows
    angles = art.sample(np.random.default_rng(1))
    v, j = longer.pose(art.rotations(angles))                  # the same articulation poses the new shape
    assert np.isfinite(v).all() and np.linalg.norm(j[6] - j[5]) == pytest.approx(bone(longer, 5, 6), rel=1e-9)
    with pytest.raises(ValueError, match="bone scales"):
        hand.with_bone_scales(np.zeros(25))
