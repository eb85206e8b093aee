"""Interleaved micro-benchmark runner: candidates take turns, round after round."""

from __future__ import annotations

import gc
import statistics
import time
from typing import Callable, Dict, List


def interleave(
    candidates: Dict[str, Callable[[], object]], rounds: int, per_round: int
) -> Dict[str, Dict[str, float]]:
    """Run each candidate ``per_round`` times per round, rotating the order.

    Returns per candidate the median and minimum cost of one call in µs,
    over the rounds. Rotating the order spreads warm-up and page-cache
    effects over every candidate.
    """
    names = list(candidates)
    samples: Dict[str, List[float]] = {name: [] for name in names}
    for name in names:  # warm-up: imports, file creation, first allocations
        for _ in range(min(200, per_round)):
            candidates[name]()
    for round_index in range(rounds):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in order:
            call = candidates[name]
            gc.collect()
            started = time.perf_counter_ns()
            for _ in range(per_round):
                call()
            samples[name].append((time.perf_counter_ns() - started) / per_round / 1000)
    return {
        name: {"median_us": statistics.median(values), "min_us": min(values)}
        for name, values in samples.items()
    }
