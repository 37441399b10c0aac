"""The shape of the library (README: "Layout"): its import layers, file sizes, and dvc.yaml's code
dependencies against what each stage really imports."""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cliphand"
#: modules whose changes cannot change a stage's outputs: the stage plumbing and MLflow tracking, and the
#: description of the machine (they are imported by every stage, so listing them would rerun everything)
NOT_OUTPUT_DEPS = ("cliphand.pipeline", "cliphand.environment")


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_import_contracts_hold():
    """import-linter's contracts of pyproject.toml: no module imports a layer above its own, and MLflow and DVC
    are imported in cliphand.pipeline alone."""
    exe = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(exe)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert f"{len(_contracts())} kept, 0 broken" in proc.stdout


def test_every_module_sits_in_a_layer():
    """A new top-level module or package must be given its layer (else the contract would not see it)."""
    layers = next(c for c in _contracts() if c["type"] == "layers")["layers"]
    named = {m.strip() for layer in layers for m in layer.split("|")}
    top = {f"cliphand.{p.stem if p.is_file() else p.name}" for p in PACKAGE.iterdir()
           if (p.suffix == ".py" and p.name != "__init__.py") or (p.is_dir() and (p / "__init__.py").exists())}
    assert top == named, f"not in a layer: {sorted(top - named)}; layers naming nothing: {sorted(named - top)}"


def test_no_file_holds_more_than_about_400_lines():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {k: v for k, v in sizes.items() if v > 420} == {}


def _stage_scripts(dvc: dict) -> dict[str, tuple[Path, list[str]]]:
    out = {}
    for name, stage in dvc["stages"].items():
        body = stage.get("do", stage)
        script = body["cmd"].split()[1]
        out[name] = (ROOT / script, [str(d) for d in body.get("deps", [])])
    return out


def _imported(script: Path, graph) -> set[str]:
    """The cliphand modules ``script`` runs: its own imports and everything they import in turn, less the
    modules that cannot change outputs (:data:`NOT_OUTPUT_DEPS`)."""
    direct = {n.module for n in ast.walk(ast.parse(script.read_text()))
              if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("cliphand.")}
    direct = {m for m in direct if not m.startswith(NOT_OUTPUT_DEPS)}
    closure = set(direct)
    for m in direct:
        closure |= graph.find_upstream_modules(m)
    return {m for m in closure if not m.startswith(NOT_OUTPUT_DEPS)}


@functools.cache
def _graph():
    """The library's import graph (grimp, as import-linter builds it), once per test session."""
    return grimp.build_graph("cliphand")


def _module_file(module: str) -> str:
    rel = Path(*module.split("."))
    return str(rel / "__init__.py") if (ROOT / rel).is_dir() else str(rel.with_suffix(".py"))


@pytest.mark.parametrize("stage", list(_stage_scripts(yaml.safe_load((ROOT / "dvc.yaml").read_text()))))
def test_dvc_deps_cover_the_code_each_stage_runs(stage):
    """Every library file a stage imports (directly or not) is among its dvc.yaml deps (as itself or as a
    folder above it), so that `dvc repro` reruns the stage when that code changes; and every code dep listed
    is one the stage imports (no stale or over-broad entries)."""
    graph = _graph()
    script, deps = _stage_scripts(yaml.safe_load((ROOT / "dvc.yaml").read_text()))[stage]
    files = {_module_file(m) for m in _imported(script, graph)}
    code_deps = [d.rstrip("/") for d in deps if d.startswith("cliphand")]
    missing = sorted(f for f in files if not any(f == d or f.startswith(d + "/") for d in code_deps))
    assert not missing, f"dvc.yaml stage {stage!r} lacks deps: {missing}"
    unused = sorted(d for d in code_deps if not any(f == d or f.startswith(d + "/") for f in files))
    assert not unused, f"dvc.yaml stage {stage!r} lists code it does not import: {unused}"
    assert str(script.relative_to(ROOT)) in deps


def test_readme_layout_table_names_every_library_file():
    """README's "Layout" table: each `cliphand/...` row names the files of its folder; together the rows name
    every file of the library, and no file that is not there."""
    import re

    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Layout"):]
    section = section[:section.index("\n## ", 3)]
    named: set[str] = set()
    for line in section.splitlines():
        cells = line.split("|")
        if len(cells) < 3 or not cells[1].strip().startswith("`cliphand/"):
            continue
        folder = re.match(r"`(cliphand/[\w/]*)`", cells[1].strip()).group(1).rstrip("/")
        named |= {f"{folder}/{name}" for name in re.findall(r"`(\w+\.py)`", cells[2])}
    actual = {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    assert named == actual, f"missing from README: {sorted(actual - named)}; not in the tree: {sorted(named - actual)}"


def _dvc_paths() -> dict[str, set[str]]:
    """Each stage's outs and data deps as dvc.yaml writes them, ``foreach`` stages expanded with params.yaml."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    out: dict[str, set[str]] = {}
    for name, stage in dvc["stages"].items():
        items = ({"evaluate": params["evaluate"]["benchmarks"], "ablate": params["ablate"]["runs"]}[name]
                 if "foreach" in stage else {None: None})
        body = stage.get("do", stage)
        entries = [*body.get("deps", []), *body.get("outs", []), *body.get("metrics", [])]
        for key, item in items.items():
            for entry in entries:
                path = next(iter(entry)) if isinstance(entry, dict) else entry
                path = path.replace("${key}", str(key)).replace("${item.data}", str((item or {}).get("data")))
                if path.startswith(("data/", "reports/")):
                    out.setdefault(f"{name}@{key}" if key else name, set()).add(path)
    return out


def test_every_data_path_of_dvc_yaml_comes_from_paths_py():
    """dvc.yaml and cliphand/paths.py name the same files: each out and data dep of a stage is a path of
    :class:`cliphand.paths.Paths`, a file directly inside one of its folders (e.g. a split's labels.npz) or a
    folder holding some of them (e.g. ``data/raw``, the download stage's output)."""
    from cliphand.defaults import EXTERNAL, TRAIN_SPLITS
    from cliphand.paths import Paths, _Under

    paths = Paths(Path("."))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    stages = list(_dvc_paths())
    known = {getattr(paths, a) for a, v in vars(Paths).items() if isinstance(v, _Under)}
    known |= {paths.synth_split(s) for s in TRAIN_SPLITS} | {paths.prep_split(s) for s in TRAIN_SPLITS + EXTERNAL}
    known |= {paths.eval_dir(b) for b in params["evaluate"]["benchmarks"]} | {paths.metrics(s.split("@")[0]) for s in stages}
    known |= {paths.ablate_dir(r) / "models" for r in params["ablate"]["runs"]}
    known |= {paths.ablate_dir(r) / "metrics.json" for r in params["ablate"]["runs"]}
    known |= {paths.metrics(s) for s in stages} | {paths.root / "data/metrics"}
    known = {str(k) for k in known}
    folders = {str(parent) for k in known for parent in Path(k).parents if str(parent) not in (".", "data", "reports")}
    for stage, used in _dvc_paths().items():
        stray = sorted(p for p in used if p not in known | folders and str(Path(p).parent) not in known)
        assert not stray, f"dvc.yaml stage {stage}: paths not named in cliphand/paths.py: {stray}"
