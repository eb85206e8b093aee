"""``trace-telemetry serve``: a development receiver that appends what it gets to a file.

Both protocols: the contract's JSON array at ``/telemetry``, or OTLP/JSON
at ``/v1/logs`` (``--protocol otlp``). See docs/cli.md.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from typing import Any, Dict, Optional, Tuple

from ._fileio import append_private
from ._receiver import ReceivedRequest, Receiver
from ._table import size

__all__ = ["listen", "run"]


def listen(args: argparse.Namespace) -> Receiver:
    """The receiver the arguments ask for, listening; raises OSError."""
    printing = threading.Lock()  # requests arrive in parallel (max_in_flight)

    def respond(events: Any, headers: Any) -> Optional[Tuple[int, Dict[str, str]]]:
        return None if args.status == 200 else (args.status, {})

    def on_refused(path: str, status: int, reason: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        with printing:
            print(f"{stamp} POST {path} refused: {status} {reason}", flush=True)

    def on_batch(request: ReceivedRequest) -> None:
        lines = b"".join(
            json.dumps(e, ensure_ascii=False).encode("utf-8") + b"\n" for e in request.events
        )
        stamp = time.strftime("%H:%M:%S")
        with printing:
            append_private(args.out, lines)
            print(
                f"{stamp} POST {request.path} {len(request.events)} events {size(request.size)}",
                flush=True,
            )

    decode: Any = None
    if args.protocol == "otlp":
        from ._otlp_receive import decode_request as decode  # noqa: PLC0415
    return Receiver(
        args.host,
        args.port,
        api_key=args.api_key,
        responder=respond,
        on_batch=on_batch,
        on_refused=on_refused,
        decode=decode,
    )


def run(server: Receiver, args: argparse.Namespace) -> None:
    """Serve until Ctrl-C, then print what was received."""
    answer = "" if args.status == 200 else f"; answering every request with {args.status}"
    url = server.url.replace("/telemetry", "/v1/logs") if server.decode else server.url
    print(
        f"listening on {url} (events appended to {args.out}){answer}; Ctrl-C stops",
        flush=True,
    )
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print(f"received {len(server.events)} events in {len(server.requests)} requests")
