"""MediaPipe Hands on Ge et al.'s real-world test set, scored with our metrics (the report's peer row).

MediaPipe sees the original 256 x 256 photos (left hands, not mirrored: it handles both hands) and its
world landmarks (metres) are compared with the unmirrored ground truth. The metrics are those of
:func:`cliphand.evaluate.metrics.evaluate` under the ``realworld`` protocol (:data:`cliphand.evaluate.protocols.PROTOCOLS`):
root-relative MPJPE (wrist subtracted from both, no alignment), PA-MPJPE and AUC 0-50 mm after
per-sample Procrustes (FreiHAND's alignment). They are computed over the images where a hand was found;
the number found is reported beside them. ``ms_per_image`` is the wall time of one ``process`` call
(palm detection + landmarks, static image mode) on this machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cliphand.evaluate import metrics as M
from cliphand.bench.timing import summarize_ms
from cliphand.config import MediaPipeSettings
from cliphand.data.readers.realworld import load_realworld
from cliphand.evaluate.protocols import PROTOCOLS
from cliphand.peers.mediapipe_hands import run_on_images, version


def evaluate_mediapipe(root: str | Path, settings: MediaPipeSettings, progress: bool = True
                       ) -> tuple[dict, dict[str, np.ndarray]]:
    """Run and score MediaPipe Hands on the real-world set in ``root`` (its README's folder format).

    Args: settings: MediaPipe's settings (``peers.mediapipe``).
    Returns:
        metrics: ``n_images``, ``n_detected``, ``detection_rate``, the metrics of :func:`cliphand.evaluate.metrics.evaluate`
            on the detected images (mm, AUC), ``ms_per_image`` (median) and ``ms`` (spread), ``protocol``,
            ``headline``, ``version``, ``settings``;
        predictions: ``ids`` (n,) label indices, ``world`` (n, 21, 3) metres (NaN where missed),
            ``uv`` (n, 21, 2) pixels, ``detected`` (n,), ``label`` (n,), ``ms`` (n,).
    Raises: DataError on a bad data folder; PeerUnavailable when MediaPipe is not installed.
    """
    data = load_realworld(root, mirror=False)
    res = run_on_images(data["images"], n=len(data["images"]), settings=settings, progress=progress)
    ok = res["detected"]
    scores = M.evaluate(res["world"][ok], data["joints"][ok].astype(np.float64)) if ok.any() else {}
    scores = {k: v for k, v in scores.items() if k != "curves"}
    ms = summarize_ms(res["ms"])
    metrics = {"n_images": int(len(ok)), "n_detected": int(ok.sum()), "detection_rate": round(float(ok.mean()), 4),
               **scores, "ms_per_image": ms["median_ms"], "ms": ms, "protocol": "realworld",
               "headline": list(PROTOCOLS["realworld"]), "version": version(), "settings": settings.model_dump()}
    return metrics, {"ids": data["ids"], **res}
