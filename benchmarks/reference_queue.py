"""A faithful re-implementation of the reference (.NET) client's queue, for comparison.

Each flush reads the whole file, sends the first ``batch_size`` lines, and on
success rewrites the file without them: O(backlog) per batch, so draining is
quadratic in the backlog.
"""

from __future__ import annotations

import time
from typing import List

import requests


def drain(path: str, url: str, batch_size: int) -> float:
    """Drain the file like the reference client; returns the seconds it took."""
    session = requests.Session()
    started = time.perf_counter()
    while True:
        with open(path, encoding="utf-8") as handle:  # read everything, every flush
            lines: List[str] = [line for line in handle.read().split("\n") if line.strip()]
        if not lines:
            break
        batch = lines[:batch_size]
        body = "[" + ",".join(batch) + "]"
        answer = session.post(
            url, data=body.encode("utf-8"), headers={"Content-Type": "application/json"}, timeout=30
        )
        if not answer.ok:
            break
        with open(path, encoding="utf-8") as handle:  # and rewrite it on removal
            remaining = [line for line in handle.read().split("\n") if line.strip()][len(batch) :]
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in remaining))
    return time.perf_counter() - started
