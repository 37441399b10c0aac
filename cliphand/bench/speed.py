"""The benchmark stage's steps, from settings (params.yaml ``benchmark``) to one metrics dict:

1. **Table 6 for our models** (:func:`cliphand.bench.timing.benchmark_model`): the trained default model
   (``data/models/finetune.pt``) and the paper profile's architecture (``configs/paper.yaml``: ResNet-50,
   224 px, 56 lixels, E = 512, levels 21→98→195→389→778). The paper model is timed with random weights
   (speed does not depend on them; none can be trained here) and, when ``data.mano_path`` of the merged
   settings is not a file, on a 778-vertex stand-in of the template: the WebXR hand's vertices picked by
   farthest point sampling, so every level has the authors' node count.
2. **ONNX** (:mod:`cliphand.bench.export`): each model exported, parity with PyTorch on the real-world crops
   (``data/prep/realworld``: all of them for the trained model, the first ``parity_samples`` for the paper
   model; resized for the paper model's input), onnxruntime
   latency/throughput; the trained model's export is also scored on those photos (realworld metrics).
   With test-time rotation (``evaluate.test_rotations_deg`` not empty) the trained model is timed and its export
   scored a second time through :func:`cliphand.evaluate.test_time.rotated_passes` (``test_time``).
3. **Pipeline** (:mod:`cliphand.bench.throughput`): loader vs training step, text cache vs on the fly.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from cliphand.bench.timing import benchmark_model, benchmark_onnx, time_call
from cliphand.config import Params, validate
from cliphand.data.loader import PreparedSet, model_input
from cliphand.distributed import model_device
from cliphand.errors import DataError
from cliphand.evaluate import metrics as M
from cliphand.evaluate.test_time import rotated_passes
from cliphand.hand.geometry import uvd_to_xyz
from cliphand.hand.template import read_template
from cliphand.model.checkpoint import build_model, load_checkpoint
from cliphand.model.mesh_levels import farthest_points
from cliphand.paths import Paths
from cliphand.profiles import deep_merge, load_yaml
from cliphand.train.settings import model_settings, train_run

MANO_VERTS = 778


def paper_settings(p: Params, paths: Paths, profile: str | Path) -> Params:
    """The settings merged with the paper profile (what ``dvc exp run`` with its ``-S`` arguments sets),
    checked. Raises: DataError naming the profile when it is missing or makes invalid settings."""
    path = paths.resolve(profile)
    if not path.is_file():
        raise DataError(f"{path}: paper profile not found (params benchmark.paper_profile)")
    return validate(deep_merge(p.model_dump(), load_yaml(path)), f"settings + {path}")


def stand_in_template(template: dict, n_verts: int = MANO_VERTS) -> dict:
    """``n_verts`` of the template's vertices by farthest point sampling from its joints (timing only: no
    faces). Args: template {verts (V, 3), joints (21, 3), faces} metres. Raises: ValueError if V < n_verts."""
    verts = np.asarray(template["verts"], np.float32)
    if len(verts) < n_verts:
        raise ValueError(f"template has {len(verts)} vertices, fewer than {n_verts}")
    idx = np.sort(farthest_points(verts, n_verts, seeds=np.asarray(template["joints"])))
    return {"verts": verts[idx], "joints": np.asarray(template["joints"], np.float32),
            "faces": np.zeros((0, 3), np.int64)}


def paper_model(p: Params, paths: Paths, profile: str | Path) -> tuple[torch.nn.Module, str]:
    """The paper profile's architecture with random weights, and a note on its template.

    Text features: CLIP ViT-B/32 pooled, (1, 512) per prompt (only sizes the training-only text branch).
    """
    merged = paper_settings(p, paths, profile)
    # timing only: weights do not change the cost (and none exist offline)
    cfg = model_settings(merged, text_dim=512).model_copy(update={"pretrained": None})
    mano = merged.data.mano_path
    if mano and paths.resolve(mano).is_file():
        from cliphand.hand.mano import mano_template

        template, note = mano_template(paths.resolve(mano)), "MANO mean hand (778 vertices)"
    else:
        template = stand_in_template(read_template(paths.template))
        note = f"778-vertex stand-in (FPS of the WebXR hand; {mano or 'no MANO file'} not found)"
    torch.manual_seed(0)
    return build_model(cfg, template).eval(), note


def _parity_inputs(real: Path, input_size: int, n: int | None) -> tuple[torch.Tensor, np.ndarray, np.ndarray,
                                                                       np.ndarray]:
    """The first ``n`` (all when None) real-world crops (prepared split ``real``) as model input at ``input_size`` (bilinear resize
    when the prepared size differs, intrinsics scaled alike), their crop intrinsics, GT root depths (m) and
    GT joints (n, 21, 3) metres."""
    data = PreparedSet(real)
    data = data.head(n) if n else data
    batch = data.batch(np.arange(len(data)))
    x, K = batch["image"], batch["K"].numpy().astype(np.float64)
    if data.size != input_size:
        x = torch.nn.functional.interpolate(x, size=(input_size, input_size), mode="bilinear", align_corners=False)
        K = K.copy()
        K[:, :2] *= input_size / data.size
    return model_input(x), K, batch["root_depth"].numpy(), batch["joints"].numpy().astype(np.float64)


def rotation_latency(forward, images: torch.Tensor, rotations, warmup: int, iters: int, device="cpu") -> dict:
    """Batch-1 latency (:func:`cliphand.bench.timing.time_call`) of ``forward`` with test-time rotation (the first
    pass, then one pass per offset in ``rotations``, :func:`cliphand.evaluate.test_time.rotated_passes`) on the
    first crop of ``images`` (B, 3, S, S), normalised. Returns ``{"latency": {"whole": summary + fps}}``."""
    x1 = images[:1].to(device)

    def call():
        with torch.no_grad():
            return rotated_passes(forward, x1, forward(x1), rotations)

    lat = time_call(call, warmup, iters, device)
    return {"latency": {"whole": {**lat, "batch": 1, "fps": round(1000 / lat["median_ms"], 2)}}}


def rotated_joints(forward, images: torch.Tensor, K: np.ndarray, root_depth: np.ndarray, input_size: int,
                   depth_range: float, rotations, chunk: int = 32) -> np.ndarray:
    """(B, 21, 3) camera-frame metres of ``forward`` with test-time rotation on ``images`` (B, 3, S, S) normalised,
    with their crop intrinsics ``K`` (B, 3, 3) and root depths (B,) metres (as :func:`cliphand.bench.export.parity`)."""
    out = []
    for a in range(0, images.shape[0], chunk):
        x = images[a:a + chunk]
        with torch.no_grad():
            uvd = rotated_passes(forward, x, forward(x), rotations)["uvd"]
        sl = slice(a, a + chunk)
        out.append(uvd_to_xyz(uvd.cpu().double().numpy(), K[sl], root_depth[sl], input_size, depth_range))
    return np.concatenate(out)


def run_model_benchmarks(p: Params, paths: Paths, out_dir: Path) -> dict:
    """Steps 1-2 of the module docstring. The trained model's export is kept as ``out_dir/default.onnx``
    (for deployment); the paper model's (random weights, timing only) goes to a temporary folder.

    Returns: {model name: {``note``, ``torch``: :func:`benchmark_model`, ``onnx``: export info, ``parity``,
    and :func:`benchmark_onnx` timings}}.
    Raises: DataError when the checkpoint, the prepared real-world split or the paper profile is missing.
    """
    from cliphand.bench.export import OnnxModel, export_onnx, parity

    b = p.benchmark
    device = p.device
    rotations = list(p.evaluate.test_rotations_deg)
    models = {}
    default, ckpt = load_checkpoint(paths.resolve(b.checkpoint))
    models["default"] = (default, f"trained ({b.checkpoint})", float(ckpt["meta"]["depth_range"]))
    if b.paper_profile:
        pm, note = paper_model(p, paths, b.paper_profile)
        models["paper"] = (pm, f"random weights, {note}", p.preprocess.depth_range)
    results = {}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    scratch = tempfile.TemporaryDirectory(prefix="cliphand-onnx-")
    for name, (model, note, depth_range) in tqdm(models.items(), desc="benchmark models"):
        res = {"note": note, "torch": benchmark_model(model, device, 1, b.throughput_batch, b.warmup, b.iters,
                                                      b.throughput_warmup, b.throughput_iters)}
        s, trained = model.cfg.input_size, name == "default"
        if b.onnx or (trained and rotations):
            # the trained model on every real crop (its export is scored there); the paper model, whose weights
            # are random, on the first parity_samples (its 224-pixel forward costs ~0.1 s per crop on 2 cores)
            x, K, rd, gt = _parity_inputs(paths.prep_split("realworld"), s, None if trained else b.parity_samples)
        if trained and rotations:
            res["test_time"] = {"rotations_deg": rotations, "forward_passes": 1 + len(rotations),
                                "torch": rotation_latency(model, x, rotations, b.warmup, b.iters, model_device(model))}
        if b.onnx:
            model = model.cpu().eval()
            folder = Path(out_dir) if trained else Path(scratch.name)
            res["onnx"] = export_onnx(model, folder / f"{name}.onnx", s)
            res["onnx"]["kept"] = trained
            onnx_model = OnnxModel(res["onnx"]["path"], s)      # one onnxruntime session for every use below
            sess = onnx_model.session
            res["parity"], joints = parity(model, sess, x, K, rd, s, depth_range)
            if trained:  # score the export itself on the real photos
                res["onnx"]["realworld"] = {k: v for k, v in M.evaluate(joints, gt).items() if k != "curves"}
                if rotations:
                    joints = rotated_joints(onnx_model, x, K, rd, s, depth_range, rotations)
                    res["test_time"]["onnx"] = {
                        "realworld": {k: v for k, v in M.evaluate(joints, gt).items() if k != "curves"},
                        **rotation_latency(onnx_model, x, rotations, b.warmup, b.iters)}
            res["onnx"].update(benchmark_onnx(sess, s, 1, b.throughput_batch, b.warmup, b.iters, b.throughput_warmup,
                                              b.throughput_iters))
        results[name] = res
    scratch.cleanup()
    return results


def run_pipeline_speed(p: Params, paths: Paths) -> dict:
    """Step 3 of the module docstring on the training split, at the fine-tuning batch size (``clip.batch_size``).

    Returns: ``loader``, ``train_step`` (:mod:`cliphand.bench.throughput`), ``loader_share`` of a step,
    ``text_cache`` (on the fly vs cached) and ``synthesize_images_per_s`` (the synthesize stage's figure).
    """
    from cliphand.bench.throughput import loader_rate, text_cache_effect, train_step_rate
    from cliphand.text.encoders import build_encoder

    b = p.benchmark.pipeline
    # the loader and augmentation run on the CPU; time the step there too
    run = train_run(p, "finetune", device="cpu")
    # the finetuned subset: text features are cached for it only (cliphand.text.cache.embed_splits)
    data = PreparedSet(paths.prep_split("train"), paths.text_cache("train", run.n_joints), limit=run.n_train)
    bs = run.batch_size
    loader = loader_rate(data, bs, iters=b["loader_iters"])
    model, ckpt = load_checkpoint(paths.resolve(p.benchmark.checkpoint))
    faces = torch.as_tensor(np.asarray(ckpt["template"]["faces"]), dtype=torch.long)
    step = train_step_rate(copy.deepcopy(model), data, run, faces, iters=b["step_iters"])
    text = text_cache_effect(data, build_encoder(p.text), bs, iters=b["text_iters"])
    out = {"batch": bs, "loader": loader, "train_step": step,
           "loader_share": round(loader["median_ms"] / (loader["median_ms"] + step["median_ms"]), 4),
           "text_cache": text}
    synth = paths.metrics("synthesize")
    if synth.is_file():
        import json

        out["synthesize_images_per_s"] = json.loads(synth.read_text()).get("images_per_s")
    return out
