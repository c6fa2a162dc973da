"""Answer and error counts per window and in total, and the summary line built from them."""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

#: The percentiles every summary reports, as (field suffix, fraction).
PERCENTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99))


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of already sorted values; None when there are none."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(len(sorted_values) * fraction))
    return sorted_values[rank - 1]


def shares(counts: Mapping[str, int]) -> dict[str, float]:
    """Each key's fraction of the whole, rounded to 4 places, sorted by key."""
    total = sum(counts.values())
    return {key: round(n / total, 4) for key, n in sorted(counts.items())} if total else {}


class Reservoir:
    """A uniform sample of at most ``size`` values out of all those offered (algorithm R)."""

    def __init__(self, size: int, rng: random.Random) -> None:
        self.size = size
        self.values: list[float] = []
        self.seen = 0
        self._rng = rng

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self.values) < self.size:
            self.values.append(value)
        else:
            slot = self._rng.randrange(self.seen)
            if slot < self.size:
                self.values[slot] = value

    def percentiles_ms(self, suffix: str = "") -> dict[str, float | None]:
        """``latency_ms_p50{suffix}`` and its siblings, in milliseconds (None when empty)."""
        ordered = sorted(self.values)
        fields: dict[str, float | None] = {}
        for name, fraction in PERCENTILES:
            value = percentile(ordered, fraction)
            fields[f"latency_ms_{name}{suffix}"] = None if value is None else round(value * 1000, 3)
        return fields


class Stats:
    """Counts answers per server, errors per status code, and limited calls apart.

    ``summary()`` reports the window since the previous summary and the totals, then
    starts a new window. Latencies are kept for percentiles, of the window and since the
    start, each as a uniform sample of at most ``max_samples`` values so memory stays bounded.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        max_samples: int = 50_000,
        rng: random.Random | None = None,
        mode: str = "rounds",
    ) -> None:
        self._clock = clock
        self._max_samples = max_samples
        self._rng = rng or random.Random()  # noqa: S311 - sampling, not secrets
        self.mode = mode
        self.by_server_total: Counter[str] = Counter()
        self.errors_total: Counter[str] = Counter()
        self.errors_by_server_total: Counter[str] = Counter()
        self.limited_total = 0
        self.limited_by_server_total: Counter[str] = Counter()
        self.rounds_total = 0
        self._latencies_total = Reservoir(max_samples, self._rng)
        self._start_window()

    def _start_window(self) -> None:
        self.window_started = self._clock()
        self.by_server_window: Counter[str] = Counter()
        self.errors_window: Counter[str] = Counter()
        self.errors_by_server_window: Counter[str] = Counter()
        self.limited_window = 0
        self.limited_by_server_window: Counter[str] = Counter()
        self._latencies = Reservoir(self._max_samples, self._rng)

    def answer(self, server_id: str, latency_seconds: float) -> None:
        """One answer, and how long it took."""
        self.count(server_id)
        self.latency(latency_seconds)

    def count(self, server_id: str) -> None:
        """One answer whose latency is not a call's (a tick of a stream)."""
        self.by_server_window[server_id] += 1
        self.by_server_total[server_id] += 1

    def latency(self, seconds: float) -> None:
        self._latencies.add(seconds)
        self._latencies_total.add(seconds)

    def error(self, code: str, server_id: str | None = None) -> None:
        """One failed call; ``server_id`` when the server that failed it named itself."""
        self.errors_window[code] += 1
        self.errors_total[code] += 1
        if server_id is not None:
            self.errors_by_server_window[server_id] += 1
            self.errors_by_server_total[server_id] += 1

    def limited(self, server_id: str | None = None) -> None:
        """One limited call (RESOURCE_EXHAUSTED): not an error; ``server_id`` as for errors."""
        self.limited_window += 1
        self.limited_total += 1
        if server_id is not None:
            self.limited_by_server_window[server_id] += 1
            self.limited_by_server_total[server_id] += 1

    def round_done(self) -> None:
        self.rounds_total += 1

    def summary(self, *, final: bool = False) -> dict[str, object]:
        """The fields of a ``client.summary`` line; starts a new window."""
        window = self._clock() - self.window_started
        answers = sum(self.by_server_window.values())
        fields: dict[str, object] = {
            "mode": self.mode,
            "window_seconds": round(window, 3),
            "answers_window": answers,
            "answers_total": sum(self.by_server_total.values()),
            "answers_per_second_window": round(answers / window, 3) if window > 0 else None,
            "rounds_total": self.rounds_total,
            "by_server_window": dict(sorted(self.by_server_window.items())),
            "by_server_total": dict(sorted(self.by_server_total.items())),
            "share_by_server_window": shares(self.by_server_window),
            "share_by_server_total": shares(self.by_server_total),
            "errors_window": dict(sorted(self.errors_window.items())),
            "errors_total": dict(sorted(self.errors_total.items())),
            "errors_total_count": sum(self.errors_total.values()),
            "errors_by_server_window": dict(sorted(self.errors_by_server_window.items())),
            "errors_by_server_total": dict(sorted(self.errors_by_server_total.items())),
            "limited_window": self.limited_window,
            "limited_total": self.limited_total,
            "limited_by_server_window": dict(sorted(self.limited_by_server_window.items())),
            "limited_by_server_total": dict(sorted(self.limited_by_server_total.items())),
            "servers_window": len(self.by_server_window),
            "servers_total": len(self.by_server_total),
            **self._latencies.percentiles_ms(),
            **self._latencies_total.percentiles_ms("_total"),
            "final": final,
        }
        self._start_window()
        return fields
