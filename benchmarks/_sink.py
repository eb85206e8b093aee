"""A local sink in its own process: HTTP (ours, posthog, OTLP, sentry) and TCP (logstash).

It counts the events that reach it, so a benchmark can report how many of a
peer's events actually arrived. Only binds 127.0.0.1.
"""

from __future__ import annotations

import gzip
import json
import multiprocessing
import socketserver
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Tuple

import requests


class _Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: Dict[str, int] = {}
        self.requests: Dict[str, int] = {}

    def add(self, kind: str, events: int) -> None:
        with self.lock:
            self.events[kind] = self.events.get(kind, 0) + events
            self.requests[kind] = self.requests.get(kind, 0) + 1


def _decompress(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip" or body[:2] == b"\x1f\x8b":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        import brotli  # type: ignore[import-not-found]

        return bytes(brotli.decompress(body))
    return body


def _count(path: str, body: bytes) -> Tuple[str, int]:
    if path.startswith("/telemetry"):
        return "trace_telemetry", len(json.loads(body))
    if "/envelope" in path:
        return "sentry", sum(
            1 for line in body.split(b"\n") if b'"type":"event"' in line.replace(b" ", b"")
        )
    if path.startswith("/v1/logs"):
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
            ExportLogsServiceRequest,
        )

        request = ExportLogsServiceRequest()
        request.ParseFromString(body)
        return "opentelemetry", sum(
            len(scope.log_records)
            for resource in request.resource_logs
            for scope in resource.scope_logs
        )
    if path.startswith(("/batch", "/i/v0/e", "/capture")):
        decoded = json.loads(body)
        return "posthog", len(decoded.get("batch", [])) if isinstance(decoded, dict) else len(
            decoded
        )
    return "other", 0


class _HttpHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else delayed ACKs cost ~40 ms a request
    counts: _Counts

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/stats":
            with self.counts.lock:
                payload = {
                    "events": dict(self.counts.events),
                    "requests": dict(self.counts.requests),
                }
            self._reply(200, json.dumps(payload).encode())
        else:
            self._reply(200, b"{}")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/reset":
            with self.counts.lock:
                self.counts.events.clear()
                self.counts.requests.clear()
            self._reply(200, b"{}")
            return
        try:
            kind, events = _count(
                self.path, _decompress(body, self.headers.get("Content-Encoding", ""))
            )
        except Exception:
            kind, events = "unparsed", 0
        self.counts.add(kind, events)
        self._reply(200, b'{"status":1}')


class _TcpHandler(socketserver.StreamRequestHandler):
    counts: _Counts
    disable_nagle_algorithm = True

    def handle(self) -> None:
        for line in self.rfile:
            if line.strip():
                self.counts.add("logstash", 1)


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def _serve(conn: Any) -> None:
    counts = _Counts()
    http_handler = type("H", (_HttpHandler,), {"counts": counts})
    tcp_handler = type("T", (_TcpHandler,), {"counts": counts})
    http = ThreadingHTTPServer(("127.0.0.1", 0), http_handler)
    http.daemon_threads = True
    tcp = _TcpServer(("127.0.0.1", 0), tcp_handler)
    threading.Thread(target=tcp.serve_forever, daemon=True).start()
    conn.send((http.server_address[1], tcp.server_address[1]))
    http.serve_forever(poll_interval=0.1)


class Sink:
    """The sink process; ``url`` for HTTP, ``tcp_port`` for logstash."""

    def __enter__(self) -> "Sink":
        parent, child = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(child,), daemon=True
        )
        self.process.start()
        http_port, self.tcp_port = parent.recv()
        self.base = f"http://127.0.0.1:{http_port}"
        self.url = f"{self.base}/telemetry"
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.join(5)

    def stats(self) -> Dict[str, Dict[str, int]]:
        result: Dict[str, Dict[str, int]] = requests.get(f"{self.base}/stats", timeout=10).json()
        return result

    def reset(self) -> None:
        requests.post(f"{self.base}/reset", timeout=10)
