"""Draining the queue to the endpoint: batching, the failure policy, backoff.

Per answer (see ``docs/delivery.md``, "The failure policy"):

* 2xx: the batch leaves the queue.
* 400, 422: split the batch until the refused events are isolated; each
  refused event goes to the dead-letter file, the rest is delivered.
* 413: split the same way; a single event still too large is dead-lettered.
* anything else (no answer, 401/403, 408, 429, 5xx, redirects...): keep
  everything and back off exponentially with jitter, honouring
  ``Retry-After`` up to ``max_backoff_seconds``.

No event leaves the queue without a 2xx or a write to the dead-letter file.
The wire protocol (``_protocol.py``) builds each body and classifies each
answer as done, split or retry; the table above is the default protocol's,
OTLP's is in docs/otlp.md ("Failure table").

Up to ``max_in_flight`` batches are in flight at once (a window); answers
are settled, and batches committed, in queue order. A split or a failure
first lets the window drain; a split then proceeds alone, a failure backs
off once for the whole window. The window halves on 429/503 and grows back
by one per window of successes. See docs/delivery.md.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from typing import Callable, Deque, List, NamedTuple, Optional, Tuple

from ._guard import sdk_work
from ._inflight import Job, SenderPool
from ._protocol import DONE, SPLIT, TraceTelemetryProtocol, WireProtocol, json_array
from ._queue import FileQueue
from ._session import QueueSession
from ._stats import Stats
from ._transport import Response

__all__ = ["Delivery", "json_array"]

_AUTH_STATUSES = frozenset({401, 403})
_OVERLOAD_STATUSES = frozenset({429, 503})
#: How often a drain waiting on the network looks at ``cancel``.
_POLL = 0.05
_NOTHING_TO_SEND = Response(204)

Batch = List[Tuple[bytes, int]]
#: Builds a request body from event lines (the protocol's one encoder).
BodyBuilder = Callable[[List[bytes]], bytes]


class _Flight(NamedTuple):
    """A batch sent (``job``), or with nothing to send (``job`` None: all lines set aside)."""

    batch: Batch
    job: Optional[Job]

    def answered(self) -> bool:
        return self.job is None or self.job.done.is_set()

    def answer(self) -> Response:
        if self.job is None:
            return _NOTHING_TO_SEND
        assert self.job.answer is not None
        return self.job.answer


class Delivery:
    """Sends batches from a :class:`FileQueue`; one per client."""

    def __init__(
        self,
        queue: FileQueue,
        pool: SenderPool,
        stats: Stats,
        *,
        batch_size: int,
        interval: float,
        timeout: float,
        max_backoff: float,
        enabled: bool,
        protocol: Optional[WireProtocol] = None,
    ) -> None:
        #: The wire protocol (docs/otlp.md): builds bodies, classifies answers.
        self.protocol: WireProtocol = protocol or TraceTelemetryProtocol()
        self.queue = queue
        self.pool = pool
        self.stats = stats
        self.batch_size = batch_size
        self.interval = interval
        self.timeout = timeout
        self.max_backoff = max(max_backoff, interval)
        self.enabled = enabled
        self.build_body: BodyBuilder = self.protocol.encode
        self.failures = 0
        self.next_attempt = 0.0
        #: The window: requests allowed in flight (halved on 429/503).
        self.window = pool.size
        self._successes = 0

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

        Returns by ``timeout`` even with requests in flight: it stops
        waiting, releases the sender lock and ignores their answers (their
        events stay queued and may be sent again).

        Args:
            timeout: the whole drain's budget, requests included.
            respect_backoff: skip the drain while backing off (the timer);
                ``flush()`` passes False to try at once.
            cancel: stop waiting once this is set (``stop()``).
            progress: called after each commit with the events it consumed
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
            complete = _Drain(self, session, deadline, cancel, progress).run()
            session.maintain()
            return complete

    def _request_budget(self, deadline: float) -> float:
        return max(0.5, min(self.timeout, deadline - time.monotonic()))

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
        self._successes += 1
        if self._successes >= self.window:  # one more per window of successes
            self._successes = 0
            self.window = min(self.pool.size, self.window + 1)
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
        if answer.status in _OVERLOAD_STATUSES:
            self.window = max(1, self.window // 2)
            self._successes = 0
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


class _Drain:
    """One drain: a window of batches in flight, settled in queue order."""

    def __init__(
        self,
        delivery: Delivery,
        session: QueueSession,
        deadline: float,
        cancel: Optional[threading.Event],
        progress: Optional[Callable[[int], None]],
    ) -> None:
        self.delivery = delivery
        self.session = session
        self.deadline = deadline
        self.cancel = cancel
        self.progress = progress
        self.stop_at = session.end_offset()
        self.flights: Deque[_Flight] = deque()
        #: Where the last batch read ended: the next read ahead starts there.
        self.position = 0
        #: The end of the batches settled but not yet committed (-1: none).
        self.pending_end = -1

    def run(self) -> bool:
        try:
            return self._run()
        finally:
            self._write_commit()

    def _run(self) -> bool:
        delivery, pool, flights = self.delivery, self.delivery.pool, self.flights
        ready: Optional[Batch] = None
        exhausted = False
        while True:
            pool.changed.clear()
            while flights and flights[0].answered():
                if not self._settle(flights.popleft()):
                    return False
            self._write_commit()  # one commit for every batch settled together
            if self._out_of_time():
                return False  # answers still to come are ignored; events stay queued
            if not self.session.still_locked():  # Q.offset deleted by hand: another
                return False  # sender may lock the new one; stop sending
            if ready is None and not exhausted:
                ready = self._read()  # overlaps the requests in flight
                # Read ahead, the end is tried again from the head once the
                # window is empty: that read repairs a torn tail.
                exhausted = ready is None and not flights
            # While backing off, one batch goes alone until one succeeds.
            room = (1 if delivery.failures else delivery.window) - len(flights)
            if ready is not None and room > 0:
                lines = [line for line, _ in ready if line]
                job = None
                if lines:
                    job = pool.submit(
                        delivery.build_body(lines), delivery._request_budget(self.deadline)
                    )
                    if job is None:  # every slot still busy with an abandoned request
                        pool.changed.wait(min(_POLL, max(0.0, self.deadline - time.monotonic())))
                        continue
                    delivery.stats.add("requests")
                flights.append(_Flight(ready, job))
                ready = None
                continue
            if not flights:
                return True
            if not flights[0].answered():
                pool.changed.wait(min(_POLL, max(0.0, self.deadline - time.monotonic())))

    def _out_of_time(self) -> bool:
        return time.monotonic() >= self.deadline or (
            self.cancel is not None and self.cancel.is_set()
        )

    def _read(self) -> Optional[Batch]:
        session, size = self.session, self.delivery.batch_size
        if not self.flights:  # all committed: read at the head, past corrupt lines at once
            batch = session.read_batch(size, self.stop_at)
        else:
            batch = session.read_batch(size, self.stop_at, start=self.position)
        if not batch:
            return None
        self.position = batch[-1][1]
        return batch

    def _settle(self, flight: _Flight) -> bool:
        """Commit a 2xx, split a refusal, back off on anything else; False to stop."""
        delivery, answer = self.delivery, flight.answer()
        action = delivery.protocol.classify(answer, delivery.stats)
        if action == DONE:
            self._commit(flight.batch)
            if flight.job is not None:
                delivery._succeeded()
            return True
        if action != SPLIT:
            delivery._failed(answer)  # one backoff for the whole window
            self._wait_all()
            return False
        return self._wait_all() and self._split(flight.batch, answer)

    def _commit(self, batch: Batch) -> None:
        """Count ``batch`` as consumed; its end is committed by :meth:`_write_commit`.

        Batches answered together are committed once, at the last one's end
        (a commit takes ``Q.lock`` exclusively and writes two files).
        """
        self.pending_end = batch[-1][1]
        sent = sum(1 for line, _ in batch if line)
        self.delivery.stats.add("sent", sent)
        if self.progress is not None:
            self.progress(sent)

    def _write_commit(self) -> None:
        end, self.pending_end = self.pending_end, -1
        if end >= 0:
            self.session.commit(end, 0)

    def _wait_all(self) -> bool:
        """Let the window drain (answers kept for their turn); False at the deadline."""
        pool = self.delivery.pool
        while not all(flight.answered() for flight in self.flights):
            pool.changed.clear()
            if self._out_of_time():
                return False
            if not all(flight.answered() for flight in self.flights):
                pool.changed.wait(min(_POLL, max(0.0, self.deadline - time.monotonic())))
        return True

    def _split(self, batch: Batch, answer: Response) -> bool:
        """Halve ``batch`` alone until the refused events are isolated (``answer``: a split)."""
        delivery = self.delivery
        spans: List[Tuple[int, int]] = []
        first: Optional[Response] = answer
        spans.append((0, len(batch)))
        while spans:
            low, high = spans.pop(0)
            part = batch[low:high]
            lines = [line for line, _ in part if line]
            if first is not None:
                reply, first, action = first, None, SPLIT
            elif not lines:  # only lines set aside as corrupt
                self._commit(part)
                continue
            else:
                sent = self._request(delivery.build_body(lines))
                if sent is None:
                    return False
                reply = sent
                action = delivery.protocol.classify(reply, delivery.stats)
            if action == DONE:
                self._commit(part)
                delivery._succeeded()
            elif action != SPLIT:
                delivery._failed(reply)
                return False
            elif len(lines) == 1 and high - low == 1:
                delivery._dead_letter(self.session, part[0], reply)
                if self.progress is not None:
                    self.progress(1)
            else:
                middle = (low + high) // 2
                spans[0:0] = [(low, middle), (middle, high)]
        return True

    def _request(self, body: bytes) -> Optional[Response]:
        """One request alone; None at the deadline or on ``cancel``."""
        self._write_commit()  # what was settled before a request alone is committed first
        pool, job = self.delivery.pool, None
        while True:
            pool.changed.clear()
            if self._out_of_time():
                return None
            if job is None:
                job = pool.submit(body, self.delivery._request_budget(self.deadline))
                if job is not None:
                    self.delivery.stats.add("requests")
            if job is not None and job.done.is_set():
                return job.answer
            pool.changed.wait(min(_POLL, max(0.0, self.deadline - time.monotonic())))
