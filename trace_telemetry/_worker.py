"""The background sender thread (after sentry-python's ``BackgroundWorker``).

A named daemon thread, started lazily under a lock, that remembers the pid
it was started in so a forked child starts its own. At interpreter exit it
is woken for one last drain (:meth:`Worker.finish`) and joined with a
timeout: no thread can be started then (3.12 raises "can't create new
thread at interpreter shutdown"), so the one already running does the work.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable, Optional

from ._guard import sdk_work
from ._stats import Stats

__all__ = ["Worker"]


class _Run:
    """The state of one thread: how to stop it, wake it, and what to do at its end."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.final_deadline: Optional[float] = None
        self.done = False
        self.on_exit: Optional[Callable[[], None]] = None


class Worker:
    """Calls ``run_once(stop_event)`` periodically; it returns the next delay.

    ``run_once`` should return early once ``stop_event`` is set.
    ``run_final(stop_event, deadline)`` is the last drain asked for by
    :meth:`finish`; the thread ends after it.
    """

    def __init__(
        self,
        name: str,
        run_once: Callable[[threading.Event], float],
        first_delay: float,
        stats: Stats,
        run_final: Optional[Callable[[threading.Event, float], None]] = None,
    ) -> None:
        self.name = name
        self._run_once = run_once
        self._run_final = run_final
        self._first_delay = first_delay
        self._stats = stats
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._run = _Run()
        self._pid = os.getpid()

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive() and self._pid == os.getpid()

    def start(self, first_delay: Optional[float] = None) -> None:
        """Start the thread unless it runs already (idempotent).

        Args:
            first_delay: seconds before the first run (default: the period).
        """
        with self._lock:
            if self.running:
                return
            self._pid = os.getpid()
            run = self._run = _Run()
            delay = self._first_delay if first_delay is None else first_delay
            thread = threading.Thread(
                target=self._loop, args=(run, delay), name=self.name, daemon=True
            )
            try:
                thread.start()
            except RuntimeError:  # "can't create new thread at interpreter shutdown"
                self._thread = None
                return
            self._thread = thread

    def stop(self, timeout: float = 2.0, on_exit: Optional[Callable[[], None]] = None) -> bool:
        """Ask the thread to end; wait at most ``timeout``. True if it ended.

        A thread stuck in a request is left behind (it is a daemon and its
        request has a timeout); nothing it holds is lost.

        Args:
            timeout: the longest wait for the thread.
            on_exit: run once the thread has ended: here if it ended in
                time (or never ran), else by the thread on its way out, so
                the caller never waits for what the thread still holds.
        """
        with self._lock:
            thread, self._thread = self._thread, None
            run = self._run
            run.stop.set()
            run.wake.set()
        ended = True
        # (in a forked child, the parent's thread does not exist)
        if thread not in (None, threading.current_thread()) and self._pid == os.getpid():
            assert thread is not None
            thread.join(timeout)
            ended = not thread.is_alive()
        if on_exit is not None:
            with self._lock:
                if not ended and not run.done:
                    run.on_exit = on_exit
                    return False
            on_exit()
        return ended

    def finish(self, deadline: float) -> Optional[threading.Thread]:
        """Wake the running thread for a last run before ``deadline``; it then ends.

        Returns:
            The thread to join (with a timeout), or None if none runs.
        """
        with self._lock:
            thread = self._thread
            if thread is None or not self.running or self._run.stop.is_set():
                return None
            self._run.final_deadline = deadline
            self._run.wake.set()
            return thread

    def wake(self) -> None:
        """Run the next iteration now."""
        self._run.wake.set()

    def after_fork(self) -> bool:
        """Reset in a forked child; True if the parent had the thread running."""
        was_running = self._thread is not None and not self._run.stop.is_set()
        self._lock = threading.Lock()
        self._thread = None
        self._pid = os.getpid()
        return was_running

    def _loop(self, run: _Run, delay: float) -> None:
        try:
            with sdk_work():
                self._iterate(run, delay)
        finally:
            with self._lock:
                run.done = True
                on_exit, run.on_exit = run.on_exit, None
            if on_exit is not None:
                on_exit()

    def _iterate(self, run: _Run, delay: float) -> None:
        stop, wake = run.stop, run.wake
        while not stop.is_set():
            wake.wait(delay)
            wake.clear()
            if stop.is_set():
                return
            deadline = run.final_deadline
            try:
                if deadline is not None:
                    if self._run_final is not None and time.monotonic() < deadline:
                        self._run_final(stop, deadline)
                    return
                delay = self._run_once(stop)
            except Exception as error:  # noqa: BLE001 - keep the sender alive
                self._stats.warn_once(
                    "worker", "trace_telemetry sender error: %r", error, exc_info=True
                )
                delay = self._first_delay
