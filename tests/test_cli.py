"""The command line as a user runs it: real subprocesses, real files, a real receiver."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path
from typing import Callable

import pytest

from trace_telemetry import TelemetryClient, TelemetryOptions
from trace_telemetry._receiver import Receiver

from .conftest import Behaviour, popen_python, read_lines, run_python

MakeClient = Callable[..., TelemetryClient]
CLI = "import sys; from trace_telemetry.cli import main; sys.exit(main(sys.argv[1:]))"


def cli(*args: str, **kwargs: object) -> subprocess.CompletedProcess:
    return run_python(CLI, *args, **kwargs)  # type: ignore[arg-type]


def filled_queue(path: Path, count: int) -> Path:
    client = TelemetryClient(TelemetryOptions(queue_path=str(path)))
    for index in range(count):
        client.track(f"event-{index}", {"i": index})
    client.close()
    return path


class TestDemo:
    def test_demo_exits_0_and_lists_every_event(self) -> None:
        code = "import runpy, sys; sys.argv = ['trace-telemetry', 'demo']; runpy.run_module('trace_telemetry', run_name='__main__')"
        result = run_python(code, timeout=120)
        assert 0 == result.returncode, result.stdout + result.stderr
        for name in (
            "page_view",
            "purchase",
            "signup",
            "order %s shipped",
            "cart_updated",
            "coupon_rejected",
        ):
            assert name in result.stdout
        for door in ("client.track", "logging", "structlog"):
            assert door in result.stdout
        assert "8 events queued, 8 arrived" in result.stdout
        assert "OK: every event arrived." in result.stdout
        assert re.search(r"\n[12]\s+5\s+[\d.]+ KiB\s+200", result.stdout)  # in flight: any order


class TestServe:
    def test_serve_receives_from_a_real_client(
        self, tmp_path: Path, make_client: MakeClient
    ) -> None:
        out = tmp_path / "received.ndjson"
        server = popen_python(
            CLI,
            "serve",
            "--port",
            "0",
            "--out",
            str(out),
            "--api-key",
            "k",
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            first = server.stdout.readline()
            url = re.search(r"(http://\S+)", first).group(1)  # type: ignore[union-attr]
            client = make_client(endpoint_url=url, api_key="k", batch_size=2)
            for index in range(3):
                client.track("served", index)
            assert client.flush(timeout=10)
            wrong = make_client(
                endpoint_url=url, api_key="wrong", queue_path=str(tmp_path / "other.ndjson")
            )
            wrong.track("unauthorised")
            assert wrong.flush(timeout=10) is False
            assert "401" in wrong.stats()["last_error"]
            lines = [server.stdout.readline() for _ in range(3)]
        finally:
            server.send_signal(signal.SIGINT)
            rest = server.communicate(timeout=10)[0]
        assert 0 == server.returncode
        assert all(re.search(r"POST /telemetry \d events", line) for line in lines[:2])
        assert "POST /telemetry refused: 401 invalid api key" in lines[2]
        assert [0, 1, 2] == sorted(e["data"] for e in read_lines(out))  # batches in parallel
        assert "received 3 events in 2 requests" in rest
        assert 0o600 == out.stat().st_mode & 0o777

    def test_serve_plays_a_failing_server_and_logs_each_refusal(
        self, tmp_path: Path, make_client: MakeClient
    ) -> None:
        out = tmp_path / "received.ndjson"
        server = popen_python(
            CLI, "serve", "--port", "0", "--out", str(out), "--status", "503",
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert server.stdout is not None
            first = server.stdout.readline()
            assert "answering every request with 503" in first
            url = re.search(r"(http://\S+)", first).group(1)  # type: ignore[union-attr]
            client = make_client(endpoint_url=url)
            client.track("kept")
            assert client.flush(timeout=10) is False
            assert "503" in client.stats()["last_error"]
            assert 1 == client.queued_count  # a 503 keeps the event queued
            refusal = server.stdout.readline()
        finally:
            server.send_signal(signal.SIGINT)
            rest = server.communicate(timeout=10)[0]
        assert "POST /telemetry refused: 503 1 events not accepted" in refusal
        assert "received 0 events in 1 requests" in rest
        assert not out.exists()

    @pytest.mark.parametrize("code", ["abc", "99", "600"])
    def test_a_bad_status_is_a_usage_error(self, code: str) -> None:
        result = cli("serve", "--status", code)
        assert 2 == result.returncode
        assert "--status must be an HTTP status from 200 to 599" in result.stderr

    def test_serve_rejects_non_json_with_400(self) -> None:
        import requests

        with Receiver() as receiver:
            answer = requests.post(receiver.url, data=b"not json", timeout=5)
            assert 400 == answer.status_code
            assert (
                400 == requests.post(receiver.url, json={"not": "an array"}, timeout=5).status_code
            )

    def test_a_busy_port_is_a_clear_error(self) -> None:
        with Receiver() as receiver:
            port = receiver.server_address[1]
            result = cli("serve", "--port", str(port))
        assert 2 == result.returncode
        assert result.stderr.startswith("error: cannot listen on")
        assert "Traceback" not in result.stderr


class TestStatus:
    def test_status_of_a_queue(self, tmp_path: Path) -> None:
        queue = filled_queue(tmp_path / "q.ndjson", 5)
        (tmp_path / "q.ndjson.rejected").write_text('{"x":1}\n')
        result = cli("status", str(queue))
        assert 0 == result.returncode, result.stderr
        assert re.search(r"pending\s+5 events", result.stdout)
        assert re.search(r"rejected\s+1 events", result.stdout)
        assert re.search(r"sender\s+idle", result.stdout)
        info = json.loads(cli("status", str(queue), "--json").stdout)
        events = read_lines(queue)
        assert (5, events[0]["timestampUtc"], events[-1]["timestampUtc"], 0) == (
            info["pending_events"],
            info["oldest"],
            info["newest"],
            info["corrupt_lines"],
        )

    def test_status_of_an_empty_and_a_corrupt_queue(self, tmp_path: Path) -> None:
        empty = tmp_path / "empty.ndjson"
        empty.write_bytes(b"")
        info = json.loads(cli("status", str(empty), "--json").stdout)
        assert (0, None, None) == (info["pending_events"], info["oldest"], info["newest"])
        corrupt = tmp_path / "corrupt.ndjson"
        corrupt.write_bytes(b"garbage\n{\n")
        filled = filled_queue(corrupt, 1)
        info = json.loads(cli("status", str(filled), "--json").stdout)
        assert (1, 2) == (info["pending_events"], info["pending_invalid_lines"])
        assert info["oldest"] is not None

    def test_status_and_peek_report_invalid_lines_the_same_way(self, tmp_path: Path) -> None:
        queue = tmp_path / "q.ndjson"
        queue.write_bytes(b"garbage\n{\n")
        filled_queue(queue, 1)
        note = "2 pending lines are not events (moved to .corrupt at the next send)"
        status = cli("status", str(queue))
        assert re.search(r"pending\s+1 events", status.stdout)
        assert re.search(r"invalid\s+" + re.escape(note), status.stdout)
        peek = cli("peek", str(queue))
        assert "event-0" in peek.stdout
        assert re.search(r"invalid\s+" + re.escape(note), peek.stdout)
        raw = cli("peek", str(queue), "--json")
        assert ["event-0"] == [json.loads(line)["name"] for line in raw.stdout.splitlines()]
        assert note in raw.stderr

    def test_a_missing_queue_is_a_clear_error(self, tmp_path: Path) -> None:
        for command in ("status", "peek", "requeue"):
            result = cli(command, str(tmp_path / "nope.ndjson"))
            assert 2 == result.returncode
            assert result.stderr.startswith("error: no queue file at")
        assert not (tmp_path / "nope.ndjson").exists()
        assert not (tmp_path / "nope.ndjson.offset").exists()

    def test_status_sees_a_sender_at_work(
        self, tmp_path: Path, receiver: Receiver, behaviour: Behaviour
    ) -> None:
        queue = filled_queue(tmp_path / "q.ndjson", 1)
        behaviour.release.clear()
        sender = popen_python(
            "import sys; from trace_telemetry import *; TelemetryClient(TelemetryOptions(queue_path=sys.argv[1], endpoint_url=sys.argv[2])).flush(30)",
            str(queue),
            receiver.url,
        )
        try:
            import time

            # The receiver holds the request unanswered (it records it only
            # once answered): poll until the sender holds the queue.
            deadline = time.monotonic() + 8
            output = ""
            while time.monotonic() < deadline:
                output = cli("status", str(queue)).stdout
                if re.search(r"sender\s+a process is sending now", output):
                    break
            assert re.search(r"sender\s+a process is sending now", output)
        finally:
            behaviour.release.set()
            sender.wait(30)


class TestPeek:
    def test_peek_pretty_and_json(self, tmp_path: Path) -> None:
        queue = filled_queue(tmp_path / "q.ndjson", 5)
        pretty = cli("peek", str(queue), "-n", "2")
        assert 0 == pretty.returncode
        assert (
            "event-0" in pretty.stdout
            and "event-1" in pretty.stdout
            and "event-2" not in pretty.stdout
        )
        raw = cli("peek", str(queue), "-n", "3", "--json").stdout.splitlines()
        assert ["event-0", "event-1", "event-2"] == [json.loads(line)["name"] for line in raw]

    def test_peek_skips_garbage_and_handles_empty(self, tmp_path: Path) -> None:
        queue = tmp_path / "q.ndjson"
        queue.write_bytes(b"garbage\n")
        assert "no pending events" in cli("peek", str(queue)).stdout
        queue.write_bytes(b"")
        assert "the queue is empty" in cli("peek", str(queue)).stdout
        filled_queue(queue, 1)
        assert ["event-0"] == [
            json.loads(x)["name"] for x in cli("peek", str(queue), "--json").stdout.splitlines()
        ]

    def test_bad_count_is_a_usage_error(self, tmp_path: Path) -> None:
        result = cli("peek", str(filled_queue(tmp_path / "q.ndjson", 1)), "-n", "0")
        assert 2 == result.returncode
        assert "error: -n must be at least 1" in result.stderr


class TestFlush:
    def test_flush_drains_with_a_summary(self, tmp_path: Path, receiver: Receiver) -> None:
        queue = filled_queue(tmp_path / "q.ndjson", 25)
        result = cli("flush", str(queue), "--endpoint", receiver.url, "--batch-size", "10")
        assert 0 == result.returncode, result.stderr
        assert (
            "sent 25 events in 3 requests; 0 rejected, 0 corrupt lines set aside; 0 still queued"
            in result.stdout
        )
        assert 25 == len(receiver.events)

    def test_the_api_key_can_come_from_the_environment(self, tmp_path: Path) -> None:
        import os

        queue = filled_queue(tmp_path / "q.ndjson", 2)
        with Receiver(api_key="from-env") as receiver:
            env = dict(os.environ, TRACE_TELEMETRY_API_KEY="from-env")
            result = run_python(CLI, "flush", str(queue), "--endpoint", receiver.url, env=env)
            assert 0 == result.returncode, result.stderr
            assert 2 == len(receiver.events)

    def test_a_refused_connection_fails_clearly_and_keeps_events(self, tmp_path: Path) -> None:
        queue = filled_queue(tmp_path / "q.ndjson", 3)
        result = cli("flush", str(queue), "--endpoint", "http://127.0.0.1:9/telemetry")
        assert 1 == result.returncode
        assert result.stderr.startswith("error: not everything was sent: ConnectionError")
        assert "Traceback" not in result.stderr
        assert "3 still queued" in result.stdout

    @pytest.mark.parametrize("url", ["not a url", "ftp://x", "http://[::1"])
    def test_a_bad_url_is_a_usage_error(self, tmp_path: Path, url: str) -> None:
        result = cli("flush", str(filled_queue(tmp_path / "q.ndjson", 1)), "--endpoint", url)
        assert 2 == result.returncode
        assert "endpoint_url must be empty or an http(s):// URL" in result.stderr

    def test_corrupt_lines_are_set_aside(self, tmp_path: Path, receiver: Receiver) -> None:
        queue = tmp_path / "q.ndjson"
        queue.write_bytes(b"garbage\n")
        filled_queue(queue, 2)
        result = cli("flush", str(queue), "--endpoint", receiver.url)
        assert 0 == result.returncode
        assert "sent 2 events in 1 requests; 0 rejected, 1 corrupt lines set aside" in result.stdout


class TestRequeue:
    def test_rejected_events_go_back_into_the_queue(
        self, tmp_path: Path, receiver: Receiver, behaviour: Behaviour
    ) -> None:
        queue = filled_queue(tmp_path / "q.ndjson", 4)
        behaviour.respond = lambda events, headers: (
            (400, {}) if any(e["name"] == "event-2" for e in events) else None
        )
        refused = cli("flush", str(queue), "--endpoint", receiver.url)
        assert 1 == refused.returncode  # a rejected event was not delivered
        assert "1 rejected" in refused.stdout
        assert "error: the endpoint refused 1 events" in refused.stderr
        assert ["event-2"] == [e["name"] for e in read_lines(Path(str(queue) + ".rejected"))]
        behaviour.respond = None  # the server was fixed
        result = cli("requeue", str(queue))
        assert 0 == result.returncode
        assert "requeued 1 events" in result.stdout
        assert not Path(str(queue) + ".rejected").exists()
        assert 0 == cli("flush", str(queue), "--endpoint", receiver.url).returncode
        assert sorted(f"event-{i}" for i in range(4)) == sorted(e["name"] for e in receiver.events)

    def test_nothing_to_requeue(self, tmp_path: Path) -> None:
        result = cli("requeue", str(filled_queue(tmp_path / "q.ndjson", 1)))
        assert (0, "nothing to requeue\n") == (result.returncode, result.stdout)


class TestHelp:
    @pytest.mark.parametrize("command", ["", "demo", "serve", "status", "peek", "flush", "requeue"])
    def test_every_command_has_help(self, command: str) -> None:
        result = cli(*([command] if command else []), "--help")
        assert 0 == result.returncode
        assert "usage: trace-telemetry" in result.stdout

    def test_no_command_prints_help_and_fails(self) -> None:
        result = cli()
        assert 2 == result.returncode
        assert "commands" in result.stdout


def test_import_does_not_import_the_cli_or_requests() -> None:
    result = run_python(
        "import sys, trace_telemetry; print(sorted(m for m in ('requests', 'argparse', 'structlog', 'pythonjsonlogger', 'trace_telemetry.cli') if m in sys.modules))"
    )
    assert "[]" == result.stdout.strip(), result.stderr


def test_the_demo_does_not_import_the_cli() -> None:
    """No import cycle: the output helpers live in ``_table``."""
    result = run_python(
        "import sys, trace_telemetry._demo; print('trace_telemetry.cli' in sys.modules)"
    )
    assert ("False\n", 0) == (result.stdout, result.returncode), result.stderr
