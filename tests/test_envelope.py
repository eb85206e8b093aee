"""The private OTLP envelope: validation, the cut for the default protocol, severities."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, Dict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trace_telemetry import _envelope
from trace_telemetry._protocol import TraceTelemetryProtocol
from trace_telemetry._validate import is_valid_event_line, valid_event_lines


def event(data: Any = None, **extra: Any) -> Dict[str, Any]:
    base: Dict[str, Any] = {
        "id": "0" * 32,
        "name": "n",
        "timestampUtc": "2026-01-01T00:00:00.000001Z",
        "data": data,
        "applicationName": "",
        "applicationVersion": "",
        "machineName": "",
        "osDescription": "",
        "ipAddress": "",
        "countryCode": "",
    }
    base.update(extra)
    return base


def line_of(value: Dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def facts_of(ending: bytes) -> Dict[str, Any]:
    facts: Dict[str, Any] = json.loads(b"{" + ending[1:-2] + b"}")["_otlp"]
    return facts


class TestValidation:
    def test_the_envelope_is_valid_only_as_an_object_beside_the_ten_keys(self) -> None:
        plain = line_of(event())
        enveloped = _envelope.attach(
            plain + b"\n", _envelope.suffix({"door": "logging", "severity": 9})
        )[:-1]
        assert is_valid_event_line(plain) and is_valid_event_line(enveloped)
        assert valid_event_lines([plain, enveloped]) == [True, True]
        assert not is_valid_event_line(line_of(event(_otlp="text")))
        assert not is_valid_event_line(line_of(event(_otlp={}, other=1)))
        assert not is_valid_event_line(line_of(event(other={})))
        missing = event(_otlp={})
        del missing["countryCode"]
        assert not is_valid_event_line(line_of(missing))


data_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


class TestTheCut:
    @settings(max_examples=200, deadline=None)
    @given(data=data_values, scope=st.text(max_size=20), level=st.text(max_size=10))
    def test_the_default_protocol_sends_exactly_the_ten_keys(
        self, data: Any, scope: str, level: str
    ) -> None:
        original = event(data)
        plain = line_of(original)
        facts = {"door": "logging", "severity": 9, "level": level, "scope": scope}
        enveloped = _envelope.attach(plain + b"\n", _envelope.suffix(facts))[:-1]
        assert json.loads(enveloped)["_otlp"] == facts
        body, _ = TraceTelemetryProtocol().encode_batch([plain, enveloped])
        assert json.loads(body) == [original, original]
        assert body == b"[" + plain + b"," + plain + b"]"

    def test_a_batch_without_envelope_is_the_lines_joined(self) -> None:
        lines = [line_of(event({"_otlp": {"a": 1}})), line_of(event(',"_otlp":{'))]
        body, content_type = TraceTelemetryProtocol().encode_batch(lines)
        assert body == b"[" + b",".join(lines) + b"]"
        assert content_type == "application/json; charset=utf-8"


class TestSeverity:
    @pytest.mark.parametrize(
        ("level", "number"),
        [
            (logging.NOTSET, 0),
            (1, 1),
            (5, 2),
            (logging.DEBUG, 5),
            (logging.INFO, 9),
            (21, 10),
            (29, 12),
            (logging.WARNING, 13),
            (logging.ERROR, 17),
            (logging.CRITICAL, 21),
            (99, 24),
        ],
    )
    def test_python_levels(self, level: int, number: int) -> None:
        assert _envelope.severity_number(level) == number

    def test_handler_envelopes_are_cached_per_logger_and_level(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delitem(sys.modules, "opentelemetry.trace", raising=False)  # no span possible
        record = logging.makeLogRecord({"name": "a.b", "levelno": 30, "levelname": "WARNING"})
        first = _envelope.from_record(record)
        assert first is _envelope.from_record(record)
        assert facts_of(first) == {
            "door": "logging",
            "severity": 13,
            "level": "WARNING",
            "scope": "a.b",
        }

    def test_structlog_levels(self) -> None:
        facts = facts_of(_envelope.from_structlog(None, "exception", {"event": "x"}))
        assert (facts["severity"], facts["level"], facts["scope"]) == (17, "error", "")
        facts = facts_of(
            _envelope.from_structlog(None, "info", {"level": "warning", "logger": "a.b"})
        )
        assert (facts["severity"], facts["level"], facts["scope"]) == (13, "warning", "a.b")
