"""Where the pipeline's inputs come from: ``download`` (the rigged WebXR hand, the real-world test set, the
Ge et al. gestures: :class:`Download`) and the external datasets' release folders of ``data``
(:class:`FreihandSource`, :class:`DatasetRoot`), every default once. Relative ``local_dir`` and ``root``
folders are resolved against the repository root by the stage (:meth:`cliphand.paths.Paths.resolve`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from cliphand.config.types import ClosedModel

HAND_GRAPH_CNN = "https://github.com/3d-hand-shape/hand-graph-cnn"  # Ge et al. (CVPR 2019), public repository


class WebxrSource(ClosedModel):
    """``download.webxr``: ``right.glb`` of an npm package (:func:`cliphand.data.download.fetch_webxr_hand`)."""

    package: str = "@webxr-input-profiles/assets"
    version: Annotated[str, BeforeValidator(str)] = "1.0.20"      # exact version (YAML may read 1.1 as a number)
    file: str = "dist/profiles/generic-hand/right.glb"            # path inside the package
    integrity: str = ("sha512-V/8NB4Ywgm//TBVMgo0TgJ9DtxsBoo0iiaF8AdfiP0F0cgbwkuQycEZAIOsplyd/iZ8L3mrFYNJBC6rzQb4tJA==")
    glb_sha256: str | None = "291790c14f7f88a7f9bd35330c47392ed8e8d395ae6728f4bb7089f1bc1f2b96"  # of the file (94004 bytes)
    local_dir: str | None = None                                  # a verified copy, when npm is not reachable


class RealworldSource(ClosedModel):
    """``download.realworld``: the real-world test set of Ge et al. (:func:`cliphand.data.download.fetch_realworld`)."""

    local_dir: str | None = None                                  # a local copy of the folder, else a git clone
    repo: str = HAND_GRAPH_CNN
    subdir: str = "data/real_world_testset"


class GestureSource(ClosedModel):
    """``download.gestures``: the 500 gesture poses of Ge et al. (:func:`cliphand.data.download.fetch_gestures`)."""

    local_dir: str | None = None                                  # a folder holding handGestures.txt, else a git clone
    repo: str = HAND_GRAPH_CNN
    path_in_repo: str = "data/synthetic_train_val/3D_labels/handGestures.txt"


class Download(ClosedModel):
    """``download``: the download stage's three sources."""

    webxr: WebxrSource = WebxrSource()
    realworld: RealworldSource = RealworldSource()
    gestures: GestureSource = GestureSource()


class DatasetRoot(ClosedModel):
    """``data.rhd`` / ``data.stb``: the release folder (never shipped; None: not installed)."""

    root: str | None = None


class FreihandSource(DatasetRoot):
    """``data.freihand``: the FreiHAND v2 release folder and its train/val split (cliphand/data/readers/freihand.py)."""

    versions: Annotated[list[Literal[0, 1, 2, 3]], Field(min_length=1)] = [0, 1, 2, 3]  # colour versions used
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.05       # label ids held out as val
