"""Charts for ``docs/performance.md`` from a results JSON (matplotlib, benchmarks only).

``python -m benchmarks.charts benchmarks/results.json docs/`` (``python -m
benchmarks`` calls it after its run when matplotlib is installed).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, List

Row = Dict[str, Any]

BACKLOG_CHART = "drain-vs-backlog.png"
RTT_CHART = "inflight-vs-rtt.png"


def render(rows: List[Row], folder: str) -> List[str]:
    """Write the charts the rows allow; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    written = []
    backlog = [row for row in rows if row["section"] == "backlog"]
    if backlog:
        written.append(_backlog_chart(backlog, os.path.join(folder, BACKLOG_CHART)))
    rtt = [row for row in rows if row["section"] == "in flight"]
    if rtt:
        written.append(_rtt_chart(rtt, os.path.join(folder, RTT_CHART)))
    return written


def _backlog_chart(rows: List[Row], path: str) -> str:
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for who, style in (("reference queue", "o--"), ("trace-telemetry", "s-")):
        mine = sorted((row for row in rows if row["who"] == who), key=lambda row: row["backlog"])
        sizes = [row["backlog"] for row in mine]
        left.plot(sizes, [row["seconds"] for row in mine], style, label=who)
        right.plot(sizes, [row["events_per_s"] for row in mine], style, label=who)
    left.set(xlabel="backlog (events)", ylabel="seconds to drain", title="Drain time")
    right.set(xlabel="backlog (events)", ylabel="events/s", title="Drain rate")
    right.set_yscale("log")
    for axes in (left, right):
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle("Draining a backlog, batch_size=20, local receiver answering at once")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _rtt_chart(rows: List[Row], path: str) -> str:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    windows = sorted({row["in_flight"] for row in rows})
    for window in windows:
        mine = sorted(
            (row for row in rows if row["in_flight"] == window and row["delay_ms"]),
            key=lambda row: row["delay_ms"],
        )
        axes.plot(
            [row["delay_ms"] for row in mine],
            [row["events_per_s"] for row in mine],
            "o-",
            label=f"{window} in flight",
        )
    delays = sorted({row["delay_ms"] for row in rows if row["delay_ms"]})
    axes.plot(delays, [20_000 / delay for delay in delays], "k--", label="sequential bound")
    axes.set(
        xlabel="round trip (ms)",
        ylabel="events/s",
        title="Delivery rate against round trip, batch_size=20",
    )
    axes.set_yscale("log")
    axes.grid(alpha=0.3, which="both")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as handle:
        results = json.load(handle)
    for written in render(results["rows"], sys.argv[2] if len(sys.argv) > 2 else "docs"):
        print(written)
