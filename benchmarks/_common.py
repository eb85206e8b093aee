"""What every hot-path benchmark shares: the payload and the floor."""

from __future__ import annotations

import datetime
import json
import os
import uuid
from typing import Any, Callable, Dict, TextIO

PROPERTIES: Dict[str, Any] = {
    "order_id": "123",
    "amount": 99.9,
    "currency": "BRL",
    "items": 3,
    "coupon": None,
    "user": "u-42",
}


def floor_event() -> Dict[str, Any]:
    """The ten-key event, built the plain way (what any SDK must at least do)."""
    return {
        "id": uuid.uuid4().hex,
        "name": "purchase",
        "timestampUtc": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ"
        ),
        "data": PROPERTIES,
        "applicationName": "bench",
        "applicationVersion": "1.0.0",
        "machineName": "host",
        "osDescription": "Linux",
        "ipAddress": "127.0.0.1",
        "countryCode": "",
    }


def make_floor(handle: TextIO, fsync: bool = False) -> Callable[[], None]:
    """Build the dict, ``json.dumps``, ``write()`` + ``flush()`` one line (and ``fsync``)."""
    fileno = handle.fileno()

    def floor() -> None:
        handle.write(json.dumps(floor_event()) + "\n")
        handle.flush()

    def floor_fsync() -> None:
        handle.write(json.dumps(floor_event()) + "\n")
        handle.flush()
        os.fsync(fileno)

    return floor_fsync if fsync else floor
