"""Marks the SDK's own work so log records it causes never become events.

Records emitted while the SDK sends (urllib3's debug lines, our own
warnings) would otherwise be captured by a root ``TelemetryHandler`` and
queued, then sent, then logged again: the feedback loop of
opentelemetry-python #2701.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

__all__ = ["in_sdk_work", "sdk_work"]

_state = threading.local()


def in_sdk_work() -> bool:
    """True on a thread that is currently doing the SDK's own I/O."""
    return getattr(_state, "active", False)


@contextmanager
def sdk_work() -> Iterator[None]:
    """Mark the current thread as doing SDK work for the ``with`` block."""
    previous = getattr(_state, "active", False)
    _state.active = True
    try:
        yield
    finally:
        _state.active = previous
