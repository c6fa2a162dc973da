"""The canary's weight steps, and the split each step gave the client.

A step sets the canary's share of calls (a percent, through the route's two weights), waits for
the change to apply and for the client's summaries to cover only calls made after it, then
counts the answers of a window: from a server whose id is a canary pod's name, or from any other.
Each call picks a backend on its own (the route's weights, per request), so the canary's count in
a window of ``n`` answers is binomial: the step holds when the canary's share is within
:data:`Z` standard deviations of the weight. A weight of 0 or 100 allows no stray call at all.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hellolb_lab.clientlog import Answer
from hellolb_lab.measure import Finding

#: The canary Deployment's name (k8s/components/canary): its pods, and so its server ids, start
#: with it. Stable pods are ``server-<hash>-<hash>``, and Kubernetes' name hashes hold no vowel.
CANARY_PREFIX = "server-canary-"
#: The canary's share in percent, step by step, then the rollback.
STEPS = (0, 10, 50, 100)
ROLLBACK = 0
#: Standard deviations of the canary's count allowed in a step: a correct route fails a step
#: about once in 16,000 (two-sided normal tail at 4 sigma).
Z = 4.0
#: Fewer answers than this in a step's window leave it unjudged (and the check failed): the
#: tolerance would be too wide to say anything.
MIN_ANSWERS = 100


def is_canary(server_id: str) -> bool:
    return server_id.startswith(CANARY_PREFIX)


def tolerance(percent: int, answers: int) -> float:
    """How far (as a fraction of the answers) the canary's share may be from ``percent`` in a
    window of ``answers`` calls: :data:`Z` binomial standard deviations; 0 at 0% and 100%."""
    if answers <= 0:
        return 0.0
    p = percent / 100
    return Z * math.sqrt(p * (1 - p) / answers)


@dataclass(frozen=True)
class Step:
    """One weight: set at ``shifted`` (epoch seconds), counted from ``start`` to ``end``."""

    percent: int
    shifted: float
    start: float
    end: float


@dataclass(frozen=True)
class Split:
    """What one step gave: answers from canary and stable servers in its window."""

    percent: int
    canary: int
    stable: int

    @property
    def answers(self) -> int:
        return self.canary + self.stable

    @property
    def share(self) -> float | None:
        return self.canary / self.answers if self.answers else None

    @property
    def tolerance(self) -> float:
        return tolerance(self.percent, self.answers)

    @property
    def ok(self) -> bool:
        share = self.share
        if share is None or self.answers < MIN_ANSWERS:
            return False
        return abs(share - self.percent / 100) <= self.tolerance + 1e-12

    def text(self) -> str:
        if self.share is None:
            return f"{self.percent}%: no answers"
        return (
            f"{self.percent}%: {100 * self.share:.1f}% of {self.answers} "
            f"(+-{100 * self.tolerance:.1f})"
        )


def split(step: Step, answers: Iterable[Answer]) -> Split:
    """The answers in ``step``'s window (``start < t <= end``), canary and stable."""
    canary = stable = 0
    for a in answers:
        if step.start < a.t <= step.end:
            if is_canary(a.server_id):
                canary += a.count
            else:
                stable += a.count
    return Split(step.percent, canary, stable)


@dataclass(frozen=True)
class CanaryFigures(Finding):
    """The steps' splits, and the calls that failed from the first shift to the last window's
    end (``failed``, in ``seconds``)."""

    splits: tuple[Split, ...]
    failed: int
    seconds: float


def figures(steps: Sequence[Step], answers: Sequence[Answer], failed: int) -> CanaryFigures:
    """What the weight steps gave the client."""
    first, last = (steps[0].shifted, steps[-1].end) if steps else (0.0, 0.0)
    return CanaryFigures(tuple(split(s, answers) for s in steps), failed, round(last - first, 3))
