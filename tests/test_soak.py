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
    assert duplicates <= kills * 100 * 4  # at most the batches in flight (max_in_flight=4) per kill
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


ACKED_WRITER = r"""
import os, sys
from trace_telemetry import TelemetryClient, TelemetryOptions
client = TelemetryClient(TelemetryOptions(queue_path=sys.argv[1], max_queue_bytes=0))
worker, ack = sys.argv[2], sys.argv[3]
fd = os.open(ack, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
index = 0
while True:
    client.track("soak", {"w": worker, "i": index})
    if index % 50 == 0:
        os.write(fd, b"%d\n" % index)  # everything up to here was acknowledged
    index += 1
"""


@pytest.mark.timeout(600)
def test_killed_writers_killed_senders_and_hands_on_the_files_lose_nothing_acknowledged(
    tmp_path: Path, receiver: Receiver, behaviour: Behaviour
) -> None:
    """The kill storm, plus the faults of the queue's edge cases, all at once."""
    rng = random.Random(11)

    def flaky(events: list, headers: dict) -> Any:
        roll = rng.random()
        if roll < 0.10:
            return (503, {})
        if roll < 0.15 and len(events) > 20:
            return (413, {})
        return None

    behaviour.respond = flaky
    queue = tmp_path / "storm.ndjson"
    acks = tmp_path / "acks"
    acks.mkdir()
    writers: Dict[str, subprocess.Popen] = {}
    serial = 0

    def spawn() -> None:
        nonlocal serial
        name = f"w{serial}"
        serial += 1
        writers[name] = popen_python(ACKED_WRITER, str(queue), name, str(acks / name))

    for _ in range(4):
        spawn()
    sender = popen_python(SENDER, str(queue), receiver.url)
    kills = {"writer": 0, "sender": 0, "faults": 0}
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(0.1, 0.4))
        roll = rng.random()
        if roll < 0.4:
            victim = rng.choice(sorted(writers))
            os.kill(writers.pop(victim).pid, signal.SIGKILL)
            kills["writer"] += 1
            spawn()
        elif roll < 0.6:
            os.kill(sender.pid, signal.SIGKILL)
            sender.wait(10)
            kills["sender"] += 1
            sender = popen_python(SENDER, str(queue), receiver.url)
        else:
            kills["faults"] += 1
            fault = rng.choice(["truncate-lock", "delete-offset", "stale-compact"])
            target = {
                "truncate-lock": Path(str(queue) + ".lock"),
                "delete-offset": Path(str(queue) + ".offset"),
                "stale-compact": Path(str(queue) + ".compact"),
            }[fault]
            try:
                if fault == "truncate-lock":
                    os.truncate(target, 0)
                elif fault == "delete-offset":
                    target.unlink()
                else:
                    target.write_bytes(b"stale" * 1000)
            except FileNotFoundError:
                pass
    for process in [*writers.values(), sender]:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    behaviour.respond = None
    client = TelemetryClient(
        TelemetryOptions(
            queue_path=str(queue), endpoint_url=receiver.url, batch_size=500, max_queue_bytes=0
        )
    )
    started = time.monotonic()
    assert client.flush(timeout=300)
    print(f"final flush: {time.monotonic() - started:.1f} s, {len(receiver.events)} received")
    client.close()
    seen: Set[tuple] = {(e["data"]["w"], e["data"]["i"]) for e in receiver.events}
    acknowledged = 0
    for ack in acks.iterdir():
        lines = ack.read_text().split()
        if lines:
            last = int(lines[-1])
            acknowledged += last + 1
            missing = [i for i in range(last + 1) if (ack.name, i) not in seen]
            assert not missing, (ack.name, missing[:10])
    assert kills["writer"] >= 10 and kills["sender"] >= 5 and kills["faults"] >= 5
    duplicates = len(receiver.events) - len(seen)
    print(
        f"storm: {kills}, {acknowledged} acknowledged, {len(receiver.events)} received, "
        f"{duplicates} duplicates"
    )
