"""The telemetry client: ``track()`` into the durable queue, a timer sends it."""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
import weakref
from typing import Any, Dict, Optional, overload

from . import _envelope, _exit, _paths, _sender, _shape
from ._arguments import event_name, parse_track_arguments
from ._event import exception_data, format_timestamp, new_event_id
from ._host import host_info
from ._queue import FileQueue
from ._serialize import encode, encode_event
from ._stats import Stats
from ._worker import Worker
from .options import TelemetryOptions

__all__ = ["TelemetryClient"]

#: The default budget of :meth:`TelemetryClient.flush`.
DEFAULT_FLUSH_TIMEOUT = 30.0
#: How long :meth:`TelemetryClient.stop` (and :meth:`~TelemetryClient.close`)
#: waits for the sender thread.
STOP_TIMEOUT = 2.0
#: The first send after :meth:`TelemetryClient.start` finds a backlog comes
#: this many seconds later (uniform, so a fleet restarted together spreads out).
BACKLOG_DELAY = (0.1, 1.0)

_clients: "weakref.WeakSet[TelemetryClient]" = weakref.WeakSet()
_getpid = os.getpid


class TelemetryClient:
    """Records events durably and sends them in the background.

    Thread-safe. ``track*`` never raises, never waits on the network, and
    returns once the event's line is in the queue file, so it survives a
    crash of the process. Events reach the endpoint in batches from a
    background thread started by :meth:`start`, or when :meth:`flush` is
    called.

    Args:
        options: the configuration, validated when it was built.

    Example:
        >>> client = TelemetryClient(TelemetryOptions(queue_path=str(tmp / "q.ndjson")))
        >>> client.track("signup", "source", "google")
        >>> client.queued_count
        1
    """

    def __init__(self, options: TelemetryOptions) -> None:
        if not isinstance(options, TelemetryOptions):
            msg = f"options must be a TelemetryOptions, got {type(options).__name__}"
            raise ValueError(msg)
        self.options = options
        self._stats = Stats()
        self._host = host_info()
        self._queue = FileQueue(
            str(options.queue_path),
            options.max_queue_bytes,
            self._stats,
            max_line=options.max_event_bytes,
        )
        # The wire protocol, the request slots, the drain (docs/delivery.md).
        self._protocol, self._senders, self._delivery = _sender.build(
            options, self._queue, self._stats
        )
        self._capture = options.protocol == "otlp"  # OTLP facts per event (docs/otlp.md)
        self._worker = Worker(
            "trace-telemetry-sender",
            self._tick,
            options.flush_interval_seconds,
            self._stats,
            run_final=self._final,
        )
        self._before_send = options.before_send
        self._max_event_bytes = options.max_event_bytes
        self._app_name = options.application_name
        self._app_version = options.application_version
        self._tail_ip: Optional[str] = None
        self._tail_text = ""
        self._pid = _getpid()
        if options.sdk_disabled:  # OTEL_SDK_DISABLED=true: every door records nothing
            setattr(self, "_enqueue", _record_nothing)  # noqa: B010 - keeps the hot path flat
        _clients.add(self)
        _paths.warn_if_unwritable(self._queue.path, self._stats)

    def __repr__(self) -> str:
        return (
            f"<TelemetryClient endpoint_url={self.options.endpoint_url!r} "
            f"queue_path={self._queue.path!r} running={self._worker.running}>"
        )

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Start the background sender (idempotent).

        It drains the queue every ``flush_interval_seconds``, or later while
        backing off after a failure. If events are already queued (an earlier
        run, another process), the first send comes within about a second.
        While it runs, interpreter exit sends what it can within
        ``shutdown_timeout_seconds`` (docs/configuration.md).
        """
        self._check_fork()
        if self._worker.running:
            return
        first_delay = None
        if self.options.endpoint_url and _paths.file_size(self._queue.path):
            # Maybe a backlog (an earlier run, another process). Checked by
            # size, not counted: counting reads the whole file, ~50 ms for
            # a full 64 MiB queue; a needless early drain costs a lock.
            first_delay = random.uniform(*BACKLOG_DELAY)  # noqa: S311 - jitter, not crypto
        self._worker.start(first_delay)
        _exit.register(self)

    def stop(self) -> None:
        """Stop the background sender; returns within ~2 s even if a request hangs.

        Does not flush (like the .NET client): call :meth:`flush` first to
        send what remains. Unsent events stay queued for the next run, and
        a stopped client sends nothing at interpreter exit.
        """
        self._worker.stop(STOP_TIMEOUT)

    def close(self) -> None:
        """:meth:`stop`, then release the files and the HTTP session.

        Returns within ~2 s like :meth:`stop`: if the sender thread is still
        stuck in a request then, it releases them itself when it ends.
        """
        self._worker.stop(STOP_TIMEOUT, on_exit=self._release)

    def _release(self) -> None:
        with contextlib.suppress(Exception):
            self._queue.close()
        self._senders.close()

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Send everything queued now, in batches, until done or a send fails.

        Tries at once, ignoring any backoff. Never raises.

        Args:
            timeout: the budget in seconds for the whole flush (default 30);
                what is not sent by then stays queued.

        Returns:
            True if everything queued when it was called was delivered (or
            set aside as rejected or corrupt). With no ``endpoint_url`` this
            is False and the events stay queued.
        """
        self._check_fork()
        budget = DEFAULT_FLUSH_TIMEOUT if timeout is None else max(0.0, float(timeout))
        self._verify_queue()
        return self._delivery.drain(budget, respect_backoff=False)

    @property
    def queued_count(self) -> int:
        """How many events wait in the queue file (all processes sharing it)."""
        try:
            return self._queue.pending_count()
        except Exception:  # noqa: BLE001 - diagnostics must not raise
            return 0

    def stats(self) -> Dict[str, Any]:
        """Counters since this process started using the client.

        Keys: ``enqueued``, ``sent``, ``requests``, ``retries``, ``rejected``
        (dead-lettered), ``corrupt`` (invalid queue lines set aside),
        ``truncated``, ``dropped`` (by reason), ``dropped_total``,
        ``last_error``, plus ``queued`` and ``backing_off``.
        """
        snapshot = self._stats.snapshot()
        snapshot["enqueued"] = self._queue.appended
        snapshot["queued"] = self.queued_count
        snapshot["backing_off"] = bool(self._delivery.failures)
        return snapshot

    # -- tracking ----------------------------------------------------------------

    @overload
    def track(self, name: Optional[str]) -> None: ...

    @overload
    def track(self, name: Optional[str], data: Any) -> None: ...

    @overload
    def track(self, name: Optional[str], property_name: str, property_value: Any) -> None: ...

    def track(self, name: Optional[str], *args: Any, **kwargs: Any) -> None:
        """Record an event: ``track(name)``, ``track(name, data)`` or
        ``track(name, property_name, property_value)``.

        ``data`` may be anything; it is made JSON-safe (``docs/contract.md``). The
        three-argument form stores ``{property_name: property_value}``, also
        when the value is ``None``.
        """
        try:
            if not kwargs and len(args) <= 1:
                data = args[0] if args else None
            else:
                data = parse_track_arguments(args, kwargs)
        except TypeError as error:
            self._stats.drop("bad_arguments", detail=str(error))
            return
        self._enqueue(name, data, None, _envelope.from_track() if self._capture else None)

    def track_exception(
        self, exc: BaseException, event_name: str = "exception", extra_data: Any = None
    ) -> None:
        """Record an exception: message, stack trace, type and inner message.

        Works after the ``except`` block has ended: the traceback comes from
        ``exc.__traceback__``. Anything but an exception (``None`` included)
        records nothing and is counted as a ``bad_arguments`` drop.
        """
        if not isinstance(exc, BaseException):
            self._stats.drop(
                "bad_arguments",
                detail=f"track_exception() needs an exception, got {type(exc).__name__}",
            )
            return
        try:
            data = exception_data(exc, extra_data)
        except Exception as error:  # noqa: BLE001
            self._internal_error(error)
            return
        self._enqueue(event_name, data, None, _envelope.from_track() if self._capture else None)

    def _enqueue(
        self,
        name: Any,
        data: Any,
        created: Optional[float],
        facts: Optional[bytes] = None,
    ) -> bool:
        """Build, scrub, serialize and append one event. Never raises.

        Shared by ``track``, the logging handler and the structlog processor.
        The common case (no ``before_send``, plain JSON, under
        ``max_event_bytes``) costs one encode and one append. ``facts`` is
        the OTLP envelope's bytes (docs/otlp.md), given only by OTLP clients.
        """
        try:
            if self._pid != _getpid():
                self._check_fork()
            if self._before_send is None:
                line = encode_event(
                    new_event_id(), name, format_timestamp(created), data, self._tail()
                )
                if line and len(line) <= self._max_event_bytes:
                    if facts is not None:
                        line = _envelope.attach(line, facts)
                    return self._queue.append(line)
            return self._enqueue_slowly(name, data, created, facts)
        except Exception as error:  # noqa: BLE001 - tracking never raises
            self._internal_error(error)
            return False

    def _enqueue_slowly(
        self,
        name: Any,
        data: Any,
        created: Optional[float],
        facts: Optional[bytes] = None,
    ) -> bool:
        """``before_send``, values to repair, events to shrink."""
        event = self._event(new_event_id(), name, format_timestamp(created), data)
        if self._before_send is not None:
            scrubbed = self._scrub(event)
            if scrubbed is None:
                return False
            event = scrubbed
        line = encode(event) + b"\n"
        if len(line) > self._max_event_bytes:
            line = self._shrink(event)
            if not line:
                return False
        if facts is not None:
            line = _envelope.attach(line, facts)
        return self._queue.append(line)

    def _event(self, event_id: str, name: Any, timestamp: str, data: Any) -> Dict[str, Any]:
        host = self._host
        return {
            "id": event_id,
            "name": name if type(name) is str else event_name(name),
            "timestampUtc": timestamp,
            "data": data,
            "applicationName": self._app_name,
            "applicationVersion": self._app_version,
            "machineName": host.machine_name,
            "osDescription": host.os_description,
            "ipAddress": host.ip_address,
            "countryCode": "",
        }

    def _tail(self) -> str:
        """The encoded envelope after ``data``; rebuilt when the IP address changes."""
        ip_address = self._host.ip_address
        if ip_address is not self._tail_ip:
            fixed = self._event("", "", "", None)
            del fixed["id"], fixed["name"], fixed["timestampUtc"], fixed["data"]
            self._tail_text = "," + encode(fixed).decode("utf-8")[1:] + "\n"
            self._tail_ip = ip_address
        return self._tail_text

    def _scrub(self, event: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        assert self._before_send is not None
        return _shape.scrub(event, self._before_send, self._stats)

    def _shrink(self, event: Dict[str, Any]) -> bytes:
        return _shape.shrink(event, self._max_event_bytes, self._stats)

    def _internal_error(self, error: Exception) -> None:
        self._stats.error(f"internal error: {error!r}")
        self._stats.drop("internal_error", detail=repr(error))

    # -- background work and fork safety -----------------------------------------

    def _verify_queue(self) -> None:
        """Rescue appends to a ``Q`` deleted by hand; store pending drop counts."""
        try:
            self._queue.verify()
        except Exception as error:  # noqa: BLE001 - never raises
            self._stats.error(f"queue check failed: {error!r}")

    def _tick(self, stop: threading.Event) -> float:
        self._host.refresh_ip()
        self._verify_queue()
        self._delivery.drain(DEFAULT_FLUSH_TIMEOUT * 2, respect_backoff=True, cancel=stop)
        return self._delivery.seconds_until_next()

    def _final(self, stop: threading.Event, deadline: float) -> None:
        """The sender thread's last drain, at interpreter exit (see ``_exit``)."""
        self._verify_queue()
        self._delivery.drain(deadline - time.monotonic(), respect_backoff=True, cancel=stop)

    def _exit_budget(self) -> float:
        """Seconds this client may send at interpreter exit; 0 to skip it.

        Skipped: stopped or never started, no endpoint, nothing queued, or
        backing off after a failure (an offline laptop must not wait on
        every run).
        """
        budget = self.options.shutdown_timeout_seconds
        if budget <= 0 or not self.options.endpoint_url or not self._worker.running:
            return 0.0
        if self._delivery.failures or self._pid != _getpid() or not self.queued_count:
            return 0.0
        return budget

    def _check_fork(self) -> None:
        """In a forked child: fresh locks and files; restart the sender if it ran.

        Called from ``os.register_at_fork`` and, for servers that fork
        without running those hooks (uWSGI), by a pid check on every call.
        """
        if self._pid == _getpid():
            return
        self._pid = _getpid()
        self._stats.reset()
        self._queue.check_fork()
        self._senders.forget()
        self._delivery.failures = 0
        if self._worker.after_fork():
            self._worker.start()


def _record_nothing(
    name: Any, data: Any, created: Optional[float], facts: Optional[bytes] = None
) -> bool:
    return False


def _after_fork_in_child() -> None:
    for client in list(_clients):
        with contextlib.suppress(Exception):  # never break the child
            client._check_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
