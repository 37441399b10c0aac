"""ONNX export of the inference model (no text branch) and its parity with PyTorch under onnxruntime.

The exported graph is :class:`InferenceModel`: ImageNet-normalised crops ``images`` (B, 3, S, S) float32 →
``uvd`` (B, 21, 3) soft-argmax joints and ``verts`` (B, V, 3) mesh vertices, both normalised uvd
(:mod:`cliphand.hand.geometry`); the batch axis is dynamic. Lift them to camera-frame metres with
:func:`cliphand.hand.geometry.uvd_to_xyz` and the crop intrinsics, as in :mod:`cliphand.evaluate.protocols`.

Exporter: ``torch.onnx.export(..., dynamo=False)`` (the TorchScript tracer, opset 17). The newer
``torch.export``-based exporter specialises the batch axis of this model to the example's batch (checked
with torch 2.15: a graph traced at batch 2 rejects batch 1), so it cannot serve batch 1 and batch 32
from one file.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cliphand.hand.geometry import uvd_to_xyz
from cliphand.io import atomic_path

OPSET = 17


class InferenceModel(nn.Module):
    """The inference path of :class:`cliphand.model.cliphand3d.CLIPHand3D`: pose feature generation + mesh
    regressor, no feature matching head.

    forward(images (B, 3, S, S) ImageNet-normalised) -> (uvd (B, 21, 3), verts (B, V, 3)) normalised uvd.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pose = self.model.pose_features(images)
        return pose["uvd"], self.model.mesh(pose)["verts"]


class StackedInference(InferenceModel):
    """:class:`InferenceModel` with one output tensor, the form MLflow's pytorch flavor serves through
    ``mlflow.pyfunc`` (its wrapper expects a single tensor).

    forward(images (B, 3, S, S) ImageNet-normalised float32) -> (B, 21 + V, 3) normalised uvd: rows 0-20 the
    soft-argmax joints, then the V mesh vertices.
    """

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        uvd, verts = super().forward(images)
        return torch.cat([uvd, verts], dim=1)


def export_onnx(model: nn.Module, path: str | Path, input_size: int, opset: int = OPSET) -> dict:
    """Export ``model``'s inference path (:class:`InferenceModel`, eval mode, CPU, float32) to ``path``.

    Written atomically; the file is checked with ``onnx.checker``.
    Returns: ``{"path", "seconds", "bytes", "opset"}``.
    Raises: ValueError when ``heatmap_size`` differs from ``input_size / 4`` (the size of the backbone's F0:
        the mesh regressor then resizes F0 and the tracer loses the spatial size its adaptive pooling needs;
        the default, smoke and paper settings all have heatmap = input / 4); ImportError when ``onnx`` is
        missing; onnx's ValidationError on an invalid graph.
    """
    import onnx

    hm = model.cfg.heatmap_size
    if hm != input_size // 4:
        raise ValueError(f"ONNX export needs model.heatmap_size = input_size / 4 = {input_size // 4}, got {hm}")

    path = Path(path)
    was_training = model.training
    wrapper = InferenceModel(model).eval().cpu()
    example = torch.zeros(2, 3, input_size, input_size)
    t0 = time.perf_counter()
    with atomic_path(path, suffix=".onnx") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings on the models' shape checks (constant at export)
        torch.onnx.export(wrapper, (example,), str(tmp), dynamo=False, opset_version=opset,
                          input_names=["images"], output_names=["uvd", "verts"],
                          dynamic_axes={"images": {0: "batch"}, "uvd": {0: "batch"}, "verts": {0: "batch"}})
        onnx.checker.check_model(str(tmp))
    model.train(was_training)
    return {"path": str(path), "seconds": round(time.perf_counter() - t0, 2), "bytes": path.stat().st_size,
            "opset": opset}


def onnx_session(path: str | Path, threads: int | None = None):
    """An onnxruntime CPU ``InferenceSession`` for ``path`` (``threads``: intra-op threads, default = all cores).

    Raises: ImportError when onnxruntime is missing.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_onnx(session, images: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run an exported model: images (B, 3, S, S) normalised → (uvd (B, 21, 3), verts (B, V, 3)) float32."""
    x = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    uvd, verts = session.run(["uvd", "verts"], {"images": np.ascontiguousarray(x, np.float32)})
    return uvd, verts


class OnnxModel:
    """An export of :func:`export_onnx` behind the inference interface of the PyTorch model, for
    ``cliphand predict --onnx``: ``model(images (B, 3, S, S))`` -> ``{"uvd": (B, 21, 3), "verts": (B, V, 3)}``
    CPU tensors (normalised uvd).

    Args: path: the .onnx file; input_size: S the checkpoint was trained at; n_verts: V of its template.
    Raises: DataError naming the file when it is missing, not loadable, or made for another input size or mesh.
    """

    def __init__(self, path: str | Path, input_size: int, n_verts: int | None = None, threads: int | None = None):
        from cliphand.errors import DataError

        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: ONNX model not found")
        try:
            self.session = onnx_session(path, threads)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise DataError(f"{path}: onnxruntime cannot load it ({exc})") from exc
        ins = {i.name: i.shape for i in self.session.get_inputs()}
        outs = {o.name: o.shape for o in self.session.get_outputs()}
        if list(ins) != ["images"] or {"uvd", "verts"} - set(outs):
            raise DataError(f"{path}: not a cliphand export (inputs {list(ins)}, outputs {list(outs)})")
        if list(ins["images"][1:]) != [3, input_size, input_size]:
            raise DataError(f"{path}: made for input {ins['images'][1:]}, the checkpoint uses 3x{input_size}x{input_size}")
        if n_verts is not None and outs["verts"][1] != n_verts:
            raise DataError(f"{path}: predicts {outs['verts'][1]} vertices, the checkpoint's template has {n_verts}")
        self.path = path

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        uvd, verts = run_onnx(self.session, images)
        return {"uvd": torch.from_numpy(uvd), "verts": torch.from_numpy(verts)}


@torch.no_grad()
def parity(model: nn.Module, session, images: torch.Tensor, K: np.ndarray, root_depth: np.ndarray,
           input_size: int, depth_range: float, chunk: int = 32) -> tuple[dict, np.ndarray]:
    """Largest differences between PyTorch (CPU, float32) and onnxruntime on the same crops.

    Args:
        images: (B, 3, S, S) ImageNet-normalised crops (run in chunks of ``chunk``). K: (B, 3, 3) crop
            intrinsics, pixels. root_depth: (B,) metres (to lift uvd to the camera frame).
    Returns:
        (summary, onnx_joints): ``joints_max_abs_m`` / ``verts_max_abs_m`` = max |PyTorch - ONNX| over every
        coordinate after lifting to camera-frame metres, ``uvd_max_abs`` (dimensionless), ``n`` samples; and
        the ONNX joints (B, 21, 3) metres, camera frame (for scoring the export).
    """
    was_training = model.training
    model.eval()
    wrapper = InferenceModel(model).cpu()
    K, rd = np.asarray(K, np.float64), np.asarray(root_depth, np.float64)
    diff = {"joints_max_abs_m": 0.0, "verts_max_abs_m": 0.0, "uvd_max_abs": 0.0}
    joints = []
    for a in range(0, images.shape[0], chunk):
        x, sl = images[a:a + chunk].cpu(), slice(a, a + chunk)
        ref_uvd, ref_verts = (t.numpy() for t in wrapper(x))
        uvd, verts = run_onnx(session, x)
        j_ref, j = (uvd_to_xyz(np.asarray(u, np.float64), K[sl], rd[sl], input_size, depth_range) for u in (ref_uvd, uvd))
        v_ref, v = (uvd_to_xyz(np.asarray(u, np.float64), K[sl], rd[sl], input_size, depth_range)
                    for u in (ref_verts, verts))
        diff["joints_max_abs_m"] = max(diff["joints_max_abs_m"], float(np.abs(j_ref - j).max()))
        diff["verts_max_abs_m"] = max(diff["verts_max_abs_m"], float(np.abs(v_ref - v).max()))
        diff["uvd_max_abs"] = max(diff["uvd_max_abs"], float(np.abs(ref_uvd - uvd).max()))
        joints.append(j)
    model.train(was_training)
    return {"n": int(images.shape[0]), **diff}, np.concatenate(joints)
