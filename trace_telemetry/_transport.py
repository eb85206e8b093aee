"""One HTTP POST of a batch, with the outcome reduced to what the policy needs.

``requests`` costs ~200 ms to import, so it is imported at the first send,
not when ``trace_telemetry`` is imported.
"""

from __future__ import annotations

import contextlib
import datetime
import time
from typing import TYPE_CHECKING, Callable, Dict, Mapping, NamedTuple, Optional

from ._imports import SENDER_MODULES, load, load_all
from ._version import __version__

if TYPE_CHECKING:
    import requests

__all__ = ["HttpTransport", "Response", "parse_retry_after"]

USER_AGENT = f"trace-telemetry-python/{__version__}"
#: zlib's default trades little size for speed past 6 (docs/performance.md).
GZIP_LEVEL = 6


class Response(NamedTuple):
    """``status`` is 0 when no HTTP answer came (connection error, timeout)."""

    status: int
    retry_after: Optional[float] = None
    error: str = ""
    #: The answer's body (OTLP reads ``partialSuccess`` from it).
    body: bytes = b""


class HttpTransport:
    """POSTs JSON bodies to one endpoint over a kept-alive ``requests.Session``.

    Redirects are not followed: ``requests`` would turn a redirected POST
    into a GET and drop the batch. TLS verification is always on. One
    instance serves one thread at a time (a ``Session`` is not documented
    as thread-safe): the sender keeps one per request in flight.

    Args:
        compression: ``"gzip"`` compresses each body (``Content-Encoding:
            gzip``); ``""`` sends it as is.
        on_gzip_refused: called when a 415 turned compression off.
        headers: the user's extra headers (``headers`` option).
        protocol_headers: the wire protocol's own (its ``Content-Type``).
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        connect_timeout: float,
        compression: str = "",
        on_gzip_refused: Optional[Callable[[], None]] = None,
        *,
        headers: Optional[Mapping[str, str]] = None,
        protocol_headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        self.url = url
        # Precedence (docs/otlp.md "Headers"): the user's ``headers``, then
        # ``api_key`` as X-API-Key, then the protocol's Content-Type, then
        # ``Content-Encoding`` for the one gzip of both protocols.
        self._headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
        }
        self._headers.update(headers or {})
        if api_key:
            for name in [name for name in self._headers if name.lower() == "x-api-key"]:
                del self._headers[name]
            self._headers["X-API-Key"] = api_key
        self._headers.update(protocol_headers or {})
        self._gzip = compression == "gzip"
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._on_gzip_refused = on_gzip_refused
        self._connect_timeout = connect_timeout
        self._session: Optional[requests.Session] = None

    def __repr__(self) -> str:
        return f"HttpTransport(url={self.url!r})"

    def post(self, body: bytes, timeout: float) -> Response:
        """Send ``body``; never raises.

        A 415 to a compressed body turns compression off for this transport
        and sends the body again uncompressed (RFC 7694's signal).
        """
        try:
            session = self._session
            if session is None:
                load_all(SENDER_MODULES)  # deferred (costly), and fork-safe
                session = self._session = load("requests").Session()
            if self._gzip:
                packed = load("gzip").compress(body, compresslevel=GZIP_LEVEL, mtime=0)
                answer = self._send(session, packed, self._headers, timeout)
                if answer.status != 415:  # Unsupported Media Type
                    return answer
                self._gzip = False
                del self._headers["Content-Encoding"]
                if self._on_gzip_refused is not None:
                    self._on_gzip_refused()
            return self._send(session, body, self._headers, timeout)
        except Exception as error:  # noqa: BLE001 - nothing may escape a send
            return Response(0, None, f"{type(error).__name__}: {error}")

    def _send(
        self, session: requests.Session, body: bytes, headers: Dict[str, str], timeout: float
    ) -> Response:
        answer = session.post(
            self.url,
            data=body,
            headers=headers,
            timeout=(min(self._connect_timeout, timeout), timeout),
            allow_redirects=False,
            verify=True,
        )
        try:
            content = answer.content  # read it so the connection is reused
        finally:
            answer.close()
        retry_after = parse_retry_after(answer.headers.get("Retry-After"))
        reason = "" if answer.ok else f"HTTP {answer.status_code} {answer.reason}"
        return Response(answer.status_code, retry_after, reason, content or b"")

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(Exception):
                session.close()

    def forget(self) -> None:
        """Drop the session without closing it (its sockets belong to the parent after fork)."""
        self._session = None


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    utils = load("email.utils")  # deferred: ~10 ms of import time, rarely needed
    try:
        moment: Optional[datetime.datetime] = utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None:
        return None
    return max(0.0, moment.timestamp() - time.time())
