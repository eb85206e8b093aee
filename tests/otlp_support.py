"""A recording OTLP/HTTP endpoint on 127.0.0.1 and decoders built on the official definitions.

Every request body is decoded with ``opentelemetry-proto``: protobuf with
``ExportLogsServiceRequest.FromString``, JSON with ``json_format.Parse``
(unknown fields are errors) *and* checked raw against OTLP/JSON's own rules,
which that parser does not know.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import pytest

if sys.version_info < (3, 9):  # pragma: no cover - see pyproject's test extra
    pytest.skip(
        "opentelemetry-proto with LogRecord.event_name (>= 1.35) needs Python >= 3.9",
        allow_module_level=True,
    )

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

Answer = Tuple[int, Dict[str, str], bytes]
Responder = Callable[["Captured"], Optional[Answer]]

_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")
_DECIMAL = re.compile(r"^-?[0-9]+$")
_INT64_FIELDS = {"timeUnixNano", "observedTimeUnixNano", "intValue"}
_ENUM_FIELDS = {"severityNumber"}


class Captured(NamedTuple):
    path: str
    headers: Dict[str, str]
    raw: bytes  # as received (maybe gzip)
    body: bytes  # decompressed
    request: ExportLogsServiceRequest


def check_raw_json(value: Any, key: str = "") -> None:
    """OTLP/JSON rules on the raw document: hex ids, integer enums, int64 as strings."""
    if isinstance(value, dict):
        for child_key, child in value.items():
            check_raw_json(child, child_key)
        return
    if isinstance(value, list):
        for child in value:
            check_raw_json(child, key)
        return
    if key == "traceId":
        assert isinstance(value, str) and _HEX32.match(value), value
    elif key == "spanId":
        assert isinstance(value, str) and _HEX16.match(value), value
    elif key in _ENUM_FIELDS or key == "flags":
        assert type(value) is int, (key, value)
    elif key in _INT64_FIELDS:
        assert isinstance(value, str) and _DECIMAL.match(value), (key, value)


def decode(content_type: str, body: bytes) -> ExportLogsServiceRequest:
    if content_type.startswith("application/x-protobuf"):
        return ExportLogsServiceRequest.FromString(body)
    assert content_type.startswith("application/json"), content_type
    json_format.Parse(body.decode("utf-8"), ExportLogsServiceRequest())  # unknown fields raise
    document = json.loads(body)
    check_raw_json(document)
    # json_format reads bytes fields as base64: give it the hex ids re-encoded,
    # as an OTLP/JSON receiver does, so the decoded ids are the sent ones.
    _hex_ids_to_base64(document)
    message = ExportLogsServiceRequest()
    json_format.ParseDict(document, message)
    return message


def _hex_ids_to_base64(value: Any) -> None:
    if isinstance(value, list):
        for item in value:
            _hex_ids_to_base64(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key in ("traceId", "spanId") and isinstance(item, str):
                value[key] = base64.b64encode(bytes.fromhex(item)).decode("ascii")
            else:
                _hex_ids_to_base64(item)


class Collector(ThreadingHTTPServer):
    """Answers 200 ``{}`` unless ``responder`` decides; records every request decoded."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.captured: List[Captured] = []
        self.accepted: List[Captured] = []
        self.responder: Optional[Responder] = None
        self.errors: List[str] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # a killed sender
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/logs"

    def start(self) -> "Collector":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def records(self) -> List[Any]:
        """Every accepted log record, in order."""
        with self.lock:
            return [
                record
                for captured in self.accepted
                for resource_logs in captured.request.resource_logs
                for scope_logs in resource_logs.scope_logs
                for record in scope_logs.log_records
            ]

    def uids(self) -> List[str]:
        return [attributes(record)["log.record.uid"] for record in self.records()]


class _Handler(BaseHTTPRequestHandler):
    server: Collector
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if len(raw) < length:  # the sender died mid-request (the SIGKILL tests)
            self.close_connection = True
            return
        headers = dict(self.headers.items())
        body = raw
        try:
            if headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(raw)
            request = decode(headers.get("Content-Type", ""), body)
        except Exception as error:  # a test failure, reported by the test
            with self.server.lock:
                self.server.errors.append(repr(error))
            self._answer(400, {}, b"{}")
            return
        captured = Captured(self.path, headers, raw, body, request)
        with self.server.lock:
            self.server.captured.append(captured)
        answer = self.server.responder(captured) if self.server.responder else None
        status, extra, payload = answer or (200, {}, b"{}")
        if 200 <= status < 300:
            with self.server.lock:
                self.server.accepted.append(captured)
        self._answer(status, extra, payload)

    def _answer(self, status: int, headers: Dict[str, str], body: bytes) -> None:
        self.send_response(status)
        headers = dict(headers)
        headers.setdefault("Content-Type", "application/json")
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def plain(value: Any) -> Any:
    """An ``AnyValue`` message as a plain Python value."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [plain(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {entry.key: plain(entry.value) for entry in value.kvlist_value.values}
    return getattr(value, kind)


def attributes(message: Any) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for entry in message.attributes:
        assert entry.key not in out, f"duplicate attribute {entry.key}"
        out[entry.key] = plain(entry.value)
    return out


def partial_success_body(content_type: str, rejected: int, message: str) -> Answer:
    response = ExportLogsServiceResponse()
    response.partial_success.rejected_log_records = rejected
    response.partial_success.error_message = message
    if content_type == "protobuf":
        return 200, {"Content-Type": "application/x-protobuf"}, response.SerializeToString()
    body = json.dumps(
        {"partialSuccess": {"rejectedLogRecords": str(rejected), "errorMessage": message}}
    ).encode()
    return 200, {"Content-Type": "application/json"}, body
