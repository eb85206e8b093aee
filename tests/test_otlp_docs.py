"""The examples of docs/otlp.md run (the app) or are checked (the Collector configuration)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from .conftest import ROOT, run_python
from .otlp_support import Collector, attributes, plain

EXAMPLES = ROOT / "docs" / "examples"


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector().start()
    try:
        yield server
    finally:
        server.stop()
    assert not server.errors, server.errors


def test_the_otlp_example_delivers_an_event_and_a_log_record(
    collector: Collector, tmp_path: Path
) -> None:
    base = collector.url[: -len("/v1/logs")]
    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=base)
    for name in ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME"):
        env.pop(name, None)
    code = f"import runpy; runpy.run_path({str(EXAMPLES / 'otlp_app.py')!r}, run_name='__main__')"
    result = run_python(code, env=env, cwd=str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    event, log = collector.records()
    assert event.event_name == "purchase" and attributes(event)["amount"] == 12.5
    assert plain(log.body) == "payment took 950 ms" and log.severity_number == 13
    resource = attributes(collector.captured[0].request.resource_logs[0].resource)
    assert resource["service.name"] == "shop"
    assert resource["deployment.environment.name"] == "prod"


def test_the_collector_configuration_wires_otlp_http_batch_and_an_exporter() -> None:
    """No Collector binary in the test environment: the wiring is checked, not run."""
    import yaml

    config = yaml.safe_load((EXAMPLES / "otel-collector.yaml").read_text())
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    assert "batch" in config["processors"]
    pipeline = config["service"]["pipelines"]["logs"]
    assert pipeline["receivers"] == ["otlp"]
    assert "batch" in pipeline["processors"]
    assert pipeline["processors"][-1] == "batch"  # memory_limiter first, batch last
    for name in pipeline["exporters"]:
        assert name in config["exporters"]
    for name in config["service"].get("extensions", []):
        assert name in config["extensions"]
