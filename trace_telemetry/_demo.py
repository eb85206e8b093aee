"""``trace-telemetry demo``: the three doors, end to end, on a local receiver."""

from __future__ import annotations

import logging
import logging.config
import os
import shutil
import tempfile
import time
from typing import Any, Dict, List, Optional, TextIO

from ._table import preview, print_table, size
from ._version import __version__

__all__ = ["run_demo"]

_API_KEY = "demo-key"


class _Recorder:
    """A ``before_send`` hook that remembers which door queued each event id."""

    def __init__(self) -> None:
        self.door = ""
        self.doors: Dict[str, str] = {}

    def __call__(self, event: Dict[str, Any]) -> Dict[str, Any]:
        self.doors[event["id"]] = self.door
        return event


def run_demo(out: TextIO, keep: Optional[str] = None, protocol: str = "tracetelemetry") -> int:
    """Run the demo, print what arrived; 0 only if every queued event arrived.

    With ``protocol="otlp"`` the receiver takes OTLP/JSON (docs/otlp.md) and
    the table shows each log record's severity, scope and body.
    """
    from ._receiver import Receiver  # noqa: PLC0415

    folder = keep or tempfile.mkdtemp(prefix="trace-telemetry-demo-")
    os.makedirs(folder, exist_ok=True)
    recorder = _Recorder()
    otlp = protocol == "otlp"
    try:
        with Receiver(api_key=_API_KEY, decode=_decode_otlp if otlp else None) as receiver:
            url = receiver.url.replace("/telemetry", "/v1/logs") if otlp else receiver.url
            out.write(f"receiver listening on {url}\nqueue in {folder}\n\n")
            options: Dict[str, Any] = {
                "endpoint_url": url,
                "protocol": protocol,
                "api_key": _API_KEY,
                "queue_path": os.path.join(folder, "telemetry-queue.ndjson"),
                "application_name": "trace-telemetry-demo",
                "application_version": __version__,
                "batch_size": 5,
                "flush_interval_seconds": 1,
                "before_send": recorder,
            }
            _send_through_three_doors(options, recorder, receiver)
    finally:
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return _report(out, receiver, recorder)


def _decode_otlp(body: bytes) -> List[Dict[str, Any]]:
    """OTLP/JSON log records in the table's shape (id, name, timestampUtc, data)."""
    from ._event import format_timestamp  # noqa: PLC0415
    from ._otlp_receive import decode_request  # noqa: PLC0415

    events = []
    for record in decode_request(body):
        data = dict(record.get("attributes") or {})
        name = record.get("eventName") or (
            f"[{record.get('severityText', '')}] {record.get('scope', '')}: {record.get('body')}"
        )
        events.append(
            {
                "id": str(data.pop("log.record.uid", "")),
                "name": name,
                "timestampUtc": format_timestamp(int(record.get("timeUnixNano") or 0) / 1e9),
                "data": data,
            }
        )
    return events


def _send_through_three_doors(options: Dict[str, Any], recorder: _Recorder, receiver: Any) -> None:
    import structlog  # noqa: PLC0415

    from . import TelemetryClient, TelemetryOptions, TelemetryProcessor  # noqa: PLC0415

    recorder.door = "client.track"
    client = TelemetryClient(TelemetryOptions(**options))
    client.start()
    client.track("page_view")
    client.track("purchase", {"order_id": "123", "amount": 99.90})
    client.track("signup", "source", "google")
    try:
        _ = {"visa": 1}["amex"]
    except KeyError as error:
        client.track_exception(error, extra_data={"step": "checkout"})

    recorder.door = "logging"
    handler = {"class": "trace_telemetry.TelemetryHandler", "level": "INFO", **options}
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"telemetry": handler},
            "loggers": {
                "demo.shop": {"handlers": ["telemetry"], "level": "INFO", "propagate": False}
            },
        }
    )
    log = logging.getLogger("demo.shop")
    log.info("order %s shipped", "A-1001", extra={"carrier": "ups"})
    try:
        _ = 1 / 0
    except ZeroDivisionError:
        log.exception("could not compute the discount for %s", "A-1001")

    recorder.door = "structlog"
    structlog.configure(
        processors=[structlog.processors.add_log_level, TelemetryProcessor(client, drop=True)]
    )
    slog = structlog.get_logger().bind(session="s-42")
    slog.info("cart_updated", items=3, total=42.5)
    slog.warning("coupon_rejected", code="BLACKFRIDAY")

    client.flush(timeout=10)
    log.handlers[0].client.flush(timeout=10)  # type: ignore[attr-defined]
    deadline = time.monotonic() + 15
    while not set(recorder.doors) <= set(receiver.received_ids()) and time.monotonic() < deadline:
        time.sleep(0.05)
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    structlog.reset_defaults()
    client.close()


def _report(out: TextIO, receiver: Any, recorder: _Recorder) -> int:
    events = receiver.events
    print_table(
        out,
        ["time (UTC)", "door", "name", "data"],
        [
            [
                e["timestampUtc"][11:26],
                recorder.doors.get(e["id"], "?"),
                e["name"],
                preview(e["data"]),
            ]
            for e in sorted(events, key=lambda e: e["timestampUtc"])
        ],
    )
    out.write("\n")
    print_table(
        out,
        ["request", "events", "body size", "status"],
        [
            [str(index), str(len(r.events)), size(r.size), str(r.status)]
            for index, r in enumerate(receiver.requests, 1)
        ],
    )
    expected = set(recorder.doors)
    missing: List[str] = sorted(expected - {str(e.get("id")) for e in events})
    duplicates = len(events) - len({e["id"] for e in events})
    out.write(
        f"\n{len(expected)} events queued, {len(expected) - len(missing)} arrived"
        f" in {len(receiver.requests)} requests"
        + (f" ({duplicates} re-sent duplicates)" if duplicates else "")
        + "\n"
    )
    if missing:
        out.write(f"MISSING: {len(missing)} events never arrived: {', '.join(missing)}\n")
        return 1
    out.write("OK: every event arrived.\n")
    return 0
