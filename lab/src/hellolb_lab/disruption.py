"""What servers leaving cost the client: the measurements of one phase (a rollout, a crash).

Shared like :mod:`hellolb_lab.verdict`: the lab judges its ``rollout`` and ``crash`` phases with
it, and the cluster check its ``kubectl rollout restart``. The input is a :class:`Window` (when
the phase ran, which servers the Deployment has after it) and the client's answers and failed
calls (:mod:`hellolb_lab.clientlog`). The figures, all from the client's side:

- **failed**: calls that failed, after the client's retries, from the phase's start to its end;
- **width**: the most distinct servers that answered the client within one second, over the
  :data:`WIDTH_S` seconds before the phase: how many servers it was using;
- **seconds on fewer servers**: of the whole seconds from the phase's start to its end, those in
  which fewer distinct servers answered than the width (a second without any answer counts);
- **reached**: seconds from the start to the first answer of each server the phase started;
- **balance after**: answers per server the Deployment has after the phase, from the moment the
  phase settled (the last old server exited, the crashed one listened again) to the end.

Times are epoch seconds. Nothing here sleeps, reads files or starts anything.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hellolb_lab.clientlog import Answer, Failure
from hellolb_lab.measure import (
    Balance,
    Finding,
    Window,
    balance,
    count_between,
    ratio_text,
    time_to_all_of,
)

#: Seconds before a phase whose answers say how many servers the client was using.
WIDTH_S = 3


@dataclass(frozen=True)
class Disruption(Finding):
    """The measurements of one phase (see the module docstring)."""

    phase: str
    seconds: int
    failed: int
    failed_by_code: dict[str, int]
    width: int
    narrow_s: int
    reached: dict[str, float | None]
    balance_after: Balance
    servers_by_client_after: dict[str, tuple[str, ...]]
    facts: dict[str, Any]

    @property
    def time_to_all_new(self) -> float | None:
        return time_to_all_of(self.reached)

    def describe(self) -> str:
        """One line for the verdict's text."""
        codes = ", ".join(f"{c} {n}" for c, n in sorted(self.failed_by_code.items()))
        parts = [f"failed {self.failed}" + (f" ({codes})" if codes else "")]
        parts.append(f"on fewer servers {self.narrow_s} of {self.seconds} s (width {self.width})")
        if self.reached:
            t = self.time_to_all_new
            parts.append("not every new server answered" if t is None else f"all new in {t:.1f}s")
        parts.append(f"balance after {ratio_text(self.balance_after.ratio)}")
        return f"  {self.phase}: " + "; ".join(parts)


def distinct_per_second(answers: Iterable[Answer], start: float, seconds: int) -> list[int]:
    """Distinct servers that answered in each whole second from ``start`` on."""
    seen: list[set[str]] = [set() for _ in range(max(seconds, 0))]
    for a in answers:
        k = math.floor(a.t - start)
        if 0 <= k < len(seen):
            seen[k].add(a.server_id)
    return [len(s) for s in seen]


def judge(window: Window, answers: Iterable[Answer], failures: Iterable[Failure]) -> Disruption:
    """Measure the phase in ``window``."""
    items = sorted(answers, key=lambda a: a.t)
    seconds = math.floor(window.end - window.start)
    width = max(distinct_per_second(items, window.start - WIDTH_S, WIDTH_S), default=0)
    during = distinct_per_second(items, window.start, seconds)
    failed = [f for f in failures if window.start <= f.t < window.end]
    first: dict[str, float] = {}
    clients: dict[str, set[str]] = defaultdict(set)
    for a in items:
        if window.start <= a.t < window.end:
            first.setdefault(a.server_id, a.t)
        if window.settled <= a.t < window.end:
            clients[a.client_id].add(a.server_id)
    return Disruption(
        phase=window.phase,
        seconds=seconds,
        failed=len(failed),
        failed_by_code=dict(Counter(f.code for f in failed)),
        width=width,
        narrow_s=sum(1 for n in during if n < width),
        reached={
            s: round(first[s] - window.start, 3) if s in first else None for s in window.new_servers
        },
        balance_after=balance(
            count_between(items, window.settled, window.end), window.servers_after
        ),
        servers_by_client_after={c: tuple(sorted(s)) for c, s in sorted(clients.items())},
        facts=dict(window.facts),
    )
