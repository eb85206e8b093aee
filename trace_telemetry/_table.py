"""Plain-text output shared by the CLI and the demo: sizes, previews, tables."""

from __future__ import annotations

import json
import shutil
from typing import Any, List, TextIO

__all__ = ["preview", "print_table", "size"]


def size(count: int) -> str:
    """A byte count for people: ``512 B``, ``1.5 KiB``, ``3.2 MiB``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


def preview(data: Any, width: int = 60) -> str:
    """Compact JSON of ``data``, cut to ``width`` characters."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


def print_table(out: TextIO, headers: List[str], rows: List[List[str]]) -> None:
    """A plain aligned table; the last column is cut to the terminal width."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    total = shutil.get_terminal_size((120, 20)).columns
    widths[-1] = max(10, min(widths[-1], total - sum(widths[:-1]) - 2 * (len(widths) - 1)))
    for row in [headers, ["-" * w for w in widths], *rows]:
        cells = [str(cell) for cell in row]
        if len(cells[-1]) > widths[-1]:
            cells[-1] = cells[-1][: widths[-1] - 1] + "…"
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(cells)).rstrip(), file=out)
