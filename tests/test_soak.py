"""Long stress runs (``tox -e soak``): many writers, a flaky server, a sender killed again and again."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Set

import pytest

from trace_telemetry import TelemetryClient, TelemetryOptions
from trace_telemetry._receiver import Receiver

from .conftest import Behaviour, popen_python

pytestmark = pytest.mark.soak

WRITER = r"""
import sys, time
from trace_telemetry import TelemetryClient, TelemetryOptions
client = TelemetryClient(TelemetryOptions(queue_path=sys.argv[1], max_queue_bytes=0))
worker, seconds = sys.argv[2], float(sys.argv[3])
index, end = 0, time.monotonic() + seconds
while time.monotonic() < end:
    client.track("soak", {"w": worker, "i": index})
    index += 1
    if index % 200 == 0:
        time.sleep(0.01)
print(index, flush=True)
"""

SENDER = r"""
import sys, time
from trace_telemetry import TelemetryClient, TelemetryOptions
client = TelemetryClient(TelemetryOptions(queue_path=sys.argv[1], endpoint_url=sys.argv[2], batch_size=100, flush_interval_seconds=1, max_backoff_seconds=2, max_queue_bytes=0))
client.start()
time.sleep(3600)
"""


def test_writers_flaky_server_and_killed_senders_lose_nothing(
    tmp_path: Path, receiver: Receiver, behaviour: Behaviour
) -> None:
    rng = random.Random(7)
    behaviour.respond = lambda events, headers: (503, {}) if rng.random() < 0.15 else None
    queue = tmp_path / "soak.ndjson"
    writers = [
        popen_python(WRITER, str(queue), str(w), "25", stdout=subprocess.PIPE, text=True)
        for w in range(4)
    ]
    kills = 0
    deadline = time.monotonic() + 240
    while any(w.poll() is None for w in writers) and time.monotonic() < deadline:
        sender = popen_python(SENDER, str(queue), receiver.url)
        time.sleep(rng.uniform(0.3, 1.5))
        os.kill(sender.pid, signal.SIGKILL)
        sender.wait(10)
        kills += 1
    counts = [int(writer.communicate(timeout=60)[0]) for writer in writers]
    behaviour.respond = None
    client = TelemetryClient(
        TelemetryOptions(
            queue_path=str(queue), endpoint_url=receiver.url, batch_size=500, max_queue_bytes=0
        )
    )
    assert client.flush(timeout=300)
    client.close()
    seen: Set[tuple] = {(e["data"]["w"], e["data"]["i"]) for e in receiver.events}
    assert {(str(w), i) for w in range(4) for i in range(counts[w])} == seen
    assert kills >= 10
    duplicates = len(receiver.events) - len(seen)
    assert duplicates <= kills * 100  # at most one batch again per killed sender
    assert not Path(str(queue) + ".corrupt").exists()
    print(f"soak: {kills} sender kills, {len(receiver.events)} received, {duplicates} duplicates")


def test_a_bounded_queue_stays_bounded_under_a_long_burst(tmp_path: Path) -> None:
    queue = tmp_path / "bounded.ndjson"
    client = TelemetryClient(TelemetryOptions(queue_path=str(queue), max_queue_bytes=1 << 20))
    payload: Dict[str, Any] = {"pad": "x" * 200}
    sizes: List[int] = []
    for index in range(100_000):
        client.track("burst", payload)
        if index % 5000 == 0:
            sizes.append(queue.stat().st_size)
    assert max(sizes) <= (1 << 20) * 5 // 4
    stats = client.stats()
    assert stats["enqueued"] + stats["dropped_total"] >= 100_000
    assert stats["enqueued"] - stats["dropped"].get("queue_full", 0) == client.queued_count
    client.close()
