"""The fork-safe lazy importer: a fork during the sender's first import cannot wedge a child."""

from __future__ import annotations

from pathlib import Path

from trace_telemetry._receiver import Receiver

from .conftest import read_lines, run_python

FORK_DURING_FIRST_SEND = r"""
import os, sys, threading, time
assert "requests" not in sys.modules
from trace_telemetry import TelemetryClient, TelemetryOptions
client = TelemetryClient(TelemetryOptions(queue_path=sys.argv[1], endpoint_url=sys.argv[2]))
client.track("parent")
sender = threading.Thread(target=client.flush, kwargs={"timeout": 10})
sender.start()
time.sleep(0.03)  # inside the sender's first `import requests`
pid = os.fork()
if pid == 0:
    started = time.monotonic()
    client.track("child")
    ok = client.flush(timeout=2)
    elapsed = time.monotonic() - started
    os.write(1, f"child {ok} {elapsed:.2f}\n".encode())
    os._exit(0)
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    time.sleep(0.05)
else:
    os.kill(pid, 9)
    print("child hung")
    sys.exit(1)
sender.join(10)
client.track("parent-after")
print("parent", client.flush(timeout=5))
"""


def test_a_fork_during_the_senders_first_import_leaves_a_working_child(
    tmp_path: Path, receiver: Receiver
) -> None:
    queue = tmp_path / "q.ndjson"
    result = run_python(FORK_DURING_FIRST_SEND, str(queue), receiver.url, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.split("\n")
    child = next(line for line in lines if line.startswith("child")).split()
    assert child[1] == "True"  # the child delivered, within its budget
    assert float(child[2]) < 2 + 2  # flush(timeout=2) returned in time (generous slack)
    assert "parent True" in result.stdout  # and nobody holds the sender lock
    names = sorted(event["name"] for event in receiver.events)
    assert names == ["child", "parent", "parent-after"]
    assert read_lines(queue) == []


def test_load_returns_the_module_and_imports_once() -> None:
    from trace_telemetry._imports import load

    assert load("json") is __import__("json")
    assert load("email.utils").parsedate_to_datetime is not None
