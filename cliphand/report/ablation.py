"""The report's ablation section: rows of ``ablate.runs`` grouped as in the paper's Tables 3 (batch size),
4 (joints per prompt) and 5 (modules) beside the published numbers, the full model's seed noise that every
difference is measured against, the CLIP-loss claim and the settings of the rows that ran. Inputs:
``data/ablate/<row>/metrics.json`` and params.yaml's ``ablate`` block."""

from __future__ import annotations

from typing import Sequence

from cliphand.config import Params
from cliphand.defaults import MODEL_SWITCHES
from cliphand.report.document import Document
from cliphand.report.markdown import DASH, fmt, md_table
from cliphand.report.published import PAPER, PAPER_TABLE3, PAPER_TABLE4, PAPER_TABLE5
from cliphand.report.training import clip_claim_section


def _row_kind(overrides: dict) -> str:
    keys = set(overrides)
    if not keys:
        return "full"
    if keys <= {"batch_size"}:
        return "batch"
    if keys <= {"n_joints"}:
        return "joints"
    if keys <= set(MODEL_SWITCHES):
        return "modules"
    return "other"


def module_label(settings: dict) -> str:
    """Paper Table 5 row name of a module configuration (ablation switches, default on)."""
    on = {k: bool(settings.get(k, True)) for k in MODEL_SWITCHES}
    if all(on.values()):
        return "full model"
    if not any(on.values()):
        return "baseline"
    off = [k for k, v in on.items() if not v]
    names = {"use_clip": "CLIP loss", "use_projection": "feature projection", "use_sparse_to_dense": "sparse-to-dense"}
    return "w/o " + " & ".join(names[k] for k in off)


ABL_COLS = [("AUC 0-30 (PA)", "auc_0_30", 3), ("MPJPE (mm)", "mpjpe_mm", 2), ("median (mm)", "mpjpe_median_mm", 2),
            ("PA-MPJPE (mm)", "pa_mpjpe_mm", 2)]


NOISE_SIGMAS = 2.0  # a row differs from the full model "within seed noise" below this many of its stds


def _ours_cells(m: dict | None, status: str, splits: Sequence[str], ref: dict | None = None) -> list[str]:
    """Ablation cells: the mean over seeds (``± std`` with more than one seed); with ``ref`` (the full
    model's metrics over several seeds) a trailing ``≈`` marks a difference within NOISE_SIGMAS stds of it."""
    cells = []
    multi = m is not None and len(m.get("seeds") or []) > 1
    ref_std = (ref or {}).get("std") or {}
    for split in splits:
        res = (m or {}).get(split)
        for _, k, d in ABL_COLS:
            if not isinstance(res, dict):
                cells.append(status)
                continue
            cell = fmt(res.get(k), d)
            std = ((m.get("std") or {}).get(split) or {}).get(k)
            if multi and std is not None:
                cell += f" ± {fmt(std, d)}"
            rs, rm = (ref_std.get(split) or {}).get(k), ((ref or {}).get(split) or {}).get(k)
            if ref is not None and ref is not m and rs and rm is not None and res.get(k) is not None \
                    and abs(res[k] - rm) <= NOISE_SIGMAS * rs:
                cell += " ≈"
            cells.append(cell)
    return cells


def ablation_section(doc: Document, p: Params, inp: dict) -> None:
    """The '## Ablations' section from ``p.ablate`` and the rows' metrics (``inp['ablate']``)."""
    doc.add("## Ablations", "")
    ab = p.ablate
    # each row's own settings as written in params.yaml (the schema requires the reference row 'full')
    runs = {r: row.model_dump(exclude_unset=True) if row is not None else {} for r, row in ab.runs.items()}
    settings = {}
    for row, over in runs.items():
        base = {"epochs": ab.epochs, "batch_size": ab.batch_size, "n_joints": ab.n_joints, "n_train": ab.n_train,
                **over}
        m = inp["ablate"].get(row)
        settings[row] = {**base, **((m or {}).get("settings") or {})}
    present = [r for r in runs if inp["ablate"].get(r) is not None]
    absent = [r for r in runs if inp["ablate"].get(r) is None]
    ft = inp["stages"].get("finetune") or {}
    ft_epochs = ft.get("epochs", p.finetune.epochs)
    n_train = ((inp["stages"].get("preprocess") or {}).get("samples") or {}).get("train")
    ep = sorted({settings[r].get("epochs") for r in runs} - {None})
    nt = sorted({settings[r].get("n_train") for r in runs} - {None})
    frozen = sorted({bool(settings[r].get("freeze_backbone")) for r in runs})
    ft_n = ft.get("n_train", p.finetune.n_train) or n_train
    how = ("with the visual encoder frozen (only the joint regressor, the CLIP head and the mesh regressor learn)"
           if frozen == [True] else "end to end" if frozen == [False] else "with or without a frozen visual encoder")
    doc.add(f"**The ablation schedule is shorter than the main run**: each row is finetuned from the shared "
            f"pretrained checkpoint {how} for {', '.join(map(str, ep)) or '?'} epoch(s) on the first "
            f"{', '.join(map(str, nt)) or '?'} training images, while the main run finetunes for {ft_epochs} "
            f"epoch(s) on {ft_n if ft_n is not None else '?'} images, and every row is scored with one forward "
            "pass per image (no test-time rotation); compare rows with each other, not with the main results. "
            "Ours: the splits of `ablate.eval_on` (the validation split aside); paper "
            "columns: FreiHAND validation (MPJPE/median: our root-relative errors vs. the paper's PJPE), where "
            "every row is a full 200-epoch training.", "")
    for r in absent:
        doc.miss(f"ablation row `{r}` (`data/ablate/{r}/metrics.json`; stage ablate@{r} not run)")
    splits = [x for x in ab.eval_on if x != "val"] or list(ab.eval_on)
    head = [f"ours {x}: {c}" for x in splits for c, _, _ in ABL_COLS]
    kinds = {r: _row_kind({k: v for k, v in (runs[r] or {}).items() if k != "seeds"}) for r in runs}
    full_row = next((r for r in runs if kinds[r] == "full" and inp["ablate"].get(r)), None)
    ref = inp["ablate"].get(full_row) if full_row else None
    ref = ref if ref is not None and len(ref.get("seeds") or []) > 1 else None
    _seed_noise(doc, full_row, ref, splits)

    def named(r):
        return f"`{r}`" if r else "not run"

    def cells(r):
        m = inp["ablate"].get(r) if r else None
        return _ours_cells(m, "not run" if not r else "missing" if m is None else DASH, splits, ref)

    def rows_by(kind, value):
        """value(settings) -> first row of that value among the full model and the rows of this kind."""
        by = {}
        for r in runs:
            if kinds[r] in ("full", kind):
                by.setdefault(value(settings[r]), r)
        return by

    sweeps = (("Batch size B (paper Table 3)", "B", "batch", "batch_size", PAPER_TABLE3),
              ("Joints per prompt N (paper Table 4)", "N", "joints", "n_joints", PAPER_TABLE4))
    for title, sym, kind, key, paper in sweeps:
        by = rows_by(kind, lambda s, key=key: int(s[key]))
        doc.add(f"### {title}", "")
        rows = [[v, named(by.get(v))] + cells(by.get(v)) + [fmt(paper.get(v))] for v in sorted(set(by) | set(paper))]
        doc.add(md_table([sym, "row"] + head + [f"{PAPER}: PA-PJPE (mm)"], rows), "")
    doc.add("### Modules (paper Table 5)", "")
    order = ["baseline", "w/o CLIP loss", "w/o feature projection", "w/o sparse-to-dense", "full model"]
    by = rows_by("modules", module_label)
    labels = [lab for lab in order if lab in by or lab in PAPER_TABLE5]
    labels += [lab for lab in by if lab not in labels]
    rows = []
    for lab in labels:
        paper = PAPER_TABLE5.get(lab)
        pcells = [fmt(paper[0], 3), fmt(paper[1]), fmt(paper[2]), fmt(paper[3])] if paper else [DASH] * 4
        rows.append([lab, named(by.get(lab))] + cells(by.get(lab)) + pcells)
    doc.add(md_table(["model", "row"] + head + [f"{PAPER}: AUC 0-30", f"{PAPER}: PJPE (mm)", f"{PAPER}: median (mm)",
                                                f"{PAPER}: PA-PJPE (mm)"], rows), "")
    doc.add(f"'{DASH}' in the paper columns: not in our notes. 'missing': the row is configured but its "
            "metrics file does not exist; 'not run': the row is not in `ablate.runs`. Cells are means over the "
            "row's seeds (± sample std with more than one seed); "
            + (f"**≈** marks a row whose difference to the full model is within {NOISE_SIGMAS:g} standard "
               f"deviations of the full model's seed noise ({len(ref['seeds'])} seeds): not a measured effect."
               if ref else "no seed noise is measured (the full model ran with one seed), so no difference is "
                           "marked as within noise."), "")
    clip_claim_section(doc, p, inp["ablate"])
    other = [r for r in runs if kinds[r] == "other"]
    if other:
        doc.add("### Other rows", "")
        doc.add(md_table(["row"] + head, [[f"`{r}`"] + cells(r) for r in other]), "")
    if present:
        doc.add("Settings of the rows that ran:", "")
        rows = []
        for r in present:
            s = settings[r]
            rows.append([f"`{r}`", s.get("epochs", DASH), s.get("batch_size", DASH), s.get("n_joints", DASH),
                         s.get("n_train", DASH), "yes" if s.get("freeze_backbone") else "no", module_label(s),
                         ", ".join(map(str, inp["ablate"][r].get("seeds") or [])) or DASH,
                         fmt(inp["ablate"][r].get("train_seconds"), 1)])
        doc.add(md_table(["row", "epochs", "B", "N", "n_train", "frozen encoder", "modules", "seeds",
                          "train s (all seeds)"], rows), "")


def _seed_noise(doc: Document, row: str | None, ref: dict | None, splits: Sequence[str]) -> None:
    """The full model's per-seed scores, their mean ± std: the yardstick for every ablation difference."""
    doc.add("### Seed noise of the full model", "")
    if ref is None:
        doc.add("Not measured: the full-model row ran with one seed (set `ablate.runs.full.seeds` to several).", "")
        return
    per = ref.get("per_seed") or {}
    rows = [[f"seed {sd}"] + [fmt((res.get(x) or {}).get(k), d) for x in splits for _, k, d in ABL_COLS]
            for sd, res in per.items()]
    rows.append(["mean ± std"] + _ours_cells(ref, DASH, splits))
    doc.add(f"Row `{row}` trained with {len(per)} seeds (same data, schedule and pretrained start; the seed "
            "sets the new layers' initialisation, augmentation and batch order):", "")
    doc.add(md_table(["seed"] + [f"{x}: {c}" for x in splits for c, _, _ in ABL_COLS], rows), "")
