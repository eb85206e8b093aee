from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from trace_telemetry import TelemetryOptions


class TestDefaults:
    def test_defaults_match_the_seed_and_the_issue(self) -> None:
        options = TelemetryOptions()
        assert "" == options.endpoint_url
        assert "" == options.api_key
        assert "telemetry-queue.ndjson" == options.queue_path
        assert 20 == options.batch_size
        assert 10 == options.flush_interval_seconds
        assert "" == options.application_name
        assert "" == options.application_version
        assert options.enable_country_lookup is False
        assert 64 * 1024 * 1024 == options.max_queue_bytes
        assert 1024 * 1024 == options.max_event_bytes
        assert 10 == options.timeout_seconds
        assert 300 == options.max_backoff_seconds
        assert options.before_send is None
        assert 2 == options.shutdown_timeout_seconds
        assert 4 == options.max_in_flight
        assert options.compression is None


class TestValidation:
    @pytest.mark.parametrize(
        "url",
        [
            "http://[::1",
            "ftp://x",
            "not a url",
            "http://",
            "https:///path",
            "http://host:99999/x",
            "http://exa mple.com/",
        ],
    )
    def test_a_bad_endpoint_names_the_option_and_the_value(self, url: str) -> None:
        with pytest.raises(ValueError, match="endpoint_url") as info:
            TelemetryOptions(endpoint_url=url)
        assert repr(url) in str(info.value)

    @pytest.mark.parametrize(
        "url",
        [
            "",
            "http://127.0.0.1:8080/telemetry",
            "https://api.example.com/t?x=1",
            "http://[::1]:80/",
        ],
    )
    def test_good_endpoints_are_accepted(self, url: str) -> None:
        assert url == TelemetryOptions(endpoint_url=url).endpoint_url

    @pytest.mark.parametrize(
        ("option", "value"),
        [
            ("batch_size", 0),
            ("batch_size", -5),
            ("batch_size", True),
            ("batch_size", 2.5),
            ("max_queue_bytes", -1),
            ("max_event_bytes", -1),
            ("max_event_bytes", 10),
            ("timeout_seconds", 0),
            ("timeout_seconds", float("nan")),
            ("max_backoff_seconds", -1),
            ("flush_interval_seconds", float("inf")),
            ("flush_interval_seconds", "10"),
            ("queue_path", ""),
            ("queue_path", 42),
            ("application_name", None),
            ("enable_country_lookup", "yes"),
            ("before_send", "not callable"),
            ("shutdown_timeout_seconds", -1),
            ("shutdown_timeout_seconds", float("inf")),
            ("shutdown_timeout_seconds", "2"),
            ("shutdown_timeout_seconds", None),
            ("max_in_flight", 0),
            ("max_in_flight", 65),
            ("max_in_flight", True),
            ("max_in_flight", 2.0),
            ("compression", "br"),
            ("compression", "GZIP"),
            ("compression", True),
        ],
    )
    def test_invalid_values_raise_value_error_naming_the_option(
        self, option: str, value: object
    ) -> None:
        with pytest.raises(ValueError, match=option):
            TelemetryOptions(**{option: value})

    def test_flush_interval_below_one_is_raised_to_one(self) -> None:
        assert 1.0 == TelemetryOptions(flush_interval_seconds=0).flush_interval_seconds
        assert 1.0 == TelemetryOptions(flush_interval_seconds=-3).flush_interval_seconds
        assert 2.5 == TelemetryOptions(flush_interval_seconds=2.5).flush_interval_seconds

    def test_zero_shutdown_timeout_turns_the_exit_send_off(self) -> None:
        assert 0.0 == TelemetryOptions(shutdown_timeout_seconds=0).shutdown_timeout_seconds

    def test_an_empty_compression_means_none(self) -> None:
        assert TelemetryOptions(compression="").compression is None
        assert "gzip" == TelemetryOptions(compression="gzip").compression
        assert 1 == TelemetryOptions(max_in_flight=1).max_in_flight

    def test_zero_max_queue_bytes_means_unbounded(self) -> None:
        assert 0 == TelemetryOptions(max_queue_bytes=0).max_queue_bytes

    def test_application_fields_are_stripped(self) -> None:
        options = TelemetryOptions(application_name="  MeuServico ", application_version=" 1.0.0\n")
        assert ("MeuServico", "1.0.0") == (options.application_name, options.application_version)

    def test_path_like_queue_path_is_accepted(self, tmp_path: Path) -> None:
        assert (
            str(tmp_path / "q.ndjson")
            == TelemetryOptions(queue_path=tmp_path / "q.ndjson").queue_path
        )

    def test_an_api_key_with_a_newline_is_refused_without_echoing_it(self) -> None:
        with pytest.raises(ValueError, match="api_key") as info:
            TelemetryOptions(api_key="s3cr3t\r\nX-Evil: 1")
        assert "s3cr3t" not in str(info.value)

    def test_options_are_frozen(self) -> None:
        options = TelemetryOptions()
        with pytest.raises(dataclasses.FrozenInstanceError):
            options.batch_size = 0  # type: ignore[misc]
        assert 5 == dataclasses.replace(options, batch_size=5).batch_size


class TestSecrecy:
    def test_repr_and_str_never_show_the_api_key(self) -> None:
        options = TelemetryOptions(api_key="super-secret-key", endpoint_url="https://x.example/t")
        for text in (repr(options), str(options), f"{options}"):
            assert "super-secret-key" not in text
            assert "api_key='***'" in text

    def test_repr_of_an_empty_key_says_so(self) -> None:
        assert "api_key=''" in repr(TelemetryOptions())
