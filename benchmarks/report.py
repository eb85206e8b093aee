"""Render a results JSON as the Markdown tables of ``docs/performance.md``.

``python -m benchmarks.report benchmarks/results.json > docs/performance-results.md``
"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, List


def _figure(row: Dict[str, Any]) -> str:
    parts = []
    for key, unit in (
        ("median_us", "µs median"),
        ("min_us", "µs min"),
        ("median_ms", "ms median"),
        ("events_per_s", "events/s"),
        ("seconds", "s"),
        ("mib", "MiB"),
    ):
        if key in row:
            parts.append(f"{row[key]:,} {unit}")
    return ", ".join(parts)


def render(results: Dict[str, Any]) -> str:
    meta = results["meta"]
    lines: List[str] = [
        f"Run `{meta['command']}` on `{meta['machine']}` ({meta['cpus']} CPUs, "
        f"Python {meta['python']}, {meta['platform']}), started {meta['started']}, "
        f"{meta['seconds']} s.",
        "",
    ]
    section = None
    for row in results["rows"]:
        if row["section"] != section:
            section = row["section"]
            lines += [
                "",
                f"### {section}",
                "",
                "| measure | figures | ratio | target | notes |",
                "|---|---|---|---|---|",
            ]
        ratio = f"{row['ratio']}× {row.get('baseline', '')}".strip() if "ratio" in row else ""
        target = ""
        if row.get("target"):
            target = f"{row['target']} ({'met' if row.get('met') else '**missed**'})"
        lines.append(
            f"| {row['name']} | {_figure(row)} | {ratio} | {target} | {row.get('note', '')} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as handle:
        sys.stdout.write(render(json.load(handle)))
