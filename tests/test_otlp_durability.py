"""OTLP export under faults and from the command line: SIGKILL mid-drain, ``flush``, ``serve``."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from trace_telemetry import TelemetryClient, TelemetryHandler, TelemetryOptions

from .conftest import popen_python, read_lines, run_python
from .otlp_support import Collector, attributes, plain


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector().start()
    try:
        yield server
    finally:
        server.stop()
    assert not server.errors, server.errors


def seed(queue: Path, count: int) -> List[str]:
    """``count`` events through track() and the handler, written by an OTLP client."""
    client = TelemetryClient(
        TelemetryOptions(protocol="otlp", endpoint_url="", queue_path=str(queue))
    )
    logger = logging.getLogger("seed.otlp")
    handler = TelemetryHandler(client=client)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for index in range(count):
            if index % 2:
                client.track("s", {"i": index})
            else:
                logger.warning("w %d", index, extra={"i": index})
    finally:
        logger.removeHandler(handler)
        client.close()
    return [event["id"] for event in read_lines(queue)]


SENDER = r"""
import sys
from trace_telemetry import TelemetryClient, TelemetryOptions
client = TelemetryClient(TelemetryOptions(queue_path=sys.argv[1], endpoint_url=sys.argv[2],
    protocol="otlp", otlp_encoding=sys.argv[3], batch_size=20, max_in_flight=4))
print("ready", flush=True)
client.flush(timeout=120)
"""


class TestKill:
    @pytest.mark.parametrize("encoding", ["json", "protobuf"])
    def test_sigkill_mid_drain_loses_nothing(
        self, tmp_path: Path, collector: Collector, encoding: str
    ) -> None:
        queue = tmp_path / "q.ndjson"
        ids = seed(queue, 600)
        assert len(ids) == 600

        def slow(captured: Any) -> None:
            time.sleep(0.02)

        collector.responder = slow
        sender = popen_python(
            SENDER, str(queue), collector.url, encoding, stdout=subprocess.PIPE, text=True
        )
        assert sender.stdout is not None
        assert sender.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 30
        while len(collector.accepted) < 8 and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(sender.pid, signal.SIGKILL)
        sender.wait(10)
        sent_before = len(collector.uids())
        assert 0 < sent_before < 600  # it really died mid-drain
        collector.responder = None
        client = TelemetryClient(
            TelemetryOptions(
                queue_path=str(queue),
                endpoint_url=collector.url,
                protocol="otlp",
                otlp_encoding=encoding,
            )
        )
        try:
            assert client.flush(60)
        finally:
            client.close()
        received = collector.uids()
        assert set(received) == set(ids)  # 0 lost
        # At-least-once: at most the batches in flight (max_in_flight=4 of 20) again.
        assert len(received) - 600 <= 4 * 20


class TestTornLines:
    def test_an_event_glued_to_a_torn_line_is_salvaged_with_its_envelope(
        self, tmp_path: Path, collector: Collector
    ) -> None:
        queue = tmp_path / "q.ndjson"
        client = TelemetryClient(
            TelemetryOptions(protocol="otlp", endpoint_url=collector.url, queue_path=str(queue))
        )
        logger = logging.getLogger("torn.otlp")
        logger.setLevel(logging.INFO)
        handler = TelemetryHandler(client=client)
        logger.addHandler(handler)
        logger.propagate = False
        try:
            logger.info("before")
            with open(queue, "ab") as handle:  # a neighbour killed mid-write
                handle.write(b'{"id":"0f0e0d0c-torn","name":"half"')
            logger.warning("glued %d", 1)  # lands on the torn line, envelope and all
            logger.error("after")
            assert client.flush(10)
            assert client.stats()["corrupt"] == 1
        finally:
            logger.removeHandler(handler)
            client.close()
        records = collector.records()
        assert sorted((r.severity_text, plain(r.body)) for r in records) == [
            ("ERROR", "after"),
            ("INFO", "before"),
            ("WARNING", "glued 1"),
        ]
        assert (tmp_path / "q.ndjson.corrupt").read_bytes() == (
            b'{"id":"0f0e0d0c-torn","name":"half"\n'
        )


class TestCli:
    def test_flush_speaks_otlp(self, tmp_path: Path, collector: Collector) -> None:
        queue = tmp_path / "q.ndjson"
        ids = seed(queue, 10)
        env = dict(
            os.environ,
            OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=collector.url,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        )
        result = run_python(
            "from trace_telemetry.cli import main; raise SystemExit(main())",
            "flush",
            str(queue),
            "--protocol",
            "otlp",
            env=env,
        )
        assert result.returncode == 0, result.stderr
        assert "sent 10 events" in result.stdout
        assert sorted(collector.uids()) == sorted(ids)
        assert collector.captured[0].headers["Content-Type"] == "application/x-protobuf"

    def test_flush_without_endpoint_needs_otlp(self, tmp_path: Path) -> None:
        queue = tmp_path / "q.ndjson"
        seed(queue, 1)
        result = run_python(
            "from trace_telemetry.cli import main; raise SystemExit(main())", "flush", str(queue)
        )
        assert result.returncode == 2 and "--endpoint" in result.stderr

    def test_serve_receives_otlp_json(self, tmp_path: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        out = tmp_path / "received.ndjson"
        server = popen_python(
            "from trace_telemetry.cli import main; raise SystemExit(main())",
            "serve",
            "--protocol",
            "otlp",
            "--port",
            str(port),
            "--out",
            str(out),
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            banner = server.stdout.readline()
            assert f"http://127.0.0.1:{port}/v1/logs" in banner
            queue = tmp_path / "q.ndjson"
            ids = seed(queue, 6)
            client = TelemetryClient(
                TelemetryOptions(
                    queue_path=str(queue),
                    protocol="otlp",
                    endpoint_url=f"http://127.0.0.1:{port}/v1/logs",
                )
            )
            try:
                assert client.flush(20)
            finally:
                client.close()
            records = [json.loads(line) for line in out.read_text().splitlines()]
            assert sorted(r["attributes"]["log.record.uid"] for r in records) == sorted(ids)
            logs = [r for r in records if r.get("severityText") == "WARNING"]
            assert logs and logs[0]["scope"] == "seed.otlp" and logs[0]["body"].startswith("w ")
            protobuf = TelemetryClient(
                TelemetryOptions(
                    queue_path=str(tmp_path / "p.ndjson"),
                    protocol="otlp",
                    otlp_encoding="protobuf",
                    endpoint_url=f"http://127.0.0.1:{port}/v1/logs",
                )
            )
            try:
                protobuf.track("x")
                assert not protobuf.flush(5)  # 415: kept, never dead-lettered
                assert protobuf.queued_count == 1
            finally:
                protobuf.close()
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(10)


APP = r"""
import logging
log = logging.getLogger("shop.web")

def app(environ, start_response):
    log.warning("served %s", environ["PATH_INFO"], extra={"path": environ["PATH_INFO"]})
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""

GUNICORN_CONF = r"""
import os
workers = 2
bind = "127.0.0.1:{port}"
logconfig_dict = {{
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {{"telemetry": {{
        "class": "trace_telemetry.TelemetryHandler",
        "protocol": "otlp",
        "queue_path": {queue!r},
        "flush_interval_seconds": 1,
    }}}},
    "root": {{"level": "INFO", "handlers": []}},  # gunicorn's default root names its own handler
    "loggers": {{"shop.web": {{"handlers": ["telemetry"], "level": "INFO", "propagate": False}}}},
}}
"""


class TestGunicorn:
    def test_gunicorn_workers_export_over_otlp(self, tmp_path: Path, collector: Collector) -> None:
        import requests

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        queue = tmp_path / "q.ndjson"
        (tmp_path / "webapp.py").write_text(APP)
        (tmp_path / "gunicorn.conf.py").write_text(
            GUNICORN_CONF.format(port=port, queue=str(queue))
        )
        env = dict(
            os.environ,
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.url[: -len("/v1/logs")],
            OTEL_SERVICE_NAME="shop-web",
            PYTHONPATH=str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "webapp:app"],
            cwd=str(tmp_path),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    requests.get(f"http://127.0.0.1:{port}/ping", timeout=2)
                    break
                except requests.ConnectionError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        server.kill()
                        raise AssertionError(server.communicate()[1].decode()[-2000:]) from None
                    time.sleep(0.2)
            for index in range(40):
                assert (
                    requests.get(f"http://127.0.0.1:{port}/r{index}", timeout=5).status_code == 200
                )
            deadline = time.monotonic() + 30
            while len(collector.records()) < 41 and time.monotonic() < deadline:
                time.sleep(0.2)  # the workers' background senders deliver
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
        records = collector.records()
        paths = sorted(attributes(record)["path"] for record in records)
        assert paths == sorted(["/ping"] + [f"/r{index}" for index in range(40)])
        assert {plain(record.body) for record in records} == {f"served {path}" for path in paths}
        assert all(record.severity_number == 13 for record in records)
        for captured in collector.captured:
            for resource_logs in captured.request.resource_logs:
                assert attributes(resource_logs.resource)["service.name"] == "shop-web"
                assert [s.scope.name for s in resource_logs.scope_logs] == ["shop.web"]
