"""Requests in flight: a fixed set of slots, each one thread and one HTTP session.

The drain (``_delivery.py``) hands a body to a free slot and waits for the
answers in queue order. A slot is a named daemon thread of our own, not a
``ThreadPoolExecutor`` worker: those are joined at exit and refuse work at
interpreter shutdown. When no thread can be started (interpreter shutdown)
the request runs in the caller's thread, as a single sender would.

Nothing here touches the queue: only the drain commits. A request whose
drain gave up waiting (its deadline, ``stop()``) completes on its own; its
answer is ignored and its slot is free again afterwards. After ``fork()``
the child starts with no slots, no requests in flight and fresh locks.

A caller holding logging's module lock (``dictConfig`` closing our handler
flushes under it) sends in its own thread: a slot's thread may need that
lock (``urllib3`` logs), and waiting on it would deadlock
(opentelemetry-python #3193). For the same reason it does not send while
another thread is importing ``requests``: that import may be waiting for
logging's lock. See docs/delivery.md ("Requests in flight").
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Callable, List, Optional, Protocol

from ._guard import sdk_work
from ._transport import Response

__all__ = ["Job", "SenderPool"]


class Transport(Protocol):
    def post(self, body: bytes, timeout: float) -> Response: ...

    def close(self) -> None: ...

    def forget(self) -> None: ...


class Job:
    """One request: its body, and its answer once ``done`` is set."""

    __slots__ = ("answer", "body", "done", "timeout")

    def __init__(self, body: bytes, timeout: float) -> None:
        self.body = body
        self.timeout = timeout
        self.answer: Optional[Response] = None
        self.done = threading.Event()


class _Slot:
    """One thread and one transport; runs one job at a time."""

    def __init__(self, name: str, transport: Transport, changed: threading.Event) -> None:
        self.name = name
        self.transport = transport
        self.busy = False
        self.closing = False
        self._changed = changed
        self._job: Optional[Job] = None
        self._wake = threading.Condition(threading.Lock())
        self._thread: Optional[threading.Thread] = None

    def run(self, job: Job) -> None:
        """Start ``job`` in this slot's thread (the caller's if none can start)."""
        self.busy = True
        with self._wake:
            self._job = job
            if self._thread is None or not self._thread.is_alive():
                thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                try:
                    thread.start()
                except RuntimeError:  # "can't create new thread at interpreter shutdown"
                    self._job = None
                    self._thread = None
                    self.run_here(job)
                    return
                self._thread = thread
            self._wake.notify()

    def run_here(self, job: Job) -> None:
        """Run ``job`` in the caller's thread."""
        self._finish(job, self.transport.post(job.body, job.timeout))

    def close(self) -> None:
        """Close the session now if idle, else once the request in flight ends."""
        with self._wake:
            self.closing = True
            self._wake.notify()
            if not self.busy:
                self.transport.close()

    def _loop(self) -> None:
        with sdk_work():
            while True:
                with self._wake:
                    while self._job is None and not self.closing:
                        self._wake.wait()
                    job, self._job = self._job, None
                    if job is None:
                        return
                try:
                    answer = self.transport.post(job.body, job.timeout)
                except BaseException as error:  # noqa: BLE001 - post never raises; be sure
                    answer = Response(0, None, f"{type(error).__name__}: {error}")
                self._finish(job, answer)
                with self._wake:
                    if self.closing:
                        self.transport.close()
                        return

    def _finish(self, job: Job, answer: Response) -> None:
        job.answer = answer
        self.busy = False
        job.done.set()
        self._changed.set()


class SenderPool:
    """``size`` slots, created lazily; one per request in flight.

    Args:
        make_transport: builds one slot's transport (one HTTP session).
        size: the most requests in flight (``max_in_flight``).
    """

    def __init__(self, make_transport: Callable[[], Transport], size: int) -> None:
        self.size = size
        self._make_transport = make_transport
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._slots: List[_Slot] = []
        #: Set whenever a request ends: the drain waits on it.
        self.changed = threading.Event()

    def _check_fork(self) -> None:
        if self._pid != os.getpid():
            self.forget()

    def submit(self, body: bytes, timeout: float) -> Optional[Job]:
        """Start a request in a free slot; None if every slot is busy.

        From a thread holding logging's lock the request runs right here,
        or not at all (None) while another thread is importing the HTTP
        stack: that import may be waiting for logging's lock, and ours
        would wait for it.
        """
        self._check_fork()
        here = _holds_logging_lock()
        if here and _importing_http():
            return None
        with self._lock:
            slot = next((slot for slot in self._slots if not slot.busy), None)
            if slot is None:
                if len(self._slots) >= self.size:
                    return None
                slot = _Slot(
                    f"trace-telemetry-send-{len(self._slots) + 1}",
                    self._make_transport(),
                    self.changed,
                )
                self._slots.append(slot)
            slot.busy = True
        job = Job(body, timeout)
        if here:
            slot.run_here(job)
        else:
            slot.run(job)
        return job

    def free(self) -> int:
        """How many requests could start now."""
        self._check_fork()
        with self._lock:
            return self.size - sum(1 for slot in self._slots if slot.busy)

    def close(self) -> None:
        """Close every session; threads end once their request does."""
        self._check_fork()
        with self._lock:
            slots, self._slots = self._slots, []
        for slot in slots:
            slot.close()

    def forget(self) -> None:
        """In a forked child: drop every slot without closing anything.

        The parent's threads do not exist here, and their sockets and locks
        belong to the parent.
        """
        slots = self._slots
        self._reset()
        for slot in slots:
            slot.transport.forget()


def _holds_logging_lock() -> bool:
    """True if this thread holds ``logging``'s module lock (an ``RLock``)."""
    is_owned = getattr(getattr(logging, "_lock", None), "_is_owned", None)
    try:
        return bool(is_owned()) if is_owned is not None else False
    except Exception:  # noqa: BLE001 - a private API: assume not
        return False


def _importing_http() -> bool:
    """True while some thread is in the middle of importing ``requests`` or ``urllib3``."""
    for name in ("requests", "urllib3"):
        spec = getattr(sys.modules.get(name), "__spec__", None)
        if getattr(spec, "_initializing", False):  # what importlib sets meanwhile
            return True
    return False
