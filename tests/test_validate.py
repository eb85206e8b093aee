"""What the queue accepts as an event line."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from trace_telemetry import TelemetryClient
from trace_telemetry._validate import is_valid_event_line, valid_event_lines

MakeClient = Callable[..., TelemetryClient]


class TestValidation:
    def test_a_real_event_line_is_valid(self, make_client: MakeClient, queue_path: Path) -> None:
        make_client().track("x", {"a": 1})
        assert is_valid_event_line(queue_path.read_bytes().rstrip(b"\n"))

    @pytest.mark.parametrize(
        "line",
        [
            b"",
            b"garbage",
            b"{}",
            b"[1,2]",
            b'{"id":"1","name":"x"}',
            b'{"id":"1","name":"x","timestampUtc":"t","data":NaN,"applicationName":"","applicationVersion":"","machineName":"","osDescription":"","ipAddress":"","countryCode":""}',
            b'{"id":"1","name":"\\ud800","timestampUtc":"t","data":null,"applicationName":"","applicationVersion":"","machineName":"","osDescription":"","ipAddress":"","countryCode":""}',
            b'{"id":1,"name":"x","timestampUtc":"t","data":null,"applicationName":"","applicationVersion":"","machineName":"","osDescription":"","ipAddress":"","countryCode":""}',
            b"\xff\xfe",
        ],
    )
    def test_invalid_lines_are_recognised(self, line: bytes) -> None:
        assert not is_valid_event_line(line)

    def test_a_batch_is_checked_in_one_parse_but_judged_line_by_line(
        self, make_client: MakeClient, queue_path: Path
    ) -> None:
        client = make_client()
        client.track("a")
        client.track("b")
        good = queue_path.read_bytes().splitlines()
        assert [True, True] == valid_event_lines(good)
        assert [True, False, True] == valid_event_lines([good[0], b"1,2", good[1]])
        assert [False, True] == valid_event_lines([None, good[0]])


class TestSalvageWithTheOtlpEnvelope:
    def test_a_salvaged_event_may_end_with_the_envelope(
        self, make_client: MakeClient, queue_path: Path
    ) -> None:
        import logging

        from trace_telemetry import TelemetryHandler
        from trace_telemetry._validate import salvage

        client = make_client(protocol="otlp", endpoint_url="")
        logger = logging.getLogger("salvage.otlp")
        handler = TelemetryHandler(client=client)
        logger.addHandler(handler)
        logger.propagate = False
        try:
            logger.warning("hello %s", "there")
        finally:
            logger.removeHandler(handler)
        line = queue_path.read_bytes().rstrip(b"\n")
        assert line.endswith(b"}}") and b'"_otlp":{' in line
        torn = b'{"id":"0f0e0d0c-torn","name":"half'
        assert not is_valid_event_line(torn + line)
        assert salvage(torn + line) == len(torn)
        assert is_valid_event_line(line)
