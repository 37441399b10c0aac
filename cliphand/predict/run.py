"""The ``cliphand predict`` command (:mod:`cliphand.predict`): :func:`run_predict` predicts an image, a folder of
images or a video into an output folder and returns a summary; its private helpers check the options, open the
checkpoint's model (PyTorch or its ONNX export) and MediaPipe's hand detector, and loop over a folder or a video.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from cliphand.config import MediaPipeSettings
from cliphand.errors import DataError
from cliphand.evaluate.test_time import DEFAULT_ROTATIONS_DEG, check_rotations
from cliphand.predict.camera import BONE_LENGTH_M, PAD, default_intrinsics, read_intrinsics, square_box
from cliphand.predict.inputs import (downscale_record, file_stems, folder_images, input_kind, read_image,
                                     require_pyav, video_frames)
from cliphand.predict.outputs import write_prediction
from cliphand.predict.prediction import predict_image
from cliphand.paths import Paths

DEFAULT_CHECKPOINT = Paths(Path(".")).finetune_model


def run_predict(input_path: str | Path, out_dir: str | Path = "predictions",
                checkpoint: str | Path = DEFAULT_CHECKPOINT, *, device: str = "auto",
                box: tuple[float, float, float, float] | None = None, use_detector: bool | None = None,
                hand: str = "auto", selfie: bool = False, pad: float = PAD, focal: float | None = None,
                principal: tuple[float, float] | None = None, intrinsics: str | Path | None = None,
                bone_length: float = BONE_LENGTH_M, mesh_format: str = "obj", every: int = 1,
                progress: bool = True, warn: Callable[[str], None] | None = None,
                onnx: str | Path | None = None, rotations: Sequence[float] = DEFAULT_ROTATIONS_DEG) -> dict:
    """Predict every image of ``input_path`` (an image, a folder of images or a video) into ``out_dir``.

    Args:
        checkpoint: model checkpoint (:func:`cliphand.model.checkpoint.load_checkpoint`).
        device: ``cpu`` | ``cuda`` | ``auto`` (:func:`cliphand.distributed.resolve_device`).
        box: the hand's tight box ``(x0, y0, w, h)`` pixels, used for every image.
        use_detector: MediaPipe Hands: None = when installed, True = required, False = off (ignored with ``box``).
        hand, selfie, pad, bone_length: see :func:`cliphand.predict.prediction.predict_image`.
        focal (pixels) and principal ``(cx, cy)``, or ``intrinsics`` (a JSON file,
            :func:`cliphand.predict.camera.read_intrinsics`): the camera; default
            :func:`cliphand.predict.camera.default_intrinsics` per image.
        mesh_format: ``obj`` | ``ply``. every: predict every N-th video frame.
        progress: tqdm bar (folders and videos). warn: called with a message per skipped file (default: stderr).
        onnx: run this export of the checkpoint's model (:func:`cliphand.bench.export.export_onnx`, e.g.
            ``data/bench/default.onnx``) with onnxruntime on the CPU instead of PyTorch; the checkpoint still
            gives the input size, depth range and mesh faces.
        rotations: test-time rotation offsets, degrees from the upright view (default ``evaluate.test_rotations_deg``'s
            schema default, :mod:`cliphand.evaluate.test_time`); empty: one forward pass per image.
    Returns:
        summary dict: ``kind``, ``n`` (images tried), ``n_written``, ``n_failed``, ``failed`` (list of
        ``{"file", "error"}``), ``n_detected`` (MediaPipe found the hand), ``detector``, ``seconds``, mean
        ``ms_per_image`` (all work per written image, files included), ``ms_model``, ``ms_detect``, ``out``.
    Raises:
        DataError: missing input, unsupported type, an empty folder, an unreadable single image or video,
            PyAV missing for a video, a bad checkpoint or intrinsics file.
        ValueError: bad ``box``, ``hand``, ``mesh_format``, ``every``, ``pad``, ``bone_length``, ``focal`` or
            ``rotations``.
        TrainingError: CUDA requested but unavailable.
    """
    t_start = time.perf_counter()
    input_path, out_dir = Path(input_path), Path(out_dir)
    _check_options(box, hand, pad, bone_length, mesh_format, every)
    rotations = check_rotations(rotations)
    warn = warn or (lambda msg: tqdm.write(msg, file=sys.stderr))
    kind = input_kind(input_path)
    if kind == "folder":
        files = folder_images(input_path)
    camera = _camera(intrinsics, focal, principal)
    if kind == "video":
        require_pyav(input_path)
    if kind == "image":  # read before anything is loaded or written: a bad file fails fast, nothing is left
        first_image, first_scale = read_image(input_path)
    model, meta, faces, dev = _load_model(checkpoint, device, onnx)
    common = {"model": {"checkpoint": str(checkpoint), "input_size": int(meta["input_size"]),
                        "depth_range": float(meta["depth_range"]), "test_rotations_deg": rotations}}
    summary = {"input": str(input_path), "kind": kind, "out": str(out_dir), "checkpoint": str(checkpoint),
               "device": str(dev), "runtime": "onnxruntime" if onnx is not None else "pytorch", "n": 0,
               "n_written": 0, "n_failed": 0, "failed": [], "n_detected": 0}
    ms_total, ms_model, ms_detect = [], [], []
    detector = None

    def one(image: np.ndarray, dest: Path, stem: str, scale: float = 1.0, **extra) -> None:
        """Predict and write one image; ``scale`` = its size / the file's (read_image downscaled it)."""
        t0 = time.perf_counter()
        size = (round(image.shape[1] / scale), round(image.shape[0] / scale))
        K, src = camera(*size)                      # the camera and the box are given in the file's pixels
        K = np.diag([scale, scale, 1.0]) @ K
        b = None if box is None else tuple(v * scale for v in box)
        pred = predict_image(model, meta, image, faces, K=K, box=b, hand=hand, detector=detector, selfie=selfie,
                             pad=pad, bone_length=bone_length, intrinsics_source=src, rotations=rotations)
        if scale != 1.0:
            extra["downscaled"] = downscale_record(image, scale)
        write_prediction(dest, stem, image, pred, mesh_format, file_pred=pred.scaled(1.0 / scale, size),
                         **extra, **common)
        summary["n_written"] += 1
        summary["n_detected"] += pred.hand_source == "mediapipe"
        ms_model.append(pred.timings_ms["model"])
        if "detect" in pred.timings_ms:
            ms_detect.append(pred.timings_ms["detect"])
        ms_total.append((time.perf_counter() - t0) * 1000)

    try:
        detector, summary["detector"] = (None, None) if box is not None else _open_detector(use_detector,
                                                                                          kind == "video")
        if kind == "image":
            summary["n"] = 1
            one(first_image, out_dir, input_path.stem, first_scale, input=str(input_path))
        elif kind == "folder":
            _predict_folder(files, out_dir, one, summary, progress, warn)
        else:
            summary["out"] = str(_predict_video(input_path, out_dir, int(every), one, summary, progress))
    finally:
        if detector is not None:
            detector.close()
    summary.update(seconds=round(time.perf_counter() - t_start, 3), ms_per_image=_mean(ms_total),
                   ms_model=_mean(ms_model), ms_detect=_mean(ms_detect))
    return summary


def _check_options(box: tuple[float, float, float, float] | None, hand: str, pad: float, bone_length: float,
                   mesh_format: str, every: int) -> None:
    """Raises: ValueError on a bad option of :func:`run_predict`, before anything is read or loaded."""
    if mesh_format not in ("obj", "ply"):
        raise ValueError(f"mesh format must be 'obj' or 'ply', got {mesh_format!r}")
    if hand not in ("left", "right", "auto"):
        raise ValueError(f"hand must be 'left', 'right' or 'auto', got {hand!r}")
    if int(every) < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if not (pad > 0 and bone_length > 0):
        raise ValueError(f"pad and bone length must be positive, got pad={pad}, bone_length={bone_length} m")
    if box is not None:
        square_box(box, pad)  # validate early


def _camera(intrinsics: str | Path | None, focal: float | None,
            principal: tuple[float, float] | None) -> Callable[[int, int], tuple[np.ndarray, str]]:
    """``camera(width, height) -> (K (3, 3) pixels, intrinsics source)`` of a file's image from the camera
    options of :func:`run_predict`; the intrinsics file is read and the focal length checked now.

    Raises: DataError (intrinsics file), ValueError (focal length)."""
    K_user, k_src = None, None
    if intrinsics is not None:
        K_user, k_src = read_intrinsics(intrinsics), f"file {intrinsics}"
    if focal is not None:
        default_intrinsics(1, 1, focal)  # validate early

    def camera(width: int, height: int) -> tuple[np.ndarray, str]:
        if K_user is not None:
            return K_user, k_src
        if focal is None and principal is None:
            return default_intrinsics(width, height), "default"
        parts = [p for p, given in (("--focal", focal), ("--principal", principal)) if given is not None]
        return default_intrinsics(width, height, focal, principal), "user (" + ", ".join(parts) + ")"

    return camera


def _load_model(checkpoint: str | Path, device: str,
                onnx: str | Path | None) -> tuple[torch.nn.Module, dict, np.ndarray, torch.device]:
    """(model, checkpoint meta, (F, 3) template faces, device): the checkpoint's model on ``device``, or with
    ``onnx`` that export of it run by onnxruntime on the CPU. Raises: DataError (checkpoint, export),
    TrainingError (CUDA requested but unavailable)."""
    from cliphand.model.checkpoint import load_checkpoint
    from cliphand.distributed import resolve_device

    model, ckpt = load_checkpoint(checkpoint)
    meta, faces = ckpt["meta"], np.asarray(ckpt["template"]["faces"])
    if onnx is not None:
        from cliphand.bench.export import OnnxModel

        model, dev = OnnxModel(onnx, int(meta["input_size"]), len(ckpt["template"]["verts"])), torch.device("cpu")
    else:
        dev = resolve_device(device)
        model.to(dev)
    return model, meta, faces, dev


def _open_detector(use_detector: bool | None, video: bool):
    """(MediaPipe Hands detector or None, its version or None) for ``use_detector`` (see :func:`run_predict`)."""
    from cliphand.peers import mediapipe_hands as mph

    if use_detector is False or (use_detector is None and not mph.available()):
        return None, None
    if not mph.available():
        raise DataError(f"MediaPipe Hands was asked for but is not installed: {mph.INSTALL_HINT}")
    try:
        det = mph.MediaPipeHands(MediaPipeSettings(static_image_mode=not video))
    except mph.PeerUnavailable as exc:
        if use_detector:
            raise DataError(str(exc)) from exc
        return None, None
    return det, mph.version()


def _predict_folder(files: list[Path], out_dir: Path, one: Callable[..., None], summary: dict, progress: bool,
                    warn: Callable[[str], None]) -> None:
    """Predict each of ``files`` with ``one`` into ``out_dir``; a file that fails is skipped with a warning and
    listed in ``summary["failed"]``."""
    for path, stem in tqdm(list(zip(files, file_stems(files))), desc="predict", unit="image",
                           disable=not progress):
        summary["n"] += 1
        try:
            image, scale = read_image(path)
            one(image, out_dir, stem, scale, input=str(path))
        except Exception as exc:  # noqa: BLE001 - one bad image never stops a folder
            msg = str(exc) if isinstance(exc, DataError) else f"{path}: {type(exc).__name__}: {exc}"
            summary["n_failed"] += 1
            summary["failed"].append({"file": str(path), "error": msg})
            warn(f"warning: skipped {msg}")


def _predict_video(video: Path, out_dir: Path, every: int, one: Callable[..., None], summary: dict,
                   progress: bool) -> Path:
    """Predict every ``every``-th frame of ``video`` with ``one`` into ``out_dir / <video stem>``, returned."""
    frames, n_frames, container = video_frames(video, every)
    dest = out_dir / video.stem
    try:
        for index, t, image in tqdm(frames, total=n_frames, desc="predict", unit="frame", disable=not progress):
            summary["n"] += 1
            one(image, dest, f"frame_{index:06d}", input=str(video), frame_index=index, time_s=t)
    finally:
        container.close()
    return dest


def _mean(xs: list[float]) -> float | None:
    return round(float(np.mean(xs)), 3) if xs else None
