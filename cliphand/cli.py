"""Command line: ``cliphand profile PROFILE [--out params.yaml]`` writes params.yaml merged with a
profile of overrides (configs/smoke.yaml, ...); ``--set-args`` prints them as ``dvc exp run -S`` arguments
instead (for profiles that only change values). ``cliphand mano-verts --freihand ROOT --mano MANO_RIGHT.pkl
--out data/freihand_train_verts.npy [--limit N]`` rebuilds FreiHAND's training meshes with MANO (no chumpy).
``cliphand predict INPUT [--out predictions/] [--checkpoint data/models/finetune.pt] [--box x0,y0,w,h]
[--hand auto|left|right] [--focal F] ...`` runs a trained model on an image, a folder of images or a video
and writes per image a JSON (3D joints in metres, 2D joints in pixels), a mesh and an overlay PNG
(cliphand/predict/run.py). ``cliphand experiments commands|collect`` prints the ``dvc exp run`` of each variant of
the recipe search (reports/experiments.yaml) or gathers their measurements into reports/experiment_log.csv."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from cliphand.profiles import deep_merge, flatten, get, load_yaml, write_profile
from cliphand.errors import DataError
from cliphand.paths import Paths

#: the pipeline's files relative to the current directory (the defaults of the commands' paths)
HERE = Paths(Path("."))


def _profile(args: argparse.Namespace) -> int:
    from cliphand.config import validate

    over = load_yaml(args.profile)
    base = load_yaml(args.base)
    merged = deep_merge(base, over)
    validate(merged, f"{args.base} + {args.profile}")  # DataError: the key, the value, what is allowed
    if args.set_args:
        keys = flatten(over)
        if any("__replace__" in k for k in keys):
            print(f"{args.profile}: replaces whole mappings; -S can only set values. Use --out instead.",
                  file=sys.stderr)
            return 2
        parts = []
        for key in keys:
            node, known = merged, True
            for p in key.split("."):
                node = node[p]
            try:
                get(base, key)
            except KeyError:
                known = False  # DVC's -S (Hydra syntax) adds a new key only with a leading '+'
            parts.append(f"-S {shlex.quote(('' if known else '+') + key + '=' + json.dumps(node))}")
        print(" ".join(parts))
        return 0
    write_profile(args.profile, args.base, args.out)
    print(f"wrote {args.out} = {args.base} + {args.profile}")
    return 0


def _mano_verts(args: argparse.Namespace) -> int:
    from cliphand.data.readers.freihand_mesh import build_freihand_verts

    try:
        stats = build_freihand_verts(args.freihand, args.mano, args.out, limit=args.limit)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {stats['out']}: {stats['n']} of {stats['n_available']} meshes (n, 778, 3) float32 metres "
          f"in {stats['seconds']:.1f} s")
    for key, name in (("verts", "training_verts.json"), ("joints", "training_xyz.json")):
        if stats[f"{key}_max_abs_diff_m"] is None:
            print(f"{name}: not found, no comparison")
        else:
            print(f"{name}: max abs difference {stats[f'{key}_max_abs_diff_m']:.3g} m, "
                  f"mean {stats[f'{key}_mean_abs_diff_m']:.3g} m")
    print(json.dumps(stats))
    return 0


def _floats(n: int, what: str):
    def parse(text: str) -> tuple[float, ...]:
        try:
            values = tuple(float(v) for v in text.split(","))
        except ValueError:
            values = ()
        if len(values) != n or not all(v == v and abs(v) != float("inf") for v in values):
            raise argparse.ArgumentTypeError(f"expected {what} ({n} comma-separated numbers), got {text!r}")
        return values
    return parse


def _rotations(text: str) -> tuple[float, ...]:
    """``--rotations``: comma-separated degrees, or ``none`` (one forward pass)."""
    if text.strip().lower() == "none":
        return ()
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated degrees or 'none', got {text!r}") from None


def _predict(args: argparse.Namespace) -> int:
    from cliphand.errors import TrainingError
    from cliphand.predict.run import run_predict

    if args.box is not None and not (args.box[2] > 0 and args.box[3] > 0):
        print(f"error: --box needs w, h > 0, got {args.box}", file=sys.stderr)
        return 2
    if args.principal is not None and args.intrinsics is not None:
        print("error: --principal and --intrinsics exclude each other", file=sys.stderr)
        return 2
    try:
        summary = run_predict(args.input, args.out, args.checkpoint, device=args.device, box=args.box,
                              use_detector=False if args.no_detector else None, hand=args.hand, selfie=args.selfie,
                              pad=args.pad, focal=args.focal, principal=args.principal, intrinsics=args.intrinsics,
                              bone_length=args.bone_length, mesh_format=args.mesh_format, every=args.every,
                              progress=not args.no_progress, onnx=args.onnx,
                              **({} if args.rotations is None else {"rotations": args.rotations}))
    except (DataError, TrainingError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    det = (f", hand found by MediaPipe in {summary['n_detected']}" if summary["detector"] else
           ", no detector (whole image or --box)")
    ms = f", {summary['ms_per_image']:.0f} ms per image" if summary["ms_per_image"] is not None else ""
    print(f"wrote {summary['n_written']} of {summary['n']} predictions to {summary['out']}{det}, "
          f"{summary['n_failed']} failed, in {summary['seconds']:.1f} s{ms}")
    for bad in summary["failed"]:
        print(f"error: {bad['error']}", file=sys.stderr)
    print(json.dumps(summary))
    return 1 if summary["n_failed"] else 0


def _experiments(args: argparse.Namespace) -> int:
    from cliphand.pipeline.experiment_log import collect
    from cliphand.report.experiment_log import QUEUE_START, command, load_variants, write_csv
    from cliphand.pipeline.tracking import tracking_uri

    try:
        variants = load_variants(args.variants)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.action == "commands":
        done = {r["name"] for r in collect(variants, tracking_uri()) if r["run_id"]} if not args.all else set()
        params = load_yaml("params.yaml") if Path("params.yaml").is_file() else None
        todo = [command(v, params) for v in variants if v["name"] not in done]
        if todo:
            print("\n".join(todo + [QUEUE_START]))
        return 0
    rows = collect(variants, tracking_uri())
    write_csv(rows, args.out)
    print(f"wrote {args.out}: {sum(bool(r['run_id']) for r in rows)} of {len(rows)} variants measured")
    for r in rows:
        if r.get("not_counted"):
            print(f"not counted: {r['name']}: {r['not_counted']}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cliphand`` command."""
    parser = argparse.ArgumentParser(prog="cliphand", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    prof = sub.add_parser("profile", help="merge a profile of overrides into params.yaml")
    prof.add_argument("profile", type=Path)
    prof.add_argument("--base", type=Path, default=Path("params.yaml"))
    prof.add_argument("--out", type=Path, default=Path("params.yaml"))
    prof.add_argument("--set-args", action="store_true", help="print `dvc exp run -S` arguments instead")
    prof.set_defaults(func=_profile)
    mv = sub.add_parser("mano-verts", help="rebuild FreiHAND's training meshes from MANO parameters (no chumpy)")
    mv.add_argument("--freihand", type=Path, required=True, help="FreiHAND folder with training_mano.json, "
                    "training_K.json (and training_verts.json / training_xyz.json to compare against)")
    mv.add_argument("--mano", type=Path, required=True, help="MANO_RIGHT.pkl (from mano.is.tue.mpg.de)")
    mv.add_argument("--out", type=Path, default=HERE.freihand_train_verts)
    mv.add_argument("--limit", type=int, default=None, help="only the first N samples")
    mv.set_defaults(func=_mano_verts)
    ex = sub.add_parser("experiments", help="the recipe search: the queued dvc exp run of each variant, or collect "
                        "their measurements from MLflow into the experiment log (cliphand/pipeline/experiment_log.py)")
    ex.add_argument("action", choices=("commands", "collect"))
    ex.add_argument("--variants", type=Path, default=HERE.experiments)
    ex.add_argument("--out", type=Path, default=HERE.experiment_log)
    ex.add_argument("--all", action="store_true", help="commands: also the variants that already ran")
    ex.set_defaults(func=_experiments)
    pr = sub.add_parser("predict", help="run a trained model on an image, a folder of images or a video",
                        description="3D hand joints, mesh and overlay per image (cliphand/predict/run.py). Exit code 1 "
                        "when the input cannot be read or any image of a folder failed (the others are written).")
    pr.add_argument("input", type=Path, help="an image (.jpg, .png ...), a folder of images (not recursive) or a "
                    "video (.mp4, .avi, .mov, .mkv, .webm; needs PyAV: pip install av)")
    pr.add_argument("--out", type=Path, default=Path("predictions"), help="output folder (default: predictions/)")
    pr.add_argument("--checkpoint", type=Path, default=HERE.finetune_model)
    pr.add_argument("--device", default="auto", help="cpu | cuda | auto (default: auto)")
    pr.add_argument("--onnx", type=Path, default=None, help="run this ONNX export of the checkpoint's model with "
                    "onnxruntime (CPU), e.g. data/bench/default.onnx from the benchmark stage")
    pr.add_argument("--box", type=_floats(4, "x0,y0,w,h"), default=None, metavar="X0,Y0,W,H",
                    help="the hand's tight box in pixels (made square: side = pad x max(w, h)); default: MediaPipe "
                    "when installed, else the whole image")
    pr.add_argument("--no-detector", action="store_true", help="do not use MediaPipe Hands to find the hand")
    pr.add_argument("--hand", choices=("auto", "left", "right"), default="auto",
                    help="left hands are mirrored for the right-hand model (default auto: MediaPipe's label, else "
                    "right)")
    pr.add_argument("--selfie", action="store_true", help="images are mirrored selfies (MediaPipe's label convention)")
    pr.add_argument("--pad", type=float, default=1.3, help="crop side / longer side of the hand box (training: 1.3)")
    cam = pr.add_mutually_exclusive_group()
    cam.add_argument("--focal", type=float, default=None, help="focal length in pixels (default: max(W, H))")
    cam.add_argument("--intrinsics", type=Path, default=None, help="JSON file with a 3x3 K (pixels)")
    pr.add_argument("--principal", type=_floats(2, "cx,cy"), default=None, metavar="CX,CY",
                    help="principal point in pixels (default: the image centre)")
    pr.add_argument("--bone-length", type=float, default=0.095,
                    help="assumed wrist -> middle-MCP length in metres, fixes the absolute depth (default 0.095)")
    pr.add_argument("--rotations", type=_rotations, default=None, metavar="DEG[,DEG...]|none",
                    help="test-time rotation: extra passes on the crop turned upright, at these offsets (degrees), "
                         "averaged with the first pass; 'none' = one pass (default: 0, the upright view alone, as the evaluate stage)")
    pr.add_argument("--mesh-format", choices=("obj", "ply"), default="obj")
    pr.add_argument("--every", type=int, default=1, help="videos: predict every N-th frame")
    pr.add_argument("--no-progress", action="store_true", help="no progress bar")
    pr.set_defaults(func=_predict)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except DataError as e:  # bad settings or input files: the message names them, no traceback
        print(f"cliphand {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
