"""One client per queue file per process, for handlers and processors built from options.

``dictConfig`` may build several handlers (or a handler and a processor) for
the same ``queue_path``; two clients would mean two senders racing for the
same file. They share one client instead, started on first use and closed
with its last user.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Dict, List, Optional, Tuple

from . import _exit
from ._stats import log
from .client import TelemetryClient
from .options import TelemetryOptions

__all__ = ["acquire", "client_for", "release"]

#: How long closing the last user may spend sending what is queued.
CLOSE_SEND_SECONDS = 2.0

_lock = threading.Lock()
_entries: Dict[str, List[Any]] = {}  # abspath -> [client, options, users]


def acquire(options: Dict[str, Any]) -> TelemetryClient:
    """The started client for ``options["queue_path"]``, built on first use.

    Raises:
        ValueError: invalid options (at configuration time, as for the client).
    """
    validated = TelemetryOptions(**options)
    key = os.path.abspath(str(validated.queue_path))
    with _lock:
        entry = _entries.get(key)
        if entry is None:
            client = TelemetryClient(validated)
            _entries[key] = [client, validated, 1]
        else:
            client, first, _ = entry
            entry[2] += 1
            if first != validated:
                log(
                    logging.WARNING,
                    "trace_telemetry: another handler already uses %s with other options; "
                    "the first configuration wins (%r)",
                    key,
                    first,
                )
    client.start()
    return client


def client_for(
    owner: str, client: Optional[TelemetryClient], options: Dict[str, Any]
) -> Tuple[TelemetryClient, bool]:
    """The client a handler or processor records into, and whether it owns it.

    Raises:
        ValueError: both a client and options, a client that is not one, or
            invalid options.
    """
    if client is None:
        return acquire(options), True
    if options:
        msg = f"{owner} takes client= or options, not both (got {sorted(options)})"
        raise ValueError(msg)
    if not isinstance(client, TelemetryClient):
        msg = f"client must be a TelemetryClient, got {client!r}"
        raise ValueError(msg)
    return client, False


def release(client: TelemetryClient) -> None:
    """Drop one user; the last one sends for up to ~2 s and stops the client.

    Never joins the sender thread: ``dictConfig`` calls this while holding
    logging's module lock, which that thread may be waiting for
    (opentelemetry-python #3193). The send happens on this thread instead.

    At interpreter exit (``logging.shutdown`` closing the handlers) it sends
    nothing: the exit hook has already given the client its share of the
    one exit budget (``shutdown_timeout_seconds``).
    """
    key = os.path.abspath(str(client.options.queue_path))
    with _lock:
        entry = _entries.get(key)
        if entry is None or entry[0] is not client:
            return
        entry[2] -= 1
        if entry[2] > 0:
            return
        del _entries[key]
    client._worker.stop(timeout=0)
    if client.options.endpoint_url and not _exit.exiting():
        client.flush(timeout=CLOSE_SEND_SECONDS)


def _after_fork_in_child() -> None:
    """A lock held by a thread that does not exist in the child would stay held."""
    global _lock  # noqa: PLW0603
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
