"""The measuring helpers every judgement shares: answers counted per server, how even they are,
and the window of a phase. The bottom layer of the judging: it imports nothing of the lab but
the client's answers.

Times are epoch seconds. Nothing here sleeps, reads files or starts anything.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any

from hellolb_lab.clientlog import Answer

#: Largest max/min ratio of answers per server that still counts as "balanced".
BALANCED_RATIO = 1.5


@dataclass(frozen=True)
class Balance:
    """Answers per server in a window, and how even they are (max/min; inf if one got none)."""

    per_server: dict[str, int]
    ratio: float

    @property
    def balanced(self) -> bool:
        return len(self.per_server) > 0 and self.ratio <= BALANCED_RATIO


def balance(counts: Mapping[str, int], servers: Collection[str] | None = None) -> Balance:
    """Max/min answers over ``servers`` (default: the servers in ``counts``)."""
    names = sorted(servers) if servers is not None else sorted(counts)
    per_server = {name: int(counts.get(name, 0)) for name in names}
    if not per_server:
        return Balance({}, math.inf)
    low, high = min(per_server.values()), max(per_server.values())
    return Balance(per_server, math.inf if low == 0 else high / low)


def count_between(
    answers: Iterable[Answer], start: float | None = None, end: float | None = None
) -> dict[str, int]:
    """Answers per server with ``start <= t < end`` (open ends when ``None``)."""
    counts: dict[str, int] = defaultdict(int)
    for a in answers:
        if (start is None or a.t >= start) and (end is None or a.t < end):
            counts[a.server_id] += a.count
    return dict(counts)


def time_to_all_of(reached: Mapping[str, float | None]) -> float | None:
    """Seconds until the last of the servers in ``reached`` first answered; ``None`` when one
    never did, or there are none."""
    times = [t for t in reached.values() if t is not None]
    return max(times) if times and len(times) == len(reached) else None


def ratio_text(value: float) -> str:
    """A max/min ratio as the verdicts print it: two decimals, or ``inf``."""
    return "inf" if math.isinf(value) else f"{value:.2f}"


@dataclass(frozen=True)
class Window:
    """What the runner of a phase in which servers leave knows about it: when it started,
    settled and ended, the servers of the Deployment after it, the ones it started, and what
    happened (``facts``, as the run's JSON writes them)."""

    phase: str
    start: float
    settled: float
    end: float
    servers_after: tuple[str, ...]
    new_servers: tuple[str, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)


class Finding:
    """What one phase measured, typed by the phase (:mod:`hellolb_lab.phases`); the verdict holds
    them by phase name and the phase's own checks read them."""

    def to_dict(self) -> dict[str, Any]:
        assert is_dataclass(self)
        return json_ready(asdict(self))


def json_ready(data: Any) -> Any:
    """``data`` with every infinite ratio as ``None`` (JSON has no infinity)."""
    if isinstance(data, dict):
        return {k: json_ready(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [json_ready(v) for v in data]
    if isinstance(data, float) and math.isinf(data):
        return None
    return data
