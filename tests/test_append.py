"""The appending side: locked appends, the generation, and hands that delete or truncate files."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

from trace_telemetry import TelemetryClient
from trace_telemetry._append import CHECK_EVERY
from trace_telemetry._receiver import Receiver

from .conftest import popen_python, read_lines, run_python

MakeClient = Callable[..., TelemetryClient]


def data_of(receiver: Receiver) -> list:
    return sorted(event["data"] for event in receiver.events)  # batches arrive in parallel


class TestHandsOnTheFiles:
    def test_a_truncated_q_lock_neither_crashes_nor_loses_events(
        self, make_client: MakeClient, receiver: Receiver, queue_path: Path
    ) -> None:
        client = make_client(endpoint_url=receiver.url)
        client.track("e", 0)
        lock = Path(str(queue_path) + ".lock")
        for scribble in (b"", b"garbage", b"x" * 5000):
            lock.write_bytes(scribble)  # by hand, while the client has it open
            client.track("e", len(data_of(receiver)) + client.queued_count)
        assert client.flush(timeout=10)
        assert [0, 1, 2, 3] == data_of(receiver)
        generation = lock.read_bytes()[:32]
        assert len(set(generation) - set(b"0123456789abcdef")) == 0  # rebuilt
        assert lock.stat().st_size >= 1024

    def test_events_tracked_after_q_was_deleted_are_delivered_at_exit(
        self, tmp_path: Path, receiver: Receiver
    ) -> None:
        queue = tmp_path / "q.ndjson"
        script = (
            "import sys\n"
            "from trace_telemetry import TelemetryClient, TelemetryOptions\n"
            "client = TelemetryClient(TelemetryOptions(queue_path=sys.argv[1]))\n"
            "client.track('before', 0)\n"
            "print('ready', flush=True)\n"
            "sys.stdin.readline()\n"
            "for i in range(1, 11):\n"
            "    client.track('after', i)\n"
        )
        writer = popen_python(
            script, str(queue), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert writer.stdout is not None and writer.stdin is not None
        assert "ready" == writer.stdout.readline().strip()
        queue.unlink()  # by hand, while the process has it open
        writer.stdin.write("go\n")
        writer.stdin.close()
        assert 0 == writer.wait(timeout=30)
        after = [e["data"] for e in read_lines(queue) if e["name"] == "after"]
        assert list(range(1, 11)) == after  # written again to the new file at exit

    def test_a_process_killed_after_q_was_deleted_loses_at_most_the_unchecked_appends(
        self, tmp_path: Path
    ) -> None:
        queue = tmp_path / "q.ndjson"
        count = 3 * CHECK_EVERY
        script = (
            "import os, sys\n"
            "from trace_telemetry import TelemetryClient, TelemetryOptions\n"
            "client = TelemetryClient(TelemetryOptions(queue_path=sys.argv[1]))\n"
            "client.track('before', -1)\n"
            "print('ready', flush=True)\n"
            "sys.stdin.readline()\n"
            f"for i in range({count}):\n"
            "    client.track('after', i)\n"
            "print('done', flush=True)\n"
            "sys.stdin.readline()\n"
        )
        writer = popen_python(
            script, str(queue), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert writer.stdout is not None and writer.stdin is not None
        assert "ready" == writer.stdout.readline().strip()
        queue.unlink()
        writer.stdin.write("go\n")
        writer.stdin.flush()
        assert "done" == writer.stdout.readline().strip()
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=10)
        after = [e["data"] for e in read_lines(queue) if e["name"] == "after"]
        assert after == list(range(count - len(after), count))
        assert count - len(after) <= CHECK_EVERY  # the documented bound

    def test_a_symlinked_queue_path_keeps_one_queue(
        self, tmp_path: Path, make_client: MakeClient, receiver: Receiver
    ) -> None:
        real = tmp_path / "data" / "real.ndjson"
        real.parent.mkdir()
        link = tmp_path / "link.ndjson"
        link.symlink_to(real)
        client = make_client(queue_path=str(link), endpoint_url=receiver.url, batch_size=7)
        for index in range(20):
            client.track("e", index)
        assert client.flush(timeout=10)  # compacts
        for index in range(20, 31):
            client.track("e", index)
        assert client.flush(timeout=10)
        assert list(range(31)) == sorted(data_of(receiver))  # batches in parallel
        assert link.is_symlink() and os.readlink(link) == str(real)
        assert (tmp_path / "data" / "real.ndjson.offset").exists()
        assert not (tmp_path / "link.ndjson.offset").exists()


class TestTornLines:
    def test_a_neighbours_torn_line_does_not_swallow_the_next_event(
        self, make_client: MakeClient, receiver: Receiver, queue_path: Path
    ) -> None:
        client = make_client(endpoint_url=receiver.url)
        client.track("e", 1)  # the queue is open in this process
        with open(queue_path, "ab") as handle:  # a neighbour killed mid-write
            handle.write(b'{"id":"0f0e0d0c-torn","name":"half"')
        client.track("e", 2)  # lands on the same line as the torn remains
        client.track("e", 3)
        assert client.flush(timeout=10)
        assert [1, 2, 3] == data_of(receiver)
        corrupt = Path(str(queue_path) + ".corrupt").read_bytes()
        assert b'{"id":"0f0e0d0c-torn","name":"half"\n' == corrupt
        assert 1 == client.stats()["corrupt"]

    def test_a_writer_killed_mid_write_by_sigkill_loses_no_other_event(
        self, tmp_path: Path, make_client: MakeClient, receiver: Receiver
    ) -> None:
        queue = tmp_path / "q.ndjson"
        # One huge event: its write() is long enough to be killed in the middle.
        script = (
            "import sys\n"
            "from trace_telemetry import TelemetryClient, TelemetryOptions\n"
            "client = TelemetryClient(TelemetryOptions(queue_path=sys.argv[1],"
            " max_event_bytes=256 << 20, max_queue_bytes=0))\n"
            "client.track('warm', 0)\n"
            "print('ready', flush=True)\n"
            "while True:\n"
            "    client.track('big', 'x' * (64 << 20))\n"
        )
        writer = popen_python(script, str(queue), stdout=subprocess.PIPE, text=True)
        assert writer.stdout is not None
        assert "ready" == writer.stdout.readline().strip()
        client = make_client(
            queue_path=str(queue), endpoint_url=receiver.url, batch_size=1, max_queue_bytes=0
        )
        client.track("mine", 1)
        while queue.stat().st_size < (80 << 20):
            pass
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=10)
        client.track("mine", 2)
        assert client.flush(timeout=60)
        mine = [e["data"] for e in receiver.events if e["name"] == "mine"]
        assert [1, 2] == mine


def test_appends_from_threads_and_processes_all_arrive(tmp_path: Path) -> None:
    queue = tmp_path / "q.ndjson"
    result = run_python(
        "import sys, threading\n"
        "from trace_telemetry import TelemetryClient, TelemetryOptions\n"
        "client = TelemetryClient(TelemetryOptions(queue_path=sys.argv[1]))\n"
        "def work(t):\n"
        "    for i in range(500):\n"
        "        client.track('t', {'t': t, 'i': i})\n"
        "threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n",
        str(queue),
    )
    assert result.returncode == 0, result.stderr
    events = read_lines(queue)
    assert 2000 == len(events)
    assert 2000 == len({(e["data"]["t"], e["data"]["i"]) for e in events})


class TestHandsOnTheFilesOfAnotherProcess:
    def test_q_deleted_then_emptied_by_another_process_loses_no_unchecked_append(
        self, make_client: MakeClient, receiver: Receiver, queue_path: Path
    ) -> None:
        # A keeps appending to the deleted Q; B (another process: its own
        # descriptors and locks) drains the new Q and empties it in place,
        # which writes a new generation. A's next append sees that generation
        # and drops the lines it wrote since its last identity check.
        a = make_client(endpoint_url=receiver.url, flush_interval_seconds=3600)
        a.track("a", 0)
        queue_path.unlink()  # by hand
        for index in range(1, 6):
            a.track("a", index)  # to the deleted file, fewer than CHECK_EVERY
        b = make_client(endpoint_url=receiver.url, flush_interval_seconds=3600)
        b.track("b", 0)
        assert b.flush(timeout=10)  # drained: emptied in place, new generation
        a.track("a", 6)
        assert a.flush(timeout=10)
        got = sorted(e["data"] for e in receiver.events if e["name"] == "a")
        assert list(range(7)) == got


def test_a_signal_handler_that_tracks_during_an_append_does_not_hang(tmp_path: Path) -> None:
    # A SIGTERM/SIGUSR1 handler that logs (TelemetryHandler on the root
    # logger) or tracks runs in the main thread between two bytecodes, maybe
    # while that thread is inside append() holding the appender's thread
    # lock: the handler's track() then waits for ever on that lock. The
    # signal is raised at one fixed point inside the lock to make it certain.
    queue = tmp_path / "q.ndjson"
    script = (
        "import os, signal, sys\n"
        "from trace_telemetry import TelemetryClient, TelemetryOptions\n"
        "from trace_telemetry import _append\n"
        "client = TelemetryClient(TelemetryOptions(queue_path=sys.argv[1]))\n"
        "client.track('warm', 0)\n"
        "signal.signal(signal.SIGUSR1, lambda *_: client.track('from-handler', 1))\n"
        "follow = _append.Appender._follow\n"
        "fired = []\n"
        "def follow_and_signal(self, *args, **kwargs):\n"
        "    if not fired:\n"
        "        fired.append(1)\n"
        "        os.kill(os.getpid(), signal.SIGUSR1)  # delivered inside the lock\n"
        "    return follow(self, *args, **kwargs)\n"
        "_append.Appender._follow = follow_and_signal\n"
        "client.track('main', 2)\n"
        "print('done', flush=True)\n"
    )
    try:
        result = run_python(script, str(queue), timeout=20)
    except subprocess.TimeoutExpired:
        raise AssertionError("track() from a signal handler hung the process") from None
    assert result.returncode == 0, result.stderr
    assert ["from-handler", "main", "warm"] == sorted(e["name"] for e in read_lines(queue))


def test_flush_from_a_signal_handler_during_an_append_returns_within_its_budget(
    tmp_path: Path, receiver: Receiver
) -> None:
    # A SIGTERM handler that flushes before exiting: the main thread it
    # interrupts may be inside append(), holding Q.lock shared through the
    # appender's descriptor. The flush's commit then waits, with no timeout,
    # for Q.lock exclusively through the process's other descriptor: for ever.
    queue = tmp_path / "q.ndjson"
    script = (
        "import os, signal, sys, time\n"
        "from trace_telemetry import TelemetryClient, TelemetryOptions\n"
        "from trace_telemetry import _append\n"
        "client = TelemetryClient(TelemetryOptions(queue_path=sys.argv[1],"
        " endpoint_url=sys.argv[2]))\n"
        "client.track('warm', 0)\n"
        "took = []\n"
        "def on_term(*_):\n"
        "    start = time.monotonic()\n"
        "    client.flush(timeout=3)\n"
        "    took.append(time.monotonic() - start)\n"
        "signal.signal(signal.SIGTERM, on_term)\n"
        "follow = _append.Appender._follow\n"
        "fired = []\n"
        "def follow_and_signal(self, *args, **kwargs):\n"
        "    if not fired:\n"
        "        fired.append(1)\n"
        "        os.kill(os.getpid(), signal.SIGTERM)  # delivered inside the lock\n"
        "    return follow(self, *args, **kwargs)\n"
        "_append.Appender._follow = follow_and_signal\n"
        "client.track('main', 1)\n"
        "print('took', took, flush=True)\n"
    )
    try:
        result = run_python(script, str(queue), receiver.url, timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError("flush(timeout=3) from a signal handler hung") from None
    assert result.returncode == 0, result.stderr
    took = float(result.stdout.split("[")[1].split("]")[0])
    assert took < 3 + 5  # its budget, with slack for a loaded machine


def test_track_returns_while_another_process_is_stopped_holding_q_lock(
    make_client: MakeClient, queue_path: Path
) -> None:
    # A process stopped (Ctrl-Z, SIGSTOP, a debugger) inside a commit or the
    # last step of a compaction keeps Q.lock exclusively: every append of
    # every other process then waits for LOCK_SH with no timeout, for ever.
    client = make_client()
    client.track("warm", 0)
    holder = os.open(str(queue_path) + ".lock", os.O_RDWR)  # the stopped process
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        done = threading.Event()
        threading.Thread(target=lambda: (client.track("e", 1), done.set()), daemon=True).start()
        returned = done.wait(10)
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        os.close(holder)
    assert returned, "track() blocked behind a stopped lock holder"


def test_while_q_lock_stays_held_events_are_dropped_and_counted_then_appends_resume(
    make_client: MakeClient, queue_path: Path
) -> None:
    client = make_client()
    client.track("warm", 0)
    holder = os.open(str(queue_path) + ".lock", os.O_RDWR)  # a process stopped mid-commit
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        started = time.monotonic()
        client.track("waits", 1)  # waits its bounded time, then is dropped
        client.track("tries once", 2)
        assert time.monotonic() - started < 2.0 + 2.0
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        os.close(holder)
    client.track("after", 3)
    assert {"lock_timeout": 2} == client.stats()["dropped"]
    assert ["warm", "after"] == [e["name"] for e in read_lines(queue_path)]
