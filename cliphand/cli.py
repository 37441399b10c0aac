"""Command line: ``cliphand profile PROFILE [--out params.yaml]`` writes params.yaml merged with a
profile of overrides (configs/smoke.yaml, ...); ``--set-args`` prints them as ``dvc exp run -S`` arguments
instead (for profiles that only change values). ``cliphand mano-verts --freihand ROOT --mano MANO_RIGHT.pkl
--out data/freihand_train_verts.npy [--limit N]`` rebuilds FreiHAND's training meshes with MANO (no chumpy)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from .config import deep_merge, flatten, get, load_yaml, write_profile
from .errors import DataError


def _profile(args: argparse.Namespace) -> int:
    if args.set_args:
        over = load_yaml(args.profile)
        base = load_yaml(args.base)
        merged = deep_merge(base, over)
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
    from .mano import build_freihand_verts

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
    mv.add_argument("--out", type=Path, default=Path("data/freihand_train_verts.npy"))
    mv.add_argument("--limit", type=int, default=None, help="only the first N samples")
    mv.set_defaults(func=_mano_verts)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
