"""Answer and error counts per window and in total, and the summary line built from them."""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of already sorted values; None when there are none."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(len(sorted_values) * fraction))
    return sorted_values[rank - 1]


class Stats:
    """Counts answers per server and errors per status code.

    ``summary()`` reports the window since the previous summary and the totals, then
    starts a new window. Latencies of a window are kept for percentiles, as a uniform
    sample of at most ``max_samples`` values so memory stays bounded.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        max_samples: int = 50_000,
        rng: random.Random | None = None,
    ) -> None:
        self._clock = clock
        self._max_samples = max_samples
        self._rng = rng or random.Random()  # noqa: S311 - sampling, not secrets
        self.by_server_total: Counter[str] = Counter()
        self.errors_total: Counter[str] = Counter()
        self.rounds_total = 0
        self._start_window()

    def _start_window(self) -> None:
        self.window_started = self._clock()
        self.by_server_window: Counter[str] = Counter()
        self.errors_window: Counter[str] = Counter()
        self._latencies: list[float] = []
        self._seen = 0

    def answer(self, server_id: str, latency_seconds: float) -> None:
        self.by_server_window[server_id] += 1
        self.by_server_total[server_id] += 1
        self._seen += 1
        if len(self._latencies) < self._max_samples:
            self._latencies.append(latency_seconds)
        else:
            slot = self._rng.randrange(self._seen)
            if slot < self._max_samples:
                self._latencies[slot] = latency_seconds

    def error(self, code: str) -> None:
        self.errors_window[code] += 1
        self.errors_total[code] += 1

    def round_done(self) -> None:
        self.rounds_total += 1

    def summary(self, *, final: bool = False) -> dict[str, object]:
        """The fields of a ``client.summary`` line; starts a new window."""
        latencies = sorted(self._latencies)
        p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
        fields: dict[str, object] = {
            "window_seconds": round(self._clock() - self.window_started, 3),
            "answers_window": sum(self.by_server_window.values()),
            "answers_total": sum(self.by_server_total.values()),
            "rounds_total": self.rounds_total,
            "by_server_window": dict(sorted(self.by_server_window.items())),
            "by_server_total": dict(sorted(self.by_server_total.items())),
            "errors_window": dict(sorted(self.errors_window.items())),
            "errors_total": dict(sorted(self.errors_total.items())),
            "errors_total_count": sum(self.errors_total.values()),
            "servers_window": len(self.by_server_window),
            "servers_total": len(self.by_server_total),
            "latency_ms_p50": None if p50 is None else round(p50 * 1000, 3),
            "latency_ms_p99": None if p99 is None else round(p99 * 1000, 3),
            "final": final,
        }
        self._start_window()
        return fields
