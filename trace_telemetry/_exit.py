"""The last send at interpreter exit, within one budget for the whole exit.

``atexit`` runs this module's hook before ``logging.shutdown`` (which was
registered earlier, when ``logging`` was imported). The hook:

1. takes the clients still running (started, not stopped) whose
   ``shutdown_timeout_seconds`` is not 0, that have an endpoint and
   something queued, and that are not backing off after a failure;
2. wakes each one's sender thread for a last drain that ends by its
   deadline (the hook's start + that client's budget) — the threads work
   in parallel;
3. joins each thread until its deadline, never later: the whole exit
   waits at most the largest budget.

The threads are daemons: one stuck in a request (a hanging server, a DNS
lookup that ``requests``' timeout does not cover) is abandoned at the
deadline, and what it had not sent stays queued for the next run. Handlers
closed by ``logging.shutdown`` afterwards see :func:`exiting` and do not
send again. See docs/configuration.md (``shutdown_timeout_seconds``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
import weakref
from typing import List, Protocol, Tuple

from ._worker import Worker

__all__ = ["exiting", "register", "send_at_exit"]


class _Client(Protocol):
    """What the hook needs of a ``TelemetryClient`` (no import of ``client``: no cycle)."""

    _worker: Worker

    def _exit_budget(self) -> float: ...


_clients: "weakref.WeakSet[_Client]" = weakref.WeakSet()
_lock = threading.Lock()
_state = {"exiting": False, "registered": False}


def register(client: _Client) -> None:
    """Include ``client`` in the exit send (called by ``start()``)."""
    with _lock:
        _clients.add(client)
        if not _state["registered"]:
            _state["registered"] = True
            atexit.register(send_at_exit)


def exiting() -> bool:
    """True once the exit hook has run: nothing may send on its own after it."""
    return _state["exiting"]


def send_at_exit() -> None:
    """The ``atexit`` hook: drain what the running clients can, within one budget."""
    with _lock:
        if _state["exiting"]:
            return
        _state["exiting"] = True
        clients = list(_clients)
    start = time.monotonic()
    waiting: List[Tuple[threading.Thread, float]] = []
    for client in clients:
        with contextlib.suppress(Exception):  # never break the exit
            budget = client._exit_budget()
            if budget > 0:
                thread = client._worker.finish(start + budget)
                if thread is not None:
                    waiting.append((thread, start + budget))
    for thread, deadline in waiting:
        with contextlib.suppress(Exception):
            thread.join(max(0.0, deadline - time.monotonic()))


def _after_fork_in_child() -> None:
    """A lock held by a thread that does not exist in the child would stay held."""
    global _lock  # noqa: PLW0603
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
