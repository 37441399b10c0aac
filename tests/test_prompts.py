"""Tests of cliphand.text.prompts: per-axis joint orders, subsets, templates and token budgets (paper §3.1)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cliphand.hand.geometry import project
from cliphand.text import prompts as P


def upright_hand() -> np.ndarray:
    """A hand-made right hand, palm to the camera, fingers pointing up (camera frame, metres).

    Wrist at the bottom (y = +0.08), finger bases near y = 0 (per-finger offsets), each joint 2.5 cm
    higher (smaller y) than the previous; fingers spread along x, thumb leftmost (x = -0.04) to little
    (x = +0.04); depth grows by 0.2 mm per joint along a finger. All coordinates distinct (no ties).
    """
    j = np.zeros((21, 3))
    j[0] = (0.01, 0.08, 0.50)
    base_y = (0.03, 0.004, -0.01, 0.002, 0.012)  # thumb low, middle finger tallest; distinct mod 2.5 cm
    for f in range(5):
        for k in range(4):
            j[1 + 4 * f + k] = (-0.04 + 0.02 * f + 0.001 * k, base_y[f] - 0.025 * k, 0.50 + 0.0002 * (k + 1) + 0.00003 * f)
    return j


def test_joint_names_follow_freihand_order():
    assert len(P.JOINT_NAMES) == 21 and len(set(P.JOINT_NAMES)) == 21
    assert P.JOINT_NAMES[0] == "wrist"
    assert P.JOINT_NAMES[1:5] == ("thumb MCP", "thumb PIP", "thumb DIP", "thumb fingertip")
    assert P.JOINT_NAMES[5] == "index MCP" and P.JOINT_NAMES[12] == "middle fingertip"
    assert P.JOINT_NAMES[20] == "little fingertip"


def test_orders_known_answer_and_ties():
    j = np.zeros((21, 3))
    j[:, 0] = -np.arange(21)          # x decreasing with index -> left to right is 20, 19, ..., 0
    j[:, 1] = np.arange(21) * 0.01    # y increasing with index -> top to bottom is 0, 1, ..., 20
    j[:, 2] = 0.5                     # all tied in depth -> index order (stable)
    j[3, 2] = 0.4                     # ... except joint 3, nearest
    o = P.axis_orders(j)
    assert o.shape == (3, 21)
    np.testing.assert_array_equal(o[0], np.arange(20, -1, -1))
    np.testing.assert_array_equal(o[1], np.arange(21))
    np.testing.assert_array_equal(o[2], [3] + [i for i in range(21) if i != 3])


def test_upright_hand_orders_match_image_directions():
    j = upright_hand()
    o = P.axis_orders(j)
    # y ascending = top to bottom: the tallest (middle) fingertip first, the wrist last
    assert o[1][0] == 12 and o[1][-1] == 0
    # x ascending = left to right: the thumb's joints come first, the little finger's last
    assert set(o[0][:4]) == {1, 2, 3, 4} and set(o[0][-4:]) == {17, 18, 19, 20}
    # z ascending = near to far: the wrist is nearest
    assert o[2][0] == 0
    # in the image (pinhole, y down), v grows along the y order and u along the x order
    K = np.array([[500.0, 0, 112], [0, 500.0, 112], [0, 0, 1]])
    uv = project(j, K)
    assert np.all(np.diff(uv[o[1], 1]) > 0), "y order is not top-to-bottom in the image"
    assert np.all(np.diff(uv[o[0], 0]) > 0), "x order is not left-to-right in the image"


def test_subset_size_determinism_and_spread():
    j = upright_hand()
    p1, o1, s1 = P.sample_prompts(j, 10, seed=7, index=3)
    p2, o2, s2 = P.sample_prompts(j, 10, seed=7, index=3)
    assert p1 == p2 and np.array_equal(o1, o2) and np.array_equal(s1, s2)
    assert s1.shape == (10,) and len(set(s1.tolist())) == 10 and np.all(np.diff(s1) > 0)
    assert o1.shape == (3, 10)
    for a in range(3):  # each axis order is a permutation of the subset, ascending along that axis
        assert sorted(o1[a].tolist()) == s1.tolist()
        assert np.all(np.diff(j[o1[a], a]) > 0)
    subsets = {tuple(P.sample_prompts(j, 10, seed=7, index=i)[2]) for i in range(20)}
    assert len(subsets) > 15, "different samples should get different subsets"
    other_seed = {tuple(P.sample_prompts(j, 10, seed=8, index=i)[2]) for i in range(20)}
    assert subsets != other_seed
    with pytest.raises(ValueError):
        P.sample_subset(0, np.random.default_rng(0))
    with pytest.raises(ValueError):
        P.sample_subset(22, np.random.default_rng(0))


@pytest.mark.parametrize("template", ["short", "paper"])
def test_all_21_joints_appear_once(template):
    j = upright_hand()
    prompts, orders, subset = P.sample_prompts(j, 21, seed=0, index=0, template=template)
    np.testing.assert_array_equal(subset, np.arange(21))
    t = P.TEMPLATES[template]
    for a, p in enumerate(prompts):
        assert p.startswith(t.prefixes[a])
        spans = P.joint_spans(p)
        assert [s[0] for s in spans] == orders[a].tolist()
        assert sorted(s[0] for s in spans) == list(range(21))
        for idx, s, e in spans:
            assert p[s:e] == P.JOINT_NAMES[idx]


def test_prompt_text_known_answer():
    assert P.build_prompt([0, 4, 20], 1, "short") == "Top to bottom: wrist, thumb fingertip, little fingertip"
    assert P.build_prompt([2], 2, "paper") == "From near to far, the joints are: thumb PIP."
    with pytest.raises(ValueError, match="not a joint name"):
        P.joint_spans("Left to right: wrist, elbow")
    with pytest.raises(ValueError):
        P.resolve_template("nope")


def test_clip_token_budget_short_fits_paper_overflows():
    rng = np.random.default_rng(0)
    for _ in range(5):
        for a in range(3):
            p = P.build_prompt(rng.permutation(21), a, "short")
            assert P.count_tokens(p, "open_clip") == 77  # exactly CLIP's context length
    shorts = [P.build_prompt(range(21), a, "short") for a in range(3)]
    assert P.check_token_budget(shorts, "open_clip") == 77
    paper = P.build_prompt(range(21), 0, "paper")
    assert P.count_tokens(paper, "open_clip") == 83
    with pytest.raises(ValueError, match=r"83 tokens > limit 77.*From left to right"):
        P.check_token_budget([shorts[0], paper], "open_clip")
    # any 18 joints fit with the paper prefix, some 19 do not (NOTES §5)
    n18 = max(P.count_tokens(P.build_prompt(c, 0, "paper"), "open_clip") for c in itertools.combinations(range(21), 18))
    assert n18 <= 77
    assert P.count_tokens(P.build_prompt([j for j in range(21) if j not in (0, 2)], 0, "paper"), "open_clip") == 78


def test_minilm_token_budget():
    for t in ("paper", "short"):
        p = P.build_prompt(range(21), 0, t)
        n = P.count_tokens(p, "minilm")
        assert 60 < n <= P.TOKEN_LIMITS["minilm"]
    assert P.check_token_budget([P.build_prompt(range(21), a, "paper") for a in range(3)], "minilm") == 83
    with pytest.raises(ValueError, match="minilm"):
        P.check_token_budget("wrist, " * 300, "minilm")


def test_default_templates():
    assert P.resolve_template("auto", "open_clip").name == "short"
    assert P.resolve_template(None, "minilm").name == "paper"
