"""The report being written: its markdown lines, the figures it shows (as links relative to the markdown
file) and the list of inputs it found missing."""

from __future__ import annotations

import os
from pathlib import Path

from cliphand.paths import Paths


class Document:
    """Markdown lines plus the list of missing inputs and of the figures shown.

    Args:
        paths: the pipeline's files (paths in the text are written relative to its root, see :meth:`rel`).
        out_md: the markdown file being written (figure links are relative to its folder).
    """

    def __init__(self, paths: Paths, out_md: Path):
        self.paths, self.out_md, self.lines, self.missing, self.figures = paths, out_md, [], [], []

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def miss(self, what: str) -> None:
        self.missing.append(what)
        self.lines.append(f"*Missing: {what}.*")
        self.lines.append("")

    def rel(self, path: Path) -> str:
        try:
            return Path(path).resolve().relative_to(self.paths.root.resolve()).as_posix()
        except ValueError:
            return str(path)

    def link(self, path: Path) -> str:
        """``path`` relative to the markdown file's folder (POSIX separators), for an image link."""
        return Path(os.path.relpath(path, self.out_md.parent)).as_posix()

    def show(self, path: Path, caption: str) -> None:
        """Record the figure at ``path`` and add it with ``caption`` in bold above it."""
        self.figures.append(path)
        self.add(f"**{caption}**", "", f"![{caption}]({self.link(path)})", "")
