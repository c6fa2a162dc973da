"""What a phase is: one step after the scale-up, with everything about it in one place.

A :class:`Phase` names its step in the lab (on a :class:`~hellolb_lab.stage.Stage`) and on a
cluster (on a :class:`~hellolb_lab.e2e.ClusterRun`), what it needs from the plan (servers,
clients, a second set of servers), how its record becomes a typed :class:`Finding` from the
client's log (:class:`Reading`), the checks that read that finding, and its cells in the tour
and bench tables. A step leaves a record of what it did in ``records[name]`` (a
:class:`~hellolb_lab.measure.Window`, an outage's times, the weight steps); the judging pipeline
(:mod:`hellolb_lab.judging`) measures it.

The steps only call the stage's and the cluster run's methods: their types are imported for the
type checker alone, so that the plan can ask the phases what they need without an import circle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from hellolb_lab import clientlog
from hellolb_lab.checks import CheckFunction
from hellolb_lab.clientlog import Answer, Event, Failure
from hellolb_lab.measure import Finding

if TYPE_CHECKING:
    from hellolb_lab.catalogue import Scenario
    from hellolb_lab.clusterrun import ClusterRun
    from hellolb_lab.stage import Stage


@dataclass(frozen=True)
class Reading:
    """The client's log as read for one phase: its events, and the answers and failed calls in
    them."""

    events: Sequence[Event]

    @cached_property
    def answers(self) -> list[Answer]:
        return clientlog.answers_from_events(self.events)

    @cached_property
    def failures(self) -> list[Failure]:
        return clientlog.failures(self.events)


def _no_finding(record: Any, reading: Reading) -> Finding | None:
    return None


def _own_checks(phase: Phase, scenario: Scenario) -> tuple[str, ...]:
    return tuple(n for n in phase.functions if n not in phase.headline)


@dataclass(frozen=True)
class Phase:
    """One phase (see the module docstring).

    ``headline`` checks are listed with the run-wide ones (answers, failed calls), the others
    after the scenario's own; ``stream_functions`` are its checks in stream mode.
    ``servers_added``/``clients_added``: processes it starts beyond the scale-up's servers and
    the first client; ``second_server_set``: it replaces every server (a rollout).
    ``stream_mode=False``: it cannot judge a client in stream mode (the cluster check refuses).
    """

    name: str
    lab: Callable[[Stage], None] | None = None
    cluster: Callable[[ClusterRun], None] | None = None
    measure: Callable[[Any, Reading], Finding | None] = _no_finding
    functions: Mapping[str, CheckFunction] = field(default_factory=dict)
    headline: tuple[str, ...] = ()
    choose_checks: Callable[[Phase, Scenario], tuple[str, ...]] = _own_checks
    stream_functions: Mapping[str, CheckFunction] = field(default_factory=dict)
    choose_stream_checks: Callable[[Phase, Scenario], tuple[str, ...]] = lambda phase, scenario: (
        tuple(phase.stream_functions)
    )
    columns: tuple[str, ...] = ()
    cells: Callable[[Finding], Mapping[str, str]] | None = None
    describe: Callable[[Finding], Sequence[str]] | None = None
    servers_added: int = 0
    clients_added: int = 0
    second_server_set: bool = False
    stream_mode: bool = True

    def checks(self, scenario: Scenario) -> tuple[str, ...]:
        """The checks after the scenario's own, for ``scenario``."""
        return self.choose_checks(self, scenario)

    def stream_checks(self, scenario: Scenario) -> tuple[str, ...]:
        return self.choose_stream_checks(self, scenario)
