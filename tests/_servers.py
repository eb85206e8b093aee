"""Helpers for tests that run servers as subprocesses (tests/test_deployment.py)."""

from __future__ import annotations

import http.client
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

BIN = Path(sys.executable).parent


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.unix_path)


def get(sock: Path, path: str) -> int:
    """GET ``path`` from the server on the Unix socket ``sock``; the status code."""
    connection = _UnixConnection(str(sock))
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Server:
    """A server subprocess whose stdout and stderr go to files in ``workdir``."""

    def __init__(self, argv: List[str], workdir: Path, env: Dict[str, str]) -> None:
        self.workdir = workdir
        self.stdout_path = workdir / "stdout.txt"
        self.stderr_path = workdir / "stderr.txt"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                argv, cwd=str(workdir), env=env, stdout=out, stderr=err, start_new_session=True
            )

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text("utf-8", "replace")

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text("utf-8", "replace")

    def wait_for_output(self, text: str, timeout: float = 30, stream: str = "stderr") -> None:
        def seen() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"server exited ({self.process.returncode}) before {text!r}:\n"
                    + self.stdout
                    + self.stderr
                )
            return text in getattr(self, stream)

        wait_for(seen, timeout, repr(text))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send ``sig`` and wait; on timeout kill the whole group and fail."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"server did not exit within {timeout} s of {sig}") from None

    def kill(self) -> None:
        """Kill the server's whole session, workers left behind included."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)


def children(pid: int) -> List[int]:
    """The process ids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def require(*modules: str) -> None:
    """Fail, never skip, when a server is missing: they are all in the ``test`` extra."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise AssertionError(f"{module} is a test dependency: pip install -e '.[test]'")


def console_script(name: str) -> str:
    path = BIN / name
    if not path.exists():
        raise AssertionError(
            f"{name} is not installed next to {sys.executable}: it is a test dependency "
            "(pip install -e '.[test]'; uWSGI builds from source and needs a C compiler)"
        )
    return str(path)
