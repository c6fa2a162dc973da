"""``canary_steps``: the canary's weight shifted through :data:`canary.STEPS` and back to
:data:`canary.ROLLBACK` with the weight script (k8s/canary/canary-weight.sh); after each shift,
a wait for Linkerd to push the route and for the client's summaries to hold only calls made
since, then a window whose split is measured (:mod:`hellolb_lab.canary`). Cluster only: the lab
cannot run Linkerd. It counts calls, so it refuses a client in stream mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hellolb_lab import bounds, canary, clientlog
from hellolb_lab.canary import CanaryFigures
from hellolb_lab.checks import Check
from hellolb_lab.errors import LabError
from hellolb_lab.phases.base import Phase, Reading
from hellolb_lab.verdict import Verdict

if TYPE_CHECKING:
    from hellolb_lab.clusterrun import ClusterRun

NAME = "canary_steps"
SPLIT = "each weight step splits the calls within tolerance"
LOSSLESS = "no failed call through the weight steps and the rollback"


@dataclass(frozen=True)
class Steps:
    """The record: each weight, when it was set and the window counted."""

    steps: tuple[canary.Step, ...]


def cluster(run: ClusterRun) -> None:
    """Shift the weight step by step, watching a window after each; then read the client's
    log for this phase."""
    cluster_, watch = run.cluster, run.plan.scenario.watch
    settle = bounds.CONTROL_PLANE_PUSH_S + run.plan.client_config.summary_interval
    steps: list[canary.Step] = []
    for percent in (*canary.STEPS, canary.ROLLBACK):
        cluster_.canary_weight(percent)
        shifted = run.clock()
        run.sleep(settle)
        start = run.clock()
        run.sleep(watch.phase_s)
        steps.append(canary.Step(percent, shifted, start, run.clock()))
    run.readings[NAME] = clientlog.json_lines(cluster_.client_logs())
    run.records[NAME] = Steps(tuple(steps))


def measure(record: Steps, reading: Reading) -> CanaryFigures:
    steps = record.steps
    if not steps:
        raise LabError(f"{NAME}: no weight step ran")
    before = clientlog.failed_rpcs(reading.events, until=steps[0].shifted)
    failed = clientlog.failed_rpcs(reading.events, until=steps[-1].end) - before
    return canary.figures(steps, reading.answers, failed)


def finding(result: Verdict) -> CanaryFigures | None:
    found = result.findings.get(NAME)
    return found if isinstance(found, CanaryFigures) else None


def _split(name: str, result: Verdict, bound: float | None) -> Check | None:
    figures = finding(result)
    if figures is None:
        return None
    detail = "; ".join(s.text() for s in figures.splits) or "no steps"
    return Check(name, bool(figures.splits) and all(s.ok for s in figures.splits), detail)


def _lossless(name: str, result: Verdict, bound: float | None) -> Check | None:
    figures = finding(result)
    if figures is None:
        return None
    detail = f"{figures.failed} failed in {figures.seconds:.0f}s"
    return Check(name, figures.failed == 0, detail)


PHASE = Phase(
    name=NAME,
    cluster=cluster,
    measure=measure,
    functions={SPLIT: _split, LOSSLESS: _lossless},
    stream_mode=False,
)
