"""The ``trace-telemetry`` command: demo, a development receiver, and queue tools.

Standard library only (argparse), so the CLI adds no dependency and
``import trace_telemetry`` never imports it.

Exit codes: 0 success; 1 the operation failed (events not delivered, a
refused connection, a demo event missing); 2 bad usage or input (a missing
file, a bad URL).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any, Optional, Sequence, TextIO

from ._table import preview, print_table, size
from ._version import __version__

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """An expected failure: printed as ``error: ...``, never as a traceback."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    # The commands report failures themselves (error: ...); the SDK's own
    # once-per-condition warnings would say the same thing again on stderr.
    logging.getLogger("trace_telemetry").setLevel(logging.ERROR)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        code: int = args.handler(args)
    except CliError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trace-telemetry",
        description="Offline-first telemetry: demo, development receiver and queue tools.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="send events through all three doors to an embedded receiver",
        description="Start a receiver on 127.0.0.1, send events with client.track, a "
        "dictConfig'd TelemetryHandler and a structlog TelemetryProcessor, then show "
        "what arrived. Exits 0 only if every event arrived.",
    )
    demo.add_argument("--keep", metavar="DIR", help="keep the demo's queue files in DIR")
    demo.add_argument(
        "--protocol",
        choices=("tracetelemetry", "otlp"),
        default="tracetelemetry",
        help="send with the contract or as OTLP/JSON (default %(default)s)",
    )
    demo.set_defaults(handler=_demo)

    serve = commands.add_parser(
        "serve",
        help="run a development receiver speaking the wire contract",
        description="Accept POSTed batches, check the API key when given, reject "
        "non-JSON with 400, append events as NDJSON and print one line a batch.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    serve.add_argument(
        "--port", type=int, default=8080, help="port, 0 for any (default %(default)s)"
    )
    serve.add_argument("--out", default="events.ndjson", help="NDJSON file to append events to")
    serve.add_argument("--api-key", default="", help="require this X-API-Key")
    serve.add_argument(
        "--status",
        type=_http_status,
        default=200,
        metavar="CODE",
        help="answer every valid request with this HTTP status, to play a failing "
        "server (e.g. 503, 400); events are stored only for a 2xx (default %(default)s)",
    )
    serve.add_argument(
        "--protocol",
        choices=("tracetelemetry", "otlp"),
        default="tracetelemetry",
        help="tracetelemetry (the contract, at /telemetry) or otlp (OTLP/JSON at /v1/logs)",
    )
    serve.set_defaults(handler=_serve)

    status = commands.add_parser("status", help="summarize a queue file")
    status.add_argument("queue", help="the queue file (queue_path)")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=_status)

    peek = commands.add_parser("peek", help="show the next pending events")
    peek.add_argument("queue", help="the queue file (queue_path)")
    peek.add_argument("-n", type=int, default=10, help="how many (default %(default)s)")
    peek.add_argument("--json", action="store_true", help="print the raw NDJSON lines")
    peek.set_defaults(handler=_peek)

    flush = commands.add_parser(
        "flush",
        help="send a queue now",
        description="Drain QUEUE to the endpoint now. The API key may come from "
        "TRACE_TELEMETRY_API_KEY instead of --api-key (keeps it out of the process list).",
    )
    flush.add_argument("queue", help="the queue file (queue_path)")
    flush.add_argument(
        "--endpoint",
        default=None,
        help="the URL to POST batches to (with --protocol otlp, default from "
        "OTEL_EXPORTER_OTLP_(LOGS_)ENDPOINT, else http://localhost:4318/v1/logs)",
    )
    flush.add_argument(
        "--protocol",
        choices=("tracetelemetry", "otlp"),
        default="tracetelemetry",
        help="the wire protocol (default %(default)s); see docs/otlp.md",
    )
    flush.add_argument(
        "--otlp-encoding",
        choices=("json", "protobuf"),
        default=None,
        help="OTLP body encoding (default json, or OTEL_EXPORTER_OTLP_PROTOCOL)",
    )
    flush.add_argument("--api-key", default=None, help="X-API-Key (or env TRACE_TELEMETRY_API_KEY)")
    flush.add_argument("--batch-size", type=int, default=100, help="events per request")
    flush.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="overall budget in seconds; what is not sent by then stays queued "
        "(default %(default)s)",
    )
    flush.set_defaults(handler=_flush)

    requeue = commands.add_parser(
        "requeue",
        help="move dead-lettered events back into the queue",
        description="Append the events of QUEUE.rejected to QUEUE (after the server was fixed).",
    )
    requeue.add_argument("queue", help="the queue file (queue_path)")
    requeue.set_defaults(handler=_requeue)
    return parser


def _http_status(text: str) -> int:
    try:
        code = int(text)
    except ValueError:
        code = 0
    if not 200 <= code <= 599:
        msg = f"--status must be an HTTP status from 200 to 599, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return code


def _require_queue(path: str) -> None:
    if not os.path.isfile(path):
        raise CliError(f"no queue file at {path}")


# -- status / peek -------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    from . import _inspect  # noqa: PLC0415

    _require_queue(args.queue)
    info = _inspect.report(args.queue)
    invalid = _invalid_pending_lines(args.queue)
    info["pending_events"] -= invalid
    info["pending_invalid_lines"] = invalid
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    rows = [
        ("queue", info["queue"]),
        ("pending", f"{info['pending_events']} events, {size(info['pending_bytes'])}"),
        ("invalid", _invalid_note(invalid) if invalid else "0 pending lines"),
        ("file size", size(info["file_bytes"])),
        ("oldest", info["oldest"] or "-"),
        ("newest", info["newest"] or "-"),
        ("corrupt", f"{info['corrupt_lines']} lines set aside in .corrupt"),
        ("rejected", f"{info['rejected_events']} events in .rejected (see: requeue)"),
        ("dropped", _dropped_text(info["dropped"])),
        ("sender", "a process is sending now" if info["sender_active"] else "idle"),
    ]
    for label, value in rows:
        print(f"{label:<10} {value}")
    return EXIT_OK


def _dropped_text(drops: Any) -> str:
    """``status``'s line for the drop counts every process sharing the queue stored."""
    if not drops:
        return "none"
    total = sum(drops.values())
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(drops.items()))
    return f"{total} events ({reasons})"


def _peek(args: argparse.Namespace) -> int:
    from . import _inspect  # noqa: PLC0415

    _require_queue(args.queue)
    if args.n < 1:
        raise CliError(f"-n must be at least 1, got {args.n}")
    lines = _inspect.peek(args.queue, args.n)
    invalid = _invalid_pending_lines(args.queue)
    if args.json:
        for line in lines:
            print(line.decode("utf-8"))
        if invalid:  # stdout stays pure NDJSON
            print(f"invalid    {_invalid_note(invalid)}", file=sys.stderr)
        return EXIT_OK
    if not lines:
        print("the queue is empty" if not invalid else "no pending events")
    else:
        events = [json.loads(line) for line in lines]
        print_table(
            sys.stdout,
            ["time (UTC)", "name", "data"],
            [[e["timestampUtc"], e["name"], preview(e["data"])] for e in events],
        )
    if invalid:
        print(f"invalid    {_invalid_note(invalid)}")
    return EXIT_OK


def _invalid_pending_lines(path: str) -> int:
    """Pending lines that are not events (``peek`` skips them, a send sets them aside)."""
    from . import _inspect  # noqa: PLC0415
    from ._validate import is_valid_event_line  # noqa: PLC0415

    return sum(1 for line in _inspect.pending_lines(path) if not is_valid_event_line(line))


def _invalid_note(count: int) -> str:
    """The one wording ``status`` and ``peek`` use for invalid pending lines."""
    return f"{count} pending lines are not events (moved to .corrupt at the next send)"


# -- flush / requeue -------------------------------------------------------------


def _flush(args: argparse.Namespace) -> int:
    from . import TelemetryClient, TelemetryOptions  # noqa: PLC0415

    _require_queue(args.queue)
    if args.endpoint is None and args.protocol != "otlp":
        raise CliError("--endpoint is required (unless --protocol otlp reads OTEL_* variables)")
    otlp: Any = {"protocol": args.protocol, "otlp_encoding": args.otlp_encoding}
    if args.endpoint is not None:
        otlp["endpoint_url"] = args.endpoint
    api_key = (
        args.api_key if args.api_key is not None else os.environ.get("TRACE_TELEMETRY_API_KEY", "")
    )
    try:
        options = TelemetryOptions(
            api_key=api_key,
            queue_path=args.queue,
            batch_size=args.batch_size,
            max_queue_bytes=0,
            **otlp,
        )
    except ValueError as error:
        raise CliError(str(error)) from None
    client = TelemetryClient(options)
    total = client.queued_count
    bar = _ProgressBar(total, sys.stderr) if sys.stderr.isatty() and total else None
    try:
        complete = client._delivery.drain(
            args.timeout, respect_backoff=False, progress=bar.advance if bar else None
        )
    finally:
        if bar:
            bar.finish()
        client.close()
    stats = client.stats()
    remaining = client.queued_count
    print(
        f"sent {stats['sent']} events in {stats['requests']} requests; "
        f"{stats['rejected']} rejected, {stats['corrupt']} corrupt lines set aside; "
        f"{remaining} still queued"
    )
    if not complete:
        raise CliError(
            f"not everything was sent: {stats['last_error'] or 'timed out'}", EXIT_FAILED
        )
    if stats["rejected"]:
        raise CliError(
            f"the endpoint refused {stats['rejected']} events; "
            f"they are in {args.queue}.rejected (see: requeue)",
            EXIT_FAILED,
        )
    return EXIT_OK


def _requeue(args: argparse.Namespace) -> int:
    from ._queue import FileQueue  # noqa: PLC0415
    from ._stats import Stats  # noqa: PLC0415

    rejected = args.queue + ".rejected"
    working = rejected + ".requeuing"
    if not os.path.exists(rejected) and not os.path.exists(working):
        if not os.path.exists(args.queue):
            raise CliError(f"no queue file at {args.queue}")
        print("nothing to requeue")
        return EXIT_OK
    if not os.path.exists(working):
        os.replace(rejected, working)  # new rejections go to a fresh file meanwhile
    queue = FileQueue(args.queue, 0, Stats(), max_line=1 << 20)
    moved = 0
    try:
        with open(working, "rb") as handle:
            for line in handle:
                if line.strip():
                    if not queue.append(line if line.endswith(b"\n") else line + b"\n"):
                        raise CliError(f"could not write to {args.queue}", EXIT_FAILED)
                    moved += 1
    finally:
        queue.close()
    os.unlink(working)
    print(f"requeued {moved} events from {rejected}")
    return EXIT_OK


# -- serve -------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    from . import _serving  # noqa: PLC0415

    try:
        server = _serving.listen(args)
    except OSError as error:
        raise CliError(
            f"cannot listen on {args.host}:{args.port}: {error.strerror or error}"
        ) from None
    _serving.run(server, args)
    return EXIT_OK


# -- demo ------------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo  # noqa: PLC0415

    return run_demo(sys.stdout, keep=args.keep, protocol=args.protocol)


# -- output helpers ----------------------------------------------------------------------


class _ProgressBar:
    """A one-line progress bar for a TTY."""

    def __init__(self, total: int, out: TextIO) -> None:
        self.total, self.done, self.out = total, 0, out
        self._draw()

    def advance(self, count: int) -> None:
        self.done = min(self.total, self.done + count)
        self._draw()

    def _draw(self) -> None:
        filled = int(30 * self.done / self.total) if self.total else 30
        self.out.write(f"\r[{'#' * filled}{' ' * (30 - filled)}] {self.done}/{self.total}")
        self.out.flush()

    def finish(self) -> None:
        self.out.write("\n")
        self.out.flush()
