"""Imports on the sender's path, made safe from ``fork()``.

The sender imports costly modules (``requests``, ``email.utils``,
compression) on first use, from its own thread. A ``fork()`` from another
thread while that import runs leaves the child with the module's import lock
held by a thread that does not exist there: the child's first send then
blocks for ever, holding the sender lock. Imports made through :func:`load`
hold a lock that ``fork()`` waits for (``os.register_at_fork``), so a child
is only ever forked between two such imports, never in the middle of one.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from types import ModuleType

__all__ = ["SENDER_MODULES", "load", "load_all"]

#: What the sender imports, itself or inside ``requests`` during a request
#: (``requests`` reads ``~/.netrc`` through a lazy ``import netrc``), and the
#: compression module (``compression="gzip"``). Loaded
#: together before the first request, so none is imported while sending.
SENDER_MODULES = ("requests", "netrc", "email.utils", "gzip")

_lock = threading.RLock()


def load(name: str) -> ModuleType:
    """Import ``name`` (once); a concurrent ``fork()`` waits until it is done."""
    module = sys.modules.get(name)
    if module is not None and getattr(getattr(module, "__spec__", None), "_initializing", False):
        module = None  # another thread is still importing it
    if module is not None:
        return module
    with _lock:
        return importlib.import_module(name)


def load_all(names: "tuple[str, ...]") -> None:
    """Import every module of ``names`` in one go, under the lock ``fork()`` waits for."""
    with _lock:
        for name in names:
            importlib.import_module(name)


def _before_fork() -> None:
    _lock.acquire()


def _after_fork_in_parent() -> None:
    _lock.release()


def _after_fork_in_child() -> None:
    global _lock  # noqa: PLW0603 - the child's lock must be a fresh one
    _lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
