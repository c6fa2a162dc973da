"""``rollout``: every server replaced, as ``kubectl rollout restart deploy/server`` does.

In the lab a :class:`Rollout` does, on every tick of the run
(:meth:`~hellolb_lab.stage.Stage.hold`), what the Deployment controller and the kubelet would
have done by then:

1. a new server that listens is ready (the lab's pods are ready once they listen), and its
   address goes into DNS;
2. the controller's next step (:func:`~hellolb_lab.deployment.step`, with the overlay's strategy)
   starts new servers, each on a new address, and deletes old ones, the most recently started
   first; a deleted server's address leaves DNS at once (a terminating pod leaves the
   endpoints);
3. the kubelet stops each deleted server on the overlay's timings: the preStop pause, SIGTERM,
   SIGKILL after the grace period (:class:`~hellolb_lab.kubelet.Stops`).

It is done when every new server is available and every old one has exited. On a cluster the
step runs ``kubectl rollout restart`` and ``kubectl rollout status`` and waits until every old
pod is gone. Both leave a :class:`~hellolb_lab.measure.Window`, measured as a
:class:`~hellolb_lab.disruption.Disruption`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from hellolb_lab import disruption
from hellolb_lab.catalogue import Reach, Scenario
from hellolb_lab.checks import Check, chosen_ends, count_text, phase_streams
from hellolb_lab.deployment import deletion_order, step
from hellolb_lab.disruption import Disruption
from hellolb_lab.errors import LabError
from hellolb_lab.kubelet import Stops
from hellolb_lab.measure import Window, ratio_text
from hellolb_lab.phases import leaving
from hellolb_lab.phases.base import Phase, Reading
from hellolb_lab.procs import Proc
from hellolb_lab.streamverdict import DRAIN_END
from hellolb_lab.verdict import Verdict

if TYPE_CHECKING:
    from hellolb_lab.clusterrun import ClusterRun
    from hellolb_lab.stage import Stage

NAME = "rollout"
LOSSLESS = "no failed call in the rollout"
ALL_ANSWER = "every server answers after the rollout"
ONE_SERVER = "one server per client after the rollout"
STREAMS_DRAINED = "streams end with OK in the rollout"
STREAMS_REOPENED = "streams reopened on new servers after the rollout"


class Rollout:
    """One rollout of the server Deployment, from the servers in DNS when it starts."""

    def __init__(self, stage: Stage) -> None:
        plan = stage.plan
        self.stage = stage
        self.strategy = plan.overlay.server_rollout
        self.replicas = len(stage.endpoints)
        self.surge, self.unavailable = self.strategy.resolve(self.replicas)
        names = {plan.server(i).name: i for i in stage.endpoints}
        started = {name: stage.picture.servers.get(name) or 0.0 for name in names}
        #: Old servers, in the order the controller deletes them.
        self.old = [names[name] for name in deletion_order(started)]
        self.next_index = max(stage.servers) + 1
        self.starting: dict[int, Proc] = {}
        #: New servers that are ready, and since when.
        self.ready: dict[int, float] = {}
        self.stops = Stops(plan.overlay.server_stop)
        self.rolled_out_at: float | None = None

    @property
    def new_servers(self) -> list[int]:
        return sorted([*self.starting, *self.ready])

    def advance(self) -> bool:
        """One tick: publish what became ready, take the controller's step, send the kubelet's
        signals. True once the rollout is complete and every old server has exited."""
        now = time.time()
        for i, proc in list(self.starting.items()):
            if self.stage.listening(proc):
                del self.starting[i]
                self.ready[i] = now
                self.stage.publish_endpoints([*self.stage.endpoints, i])
        available = sum(1 for t in self.ready.values() if now >= t + self.strategy.min_ready_s)
        move = step(
            self.replicas,
            self.surge,
            self.unavailable,
            old=len(self.old),
            new=len(self.starting) + len(self.ready),
            new_available=available,
        )
        for _ in range(move.start):
            self.starting[self.next_index] = self.stage.launch_server(self.next_index)
            self.next_index += 1
        for _ in range(move.delete):
            self._delete(self.old.pop(0), now)
        if self.rolled_out_at is None and not self.old and available == self.replicas:
            self.rolled_out_at = now
        for pod in self.stops.tick(now):
            self.stage.picture.gone[pod.proc.name] = now
        return self.rolled_out_at is not None and not self.stops.busy

    def _delete(self, i: int, now: float) -> None:
        """The controller deletes pod ``i``: out of the endpoints, and the kubelet stops it."""
        self.stage.publish_endpoints([e for e in self.stage.endpoints if e != i])
        self.stops.delete(self.stage.servers[i], now)

    def facts(self, start: float) -> dict[str, Any]:
        """What happened, for the verdict: the strategy as applied, and each old server's stop."""
        return {
            "replicas": self.replicas,
            "max_surge": self.surge,
            "max_unavailable": self.unavailable,
            "min_ready_s": self.strategy.min_ready_s,
            "rolled_out_s": None
            if self.rolled_out_at is None
            else round(self.rolled_out_at - start, 3),
            "stops": [pod.to_dict() for pod in self.stops.pods],
        }


def lab(stage: Stage) -> None:
    """Replace every server (:class:`Rollout`), then let the client run for ``settle`` s."""
    plan = stage.plan
    roll = Rollout(stage)
    stop = plan.overlay.server_stop
    # Generous: every new server's start-up and readiness, then the last stop's whole grace.
    limit = roll.replicas * (plan.options.startup_timeout + roll.strategy.min_ready_s)
    limit += stop.sigkill_after_s + plan.options.startup_timeout
    start = stage.mark(f"rollout restart of {roll.replicas} servers")
    if not stage.hold(limit, roll.advance, interval=0.05):
        raise LabError(f"{plan.scenario.name}: the rollout did not end within {limit:g}s")
    settled = stage.mark("rollout done, the last old server exited")
    stage.hold(plan.options.settle)
    stage.records[NAME] = Window(
        NAME,
        start,
        settled,
        time.time(),
        servers_after=tuple(plan.server(i).name for i in stage.endpoints),
        new_servers=tuple(plan.server(i).name for i in roll.new_servers),
        facts=roll.facts(start),
    )


def cluster(run: ClusterRun) -> None:
    """``kubectl rollout restart deploy/server`` and ``kubectl rollout status``; settled once every
    old pod is gone (each paused, drained and stopped); then the client runs a while longer."""
    before = run.cluster.pods("server")
    start = run.clock()
    run.cluster.rollout_restart("server")
    rolled_out = run.clock()
    run.cluster.wait_deleted(before)
    settled = run.clock()
    run.sleep(run.plan.scenario.watch.phase_s)
    after = run.cluster.pods("server")
    run.records[NAME] = Window(
        NAME,
        start,
        settled,
        run.clock(),
        servers_after=tuple(after),
        new_servers=tuple(sorted(set(after) - set(before))),
        facts={"rolled_out_s": round(rolled_out - start, 3), "replicas": len(before)},
    )


def measure(window: Window, reading: Reading) -> Disruption:
    return disruption.judge(window, reading.answers, reading.failures)


def _all_answer(name: str, result: Verdict, bound: float | None) -> Check | None:
    d = leaving.finding(result, NAME)
    if d is None:
        return None
    per = d.balance_after.per_server
    idle = [s for s, n in per.items() if not n]
    detail = f"max/min {ratio_text(d.balance_after.ratio)}"
    if idle:
        detail = "idle: " + ", ".join(idle)
    return Check(name, bool(per) and not idle, detail)


def _one_server(name: str, result: Verdict, bound: float | None) -> Check | None:
    d = leaving.finding(result, NAME)
    if d is None:
        return None
    by_client = d.servers_by_client_after
    detail = "; ".join(f"{c}: {', '.join(s)}" for c, s in by_client.items()) or "no answers"
    return Check(name, bool(by_client) and all(len(s) == 1 for s in by_client.values()), detail)


def _checks(phase: Phase, scenario: Scenario) -> tuple[str, ...]:
    """After the rollout a client balances over every server, or, where only a new connection
    reaches a new server, keeps to one."""
    return (ONE_SERVER,) if scenario.reach is Reach.NEW_CONNECTION else (ALL_ANSWER,)


def _streams_drained(name: str, result: Verdict, bound: float | None) -> Check | None:
    fig, w = phase_streams(result, NAME)
    if fig is None or w is None:
        return None
    ends = set(w["ends"])
    # Where the servers cut streams at age + grace, a stream may be cut before its server
    # drains: then a cut is as clean an end as the drain.
    drained = DRAIN_END in ends or (fig["cut_s"] is not None and bool(ends))
    clean = drained and ends <= chosen_ends(fig) and w["errors"] == 0
    return Check(name, clean, f"ends {count_text(w['ends'])}; errors {w['errors']}")


def _streams_reopened(name: str, result: Verdict, bound: float | None) -> Check | None:
    fig, w = phase_streams(result, NAME)
    if fig is None or w is None:
        return None
    after = w["open_after"]
    old = [s for s in after if s not in w["new_servers"]]
    ok = sum(after.values()) == fig["slots"] and not old
    detail = f"{count_text(after)}; slowest reconnect {w['reconnect_s_max']}s"
    return Check(name, ok, detail)


def _cells(d: Any) -> dict[str, str]:
    return {
        "rollout failed": str(d.failed),
        "rollout on fewer servers": f"{d.narrow_s} of {d.seconds} s",
    }


PHASE = Phase(
    name=NAME,
    lab=lab,
    cluster=cluster,
    measure=measure,
    functions={LOSSLESS: leaving.lossless(NAME), ALL_ANSWER: _all_answer, ONE_SERVER: _one_server},
    headline=(LOSSLESS,),
    choose_checks=_checks,
    stream_functions={STREAMS_DRAINED: _streams_drained, STREAMS_REOPENED: _streams_reopened},
    columns=("rollout failed", "rollout on fewer servers"),
    cells=_cells,
    describe=leaving.describe,
    second_server_set=True,
)
