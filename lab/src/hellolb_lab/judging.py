"""The one judging pipeline: evidence in, verdict and checks out.

The lab run (:mod:`hellolb_lab.outcome`), the cluster check (:mod:`hellolb_lab.e2e`) and the
log reader (:mod:`hellolb_lab.reader`) each gather an :class:`Evidence`: the client's log events
around the scale-up, which servers were there before and after it, and what each phase recorded
(:mod:`hellolb_lab.phases`). :func:`judge` measures the scale-up (:mod:`hellolb_lab.verdict`),
each phase's typed finding, and in stream mode the streams (:mod:`hellolb_lab.streamverdict`),
then runs the checks the scenario and its phases name. Whether the run is judged by its calls
or by its streams is decided here, once: by :attr:`Evidence.streams`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hellolb_lab import catalogue, clientlog, streamverdict, verdict
from hellolb_lab.catalogue import Scenario
from hellolb_lab.checks import CHECKS, Check, CheckFunction
from hellolb_lab.clientlog import Event
from hellolb_lab.measure import Finding, Window
from hellolb_lab.phases import PHASES, Reading
from hellolb_lab.verdict import Verdict


@dataclass(frozen=True)
class StreamSetup:
    """A stream-mode run: the streams the client keeps open (its ``CONCURRENCY``), the seconds
    within which the servers' maximum age and grace cut one (:func:`bounds.stream_cut`), and
    when the phase after the scale-up ended."""

    slots: int
    cut_s: tuple[float, float] | None
    after_end: float


@dataclass(frozen=True)
class Evidence:
    """What a run left to judge.

    ``events`` is the client's log for the scale-up; ``end`` where that part ends (the phases
    start); ``records`` what each phase did, by name; ``later`` the log as read once the phases
    ran, where it was read again (on a cluster), and ``readings`` a phase's own read of it.
    """

    scenario: Scenario
    events: Sequence[Event]
    scale_at: float | None
    servers_before: Collection[str] | None = None
    servers_after: Collection[str] | None = None
    end: float | None = None
    reach_bound_s: float | None = None
    records: Mapping[str, Any] = field(default_factory=dict)
    later: Sequence[Event] | None = None
    readings: Mapping[str, Sequence[Event]] = field(default_factory=dict)
    streams: StreamSetup | None = None


def judge(evidence: Evidence) -> tuple[Verdict, list[Check]]:
    """The verdict of ``evidence`` and the scenario's checks run against it."""
    scenario = evidence.scenario
    result = verdict.judge(
        scenario.name,
        clientlog.answers_from_events(evidence.events),
        scale_at=evidence.scale_at,
        servers_before=evidence.servers_before,
        servers_after=evidence.servers_after,
        end=evidence.end,
        failed_rpcs=clientlog.failed_rpcs(evidence.events, until=evidence.end),
        limited_calls=clientlog.limited_calls(evidence.events, until=evidence.end),
        findings=findings(evidence),
        streams=None if evidence.streams is None else stream_figures(evidence),
    )
    if evidence.streams is not None:
        return result, run_checks(stream_check_names(scenario), result, None)
    return result, run_checks(check_names(scenario), result, evidence.reach_bound_s)


def findings(evidence: Evidence) -> dict[str, Finding]:
    """Each phase's finding, measured from its record and the log as read for it."""
    found = {}
    for name, record in evidence.records.items():
        events = evidence.readings.get(name, evidence.later or evidence.events)
        finding = PHASES[name].measure(record, Reading(events))
        if finding is not None:
            found[name] = finding
    return found


def stream_figures(evidence: Evidence) -> dict[str, Any]:
    """What the run did to the client's streams (:mod:`hellolb_lab.streamverdict`)."""
    setup = evidence.streams
    assert setup is not None
    assert evidence.scale_at is not None
    before = list(evidence.servers_before or ())
    after = list(evidence.servers_after or ())
    windows = {n: r for n, r in evidence.records.items() if isinstance(r, Window)}
    later = clientlog.stream_lives(evidence.later) if evidence.later is not None else None
    return streamverdict.figures(
        *clientlog.stream_lives(evidence.events),
        scale_at=evidence.scale_at,
        after_end=setup.after_end,
        slots=setup.slots,
        first_servers=before,
        new_servers=[s for s in after if s not in set(before)],
        windows=windows,
        cut_s=setup.cut_s,
        later=later,
    )


def check_names(scenario: Scenario) -> tuple[str, ...]:
    """Every check the verdict runs for ``scenario``, in order: the run-wide ones and its
    phases' headline checks (servers leaving cost no call), the scale-up's, then the rest of
    its phases'. A check of a phase the run left out is skipped when it runs."""
    phases = [PHASES[p.name] for p in scenario.all_phases]
    headline = [n for p in phases for n in p.headline]
    rest = [n for p in phases for n in p.checks(scenario)]
    return (*catalogue.COMMON_CHECKS, *headline, *scenario.checks, *rest)


def stream_check_names(scenario: Scenario) -> tuple[str, ...]:
    """Every check the stream-mode verdict runs for ``scenario``, in order."""
    phases = [PHASES[p.name] for p in scenario.all_phases]
    own = scenario.stream_checks
    return (*own, *(n for p in phases for n in p.stream_checks(scenario)))


def functions() -> dict[str, CheckFunction]:
    """Every check function, by name: the scale-up's and every phase's."""
    found = dict(CHECKS)
    for phase in PHASES.values():
        found.update(phase.functions)
        found.update(phase.stream_functions)
    return found


def run_checks(names: Sequence[str], result: Verdict, bound: float | None) -> list[Check]:
    every = functions()
    checks = [every[name](name, result, bound) for name in names]
    return [c for c in checks if c is not None]
