"""Where a drain's time goes, against two ceilings, and beside the reference queue.

* *transport ceiling*: pre-serialized batches of 500 posted one after another
  with one ``requests.Session`` to a receiver that does not parse the body.
* *parsing ceiling*: the same against the receiver decoding every batch
  (what the sink of the drain section does; it slows the ceiling too).

The drain of a 50,000-event backlog is timed against both, then again with
its phases timed: *read* (lines from the file), *validate* (strict JSON of
each line), *build* (the request body), *commit* (the offset write). What is
left is the drain thread waiting for answers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from typing import Any, Callable, Dict, Iterator, List, TypeVar

from trace_telemetry import TelemetryClient, TelemetryOptions, _lines, _session

from . import reference_queue
from ._delayed import DelayedReceiver
from .drain import ceiling, write_backlog
from .inflight import drain_backlog

Row = Dict[str, Any]
F = TypeVar("F", bound=Callable[..., Any])

PHASES = ("read", "validate", "build", "commit")


class _Timers:
    def __init__(self) -> None:
        self.seconds = dict.fromkeys((*PHASES, "read_batch"), 0.0)

    def wrap(self, name: str, function: F) -> F:
        seconds = self.seconds

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[name] += time.perf_counter() - started

        return timed  # type: ignore[return-value]


@contextlib.contextmanager
def _timed_phases(timers: _Timers) -> Iterator[None]:
    """Time the session's reads, validation and commits (restored afterwards)."""
    session_cls = _session.QueueSession
    saved = (session_cls.read_batch, session_cls.commit, _lines.valid_event_lines)
    session_cls.read_batch = timers.wrap("read_batch", saved[0])  # type: ignore[method-assign]
    session_cls.commit = timers.wrap("commit", saved[1])  # type: ignore[method-assign]
    _lines.valid_event_lines = timers.wrap("validate", saved[2])
    try:
        yield
    finally:
        session_cls.read_batch, session_cls.commit = saved[0], saved[1]  # type: ignore[method-assign]
        _lines.valid_event_lines = saved[2]


def profile(folder: str, url: str, count: int, batch: int, window: int) -> Row:
    """One drain with its phases timed (µs per event)."""
    path = os.path.join(folder, f"profile-{window}.ndjson")
    write_backlog(path, count)
    client = TelemetryClient(
        TelemetryOptions(
            endpoint_url=url,
            queue_path=path,
            batch_size=batch,
            max_queue_bytes=0,
            max_in_flight=window,
        )
    )
    timers = _Timers()
    client._delivery.build_body = timers.wrap("build", client._delivery.build_body)
    with _timed_phases(timers):
        started = time.perf_counter()
        complete = client.flush(timeout=600)
        elapsed = time.perf_counter() - started
    client.close()
    if not complete:
        raise RuntimeError("profiled drain incomplete")
    spent = timers.seconds
    spent["read"] = spent.pop("read_batch") - spent["validate"]
    per_event = {name: spent[name] / count * 1e6 for name in PHASES}
    waiting = elapsed / count * 1e6 - sum(per_event.values())
    return {
        "section": "drain profile",
        "name": f"drain {count:,}, batch {batch}, {window} in flight: µs per event",
        "events_per_s": round(count / elapsed),
        "phases_us": {name: round(value, 2) for name, value in per_event.items()},
        "waiting_us": round(waiting, 2),
        "target": "",
        "met": None,
        "note": ", ".join(f"{name} {value:.2f}" for name, value in per_event.items())
        + f", waiting for answers {waiting:.2f} (total {elapsed / count * 1e6:.2f})",
    }


def ceiling_rows(receiver: DelayedReceiver, count: int) -> List[Row]:
    """Both ceilings, the drain against them (1 and 4 in flight), and the profile."""
    folder = tempfile.mkdtemp(prefix="tt-profile-")
    rows: List[Row] = []
    batch = 500
    try:
        limits = {}
        for parse in (False, True):
            receiver.configure(0.0, parse=parse)
            seconds = ceiling(folder, receiver.url, count, batch)
            kind = "parsing" if parse else "transport"
            limits[kind] = count / seconds
            rows.append(
                {
                    "section": "drain profile",
                    "name": f"{kind} ceiling, batch {batch}",
                    "events_per_s": round(limits[kind]),
                    "target": "",
                    "met": None,
                    "note": f"{seconds / count * 1e6:.2f} µs per event",
                }
            )
        for parse in (False, True):
            kind = "parsing" if parse else "transport"
            for window in (1, 4):
                receiver.configure(0.0, parse=parse)
                seconds = drain_backlog(
                    folder, receiver.url, count, batch_size=batch, max_in_flight=window
                )
                share = count / seconds / limits[kind]
                row: Row = {
                    "section": "drain profile",
                    "name": f"drain {count:,} to the {kind} receiver, {window} in flight",
                    "events_per_s": round(count / seconds),
                    "ratio": round(share, 2),
                    "baseline": f"{kind} ceiling",
                    "target": "",
                    "met": None,
                    "note": f"{100 * share:.0f}% of the {kind} ceiling",
                }
                if not parse and window == 4:
                    row["target"], row["met"] = ">= 25% of the transport ceiling", share >= 0.25
                rows.append(row)
        receiver.configure(0.0, parse=False)
        for window in (1, 4):
            rows.append(profile(folder, receiver.url, count, batch, window))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def backlog_rows(receiver: DelayedReceiver, sizes: List[int]) -> List[Row]:
    """Drain time against backlog size, ours (defaults) and the reference queue's."""
    folder = tempfile.mkdtemp(prefix="tt-backlog-")
    rows: List[Row] = []
    try:
        receiver.configure(0.0, parse=True)
        for size in sizes:
            path = os.path.join(folder, f"reference-{size}.ndjson")
            write_backlog(path, size)
            for who, seconds in (
                ("reference queue", reference_queue.drain(path, receiver.url, 20)),
                ("trace-telemetry", drain_backlog(folder, receiver.url, size)),
            ):
                rows.append(
                    {
                        "section": "backlog",
                        "name": f"{who} drain {size:,}, batch 20",
                        "who": who,
                        "backlog": size,
                        "seconds": round(seconds, 3),
                        "events_per_s": round(size / seconds),
                        "target": "",
                        "met": None,
                        "note": "",
                    }
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows
