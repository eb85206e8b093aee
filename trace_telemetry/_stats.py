"""Counters and log-once diagnostics shared by a client's parts.

Nothing the SDK drops is dropped silently: every loss is counted by reason
here, and the first occurrence of each condition is logged on the
``trace_telemetry`` logger (see :func:`log` for where it goes).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any, Callable, Dict, Optional, Set

from ._guard import sdk_work

__all__ = ["SKIPS_SDK_RECORDS", "Stats", "log", "logger"]

logger = logging.getLogger("trace_telemetry")

#: Set on a handler class that never handles the SDK's own records
#: (``TelemetryHandler``): it does not count as somewhere they go.
SKIPS_SDK_RECORDS = "_skips_trace_telemetry_records"


def log(level: int, message: str, *args: Any, exc_info: bool = False) -> None:
    """Log on the ``trace_telemetry`` logger, so that it is seen by default.

    The logger has no handler of its own (no ``NullHandler``): with no
    logging configured, Python's ``logging.lastResort`` prints warnings to
    stderr. When the only handlers the record would reach are
    ``TelemetryHandler`` instances (they skip the SDK's own records), it
    goes to ``logging.lastResort`` too. It stays quiet when the application
    routes it to a handler of its own, sets the logger's level above it, or
    sets ``logging.lastResort`` to None.

    ``dictConfig``'s ``disable_existing_loggers`` (on by default) would
    disable this logger whenever the SDK was imported first — always, for
    a dictConfig that builds a ``TelemetryHandler`` — so ``disabled`` is
    not honoured; levels, filters and handlers are. See docs/logging.md.
    """
    if logging.root.manager.disable >= level or level < logger.getEffectiveLevel():
        return
    record = logger.makeRecord(
        logger.name, level, __file__, 0, message, args, sys.exc_info() if exc_info else None
    )
    if not logger.filter(record):
        return
    # Marked as the SDK's own work: a TelemetryProcessor in a formatter's
    # foreign_pre_chain must not track it (it may be logged under a queue lock).
    with sdk_work():
        logger.callHandlers(record)
    last_resort = logging.lastResort
    if last_resort is not None and level >= last_resort.level and _only_skipping_handlers():
        last_resort.handle(record)


def _only_skipping_handlers() -> bool:
    """True if every handler our records would reach skips them (and there is one)."""
    found = False
    current: Optional[logging.Logger] = logger
    while current is not None:
        for handler in current.handlers:
            if not getattr(handler, SKIPS_SDK_RECORDS, False):
                return False
            found = True
        if not current.propagate:
            break
        current = current.parent
    return found


class Stats:
    """Thread-safe counters plus a memory of which conditions were logged."""

    def __init__(self) -> None:
        #: Stores drop counts where every process (and ``trace-telemetry
        #: status``) sees them; returns False if it could not do so now.
        self.sink: Optional[Callable[[Dict[str, int]], bool]] = None
        self.reset()

    def reset(self) -> None:
        """Zero every counter (a forked child counts its own events)."""
        self._lock = threading.Lock()
        self.sent = 0
        self.requests = 0
        self.retries = 0
        self.rejected = 0
        self.corrupt = 0
        self.truncated = 0
        self.dropped: Dict[str, int] = {}
        self.last_error: Optional[str] = None
        self._logged: Set[str] = set()
        #: Drops not yet stored through ``sink``.
        self._pending: Dict[str, int] = {}
        self._next_store = 0.0

    def add(self, counter: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + amount)

    def drop(self, reason: str, amount: int = 1, detail: str = "", shared: bool = True) -> None:
        """Count ``amount`` lost events and log the reason the first time.

        Args:
            reason: the counter's name.
            amount: how many events.
            detail: said in the log line.
            shared: also count it where other processes see it (through
                :attr:`sink`); False when the caller stored it already.
        """
        with self._lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + amount
            if shared:
                self._pending[reason] = self._pending.get(reason, 0) + amount
        if shared:
            self._store_soon()
        self.warn_once(
            f"drop:{reason}",
            "trace_telemetry dropped %d event(s): %s%s (counted in stats(); logged once)",
            amount,
            reason,
            f" ({detail})" if detail else "",
        )

    def _store_soon(self) -> None:
        """Store pending drops now, at most twice a second (a filter may drop every event)."""
        sink = self.sink
        if sink is None:
            return
        now = time.monotonic()
        with self._lock:
            if now < self._next_store:
                return
            self._next_store = now + 0.5
        pending = self.take_pending()
        try:
            stored = bool(pending) and sink(pending)
        except Exception:  # noqa: BLE001 - counting must never break tracking
            stored = False
        if pending and not stored:
            self.restore_pending(pending)

    def take_pending(self) -> Dict[str, int]:
        """The drops not yet stored; the caller stores them or gives them back."""
        with self._lock:
            pending, self._pending = self._pending, {}
        return pending

    def restore_pending(self, pending: Dict[str, int]) -> None:
        with self._lock:
            for reason, amount in pending.items():
                self._pending[reason] = self._pending.get(reason, 0) + amount

    def error(self, text: str) -> None:
        with self._lock:
            self.last_error = text

    def warn_once(self, key: str, message: str, *args: Any, exc_info: bool = False) -> None:
        """Log ``message`` at WARNING unless ``key`` was logged already."""
        with self._lock:
            if key in self._logged:
                return
            self._logged.add(key)
        log(logging.WARNING, message, *args, exc_info=exc_info)

    def recovered(self, prefix: str, message: str, *args: Any) -> None:
        """Forget the conditions starting with ``prefix`` so they are logged again.

        Logs ``message`` at INFO if any of them had been logged.
        """
        with self._lock:
            keys = {key for key in self._logged if key.startswith(prefix)}
            if not keys:
                return
            self._logged -= keys
        log(logging.INFO, message, *args)

    def snapshot(self) -> Dict[str, Any]:
        with self._lock:
            return {
                "sent": self.sent,
                "requests": self.requests,
                "retries": self.retries,
                "rejected": self.rejected,
                "corrupt": self.corrupt,
                "truncated": self.truncated,
                "dropped": dict(self.dropped),
                "dropped_total": sum(self.dropped.values()),
                "last_error": self.last_error,
            }
