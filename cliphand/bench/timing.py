"""Inference speed of the model per module (paper Table 6): latency at batch 1, throughput at batch 32,
parameters and FLOPs; and the same for the ONNX export under onnxruntime.

Protocol (NOTES §4 "Speed"): the callable runs ``warmup`` times untimed, then ``iters`` times, each call
timed alone with ``time.perf_counter``; on CUDA ``torch.cuda.synchronize()`` runs before each clock
read (the paper's 77 FPS were timed without it). We give the median and the spread (10th/90th
percentiles, min) in milliseconds, and name the device and its thread count. Inputs are random
ImageNet-normalised crops: the cost of every module here does not depend on the pixel values.

Modules (Table 6's split): **pose features** = backbone + joint regressor (lixel heatmaps, soft-argmax),
**mesh regressor** = the sparse-to-dense mesh regressor given the pose features, **whole** = both in one
call (the inference path; the text branch and feature matching head are training-only and not run).
FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts 2 FLOPs).
"""

from __future__ import annotations

import platform
import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from cliphand.distributed import resolve_device

MODULES = ("pose_features", "mesh_regressor", "whole")


def synchronize(device: torch.device | str) -> None:
    """Wait for queued CUDA work (no-op on CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def summarize_ms(times_ms) -> dict:
    """``median_ms``, ``p10_ms``, ``p90_ms``, ``min_ms``, ``mean_ms`` and ``iters`` of per-call times (ms)."""
    t = np.asarray(times_ms, np.float64)
    if t.size == 0:
        raise ValueError("no timings to summarise")
    return {"median_ms": round(float(np.median(t)), 3), "p10_ms": round(float(np.percentile(t, 10)), 3),
            "p90_ms": round(float(np.percentile(t, 90)), 3), "min_ms": round(float(t.min()), 3),
            "mean_ms": round(float(t.mean()), 3), "iters": int(t.size)}


def time_call(fn: Callable[[], object], warmup: int = 10, iters: int = 30,
              device: torch.device | str = "cpu") -> dict:
    """Time ``fn()`` (module docstring's protocol): ``warmup`` untimed calls, then ``iters`` timed ones.

    Returns: :func:`summarize_ms` of the timed calls. Raises: ValueError when iters < 1 or warmup < 0.
    """
    if iters < 1 or warmup < 0:
        raise ValueError(f"need iters >= 1 and warmup >= 0, got iters={iters}, warmup={warmup}")
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append((time.perf_counter() - t0) * 1000)
    return summarize_ms(times)


def count_params(module: nn.Module | None) -> int:
    """Number of parameters (0 for None)."""
    return 0 if module is None else int(sum(p.numel() for p in module.parameters()))


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` (``FlopCounterMode``: matmul/conv/attention; a multiply-add = 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def device_name(device: torch.device | str) -> str:
    """A readable device name: the GPU's name, or 'CPU (<arch>, N threads)'."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def module_calls(model: nn.Module, images: torch.Tensor) -> dict[str, Callable[[], object]]:
    """The three timed callables of :data:`MODULES` on ``images`` (B, 3, S, S), under ``torch.no_grad``.

    The mesh regressor's input (the pose features of ``images``) is computed once beforehand.
    """
    with torch.no_grad():
        pose = model.pose_features(images)

    def pose_features():
        with torch.no_grad():
            return model.pose_features(images)

    def mesh_regressor():
        with torch.no_grad():
            return model.mesh(pose)

    def whole():
        with torch.no_grad():
            return model.mesh(model.pose_features(images))

    return {"pose_features": pose_features, "mesh_regressor": mesh_regressor, "whole": whole}


def benchmark_model(model, device: str = "cpu", latency_batch: int = 1, throughput_batch: int = 32,
                    warmup: int = 10, iters: int = 30, throughput_warmup: int = 3, throughput_iters: int = 10,
                    seed: int = 0) -> dict:
    """Table 6 for one model: latency (batch ``latency_batch``) and throughput (batch ``throughput_batch``)
    of each of :data:`MODULES`, parameters and FLOPs.

    Args:
        model: a :class:`~cliphand.model.cliphand3d.CLIPHand3D` (put in eval mode and moved to ``device``).
        device: ``cpu`` | ``cuda`` | ``auto`` (:func:`cliphand.distributed.resolve_device`).
    Returns:
        ``device``, ``input_size``, ``params`` (per module, ``inference`` = backbone + joint regressor + mesh
        regressor, ``text_branch`` = the training-only feature matching head), ``gflops`` per module at batch 1,
        ``latency`` {module: :func:`summarize_ms` + ``fps``} and ``throughput`` {module: summary +
        ``images_per_s``, ``batch``}.
    """
    dev = resolve_device(device)
    model.eval().to(dev)
    s = model.cfg.input_size
    gen = torch.Generator().manual_seed(seed)
    x1 = torch.randn(latency_batch, 3, s, s, generator=gen).to(dev)
    xb = torch.randn(throughput_batch, 3, s, s, generator=gen).to(dev)
    pose_params = count_params(model.backbone) + count_params(model.joint_regressor)
    out = {"device": device_name(dev), "device_type": dev.type, "input_size": s,
           "vertices": int(model.levels.positions[-1].shape[0]),
           "params": {"pose_features": pose_params, "mesh_regressor": count_params(model.mesh_regressor),
                      "inference": pose_params + count_params(model.mesh_regressor),
                      "text_branch": count_params(model.clip_head)},
           "gflops": {}, "latency": {}, "throughput": {}}
    calls1 = module_calls(model, x1)
    for name, fn in calls1.items():
        out["gflops"][name] = round(count_flops(fn) / latency_batch / 1e9, 3)
        stats = time_call(fn, warmup, iters, dev)
        out["latency"][name] = {**stats, "batch": latency_batch, "fps": round(1000 * latency_batch / stats["median_ms"], 2)}
    for name, fn in module_calls(model, xb).items():
        stats = time_call(fn, throughput_warmup, throughput_iters, dev)
        out["throughput"][name] = {**stats, "batch": throughput_batch,
                                   "images_per_s": round(1000 * throughput_batch / stats["median_ms"], 2)}
    return out


def benchmark_onnx(session, input_size: int, latency_batch: int = 1, throughput_batch: int = 32,
                   warmup: int = 10, iters: int = 30, throughput_warmup: int = 3, throughput_iters: int = 10,
                   seed: int = 0) -> dict:
    """Latency and throughput of an exported model (:mod:`cliphand.bench.export`) under onnxruntime on the CPU.

    Returns: ``latency`` and ``throughput`` of the whole model (same fields as :func:`benchmark_model`),
    ``providers`` and ``threads`` (intra-op, 0 = onnxruntime's default: all cores).
    """
    from cliphand.bench.export import run_onnx

    rng = np.random.default_rng(seed)
    x1 = rng.standard_normal((latency_batch, 3, input_size, input_size)).astype(np.float32)
    xb = rng.standard_normal((throughput_batch, 3, input_size, input_size)).astype(np.float32)
    lat = time_call(lambda: run_onnx(session, x1), warmup, iters)
    thr = time_call(lambda: run_onnx(session, xb), throughput_warmup, throughput_iters)
    return {"providers": list(session.get_providers()),
            "threads": int(session.get_session_options().intra_op_num_threads),
            "latency": {"whole": {**lat, "batch": latency_batch, "fps": round(1000 * latency_batch / lat["median_ms"], 2)}},
            "throughput": {"whole": {**thr, "batch": throughput_batch,
                                     "images_per_s": round(1000 * throughput_batch / thr["median_ms"], 2)}}}
