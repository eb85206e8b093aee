"""The send at interpreter exit (``shutdown_timeout_seconds``), in real subprocesses.

Each test runs a short script against a real receiver on 127.0.0.1. Exit
durations are measured from the end of the script's body (it prints
``time.time()`` last) to the end of the process, so interpreter start-up
does not count; bounds have generous slack.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Tuple

from tests.conftest import Behaviour, read_lines, run_python
from trace_telemetry import TelemetryClient, TelemetryOptions
from trace_telemetry._receiver import Receiver

SLACK = 2.0

PRELUDE = """
import json, logging, logging.config, os, socket, sys, time
from trace_telemetry import TelemetryClient, TelemetryOptions
url, queue = sys.argv[1], sys.argv[2]
"""

END = "\nprint(json.dumps(time.time()), flush=True)\n"


def run_script(body: str, url: str, queue: Path) -> Tuple[float, str]:
    """Run ``body`` after PRELUDE; returns (seconds spent exiting, stderr)."""
    result = run_python(PRELUDE + body + END, url, str(queue))
    ended = time.time()
    assert result.returncode == 0, result.stderr
    body_done = json.loads(result.stdout.strip().splitlines()[-1])
    return ended - body_done, result.stderr


def pending(queue: Path) -> int:
    client = TelemetryClient(TelemetryOptions(queue_path=str(queue)))
    try:
        return client.queued_count
    finally:
        client.close()


def refused_url() -> str:
    """A 127.0.0.1 URL nobody listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/telemetry"


def test_a_short_script_delivers_everything_at_exit(receiver: Receiver, queue_path: Path) -> None:
    body = """
client = TelemetryClient(TelemetryOptions(endpoint_url=url, queue_path=queue))
client.start()
for number in range(10):
    client.track("cron_step", {"n": number})
"""
    run_script(body, receiver.url, queue_path)
    assert sorted(e["data"]["n"] for e in receiver.events) == list(range(10))
    assert pending(queue_path) == 0


def test_a_hanging_server_never_delays_exit_past_the_budget(
    receiver: Receiver, behaviour: Behaviour, queue_path: Path
) -> None:
    behaviour.release.clear()  # every request hangs (30 s)
    body = """
client = TelemetryClient(TelemetryOptions(
    endpoint_url=url, queue_path=queue, timeout_seconds=30, shutdown_timeout_seconds=1))
client.start()
for number in range(10):
    client.track("step", number)
"""
    spent, _ = run_script(body, receiver.url, queue_path)
    assert len(receiver.requests) == 0  # the request never got an answer
    assert spent < 1 + SLACK
    assert pending(queue_path) == 10  # nothing lost: it stays queued for the next run


def test_a_hanging_dns_lookup_never_delays_exit_past_the_budget(
    receiver: Receiver, queue_path: Path
) -> None:
    """``requests``' timeout does not cover name resolution: the budget still holds."""
    body = """
def resolve_forever(*args, **kwargs):
    time.sleep(60)
    raise socket.gaierror("unreachable")
socket.getaddrinfo = resolve_forever
client = TelemetryClient(TelemetryOptions(
    endpoint_url=url.replace("127.0.0.1", "telemetry.invalid"), queue_path=queue,
    shutdown_timeout_seconds=1))
client.start()
client.track("step")
"""
    spent, _ = run_script(body, receiver.url, queue_path)
    assert spent < 1 + SLACK
    assert pending(queue_path) == 1


def test_a_client_backing_off_does_not_try_at_exit(tmp_path: Path, queue_path: Path) -> None:
    """An offline laptop: after a refused connection the exit does not pay the budget.

    Every POST attempt is logged to a file; after the first failure name
    resolution is made to hang, so an attempt at exit would cost the
    whole (long) budget.
    """
    attempts = tmp_path / "attempts.log"
    body = f"""
client = TelemetryClient(TelemetryOptions(
    endpoint_url=url, queue_path=queue, shutdown_timeout_seconds=20))
from trace_telemetry._transport import HttpTransport
post = HttpTransport.post
def counting_post(self, body, timeout):
    with open({str(attempts)!r}, "a") as log:
        log.write("post\\n")
    return post(self, body, timeout)
HttpTransport.post = counting_post
client.start()
client.track("offline")
assert client.flush(timeout=5) is False
assert client.stats()["backing_off"]
socket.getaddrinfo = lambda *a, **k: time.sleep(60)
client.track("still offline")
"""
    spent, _ = run_script(body, refused_url(), queue_path)
    assert attempts.read_text().splitlines() == ["post"]  # the flush only
    assert spent < SLACK  # far below the 20 s budget
    assert pending(queue_path) == 2


def test_a_stopped_client_sends_nothing_at_exit(receiver: Receiver, queue_path: Path) -> None:
    body = """
client = TelemetryClient(TelemetryOptions(endpoint_url=url, queue_path=queue))
client.start()
for number in range(5):
    client.track("step", number)
client.stop()
"""
    run_script(body, receiver.url, queue_path)
    assert receiver.requests == []
    assert pending(queue_path) == 5


def test_a_client_never_started_sends_nothing_at_exit(receiver: Receiver, queue_path: Path) -> None:
    body = """
client = TelemetryClient(TelemetryOptions(endpoint_url=url, queue_path=queue))
client.track("step")
"""
    run_script(body, receiver.url, queue_path)
    assert receiver.requests == []
    assert pending(queue_path) == 1


def test_zero_turns_the_exit_send_off(receiver: Receiver, queue_path: Path) -> None:
    body = """
client = TelemetryClient(TelemetryOptions(
    endpoint_url=url, queue_path=queue, shutdown_timeout_seconds=0))
client.start()
client.track("step")
"""
    run_script(body, receiver.url, queue_path)
    assert receiver.requests == []
    assert pending(queue_path) == 1


HANDLER_AND_CLIENT = """
budget = float(sys.argv[3])
handler_queue = os.path.join(os.path.dirname(queue), "handler.ndjson")
logging.config.dictConfig({
    "version": 1,
    "handlers": {"telemetry": {
        "class": "trace_telemetry.TelemetryHandler", "endpoint_url": url,
        "queue_path": handler_queue, "timeout_seconds": 30,
        "shutdown_timeout_seconds": budget}},
    "root": {"handlers": ["telemetry"], "level": "INFO"},
})
client = TelemetryClient(TelemetryOptions(
    endpoint_url=url, queue_path=queue, timeout_seconds=30, shutdown_timeout_seconds=budget))
client.start()
for number in range(3):
    logging.getLogger("app").warning("disk %d%% full", 90 + number)
    client.track("step", number)
"""


def run_handler_and_client(url: str, queue: Path, budget: float) -> float:
    result = run_python(PRELUDE + HANDLER_AND_CLIENT + END, url, str(queue), str(budget))
    ended = time.time()
    assert result.returncode == 0, result.stderr
    return ended - json.loads(result.stdout.strip().splitlines()[-1])


def test_a_handler_and_a_client_deliver_at_exit(receiver: Receiver, queue_path: Path) -> None:
    run_handler_and_client(receiver.url, queue_path, 2)
    names = sorted(e["name"] for e in receiver.events)
    assert names == ["disk %d%% full"] * 3 + ["step"] * 3


def test_a_handler_and_a_client_share_one_budget(
    receiver: Receiver, behaviour: Behaviour, queue_path: Path
) -> None:
    """Paid per client or again by ``logging.shutdown``, this would take 2 × 3 s or more."""
    behaviour.release.clear()
    spent = run_handler_and_client(receiver.url, queue_path, 3)
    assert spent < 3 + 1.5
    assert pending(queue_path) == 3
    assert len(read_lines(queue_path.parent / "handler.ndjson")) == 3


def test_a_processor_built_from_options_delivers_at_exit(
    receiver: Receiver, queue_path: Path
) -> None:
    body = """
import structlog
from trace_telemetry import TelemetryProcessor
structlog.configure(processors=[
    TelemetryProcessor(endpoint_url=url, queue_path=queue, drop=True)])
for number in range(3):
    structlog.get_logger().info("job_done", n=number)
"""
    run_script(body, receiver.url, queue_path)
    assert [e["data"]["n"] for e in receiver.events] == [0, 1, 2]
