"""Stream counts for the summary in stream mode: where streams are, how long they lived, how
they ended, and how long a slot went without a stream after one ended."""

from __future__ import annotations

import random
from collections import Counter

from hello_client.stats import Reservoir, percentile


class StreamStats:
    """Open streams per server now; ends by status code and reconnects, per window and total.

    A stream counts as open, on its server, from its first tick: before that the client does not
    know which server took it.
    """

    def __init__(self, max_samples: int = 10_000, rng: random.Random | None = None) -> None:
        self._max_samples = max_samples
        self._rng = rng or random.Random()  # noqa: S311 - sampling, not secrets
        self.open_by_server: Counter[str] = Counter()
        self.opened_by_server_total: Counter[str] = Counter()
        self.ends_total: Counter[str] = Counter()
        self.reconnects_total = 0
        self._start_window()

    def _start_window(self) -> None:
        self.ends_window: Counter[str] = Counter()
        self.reconnects_window = 0
        self._lifetimes = Reservoir(self._max_samples, self._rng)
        self._reconnect_times = Reservoir(self._max_samples, self._rng)
        self._longest: float | None = None
        self._slowest_reconnect: float | None = None

    def opened(self, server_id: str) -> None:
        """A stream received its first tick from ``server_id``."""
        self.open_by_server[server_id] += 1
        self.opened_by_server_total[server_id] += 1

    def closed(self, server_id: str) -> None:
        """A stream that had ticks is no longer open, however it ended."""
        self.open_by_server[server_id] -= 1
        if self.open_by_server[server_id] <= 0:
            del self.open_by_server[server_id]

    def ended(self, code: str, lifetime_seconds: float) -> None:
        """A stream ended with ``code`` (the client's own stop at exit is not counted)."""
        self.ends_window[code] += 1
        self.ends_total[code] += 1
        self._lifetimes.add(lifetime_seconds)
        self._longest = max(lifetime_seconds, self._longest or 0.0)

    def reconnected(self, seconds: float) -> None:
        """A slot whose stream had ended got its first tick on a new one, ``seconds`` later."""
        self.reconnects_window += 1
        self.reconnects_total += 1
        self._reconnect_times.add(seconds)
        self._slowest_reconnect = max(seconds, self._slowest_reconnect or 0.0)

    def summary(self) -> dict[str, object]:
        """The stream fields of a ``client.summary`` line; starts a new window."""
        lifetimes = sorted(self._lifetimes.values)
        reconnects = sorted(self._reconnect_times.values)
        # The maxima are exact; the medians come from a bounded sample.
        fields: dict[str, object] = {
            "streams_open": sum(self.open_by_server.values()),
            "streams_by_server": dict(sorted(self.open_by_server.items())),
            "streams_opened_total": sum(self.opened_by_server_total.values()),
            "streams_opened_by_server_total": dict(sorted(self.opened_by_server_total.items())),
            "stream_ends_window": dict(sorted(self.ends_window.items())),
            "stream_ends_total": dict(sorted(self.ends_total.items())),
            "stream_lifetime_seconds_p50": _rounded(percentile(lifetimes, 0.5)),
            "stream_lifetime_seconds_max": _rounded(self._longest),
            "reconnects_window": self.reconnects_window,
            "reconnects_total": self.reconnects_total,
            "reconnect_seconds_p50": _rounded(percentile(reconnects, 0.5)),
            "reconnect_seconds_max": _rounded(self._slowest_reconnect),
        }
        self._start_window()
        return fields


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)
