"""Shared fixtures: a real receiver on 127.0.0.1, clients that clean up, logging hygiene."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from trace_telemetry import TelemetryClient, TelemetryOptions
from trace_telemetry._receiver import Receiver

ROOT = Path(__file__).resolve().parent.parent


class Behaviour:
    """A switchable server behaviour for the receiver (tests set ``.respond``)."""

    def __init__(self) -> None:
        self.respond: Optional[
            Callable[[List[Dict[str, Any]], Dict[str, str]], Optional[Tuple[int, Dict[str, str]]]]
        ] = None
        self.delay = 0.0
        self.release = threading.Event()
        self.release.set()

    def __call__(
        self, events: List[Dict[str, Any]], headers: Dict[str, str]
    ) -> Optional[Tuple[int, Dict[str, str]]]:
        if self.delay:
            threading.Event().wait(self.delay)
        self.release.wait(30)
        if self.respond is None:
            return None
        return self.respond(events, headers)


@pytest.fixture
def behaviour() -> Behaviour:
    return Behaviour()


@pytest.fixture
def receiver(behaviour: Behaviour) -> Iterator[Receiver]:
    server = Receiver(responder=behaviour)
    server.start()
    try:
        yield server
    finally:
        behaviour.release.set()
        server.stop()


@pytest.fixture
def queue_path(tmp_path: Path) -> Path:
    return tmp_path / "queue" / "telemetry-queue.ndjson"


@pytest.fixture
def make_client(queue_path: Path) -> Iterator[Callable[..., TelemetryClient]]:
    clients: List[TelemetryClient] = []

    def factory(**overrides: Any) -> TelemetryClient:
        overrides.setdefault("queue_path", str(queue_path))
        client = TelemetryClient(TelemetryOptions(**overrides))
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def read_lines(path: Path) -> List[Dict[str, Any]]:
    """The events of an NDJSON file (every line must parse)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]


def run_python(
    code: str,
    *args: str,
    timeout: float = 60,
    env: Optional[Dict[str, str]] = None,
    **kwargs: Any,
) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with this checkout importable."""
    base = os.environ if env is None else env
    env = dict(base, PYTHONPATH=str(ROOT) + os.pathsep + base.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        **kwargs,
    )


def popen_python(code: str, *args: str, **kwargs: Any) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, **kwargs)
