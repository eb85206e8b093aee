"""Counters and log-once diagnostics shared by a client's parts.

Nothing the SDK drops is dropped silently: every loss is counted by reason
here, and the first occurrence of each condition is logged on the
``trace_telemetry`` logger (which has only a ``NullHandler`` unless the
application configures one).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Dict, Optional, Set

__all__ = ["Stats", "logger"]

logger = logging.getLogger("trace_telemetry")


class Stats:
    """Thread-safe counters plus a memory of which conditions were logged."""

    def __init__(self) -> None:
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

    def add(self, counter: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + amount)

    def drop(self, reason: str, amount: int = 1, detail: str = "") -> None:
        """Count ``amount`` lost events and log the reason the first time."""
        with self._lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + amount
        self.warn_once(
            f"drop:{reason}",
            "trace_telemetry dropped %d event(s): %s%s (counted in stats(); logged once)",
            amount,
            reason,
            f" ({detail})" if detail else "",
        )

    def error(self, text: str) -> None:
        with self._lock:
            self.last_error = text

    def warn_once(self, key: str, message: str, *args: Any, exc_info: bool = False) -> None:
        """Log ``message`` at WARNING unless ``key`` was logged already."""
        with self._lock:
            if key in self._logged:
                return
            self._logged.add(key)
        logger.warning(message, *args, exc_info=exc_info)

    def recovered(self, prefix: str, message: str, *args: Any) -> None:
        """Forget the conditions starting with ``prefix`` so they are logged again.

        Logs ``message`` at INFO if any of them had been logged.
        """
        with self._lock:
            keys = {key for key in self._logged if key.startswith(prefix)}
            if not keys:
                return
            self._logged -= keys
        logger.info(message, *args)

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
