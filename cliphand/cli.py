"""Command line: ``cliphand profile PROFILE [--out params.yaml]`` writes params.yaml merged with a
profile of overrides (configs/smoke.yaml, ...); ``--set-args`` prints them as ``dvc exp run -S`` arguments
instead (for profiles that only change values)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from .config import deep_merge, flatten, load_yaml, write_profile


def _profile(args: argparse.Namespace) -> int:
    if args.set_args:
        over = load_yaml(args.profile)
        merged = deep_merge(load_yaml(args.base), over)
        keys = flatten(over)
        if any("__replace__" in k for k in keys):
            print(f"{args.profile}: replaces whole mappings; -S can only set values. Use --out instead.",
                  file=sys.stderr)
            return 2
        parts = []
        for key in keys:
            node = merged
            for p in key.split("."):
                node = node[p]
            parts.append(f"-S {shlex.quote(key + '=' + json.dumps(node))}")
        print(" ".join(parts))
        return 0
    write_profile(args.profile, args.base, args.out)
    print(f"wrote {args.out} = {args.base} + {args.profile}")
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
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
