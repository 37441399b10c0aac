"""Markdown helpers of the generated report: number formatting and GitHub tables."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

DASH = "—"


def fmt(value: Any, digits: int = 2) -> str:
    """A number with ``digits`` decimals; '—' for None, NaN or a non-number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return DASH
    if not math.isfinite(float(value)):
        return DASH
    return f"{float(value):.{digits}f}"


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-markdown table (no third-party formatter). Cells are str()-ed; '|' and newlines escaped.

    Raises:
        ValueError: a row's length differs from the header's.
    """
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for r in rows:
        if len(r) != len(header):
            raise ValueError(f"md_table: row {list(r)} has {len(r)} cells, header has {len(header)}")
        lines.append("| " + " | ".join(cell(v) for v in r) + " |")
    return "\n".join(lines)
