"""``python -m benchmarks [--quick] [--no-peers] [--sections a,b] [--out results.json]``."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any, Dict, List

from . import charts, drain, drainprofile, hotpath, inflight, misc
from ._delayed import DelayedReceiver
from ._sink import Sink
from .report import _figure

Row = Dict[str, Any]
SECTIONS = ("hotpath", "drain", "misc", "inflight", "profile")
PEER_KINDS = {
    "posthog": "posthog",
    "logstash": "logstash",
    "opentelemetry": "opentelemetry",
    "sentry": "sentry",
}


def peer_rows(sink: Sink, rounds: int, per_round: int, floor_us: float) -> List[Row]:
    """Each peer in its own process, with the floor interleaved beside it there.

    Two ratios: to the floor of the main run (``floor_us``), and to the floor
    measured in the peer's process, which the peer's own background threads
    slow down (they compete for the GIL).
    """
    rows: List[Row] = []
    for name, kind in PEER_KINDS.items():
        sink.reset()
        env = dict(
            os.environ, PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")
        )
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.peers",
                name,
                sink.base,
                str(sink.tcp_port),
                str(rounds),
                str(per_round),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
            check=False,
        )
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            rows.append({"section": "peers", "name": name, "note": f"not measured: {last}"})
            continue
        report = json.loads(result.stdout.strip().splitlines()[-1])
        time.sleep(1.0)
        arrived = sink.stats()["events"].get(kind, 0)
        timings = report["timings"]
        rows.append(
            {
                "section": "peers",
                "name": name,
                "median_us": round(timings[name]["median_us"], 2),
                "min_us": round(timings[name]["min_us"], 2),
                "baseline": "floor",
                "ratio": round(timings[name]["median_us"] / floor_us, 2),
                "note": f"{arrived:,} of {report['calls']:,} events reached the sink "
                f"(after its flush/shutdown, {report['finish_seconds']} s); not durable on return; "
                f"{timings[name]['median_us'] / timings['floor']['median_us']:.2f}x the floor "
                f"measured in its own process ({timings['floor']['median_us']:.1f} µs there)",
            }
        )
    return rows


def print_table(rows: List[Row]) -> None:
    section = None
    for row in rows:
        if row["section"] != section:
            section = row["section"]
            print(f"\n== {section} ==")
        figures = [_figure(row)] if _figure(row) else []
        if "ratio" in row:
            figures.append(f"{row['ratio']}x {row.get('baseline', '')}".rstrip())
        verdict = ""
        if row.get("target"):
            verdict = f"  [target {row['target']}: {'met' if row['met'] else 'MISSED'}]"
        print(f"  {row['name']:<58} {' | '.join(figures)}{verdict}")
        if row.get("note"):
            print(f"  {'':<58} {row['note']}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and smaller backlogs")
    parser.add_argument("--no-peers", action="store_true", help="skip the peer SDKs")
    parser.add_argument("--out", default="benchmarks/results.json", help="where to write the JSON")
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated, among {','.join(SECTIONS)} (default: all)",
    )
    parser.add_argument("--charts", default="docs", help="where to write the charts")
    args = parser.parse_args()
    wanted = set(args.sections.split(","))
    rounds, per_round = (7, 500) if args.quick else (15, 2000)
    sizes = [2_000, 20_000] if args.quick else [5_000, 50_000, 500_000]
    reference = [2_000] if args.quick else [2_000, 5_000, 10_000]
    started = time.time()
    rows: List[Row] = []
    with Sink() as sink:
        if "hotpath" in wanted:
            rows += hotpath.run(sink.url, rounds, per_round)
            if not args.no_peers:
                rows += peer_rows(sink, rounds, per_round, rows[0]["median_us"])
        if "drain" in wanted:
            rows += drain.run(sink.url, sizes, reference)
        if "misc" in wanted:
            rows += misc.queued_count_rows([10_000, 100_000])
            rows.append(misc.import_time_row())
            rows.append(misc.rss_row(sink.url, 200_000 if not args.quick else 20_000))
    with DelayedReceiver() as receiver:
        seconds = 1.0 if args.quick else 2.0
        if "inflight" in wanted:
            rows += inflight.rtt_rows(receiver, [1, 4] if args.quick else [1, 2, 3, 4], seconds)
            rows += inflight.compression_rows(receiver, seconds)
        if "profile" in wanted:
            rows += drainprofile.ceiling_rows(receiver, 20_000 if args.quick else 50_000)
            rows += drainprofile.backlog_rows(
                receiver, [1_000, 2_000] if args.quick else [1_000, 2_000, 5_000, 10_000]
            )
    print_table(rows)
    meta = {
        "machine": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "command": " ".join(["python -m benchmarks", *sys.argv[1:]]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started),
    }
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump({"meta": meta, "rows": rows}, handle, indent=2)
    try:
        for path in charts.render(rows, args.charts):
            print(f"chart written to {path}")
    except ImportError:
        print("no charts: matplotlib is not installed (tox -e bench installs it)")
    print(
        f"\nwritten to {args.out} ({meta['seconds']} s on {meta['machine']}, {meta['cpus']} CPUs, Python {meta['python']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
