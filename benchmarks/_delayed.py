"""A receiver in its own process that answers each request after a set delay.

Requests are served in parallel (one thread each), so ``delay`` plays the
round trip to a far-away server. With ``parse`` on it decodes every batch
and counts event ids (duplicates included) and the most requests at once;
with ``parse`` off it only reads the body: the transport ceiling. Only
binds 127.0.0.1. Configured with ``POST /config {"delay": s, "parse": b}``.
"""

from __future__ import annotations

import gzip
import json
import multiprocessing
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Set

import requests


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.delay = 0.0
        self.parse = True
        self.reset()

    def reset(self) -> None:
        self.ids: Set[str] = set()
        self.events = 0
        self.requests = 0
        self.bytes = 0
        self.active = 0
        self.most = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    state: _State

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _reply(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        state = self.state
        with state.lock:
            payload = {
                "events": state.events,
                "unique": len(state.ids),
                "requests": state.requests,
                "bytes": state.bytes,
                "most_in_flight": state.most,
            }
        self._reply(json.dumps(payload).encode())

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        state = self.state
        if self.path == "/config":
            config = json.loads(body)
            with state.lock:
                state.delay = float(config.get("delay", state.delay))
                state.parse = bool(config.get("parse", state.parse))
                state.reset()
            self._reply(b"{}")
            return
        with state.lock:
            state.active += 1
            state.most = max(state.most, state.active)
            delay, parse = state.delay, state.parse
        started = time.monotonic()
        ids = []
        if parse:
            if self.headers.get("Content-Encoding") == "gzip":
                body_text = gzip.decompress(body)
            else:
                body_text = body
            ids = [event["id"] for event in json.loads(body_text)]
        rest = delay - (time.monotonic() - started)
        if rest > 0:
            time.sleep(rest)
        with state.lock:
            state.active -= 1
            state.requests += 1
            state.bytes += len(body)
            state.events += len(ids)
            state.ids.update(ids)
        self._reply(b'{"status":1}')


def _serve(conn: Any) -> None:
    state = _State()
    handler = type("H", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.request_queue_size = 64
    conn.send(server.server_address[1])
    server.serve_forever(poll_interval=0.1)


class DelayedReceiver:
    """The receiver process; ``url`` to send to, ``configure`` between runs."""

    def __enter__(self) -> "DelayedReceiver":
        parent, child = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(child,), daemon=True
        )
        self.process.start()
        self.base = f"http://127.0.0.1:{parent.recv()}"
        self.url = f"{self.base}/telemetry"
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.join(5)

    def configure(self, delay: float, parse: bool = True) -> None:
        """Set the delay and mode; zero the counters."""
        requests.post(
            f"{self.base}/config", data=json.dumps({"delay": delay, "parse": parse}), timeout=10
        ).raise_for_status()

    def stats(self) -> Dict[str, int]:
        result: Dict[str, int] = requests.get(f"{self.base}/stats", timeout=10).json()
        return result
