"""trace-telemetry: offline-first telemetry for Python.

Events are written to a local NDJSON queue before ``track()`` returns and sent
in batches by a background thread, speaking the wire contract of the .NET
package TraceTelemetry.Client. The same engine is reachable from a logging
handler (:class:`TelemetryHandler`) and a structlog processor
(:class:`TelemetryProcessor`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .client import TelemetryClient
from .options import TelemetryOptions

if TYPE_CHECKING:
    from .handler import TelemetryHandler
    from .processor import TelemetryProcessor

__all__ = [
    "TelemetryClient",
    "TelemetryHandler",
    "TelemetryOptions",
    "TelemetryProcessor",
    "__version__",
]

# No NullHandler on the "trace_telemetry" logger, on purpose: the SDK never
# raises at run time, so its few warnings (once per condition) must reach
# stderr through logging.lastResort in an app that configured no logging.


def __getattr__(name: str) -> Any:
    """Import the logging and structlog integrations only when asked for."""
    if name == "TelemetryHandler":
        from .handler import TelemetryHandler  # noqa: PLC0415

        return TelemetryHandler
    if name == "TelemetryProcessor":
        from .processor import TelemetryProcessor  # noqa: PLC0415

        return TelemetryProcessor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
