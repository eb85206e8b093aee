"""A small receiver speaking the wire contract, for the demo, ``serve`` and tests.

Not a production server: a ``ThreadingHTTPServer`` that checks the key when
one is set, decodes ``Content-Encoding: gzip``, rejects bodies that are not a
JSON array of objects with 400, and records what it accepted.
"""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

__all__ = ["ReceivedRequest", "Receiver"]

#: ``(status, headers)`` to answer instead of the default 200, or None.
Responder = Callable[[List[Dict[str, Any]], Dict[str, str]], Optional[Tuple[int, Dict[str, str]]]]


class ReceivedRequest(NamedTuple):
    path: str
    headers: Dict[str, str]
    size: int
    events: List[Dict[str, Any]]
    status: int


class Receiver(ThreadingHTTPServer):
    """Listens on ``host:port`` (port 0 picks a free one) in a daemon thread.

    Args:
        api_key: when set, requests without this ``X-API-Key`` get 401.
        responder: decides the answer per request (tests use it to play a
            failing server); its events are recorded only on a 2xx.
        on_batch: called with each accepted request (the CLI prints a line).
        on_refused: called with ``(path, status, reason)`` for each request
            answered with something other than a 2xx.
        decode: turns a body into records instead of the contract's array
            (``serve --protocol otlp``); a ValueError answers 400.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = "",
        responder: Optional[Responder] = None,
        on_batch: Optional[Callable[[ReceivedRequest], None]] = None,
        *,
        on_refused: Optional[Callable[[str, int, str], None]] = None,
        decode: Optional[Callable[[bytes], List[Dict[str, Any]]]] = None,
    ) -> None:
        super().__init__((host, port), _Handler)
        #: OTLP/JSON mode (docs/otlp.md): bodies are decoded by ``decode``
        #: (gzip allowed) and answered with an empty ExportLogsServiceResponse.
        self.decode = decode
        self.api_key = api_key
        self.responder = responder
        self.on_batch = on_batch
        self.on_refused = on_refused
        self.lock = threading.Lock()
        self.events: List[Dict[str, Any]] = []
        self.requests: List[ReceivedRequest] = []
        self._thread: Optional[threading.Thread] = None

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that hung up (a sender timing out); report anything else."""
        import sys  # noqa: PLC0415

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        text = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{text}:{port}/telemetry"

    def start(self) -> "Receiver":
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def __enter__(self) -> "Receiver":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def received_ids(self) -> List[str]:
        with self.lock:
            return [str(event.get("id")) for event in self.events]


class _Handler(BaseHTTPRequestHandler):
    server: Receiver
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, the client's
    # delayed ACK stalls every keep-alive request by ~40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: the receiver reports through ``on_batch``."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        headers = {key: value for key, value in self.headers.items()}
        server = self.server
        if server.api_key and self.headers.get("X-API-Key") != server.api_key:
            self._refuse(401, "invalid api key")
            self._answer(401, {}, b'{"error":"invalid api key"}')
            return
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if server.decode is not None and content_type != "application/json":
            self._refuse(415, "this receiver takes OTLP/JSON only")
            self._answer(415, {}, b'{"error":"this receiver takes OTLP/JSON only"}')
            return
        try:
            plain = body
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                plain = gzip.decompress(body)
            events = server.decode(plain) if server.decode is not None else json.loads(plain)
            if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
                raise ValueError("not an array of objects")
        except (ValueError, OSError, EOFError, RecursionError):  # bad JSON, bad gzip
            self._refuse(400, "body must be a JSON array of events")
            self._answer(400, {}, b'{"error":"body must be a JSON array of events"}')
            return
        status, extra_headers = 200, {}  # type: Tuple[int, Dict[str, str]]
        if server.responder is not None:
            decided = server.responder(events, headers)
            if decided is not None:
                status, extra_headers = decided
        record = ReceivedRequest(self.path, headers, len(body), events, status)
        with server.lock:
            server.requests.append(record)
            if 200 <= status < 300:
                server.events.extend(events)
        if 200 <= status < 300 and server.on_batch is not None:
            server.on_batch(record)
        elif status >= 300:
            self._refuse(status, f"{len(events)} events not accepted")
        accepted = b"{}" if server.decode is not None else b'{"accepted":%d}' % len(events)
        self._answer(status, extra_headers, accepted if status < 300 else b"{}")

    def _refuse(self, status: int, reason: str) -> None:
        if self.server.on_refused is not None:
            self.server.on_refused(self.path, status, reason)

    def _answer(self, status: int, headers: Dict[str, str], body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
