"""OTLP options and the OTEL_* environment variables (docs/otlp.md "Configuration")."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from trace_telemetry import TelemetryClient, TelemetryOptions

from .conftest import run_python

MakeClient = Callable[..., TelemetryClient]
needs_proto = pytest.mark.skipif(
    sys.version_info < (3, 9),
    reason="opentelemetry-proto with LogRecord.event_name (>= 1.35) needs Python >= 3.9",
)
OTEL_VARS = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_SDK_DISABLED",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in OTEL_VARS:
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch


class TestDefaults:
    def test_the_default_protocol_ignores_otel_variables(
        self, clean_env: pytest.MonkeyPatch
    ) -> None:
        clean_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
        clean_env.setenv("OTEL_SERVICE_NAME", "svc")
        clean_env.setenv("OTEL_EXPORTER_OTLP_HEADERS", "a=b")
        clean_env.setenv("OTEL_SDK_DISABLED", "true")
        options = TelemetryOptions()
        assert options.protocol == "tracetelemetry"
        assert options.endpoint_url == "" and options.application_name == ""
        assert options.headers == {} and not options.sdk_disabled
        assert options.timeout_seconds == 10.0

    def test_otlp_without_anything_goes_to_localhost_4318(self) -> None:
        options = TelemetryOptions(protocol="otlp")
        assert options.endpoint_url == "http://localhost:4318/v1/logs"
        assert options.otlp_encoding == "json" and options.compression is None


class TestEnvironment:
    def test_logs_endpoint_is_used_as_is(self, clean_env: pytest.MonkeyPatch) -> None:
        clean_env.setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "https://c.example:4318/custom")
        clean_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://ignored:4318")
        assert TelemetryOptions(protocol="otlp").endpoint_url == "https://c.example:4318/custom"

    def test_the_generic_endpoint_is_a_base(self, clean_env: pytest.MonkeyPatch) -> None:
        clean_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c.example:4318/")
        assert TelemetryOptions(protocol="otlp").endpoint_url == "https://c.example:4318/v1/logs"

    def test_a_given_option_wins_even_empty(self, clean_env: pytest.MonkeyPatch) -> None:
        clean_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c.example:4318")
        clean_env.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")
        options = TelemetryOptions(protocol="otlp", endpoint_url="", timeout_seconds=10)
        assert options.endpoint_url == "" and options.timeout_seconds == 10

    @needs_proto
    def test_headers_protocol_compression_timeout(self, clean_env: pytest.MonkeyPatch) -> None:
        clean_env.setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20abc , X-Tenant=t1")
        clean_env.setenv("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/protobuf")
        clean_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        clean_env.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
        clean_env.setenv("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "2500")
        options = TelemetryOptions(protocol="otlp")
        assert options.headers == {"Authorization": "Bearer abc", "X-Tenant": "t1"}
        assert options.otlp_encoding == "protobuf"
        assert options.compression == "gzip"
        assert options.timeout_seconds == 2.5
        assert "abc" not in repr(options)

    def test_service_name_and_resource_attributes(self, clean_env: pytest.MonkeyPatch) -> None:
        clean_env.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-resource,team=a")
        assert TelemetryOptions(protocol="otlp").application_name == "from-resource"
        clean_env.setenv("OTEL_SERVICE_NAME", "from-env")
        options = TelemetryOptions(protocol="otlp")
        assert options.application_name == "from-env"
        assert options.resource_attributes == {"service.name": "from-resource", "team": "a"}
        assert TelemetryOptions(protocol="otlp", application_name="mine").application_name == "mine"

    @pytest.mark.parametrize(
        ("name", "value", "fragment"),
        [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "OTEL_EXPORTER_OTLP_PROTOCOL"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon", "OTEL_EXPORTER_OTLP_TIMEOUT"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://x", "OTEL_EXPORTER_OTLP_ENDPOINT"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd", "OTEL_EXPORTER_OTLP_COMPRESSION"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "novalue", "OTEL_EXPORTER_OTLP_HEADERS"),
        ],
    )
    def test_bad_variables_fail_at_construction(
        self, clean_env: pytest.MonkeyPatch, name: str, value: str, fragment: str
    ) -> None:
        clean_env.setenv(name, value)
        with pytest.raises(ValueError, match=fragment):
            TelemetryOptions(protocol="otlp")

    def test_sdk_disabled_records_and_sends_nothing(
        self, clean_env: pytest.MonkeyPatch, make_client: MakeClient, queue_path: Path
    ) -> None:
        clean_env.setenv("OTEL_SDK_DISABLED", "TRUE")
        client = make_client(protocol="otlp", endpoint_url="http://127.0.0.1:9/v1/logs")
        assert client.options.sdk_disabled
        client.track("a")
        client.track_exception(ValueError("x"))
        assert client.queued_count == 0
        assert not client.flush(1)


class TestOptionErrors:
    @pytest.mark.parametrize(
        ("kwargs", "fragment"),
        [
            ({"protocol": "otel"}, "protocol"),
            ({"protocol": "otlp", "otlp_encoding": "xml"}, "otlp_encoding"),
            ({"compression": "br"}, "compression"),
            ({"protocol": "otlp", "compression": "deflate"}, "compression"),
            ({"headers": {"Content-Type": "x"}}, "Content-Type"),
            ({"headers": {"bad name": "x"}}, "header name"),
            ({"headers": ["a"]}, "headers"),
            ({"resource_attributes": {"k": {"nested": 1}}}, "resource_attributes"),
        ],
    )
    def test_bad_options_raise_value_error_naming_them(self, kwargs: Any, fragment: str) -> None:
        with pytest.raises(ValueError, match=fragment):
            TelemetryOptions(**kwargs)

    def test_a_header_value_is_never_echoed(self) -> None:
        with pytest.raises(ValueError) as info:
            TelemetryOptions(headers={"Authorization": "Bearer secret\n"})
        assert "secret" not in str(info.value)

    @needs_proto
    def test_protobuf_is_imported_only_when_chosen(self, tmp_path: Path) -> None:
        result = run_python(
            "import sys\n"
            "from trace_telemetry import TelemetryClient, TelemetryOptions\n"
            f"TelemetryClient(TelemetryOptions(protocol='otlp', queue_path={str(tmp_path / 'q')!r})).track('a')\n"
            "assert not [m for m in sys.modules if m.startswith(('google', 'opentelemetry'))], 'imported'\n"
            f"TelemetryClient(TelemetryOptions(protocol='otlp', otlp_encoding='protobuf', queue_path={str(tmp_path / 'p')!r}))\n"
            "assert 'opentelemetry.proto.logs.v1.logs_pb2' in sys.modules\n"
        )
        assert result.returncode == 0, result.stderr


def test_options_stay_hashable_and_comparable() -> None:
    first = TelemetryOptions(protocol="otlp", headers={"A": "b"}, resource_attributes={"z": [1, 2]})
    second = TelemetryOptions(
        protocol="otlp", headers={"A": "b"}, resource_attributes={"z": [1, 2]}
    )
    assert first == second and hash(first) == hash(second)
    assert hash(TelemetryOptions()) == hash(TelemetryOptions())
    with pytest.raises(TypeError):
        first.headers["A"] = "c"  # type: ignore[index]
