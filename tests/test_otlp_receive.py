"""The embedded OTLP/JSON receiver of ``serve --protocol otlp``; runs on every Python (no proto)."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path
from typing import Callable, Iterator

import pytest

from trace_telemetry import TelemetryClient, TelemetryHandler
from trace_telemetry._otlp_receive import decode_request
from trace_telemetry._receiver import Receiver

from .conftest import run_python

MakeClient = Callable[..., TelemetryClient]


@pytest.fixture
def otlp_receiver() -> Iterator[Receiver]:
    with Receiver(decode=decode_request) as server:
        yield server


def test_an_otlp_json_client_round_trips(make_client: MakeClient, otlp_receiver: Receiver) -> None:
    url = otlp_receiver.url.replace("/telemetry", "/v1/logs")
    client = make_client(
        protocol="otlp", endpoint_url=url, application_name="svc", compression="gzip"
    )
    client.track("purchase", {"n": 2**64, "ok": True})
    logger = logging.getLogger("receive.test")
    handler = TelemetryHandler(client=client)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.error("broken %s", "pipe")
    finally:
        logger.removeHandler(handler)
    assert client.flush(10)
    event, record = otlp_receiver.events
    assert event["eventName"] == "purchase"
    assert event["attributes"]["n"] == str(2**64)  # beyond int64: a string
    assert event["attributes"]["ok"] is True
    assert event["resource"]["service.name"] == "svc"
    assert record["severityNumber"] == 17 and record["body"] == "broken pipe"
    assert record["scope"] == "receive.test"
    assert otlp_receiver.requests[0].headers["Content-Encoding"] == "gzip"


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'{"resourceLogs": {}}',
        b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [1]}]}]}',
        b"not json",
    ],
)
def test_malformed_requests_are_refused(body: bytes) -> None:
    with pytest.raises(ValueError):
        decode_request(body)


def test_protobuf_bodies_get_415_and_stay_queued(
    make_client: MakeClient, otlp_receiver: Receiver
) -> None:
    import requests

    url = otlp_receiver.url.replace("/telemetry", "/v1/logs")
    answer = requests.post(
        url, data=b"\x0a\x00", headers={"Content-Type": "application/x-protobuf"}, timeout=5
    )
    assert answer.status_code == 415
    answer = requests.post(
        url,
        data=gzip.compress(b'{"resourceLogs": []}'),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        timeout=5,
    )
    assert answer.status_code == 200 and answer.json() == {}


def test_the_default_receiver_is_unchanged(
    receiver: Receiver, make_client: MakeClient, tmp_path: Path
) -> None:
    client = make_client(endpoint_url=receiver.url)
    client.track("a")
    assert client.flush(10)
    assert receiver.events[0]["name"] == "a"
    assert receiver.requests[0].status == 200


def test_the_demo_speaks_otlp() -> None:
    result = run_python(
        "from trace_telemetry.cli import main; raise SystemExit(main())",
        "demo",
        "--protocol",
        "otlp",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "/v1/logs" in result.stdout
    assert "[ERROR] demo.shop: could not compute the discount for A-1001" in result.stdout
    assert "OK: every event arrived." in result.stdout
