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


class _State(threading.local):
    active = False  # a class default: a miss would cost an AttributeError per record


_state = _State()


def in_sdk_work() -> bool:
    """True on a thread that is currently doing the SDK's own I/O."""
    return _state.active


@contextmanager
def sdk_work() -> Iterator[None]:
    """Mark the current thread as doing SDK work for the ``with`` block."""
    previous = _state.active
    _state.active = True
    try:
        yield
    finally:
        _state.active = previous
