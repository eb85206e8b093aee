"""before_send: scrub personal data before an event is ever written to disk."""

import os
import re
from typing import Any, Dict, Optional

from trace_telemetry import TelemetryClient, TelemetryOptions

EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


def scrub(event: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    if event["name"] == "debug_dump":
        return None  # never leaves the process
    data = event["data"]
    if isinstance(data, dict):
        event["data"] = {
            key: EMAIL.sub("<email>", value) if isinstance(value, str) else value
            for key, value in data.items()
            if key not in {"password", "card_number"}
        }
    event["ipAddress"] = ""  # do not record the machine's address
    return event


client = TelemetryClient(
    TelemetryOptions(
        endpoint_url=os.environ.get("TELEMETRY_URL", "http://127.0.0.1:8080/telemetry"),
        before_send=scrub,
    )
)
client.track("signup", {"contact": "ana@example.com", "password": "hunter2", "plan": "pro"})
client.track("debug_dump", {"everything": "..."})
client.flush()
client.close()
