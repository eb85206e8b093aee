"""Compaction and trimming: a full disk, leftovers of killed compactors, the cap under load."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, List

import pytest

from trace_telemetry import TelemetryClient, TelemetryOptions
from trace_telemetry._inspect import report
from trace_telemetry._receiver import Receiver

from .conftest import Behaviour, popen_python, read_lines, run_python

MakeClient = Callable[..., TelemetryClient]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: a disk that really fills up (ENOSPC), mounted for this test.

    Needs root (or a user namespace); a machine where it cannot be mounted
    fails the test rather than skipping the fault.
    """
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"cannot mount a small tmpfs for the full-disk test: {result.stderr}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte; returns the filler file."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 512, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


class TestFullDisk:
    def test_a_full_disk_drops_and_counts_keeps_sending_and_recovers(
        self, small_disk: Path, receiver: Receiver
    ) -> None:
        queue = small_disk / "q.ndjson"
        client = TelemetryClient(
            TelemetryOptions(queue_path=str(queue), endpoint_url=receiver.url, batch_size=50)
        )
        try:
            for index in range(100):
                client.track("before", index)
            filler = fill(small_disk)
            for index in range(200):
                client.track("full", index)  # never raises, never crashes the process
            dropped = client.stats()["dropped"].get("disk_full", 0)
            assert dropped > 0
            assert client.flush(timeout=20)  # sending goes on while the disk is full
            assert 0 == queue.stat().st_size  # emptied in place, no copy needed
            assert report(str(queue))["dropped"]["disk_full"] == dropped  # status sees them
            filler.unlink()  # space comes back
            for index in range(1500):
                client.track("after", index)
            assert client.flush(timeout=30)
        finally:
            client.close()
        names = [event["name"] for event in receiver.events]
        assert names.count("before") == 100
        assert names.count("full") == 200 - dropped
        assert names.count("after") == 1500  # recovered by itself

    def test_a_disk_full_before_the_first_send_still_delivers(
        self, small_disk: Path, receiver: Receiver
    ) -> None:
        queue = small_disk / "q.ndjson"
        client = TelemetryClient(
            TelemetryOptions(queue_path=str(queue), endpoint_url=receiver.url, batch_size=100)
        )
        try:
            for index in range(1000):
                client.track("e", index)
            assert not Path(str(queue) + ".offset").exists()
            fill(small_disk)
            assert client.flush(timeout=30)
            client.track("later", 1)
        finally:
            client.close()
        assert list(range(1000)) == sorted(
            e["data"] for e in receiver.events
        )  # batches in parallel


class TestFullDiskTornLines:
    def test_a_torn_line_on_a_full_disk_does_not_stop_sending(
        self, small_disk: Path, receiver: Receiver
    ) -> None:
        # A torn line followed by an event (the salvage case) must be set
        # aside in Q.corrupt before the sender moves past it; on a full disk
        # that write fails, the drain raises, and nothing after it is ever
        # sent while the disk stays full, so the queue never frees its space.
        queue = small_disk / "q.ndjson"
        client = TelemetryClient(
            TelemetryOptions(queue_path=str(queue), endpoint_url=receiver.url, batch_size=10)
        )
        try:
            for index in range(5):
                client.track("e", index)
            with open(queue, "ab") as handle:  # a neighbour killed mid-write
                handle.write(b'{"id":"torn-remains","name":"half"')
            for index in range(5, 30):
                client.track("e", index)
            fill(small_disk)
            assert client.flush(timeout=10)
        finally:
            client.close()
        assert list(range(30)) == sorted(e["data"] for e in receiver.events)


class TestLeftovers:
    def test_temporary_files_of_killed_compactors_are_removed_by_the_next_sender(
        self, make_client: MakeClient, receiver: Receiver, queue_path: Path
    ) -> None:
        client = make_client(endpoint_url=receiver.url)
        client.track("e", 1)
        stale = Path(str(queue_path) + ".compact")
        stale.write_bytes(b"x" * 100_000)  # a compactor killed while copying
        older = Path(str(queue_path) + ".compact-4242")  # an older version's name
        older.write_bytes(b"y" * 100_000)
        client.track("e", 2)
        assert client.flush(timeout=10)
        assert not stale.exists()
        assert not older.exists()
        assert [1, 2] == sorted(e["data"] for e in receiver.events)

    def test_a_compactor_killed_mid_copy_loses_nothing(self, tmp_path: Path) -> None:
        queue = tmp_path / "q.ndjson"
        script = (
            "import os, signal, sys\n"
            "from trace_telemetry._queue import FileQueue\n"
            "from trace_telemetry._stats import Stats\n"
            "from trace_telemetry import _fileio\n"
            "from tests.test_queue import event_line\n"
            "queue = FileQueue(sys.argv[1], 0, Stats(), max_line=1 << 20)\n"
            "for value in range(3000):\n"
            "    queue.append(event_line(value))\n"
            "with queue.session(5) as session:\n"
            "    session.commit(session.read_batch(1000)[-1][1], 1000)\n"
            "    copy = _fileio.copy_range\n"
            "    def die(*args):\n"
            "        copy(*args)\n"
            "        os.kill(os.getpid(), signal.SIGKILL)\n"
            "    _fileio.copy_range = die\n"
            "    queue._compactor.compact()\n"
        )
        result = subprocess.run(
            ["python", "-c", script, str(queue)],
            cwd=str(Path(__file__).resolve().parent.parent),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == -9, result.stderr
        assert Path(str(queue) + ".compact").exists()
        from trace_telemetry._queue import FileQueue
        from trace_telemetry._stats import Stats

        reader = FileQueue(str(queue), 0, Stats(), max_line=1 << 20)
        seen: List[int] = []
        with reader.session(5) as session:
            while True:
                batch = session.read_batch(500)
                if not batch:
                    break
                seen.extend(json.loads(line)["data"] for line, _ in batch)
                session.commit(batch[-1][1], len(batch))
            session.maintain()
        reader.close()
        assert list(range(1000, 3000)) == seen
        assert not Path(str(queue) + ".compact").exists()


WRITER = r"""
import sys
from trace_telemetry import TelemetryClient, TelemetryOptions
client = TelemetryClient(TelemetryOptions(queue_path=sys.argv[1], max_queue_bytes=int(sys.argv[3])))
worker = sys.argv[2]
for index in range(int(sys.argv[4])):
    client.track("w", {"w": worker, "i": index, "pad": "p" * 200})
print(client.stats()["dropped"].get("queue_full", 0))
"""


class TestCap:
    @pytest.mark.parametrize("sender_hangs", [False, True])
    def test_concurrent_writers_keep_the_newest_and_every_drop_is_counted(
        self, tmp_path: Path, receiver: Receiver, behaviour: Behaviour, sender_hangs: bool
    ) -> None:
        queue = tmp_path / "q.ndjson"
        cap = 256 * 1024
        per_writer = 3000
        hung = None
        if sender_hangs:  # a sender holds the sender lock in a request that hangs
            behaviour.release.clear()
            client = TelemetryClient(
                TelemetryOptions(
                    queue_path=str(queue), endpoint_url=receiver.url, timeout_seconds=60
                )
            )
            client.track("first", {"w": "x", "i": -1, "pad": ""})
            hung = threading.Thread(target=client.flush, kwargs={"timeout": 60})
            hung.start()
            deadline = time.monotonic() + 10
            while not report(str(queue))["sender_active"]:
                assert time.monotonic() < deadline
                time.sleep(0.01)
        writers = [
            popen_python(
                WRITER,
                str(queue),
                str(w),
                str(cap),
                str(per_writer),
                stdout=subprocess.PIPE,
                text=True,
            )
            for w in range(3)
        ]
        biggest = 0
        while any(w.poll() is None for w in writers):
            try:
                biggest = max(biggest, queue.stat().st_size)
            except FileNotFoundError:
                pass
            time.sleep(0.002)
        assert all(w.wait(timeout=60) == 0 for w in writers)
        try:
            status = report(str(queue))
            kept = [e["data"] for e in read_lines(queue)]
            # About 110 % (one event per writer past it); slack for a loaded machine.
            assert biggest <= cap * 1.2, biggest / cap
            assert len(kept) * 400 > cap // 2
            for w in range(3):  # what survives of each writer is its newest events, in order
                mine = [d["i"] for d in kept if d["w"] == str(w)]
                assert mine == list(range(per_writer - len(mine), per_writer))
            total = 3 * per_writer + (1 if sender_hangs else 0)
            assert status["dropped"]["queue_full"] == total - len(kept)  # where status sees it
            assert status["pending_events"] == len(kept)
        finally:
            if hung is not None:
                behaviour.release.set()
                hung.join(timeout=30)
                client.close()


def test_a_log_handler_that_tracks_the_sdks_own_warnings_cannot_deadlock_a_trim(
    make_client: MakeClient, queue_path: Path
) -> None:
    import logging

    client = make_client(max_queue_bytes=16 * 1024)

    class Tracking(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            client.track("log", record.getMessage())  # appends while the SDK logs

    handler = Tracking()
    sdk = logging.getLogger("trace_telemetry")
    sdk.addHandler(handler)
    try:
        done = threading.Event()

        def work() -> None:
            for index in range(3000):
                client.track("e", {"i": index, "pad": "x" * 100})
            done.set()

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        assert done.wait(60), "tracking deadlocked"
    finally:
        sdk.removeHandler(handler)
    assert client.stats()["dropped"]["queue_full"] > 0
    assert queue_path.stat().st_size <= 16 * 1024 * 1.2


def test_the_first_queue_full_drop_does_not_deadlock_the_documented_structlog_setup(
    tmp_path: Path,
) -> None:
    # docs/examples/structlog_stdlib.py: TelemetryProcessor in a
    # ProcessorFormatter's foreign_pre_chain on the root logger. Trimming logs
    # its "dropped ... queue_full" warning while it holds Q.lock exclusively;
    # the warning reaches the processor, whose track() then waits for Q.lock
    # shared in the same thread: the application thread hangs for ever.
    queue = tmp_path / "q.ndjson"
    script = (
        "import logging.config, sys\n"
        "import structlog\n"
        "from trace_telemetry import TelemetryClient, TelemetryOptions, TelemetryProcessor\n"
        "client = TelemetryClient(TelemetryOptions(queue_path=sys.argv[1],"
        " max_queue_bytes=64 * 1024))\n"
        "telemetry = TelemetryProcessor(client)\n"
        "logging.config.dictConfig({'version': 1, 'disable_existing_loggers': False,"
        " 'formatters': {'json': {'()': structlog.stdlib.ProcessorFormatter,"
        " 'processors': [structlog.stdlib.ProcessorFormatter.remove_processors_meta,"
        " structlog.processors.JSONRenderer()],"
        " 'foreign_pre_chain': [structlog.stdlib.add_log_level, telemetry]}},"
        " 'handlers': {'console': {'class': 'logging.StreamHandler', 'formatter': 'json'}},"
        " 'root': {'handlers': ['console'], 'level': 'INFO'}})\n"
        "for i in range(2000):\n"
        "    client.track('e', {'i': i, 'pad': 'x' * 100})\n"
        "print('done', flush=True)\n"
    )
    try:
        result = run_python(script, str(queue), timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError("track() hung at the first queue_full drop") from None
    assert result.returncode == 0, result.stderr
    assert "done" in result.stdout


def test_flush_from_a_signal_handler_during_a_trim_returns_within_its_budget(
    tmp_path: Path, receiver: Receiver
) -> None:
    # The trim of an append over the cap holds Control's thread lock (and
    # Q.lock exclusively); a SIGTERM handler that flushes on that same thread
    # waits for Control's thread lock in the session's first sync: for ever.
    queue = tmp_path / "q.ndjson"
    script = (
        "import os, signal, sys, time\n"
        "from trace_telemetry import TelemetryClient, TelemetryOptions\n"
        "from trace_telemetry import _compact\n"
        "client = TelemetryClient(TelemetryOptions(queue_path=sys.argv[1],"
        " endpoint_url=sys.argv[2], max_queue_bytes=64 * 1024))\n"
        "signal.signal(signal.SIGTERM, lambda *_: client.flush(timeout=3))\n"
        "head = _compact.Compactor.head\n"
        "fired = []\n"
        "def head_and_signal(self, *args, **kwargs):\n"
        "    if not fired:\n"
        "        fired.append(1)\n"
        "        os.kill(os.getpid(), signal.SIGTERM)  # delivered inside the trim\n"
        "    return head(self, *args, **kwargs)\n"
        "_compact.Compactor.head = head_and_signal\n"
        "for i in range(1000):\n"
        "    client.track('e', {'i': i, 'pad': 'x' * 100})\n"
        "print('done', flush=True)\n"
    )
    try:
        result = run_python(script, str(queue), receiver.url, timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError("flush(timeout=3) from a signal handler hung") from None
    assert result.returncode == 0, result.stderr
    assert "done" in result.stdout


def test_a_q_compact_symlinked_by_hand_neither_overwrites_its_target_nor_opens_q(
    tmp_path: Path, make_client: MakeClient, queue_path: Path
) -> None:
    # Compaction opens Q.compact following symlinks, truncates whatever it
    # points to and renames the link over Q: Q becomes a link to a file that
    # is not mode 0600, and the target's content is gone.
    victim = tmp_path / "precious.txt"
    victim.write_bytes(b"precious\n")
    victim.chmod(0o644)
    client = make_client(max_queue_bytes=64 * 1024)
    client.track("warm", 0)
    Path(str(queue_path) + ".compact").symlink_to(victim)
    for index in range(1000):  # past the cap: trimmed and compacted
        client.track("e", {"i": index, "pad": "x" * 100})
    assert b"precious\n" == victim.read_bytes()
    assert not queue_path.is_symlink()
    assert 0o600 == queue_path.stat().st_mode & 0o777
