"""Section 6: draining backlogs to a sink in its own process, against its ceiling."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import Any, Dict, List

import requests

from trace_telemetry import TelemetryClient, TelemetryOptions
from trace_telemetry._event import new_event_id

from . import reference_queue

Row = Dict[str, Any]

_TEMPLATE = (
    '{"id":"%s","name":"purchase","timestampUtc":"2026-11-28T02:04:14.123456Z",'
    '"data":{"order_id":"%d","amount":99.9,"currency":"BRL","items":3,"coupon":null,"user":"u-42"},'
    '"applicationName":"bench","applicationVersion":"1.0.0","machineName":"host",'
    '"osDescription":"Linux","ipAddress":"127.0.0.1","countryCode":""}\n'
)


def write_backlog(path: str, count: int) -> None:
    """``count`` valid events, written directly (the backlog's creation is not measured)."""
    with open(path, "w", encoding="utf-8") as handle:
        for start in range(0, count, 10_000):
            handle.write(
                "".join(
                    _TEMPLATE % (new_event_id(), i)
                    for i in range(start, min(count, start + 10_000))
                )
            )


def drain_ours(folder: str, url: str, count: int, batch: int) -> float:
    path = os.path.join(folder, f"ours-{count}-{batch}.ndjson")
    write_backlog(path, count)
    client = TelemetryClient(
        TelemetryOptions(endpoint_url=url, queue_path=path, batch_size=batch, max_queue_bytes=0)
    )
    started = time.perf_counter()
    complete = client.flush(timeout=3600)
    elapsed = time.perf_counter() - started
    left = client.queued_count
    client.close()
    if not complete or left:
        raise RuntimeError(f"drain of {count} incomplete: {left} left")
    return elapsed


def ceiling(folder: str, url: str, count: int, batch: int) -> float:
    """Pre-serialized batches posted with one ``requests.Session``: the sink's limit."""
    path = os.path.join(folder, "ceiling.ndjson")
    write_backlog(path, batch)
    with open(path, "rb") as handle:
        body = b"[" + b",".join(handle.read().splitlines()) + b"]"
    session = requests.Session()
    started = time.perf_counter()
    for _ in range(count // batch):
        session.post(
            url, data=body, headers={"Content-Type": "application/json"}, timeout=30
        ).raise_for_status()
    return time.perf_counter() - started


def run(url: str, sizes: List[int], reference_sizes: List[int]) -> List[Row]:
    folder = tempfile.mkdtemp(prefix="tt-drain-")
    rows: List[Row] = []
    try:
        for batch in (500, 20):
            limit = ceiling(folder, url, max(sizes[0], 20 * batch), batch)
            limit_rate = max(sizes[0], 20 * batch) / limit
            rows.append(_rate(f"sink ceiling, batch {batch}", max(sizes[0], 20 * batch), limit))
            times = {}
            for count in sizes:
                times[count] = drain_ours(folder, url, count, batch)
                row = _rate(f"trace-telemetry drain {count:,}, batch {batch}", count, times[count])
                row["note"] = f"{100 * count / times[count] / limit_rate:.0f}% of the sink ceiling"
                if batch == 500 and count == sizes[1]:
                    row["target"], row["met"] = (
                        ">= 50% of ceiling",
                        count / times[count] >= 0.5 * limit_rate,
                    )
                rows.append(row)
            if len(sizes) >= 2:
                ratio = times[sizes[1]] / times[sizes[0]]
                rows.append(
                    {
                        "section": "drain",
                        "name": f"time {sizes[1]:,} / time {sizes[0]:,}, batch {batch}",
                        "ratio": round(ratio, 2),
                        "target": f"<= {11 * sizes[1] // sizes[0] / 10:g}" if batch == 500 else "",
                        "met": ratio <= 1.1 * sizes[1] / sizes[0] if batch == 500 else None,
                        "note": f"linear would be {sizes[1] / sizes[0]:g}",
                    }
                )
        for count in reference_sizes:
            path = os.path.join(folder, f"reference-{count}.ndjson")
            write_backlog(path, count)
            rows.append(
                _rate(
                    f"reference queue drain {count:,}, batch 20",
                    count,
                    reference_queue.drain(path, url, 20),
                )
            )
            ours = drain_ours(folder, url, count, 20)
            rows.append(_rate(f"trace-telemetry drain {count:,}, batch 20", count, ours))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def _rate(name: str, count: int, seconds: float) -> Row:
    return {
        "section": "drain",
        "name": name,
        "seconds": round(seconds, 3),
        "events_per_s": round(count / seconds),
        "target": "",
        "met": None,
        "note": "",
    }
