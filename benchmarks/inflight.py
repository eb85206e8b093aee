"""Batches in flight against a far-away server, and what gzip costs and saves.

A backlog is drained by ``flush()`` to :class:`DelayedReceiver`, which answers
each request after 0, 50, 100 or 300 ms and serves requests in parallel. The
*sequential bound* is ``batch_size / round trip``: the best one request at a
time can do. The receiver counts ids, so duplicates are reported too.
"""

from __future__ import annotations

import gzip
import os
import shutil
import statistics
import tempfile
import time
from typing import Any, Dict, List

from trace_telemetry import TelemetryClient, TelemetryOptions

from ._delayed import DelayedReceiver
from .drain import write_backlog

Row = Dict[str, Any]

DELAYS = [0.0, 0.05, 0.1, 0.3]
BATCH = 20  # the default batch_size
DEFAULT_WINDOW = 4  # the default max_in_flight


def drain_backlog(folder: str, url: str, count: int, **options: Any) -> float:
    """Seconds for ``flush()`` to drain ``count`` events written beforehand."""
    path = os.path.join(folder, f"q-{time.monotonic_ns()}.ndjson")
    write_backlog(path, count)
    client = TelemetryClient(
        TelemetryOptions(endpoint_url=url, queue_path=path, max_queue_bytes=0, **options)
    )
    try:
        started = time.perf_counter()
        complete = client.flush(timeout=600)
        elapsed = time.perf_counter() - started
        if not complete or client.queued_count:
            raise RuntimeError(f"drain of {count} incomplete: {client.queued_count} left")
    finally:
        client.close()
    for suffix in ("", ".offset", ".lock"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    return elapsed


def _backlog_for(delay: float, window: int, seconds: float) -> int:
    """Events for a run of about ``seconds`` (whole batches, at least 10 of them)."""
    rate = BATCH * window / delay if delay else 4000.0
    return max(10, int(rate * seconds) // BATCH) * BATCH


def rtt_rows(receiver: DelayedReceiver, windows: List[int], seconds: float) -> List[Row]:
    """events/s against the round trip, for 1 to ``max_in_flight`` requests in flight."""
    folder = tempfile.mkdtemp(prefix="tt-inflight-")
    rows: List[Row] = []
    try:
        for delay in DELAYS:
            for window in windows:
                count = _backlog_for(delay, window, seconds)
                receiver.configure(delay)
                elapsed = drain_backlog(
                    folder, receiver.url, count, batch_size=BATCH, max_in_flight=window
                )
                stats = receiver.stats()
                rate = count / elapsed
                duplicates = stats["events"] - stats["unique"]
                row: Row = {
                    "section": "in flight",
                    "name": f"{delay * 1000:.0f} ms round trip, {window} in flight",
                    "events_per_s": round(rate),
                    "delay_ms": round(delay * 1000),
                    "in_flight": window,
                    "duplicates": duplicates,
                    "target": "",
                    "met": None,
                    "note": f"{count:,} events, {duplicates} duplicates, "
                    f"{count - stats['unique']} missing, at most {stats['most_in_flight']} "
                    "at once at the receiver",
                }
                if delay:
                    row["ratio"] = round(rate / (BATCH / delay), 2)
                    row["baseline"] = f"sequential bound ({BATCH / delay:.0f}/s)"
                if delay == 0.1 and window == DEFAULT_WINDOW:
                    row["target"] = ">= 3.5x, 0 duplicates"
                    row["met"] = row["ratio"] >= 3.5 and duplicates == 0
                rows.append(row)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def compression_rows(receiver: DelayedReceiver, seconds: float) -> List[Row]:
    """Bytes on the wire and CPU per batch with ``compression="gzip"``."""
    folder = tempfile.mkdtemp(prefix="tt-gzip-")
    rows: List[Row] = []
    try:
        path = os.path.join(folder, "sample.ndjson")
        write_backlog(path, 500)
        with open(path, "rb") as handle:
            lines = handle.read().splitlines()
        for batch in (BATCH, 500):
            body = b"[" + b",".join(lines[:batch]) + b"]"
            packed = gzip.compress(body, compresslevel=6, mtime=0)
            samples = []
            for _ in range(9):
                started = time.perf_counter()
                for _ in range(50):
                    gzip.compress(body, compresslevel=6, mtime=0)
                samples.append((time.perf_counter() - started) / 50 * 1e6)
            cost = statistics.median(samples)
            saved = len(body) - len(packed)
            rows.append(
                {
                    "section": "compression",
                    "name": f"gzip, batch of {batch} typical events",
                    "median_us": round(cost, 1),
                    "ratio": round(len(packed) / len(body), 3),
                    "baseline": "plain bytes",
                    "target": "",
                    "met": None,
                    "note": f"{len(body):,} → {len(packed):,} bytes; pays on links slower "
                    f"than ~{saved * 8 / cost:.0f} Mbit/s (saved bits / CPU µs)",
                }
            )
        for delay in (0.0, 0.1):
            for compression in (None, "gzip"):
                count = _backlog_for(delay, DEFAULT_WINDOW, seconds)
                receiver.configure(delay)
                elapsed = drain_backlog(folder, receiver.url, count, compression=compression)
                stats = receiver.stats()
                rows.append(
                    {
                        "section": "compression",
                        "name": f"drain, {delay * 1000:.0f} ms round trip, "
                        f"compression={compression!r}",
                        "events_per_s": round(count / elapsed),
                        "target": "",
                        "met": None,
                        "note": f"{stats['bytes'] / stats['requests']:,.0f} bytes per request "
                        f"on the wire, {stats['events'] - stats['unique']} duplicates",
                    }
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows
