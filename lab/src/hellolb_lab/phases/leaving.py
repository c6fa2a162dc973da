"""What the phases in which servers leave (``rollout``, ``crash``) share: their finding, a
:class:`~hellolb_lab.disruption.Disruption`, its no-failed-call check and its verdict line."""

from __future__ import annotations

from typing import Any

from hellolb_lab.checks import Check, CheckFunction
from hellolb_lab.disruption import Disruption
from hellolb_lab.verdict import Verdict


def finding(result: Verdict, phase: str) -> Disruption | None:
    found = result.findings.get(phase)
    return found if isinstance(found, Disruption) else None


def lossless(phase: str) -> CheckFunction:
    """No call failed while servers left in ``phase``."""

    def check(name: str, result: Verdict, bound: float | None) -> Check | None:
        d = finding(result, phase)
        if d is None:
            return None
        detail = f"{d.failed} failed"
        if "in_flight" in d.facts:
            detail += f" of {d.facts['in_flight']} calls in flight when {d.facts['killed']} died"
        return Check(name, d.failed == 0, detail)

    return check


def describe(d: Any) -> list[str]:
    return [d.describe()]
