"""Section 7: ``queued_count`` at large backlogs, import time, memory while draining."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

from trace_telemetry import TelemetryClient, TelemetryOptions

from .drain import write_backlog

Row = Dict[str, Any]


def queued_count_rows(sizes: List[int]) -> List[Row]:
    rows = []
    folder = tempfile.mkdtemp(prefix="tt-count-")
    for count in sizes:
        path = os.path.join(folder, f"q{count}.ndjson")
        write_backlog(path, count)
        client = TelemetryClient(TelemetryOptions(queue_path=path, max_queue_bytes=0))
        started = time.perf_counter()
        first = client.queued_count
        cold = time.perf_counter() - started
        samples = []
        for _ in range(2000):
            client.track("one more", 1)  # counting stays incremental while the file grows
            started = time.perf_counter_ns()
            client.queued_count  # noqa: B018
            samples.append((time.perf_counter_ns() - started) / 1000)
        assert first == count, (first, count)
        rows.append(
            {
                "section": "misc",
                "name": f"queued_count at {count:,} (with an append between calls)",
                "median_us": round(statistics.median(samples), 2),
                "min_us": round(min(samples), 2),
                "target": "<= 50 µs" if count >= 100_000 else "",
                "met": statistics.median(samples) <= 50 if count >= 100_000 else None,
                "note": f"first call in a new process: {cold * 1000:.1f} ms (one scan)",
            }
        )
        client.close()
    return rows


def import_time_row(runs: int = 15) -> Row:
    code = (
        "import time, logging, json, threading; t = time.perf_counter(); "
        "import trace_telemetry; print(time.perf_counter() - t)"
    )
    samples = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(runs)
    ]
    median_ms = statistics.median(samples) * 1000
    return {
        "section": "misc",
        "name": "import trace_telemetry after logging, json, threading",
        "median_ms": round(median_ms, 1),
        "min_ms": round(min(samples) * 1000, 1),
        "target": "<= 40 ms",
        "met": median_ms <= 40,
        "note": f"median of {runs} fresh interpreters",
    }


def rss_row(url: str, count: int) -> Row:
    folder = tempfile.mkdtemp(prefix="tt-rss-")
    path = os.path.join(folder, "q.ndjson")
    code = (
        "import json, resource, sys\n"
        "import requests\n"
        "from trace_telemetry import TelemetryClient, TelemetryOptions\n"
        "client = TelemetryClient(TelemetryOptions(queue_path=sys.argv[1] + '.warm', endpoint_url=sys.argv[2]))\n"
        "client.track('warm-up'); client.flush(timeout=60); client.close()\n"
        "client = TelemetryClient(TelemetryOptions(queue_path=sys.argv[1], endpoint_url=sys.argv[2], batch_size=500, max_queue_bytes=0))\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "ok = client.flush(timeout=3600)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(json.dumps({'ok': ok, 'left': client.queued_count, 'before_kib': before, 'after_kib': after}))\n"
    )
    write_backlog(path, count)
    size_mib = os.path.getsize(path) / 2**20
    env = dict(os.environ, PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = json.loads(
        subprocess.run(
            [sys.executable, "-c", code, path, url],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout
    )
    growth = (result["after_kib"] - result["before_kib"]) / 1024
    return {
        "section": "misc",
        "name": f"peak RSS growth while draining {count:,} events ({size_mib:.0f} MiB file)",
        "mib": round(growth, 1),
        "target": "<= 20 MiB",
        "met": growth <= 20 and result["ok"] and result["left"] == 0,
        "note": f"peak RSS {result['after_kib'] / 1024:.1f} MiB; all delivered: {result['ok'] and result['left'] == 0}",
    }
