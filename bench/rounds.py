"""Interleaved rounds for the benchmarks: fair figures on a shared, noisy machine.

Each round runs every contender once, in turn, so a disturbance (another job on
the machine) hits all of them alike; the figures are the medians over the
rounds, printed with their spread. A goal is stated as a ratio of two medians.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def side_by_side(
    contenders: dict[str, Callable[[], Any]], repeat: int, rows: int | None = None
) -> dict[str, float]:
    """Time the contenders in ``repeat`` interleaved rounds; print each one's median and
    spread (and rows/s when ``rows`` is given); return the median seconds."""
    runs: dict[str, list[float]] = {label: [] for label in contenders}
    for _ in range(repeat):
        for label, action in contenders.items():
            start = time.perf_counter()
            action()
            runs[label].append(time.perf_counter() - start)
    return {label: report(label, seconds, rows) for label, seconds in runs.items()}


def report(label: str, seconds: list[float], rows: int | None = None) -> float:
    """Print one contender's median and spread of ``seconds``; return the median."""
    median = statistics.median(seconds)
    spread = f"{min(seconds):.2f}-{max(seconds):.2f} s"
    rate = f"  {rows / median:>12,.0f} rows/s" if rows else ""
    print(
        f"{label:<44} median {median:7.2f} s (spread {spread}, {len(seconds)} runs){rate}",
        flush=True,
    )
    return median


def goal(name: str, ratio: float, *, at_least: float | None = None, at_most: float | None = None):
    """Print ``name``'s ratio of medians against its bound; whether the goal is met."""
    if at_least is not None:
        met, bound = ratio >= at_least, f">= {at_least}"
    elif at_most is not None:
        met, bound = ratio <= at_most, f"<= {at_most}"
    else:
        raise ValueError("a goal needs at_least or at_most")
    print(f"{name}: {ratio:.2f}x (medians; goal {bound}x): {'met' if met else 'NOT met'}")
    return met
