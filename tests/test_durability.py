"""Real processes: SIGKILL mid-write and mid-send, several writers, fork()."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Set

import pytest

from trace_telemetry import TelemetryClient, TelemetryOptions
from trace_telemetry._receiver import Receiver

from .conftest import Behaviour, popen_python, run_python

MakeClient = Callable[..., TelemetryClient]

WRITER = r"""
import sys
from trace_telemetry import TelemetryClient, TelemetryOptions
client = TelemetryClient(TelemetryOptions(queue_path=sys.argv[1], max_queue_bytes=0))
pad = "x" * int(sys.argv[2])
index = 0
while True:
    client.track("w", {"i": index, "pad": pad})
    sys.stdout.write(f"{index}\n")
    sys.stdout.flush()
    index += 1
"""


def valid_indexes(path: Path) -> Set[int]:
    found = set()
    for line in path.read_bytes().splitlines():
        try:
            found.add(json.loads(line)["data"]["i"])
        except (ValueError, KeyError, TypeError):
            pass
    return found


class TestKillDuringWrites:
    @pytest.mark.parametrize("pad", [100, 300_000])
    def test_every_event_whose_track_returned_survives_sigkill(
        self, tmp_path: Path, pad: int, make_client: MakeClient, receiver: Receiver
    ) -> None:
        queue = tmp_path / "q.ndjson"
        for attempt in range(3):
            writer = popen_python(WRITER, str(queue), str(pad), stdout=subprocess.PIPE, text=True)
            assert writer.stdout is not None
            seen = []
            while len(seen) < 20 + attempt * 37:
                line = writer.stdout.readline()
                assert line, "the writer died early"
                seen.append(int(line))
            os.kill(writer.pid, signal.SIGKILL)
            writer.wait(10)
            rest = writer.stdout.read()
            returned = max([*seen, *(int(x) for x in rest.split())])
            found = valid_indexes(queue)
            assert set(range(returned + 1)) <= found
        client = make_client(
            queue_path=str(queue),
            endpoint_url=receiver.url,
            batch_size=200,
            max_event_bytes=1 << 20,
        )
        client.track("after the crashes", {"i": -1})
        assert client.flush(timeout=60)
        delivered = [e["data"]["i"] for e in receiver.events]
        assert -1 in delivered  # the next event was not glued to a torn line (any order)


SENDER = r"""
import sys
from trace_telemetry import TelemetryClient, TelemetryOptions
client = TelemetryClient(TelemetryOptions(queue_path=sys.argv[1], endpoint_url=sys.argv[2], batch_size=50))
print("ready", flush=True)
client.flush(timeout=120)
print("done", flush=True)
"""


class TestKillDuringSend:
    def test_a_crash_mid_send_resends_at_most_the_window(
        self, tmp_path: Path, receiver: Receiver, behaviour: Behaviour, make_client: MakeClient
    ) -> None:
        queue = tmp_path / "q.ndjson"
        seed = TelemetryClient(TelemetryOptions(queue_path=str(queue)))
        for index in range(1000):
            seed.track("s", {"i": index})
        seed.close()
        behaviour.delay = 0.02
        sender = popen_python(SENDER, str(queue), receiver.url, stdout=subprocess.PIPE, text=True)
        assert sender.stdout is not None
        assert "ready" == sender.stdout.readline().strip()
        deadline = time.monotonic() + 30
        while len(receiver.requests) < 7 and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(sender.pid, signal.SIGKILL)
        sender.wait(10)
        time.sleep(0.2)
        behaviour.delay = 0
        client = make_client(queue_path=str(queue), endpoint_url=receiver.url, batch_size=50)
        assert client.flush(timeout=60)
        received = [e["data"]["i"] for e in receiver.events]
        assert set(range(1000)) == set(received)
        assert len(received) - 1000 <= 4 * 50  # at-least-once: the window (4 batches) again


PRODUCER = r"""
import sys, time
from trace_telemetry import TelemetryClient, TelemetryOptions
client = TelemetryClient(TelemetryOptions(queue_path=sys.argv[1], endpoint_url=sys.argv[2], batch_size=25, flush_interval_seconds=1))
client.start()
worker = sys.argv[3]
for index in range(int(sys.argv[4])):
    client.track("mp", {"worker": worker, "i": index})
    if index % 100 == 0:
        time.sleep(0.01)
client.stop()
ok = client.flush(timeout=60)
print(ok, client.stats()["dropped_total"], flush=True)
"""


class TestSeveralProcesses:
    def test_four_processes_share_one_queue_without_loss_or_duplicates(
        self, tmp_path: Path, receiver: Receiver, behaviour: Behaviour
    ) -> None:
        queue = tmp_path / "shared.ndjson"
        behaviour.delay = 0.002
        procs = [
            popen_python(
                PRODUCER,
                str(queue),
                receiver.url,
                str(worker),
                "600",
                stdout=subprocess.PIPE,
                text=True,
            )
            for worker in range(4)
        ]
        outputs = [proc.communicate(timeout=120)[0].split() for proc in procs]
        assert all(proc.returncode == 0 for proc in procs)
        assert [["True", "0"]] * 4 == outputs
        keys = [(e["data"]["worker"], e["data"]["i"]) for e in receiver.events]
        assert 2400 == len(keys)
        assert {(str(w), i) for w in range(4) for i in range(600)} == set(keys)
        assert not Path(str(queue) + ".corrupt").exists()

    def test_a_crashed_process_never_leaves_the_queue_locked(
        self, tmp_path: Path, receiver: Receiver, behaviour: Behaviour, make_client: MakeClient
    ) -> None:
        queue = tmp_path / "q.ndjson"
        seed = TelemetryClient(TelemetryOptions(queue_path=str(queue)))
        seed.track("x")
        seed.close()
        behaviour.release.clear()  # the first send hangs: the sender lock is held
        sender = popen_python(SENDER, str(queue), receiver.url, stdout=subprocess.PIPE, text=True)
        assert sender.stdout is not None
        sender.stdout.readline()
        deadline = time.monotonic() + 20
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        client = make_client(queue_path=str(queue), endpoint_url=receiver.url)
        assert client.flush(timeout=0.5) is False  # held by the live process
        os.kill(sender.pid, signal.SIGKILL)
        sender.wait(10)
        behaviour.release.set()
        assert client.flush(timeout=10) is True


class TestFork:
    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
    def test_a_forked_child_gets_its_own_running_sender(
        self, make_client: MakeClient, receiver: Receiver
    ) -> None:
        client = make_client(endpoint_url=receiver.url, flush_interval_seconds=1)
        client.start()
        client.track("parent", 0)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report through the pipe, never assert here
            try:
                report = {"running": client._worker.running}
                client.track("child", 1)
                deadline = time.monotonic() + 10
                while client.queued_count and time.monotonic() < deadline:
                    time.sleep(0.05)
                report["queued_after"] = client.queued_count
                report["pid_ok"] = client._pid == os.getpid()
                os.write(write_end, json.dumps(report).encode())
            finally:
                os._exit(0)
        os.close(write_end)
        _, status = os.waitpid(pid, 0)
        report = json.loads(os.read(read_end, 65536))
        os.close(read_end)
        assert 0 == status
        assert {"running": True, "queued_after": 0, "pid_ok": True} == report
        assert client.flush(timeout=10)
        assert {"parent", "child"} == {e["name"] for e in receiver.events}
        assert 2 == len(receiver.events)

    def test_a_fork_without_hooks_is_caught_by_the_pid_check(
        self, make_client: MakeClient, receiver: Receiver
    ) -> None:
        code = r"""
import os, sys, json, time
from trace_telemetry import TelemetryClient, TelemetryOptions
import trace_telemetry.client as c
client = TelemetryClient(TelemetryOptions(queue_path=sys.argv[1], endpoint_url=sys.argv[2], flush_interval_seconds=1))
client.start()
client._pid = -1  # what a fork without os.register_at_fork hooks (uWSGI) leaves behind
client.track("after-fake-fork")
print(json.dumps({"running": client._worker.running, "pid": client._pid == os.getpid()}))
"""
        result = run_python(code, str(make_client().options.queue_path), receiver.url)
        assert 0 == result.returncode, result.stderr
        assert {"running": True, "pid": True} == json.loads(result.stdout)


def test_multiprocessing_children_can_track(tmp_path: Path, receiver: Receiver) -> None:
    code = r"""
import multiprocessing, sys
from trace_telemetry import TelemetryClient, TelemetryOptions
client = TelemetryClient(TelemetryOptions(queue_path=sys.argv[1], endpoint_url=sys.argv[2]))
client.start()
def work(i):
    client.track("mp-child", i)
    return client.flush(timeout=20)
if __name__ == "__main__":
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(3) as pool:
        print(all(pool.map(work, range(9))))
"""
    result = run_python(code, str(tmp_path / "q.ndjson"), receiver.url, timeout=120)
    assert "True" == result.stdout.strip(), result.stderr
    assert sorted(range(9)) == sorted(e["data"] for e in receiver.events)
