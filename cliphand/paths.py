"""Where things are: the repository root of this run and the pipeline's data paths.

Every ``data/...`` path the DVC stages read or write is named here once; ``dvc.yaml`` lists the same paths
(``tests/test_layout.py`` checks the two agree). The stages pass these paths to the library, which takes
its inputs and outputs as arguments and hard-codes none.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def repo_root() -> Path:
    """The repository root of this run: the folder holding ``params.yaml`` found upwards from the current
    directory, else the current directory.

    Never ``$DVC_ROOT``: queued and ``--temp`` experiments run in a copy under ``.dvc/tmp/exps/...`` while
    DVC still points ``DVC_ROOT`` at the main repository; resolving params or data from it would make a
    queued run ignore its ``-S`` values and write into the main workspace. ``DVC_ROOT`` only locates the
    shared tracking store (:func:`cliphand.pipeline.tracking.tracking_uri`)."""
    here = Path.cwd().resolve()
    for p in (here, *here.parents):
        if (p / "params.yaml").exists():
            return p
    return here


def resolve_path(path: str | os.PathLike, root: Path | None = None) -> Path:
    """A path from params: absolute as is, relative to the repository root otherwise."""
    p = Path(path)
    return p if p.is_absolute() else (root or repo_root()) / p


class _Under:
    """A fixed path under the repository root, read as an attribute of :class:`Paths`:
    ``Paths(root).hand_glb`` is ``root / "data/raw/right.glb"``."""

    def __init__(self, rel: str):
        self.rel = self.__doc__ = rel

    def __get__(self, paths: "Paths | None", owner: type) -> "Path | _Under":
        return self if paths is None else paths.root / self.rel


def _under(*rels: str) -> tuple[_Under, ...]:
    return tuple(_Under(rel) for rel in rels)


@dataclass(frozen=True)
class Paths:
    """The pipeline's files under one repository root: every ``data/...`` and ``reports/...`` path a stage
    reads or writes, named once. ``dvc.yaml`` declares the same paths (``tests/test_layout.py`` checks that
    each of its outs and data deps is one of these). Stages build it with their root and pass it, or single
    paths from it, to the library.
    """

    root: Path

    # download: the rigged WebXR hand (glTF), the 500 gestures of Ge et al. (text), the real photos as released
    hand_glb, gestures, realworld_raw = _under("data/raw/right.glb", "data/raw/handGestures.txt", "data/raw/realworld")
    # synthesize: its output folder and the rendered hand's template mesh
    synth, synth_template = _under("data/synth", "data/synth/template.npz")
    # preprocess: its output folder and the template mesh the model is built on (the synthetic hand's or MANO's)
    prep, template = _under("data/prep", "data/prep/template.npz")
    # embed_text's output folder; the pretrained (encoder, joint regressor) and finetuned (whole model) checkpoints
    text, pretrain_model, finetune_model = _under("data/text", "data/models/pretrain.pt", "data/models/finetune.pt")
    # the benchmark's output folder (the ONNX export), MediaPipe's predictions on the real photos, and FreiHAND's
    # training meshes rebuilt with MANO (``cliphand mano-verts``, not a stage output)
    bench, peer_mediapipe, freihand_train_verts = _under("data/bench", "data/peers/mediapipe",
                                                         "data/freihand_train_verts.npy")
    # the report, its figures and its metrics file; the recipe search's variants and their measurements
    # (cliphand experiments commands | collect)
    report_md, figures, report_metrics, experiments, experiment_log = _under(
        "reports/report.md", "reports/figures", "reports/report_metrics.json", "reports/experiments.yaml",
        "reports/experiment_log.csv")

    def synth_split(self, split: str) -> Path:
        """``data/synth/<split>``: images.npy and labels.npz of one rendered split (train, val, test)."""
        return self.synth / split

    def text_cache(self, split: str, n_joints: int) -> Path:
        """``data/text/<split>_n<N>.npz``: the frozen text features of a split's prompts with N joints."""
        return self.text / f"{split}_n{int(n_joints)}.npz"

    def prep_split(self, name: str) -> Path:
        """``data/prep/<name>``: a prepared split (crops, uvd labels, meta.json)."""
        return self.prep / name

    def metrics(self, stage: str) -> Path:
        """``data/metrics/<stage>.json``: a stage's metrics file (``@`` of foreach stages written ``_``)."""
        return self.root / "data/metrics" / f"{stage.replace('@', '_')}.json"

    def eval_dir(self, benchmark: str) -> Path:
        """``data/eval/<benchmark>``: metrics.json and predictions.npz of one benchmark."""
        return self.root / "data/eval" / benchmark

    def resolve(self, path: str | os.PathLike) -> Path:
        """A path from params.yaml: absolute as is, relative to :attr:`root` otherwise."""
        return resolve_path(path, self.root)

    def ablate_dir(self, row: str) -> Path:
        """``data/ablate/<row>``: metrics.json and the checkpoints (``models/``) of one ablation row."""
        return self.root / "data/ablate" / row
