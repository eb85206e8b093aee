"""``python -m trace_telemetry``: the same as the ``trace-telemetry`` command."""

import sys

from .cli import main

sys.exit(main())
