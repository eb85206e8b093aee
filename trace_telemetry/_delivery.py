"""Draining the queue to the endpoint: batching, the failure policy, backoff.

Per answer (CONTRACT.md, issue "The core SDK"):

* 2xx: the batch leaves the queue.
* 400, 422: split the batch until the refused events are isolated; each
  refused event goes to the dead-letter file, the rest is delivered.
* 413: split the same way; a single event still too large is dead-lettered.
* anything else (no answer, 401/403, 408, 429, 5xx, redirects...): keep
  everything and back off exponentially with jitter, honouring
  ``Retry-After`` up to ``max_backoff_seconds``.

No event leaves the queue without a 2xx or a write to the dead-letter file.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any, Callable, List, Optional, Tuple

from ._guard import sdk_work
from ._protocol import DONE, SPLIT, TraceTelemetryProtocol
from ._queue import FileQueue
from ._session import QueueSession
from ._stats import Stats
from ._transport import Response

__all__ = ["Delivery"]

_AUTH_STATUSES = frozenset({401, 403})

PostFunction = Callable[[bytes, float], Response]


class Delivery:
    """Sends batches from a :class:`FileQueue`; one per client."""

    def __init__(
        self,
        queue: FileQueue,
        post: PostFunction,
        stats: Stats,
        *,
        batch_size: int,
        interval: float,
        timeout: float,
        max_backoff: float,
        enabled: bool,
        protocol: Any = None,
    ) -> None:
        # The wire protocol (docs/otlp.md): encodes a batch, classifies an answer.
        self.protocol = protocol if protocol is not None else TraceTelemetryProtocol()
        self.queue = queue
        self.post = post
        self.stats = stats
        self.batch_size = batch_size
        self.interval = interval
        self.timeout = timeout
        self.max_backoff = max(max_backoff, interval)
        self.enabled = enabled
        self.failures = 0
        self.next_attempt = 0.0

    def seconds_until_next(self) -> float:
        """How long the background sender should sleep before its next drain."""
        if self.failures:
            return max(0.0, self.next_attempt - time.monotonic())
        return self.interval

    def drain(
        self,
        timeout: float,
        respect_backoff: bool,
        cancel: Optional[threading.Event] = None,
        progress: Optional[Callable[[int], None]] = None,
    ) -> bool:
        """Send what was queued when called, batch by batch; never raises.

        Args:
            timeout: the whole drain's budget, requests included.
            respect_backoff: skip the drain while backing off (the timer);
                ``flush()`` passes False to try at once.
            cancel: stop between batches once this is set (``stop()``).
            progress: called after each batch with the events it consumed
                (the CLI's progress bar).

        Returns:
            True if everything queued at the start was delivered or set aside.
        """
        if respect_backoff and self.failures and time.monotonic() < self.next_attempt:
            return False
        deadline = time.monotonic() + timeout
        with sdk_work():
            try:
                return self._drain(deadline, cancel, progress)
            except Exception as error:  # noqa: BLE001 - a drain never raises
                self.stats.error(f"drain failed: {error!r}")
                self.stats.warn_once(
                    f"drain-error:{type(error).__name__}",
                    "trace_telemetry could not drain %s: %r (events stay queued)",
                    self.queue.path,
                    error,
                )
                return False

    def _drain(
        self,
        deadline: float,
        cancel: Optional[threading.Event],
        progress: Optional[Callable[[int], None]],
    ) -> bool:
        lock_budget = max(0.0, min(deadline - time.monotonic(), self.timeout))
        with self.queue.session(lock_budget) as session:
            if not session.acquired:
                return False
            if not self.enabled:
                session.maintain()
                return False
            stop_at = session.end_offset()
            complete = True
            while True:
                if time.monotonic() >= deadline or (cancel is not None and cancel.is_set()):
                    complete = False
                    break
                batch = session.read_batch(self.batch_size, stop_at)
                if not batch:
                    break
                delivered = self._deliver(session, batch, deadline)
                if progress is not None:
                    progress(len(batch) if delivered else 0)
                if not delivered:
                    complete = False
                    break
            session.maintain()
            return complete

    def _deliver(
        self, session: QueueSession, batch: List[Tuple[bytes, int]], deadline: float
    ) -> bool:
        spans = [(0, len(batch))]
        while spans:
            low, high = spans[0]
            body, _ = self.protocol.encode_batch([line for line, _ in batch[low:high]])
            budget = max(0.5, min(self.timeout, deadline - time.monotonic()))
            answer = self.post(body, budget)
            self.stats.add("requests")
            action = self.protocol.classify(answer, self.stats)
            if action == DONE:
                spans.pop(0)
                session.commit(batch[high - 1][1], high - low)
                self.stats.add("sent", high - low)
                self._succeeded()
                continue
            if action == SPLIT:
                spans.pop(0)
                if high - low == 1:
                    self._dead_letter(session, batch[low], answer)
                else:
                    middle = (low + high) // 2
                    spans[0:0] = [(low, middle), (middle, high)]
                continue
            self._failed(answer)
            return False
        return True

    def _dead_letter(
        self, session: QueueSession, event: Tuple[bytes, int], answer: Response
    ) -> None:
        line, end = event
        session.dead_letter(line)
        session.commit(end, 1)
        self.stats.add("rejected")
        self.stats.error(f"event refused: {answer.error}")
        self.stats.warn_once(
            f"rejected:{answer.status}",
            "trace_telemetry: the endpoint refused an event (%s); moved to %s (logged once)",
            answer.error,
            self.queue.rejected_path,
        )

    def _succeeded(self) -> None:
        if self.failures:
            self.failures = 0
            self.next_attempt = 0.0
            self.stats.recovered("delivery:", "trace_telemetry: delivery recovered")

    def _failed(self, answer: Response) -> None:
        self.failures += 1
        self.stats.add("retries")
        self.stats.error(answer.error or f"HTTP {answer.status}")
        delay = min(self.max_backoff, self.interval * 2 ** min(self.failures - 1, 30))
        delay = random.uniform(delay / 2, delay)  # noqa: S311 - jitter, not crypto
        if answer.retry_after is not None:
            delay = min(self.max_backoff, answer.retry_after)
        self.next_attempt = time.monotonic() + delay
        if answer.status in _AUTH_STATUSES:
            kind, what = "auth", f"the endpoint refused the API key ({answer.error})"
        elif answer.status == 0:
            kind, what = "network", f"the endpoint cannot be reached ({answer.error})"
        else:
            kind, what = "http", f"the endpoint answered {answer.error}"
        self.stats.warn_once(
            f"delivery:{kind}",
            "trace_telemetry: %s; events stay queued, retrying with backoff (logged once)",
            what,
        )
