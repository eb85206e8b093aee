"""The background sender thread (after sentry-python's ``BackgroundWorker``).

A named daemon thread, started lazily under a lock, that remembers the pid
it was started in so a forked child starts its own.
"""

from __future__ import annotations

import os
import threading
from typing import Callable, Optional

from ._guard import sdk_work
from ._stats import Stats

__all__ = ["Worker"]


class Worker:
    """Calls ``run_once(stop_event)`` periodically; it returns the next delay.

    ``run_once`` should return early once ``stop_event`` is set.
    """

    def __init__(
        self,
        name: str,
        run_once: Callable[[threading.Event], float],
        first_delay: float,
        stats: Stats,
    ) -> None:
        self.name = name
        self._run_once = run_once
        self._first_delay = first_delay
        self._stats = stats
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._pid = os.getpid()

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive() and self._pid == os.getpid()

    def start(self) -> None:
        """Start the thread unless it runs already (idempotent)."""
        with self._lock:
            if self.running:
                return
            self._pid = os.getpid()
            self._stop = threading.Event()
            self._wake = threading.Event()
            thread = threading.Thread(
                target=self._loop, args=(self._stop, self._wake), name=self.name, daemon=True
            )
            try:
                thread.start()
            except RuntimeError:  # "can't create new thread at interpreter shutdown"
                self._thread = None
                return
            self._thread = thread

    def stop(self, timeout: float = 2.0) -> bool:
        """Ask the thread to end; wait at most ``timeout``. True if it ended.

        A thread stuck in a request is left behind (it is a daemon and its
        request has a timeout); nothing it holds is lost.
        """
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
            self._wake.set()
        if thread is None or thread is threading.current_thread():
            return True
        if self._pid != os.getpid():
            return True  # the parent's thread does not exist in this child
        thread.join(timeout)
        return not thread.is_alive()

    def wake(self) -> None:
        """Run the next iteration now."""
        self._wake.set()

    def after_fork(self) -> bool:
        """Reset in a forked child; True if the parent had the thread running."""
        was_running = self._thread is not None and not self._stop.is_set()
        self._lock = threading.Lock()
        self._thread = None
        self._pid = os.getpid()
        return was_running

    def _loop(self, stop: threading.Event, wake: threading.Event) -> None:
        delay = self._first_delay
        with sdk_work():
            while not stop.is_set():
                wake.wait(delay)
                wake.clear()
                if stop.is_set():
                    return
                try:
                    delay = self._run_once(stop)
                except Exception as error:  # noqa: BLE001 - keep the sender alive
                    self._stats.warn_once(
                        "worker", "trace_telemetry sender error: %r", error, exc_info=True
                    )
                    delay = self._first_delay
