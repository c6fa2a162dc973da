"""``restart_control_plane``: the xDS control plane stopped while the client runs, one more
server published while it is down, and the control plane started again. Calls go on to the
servers the client knows, and the added one answers once the control plane is back, within the
client's reconnection wait (:func:`hellolb_lab.bounds.rejoin_bound`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hellolb_lab import bounds, clientlog
from hellolb_lab.checks import Check
from hellolb_lab.cluster import CONTROL_PLANE
from hellolb_lab.measure import Finding, count_between
from hellolb_lab.phases.base import Phase, Reading
from hellolb_lab.verdict import Verdict

if TYPE_CHECKING:
    from hellolb_lab.clusterrun import ClusterRun
    from hellolb_lab.stage import Stage

NAME = "restart_control_plane"
CALLS_GO_ON = "calls go on while the control plane is down"
FOUND_ONCE_BACK = "a server added while it is down is reached once it is back"


@dataclass(frozen=True)
class Outage:
    """The record: when the control plane was told to stop, when to start again (it was down
    for sure in between) and when it served again; the servers the client knew, the ones added
    meanwhile, and the seconds within which those must answer once it serves."""

    stopped: float
    restarting: float
    restarted: float
    known: tuple[str, ...]
    added: tuple[str, ...]
    bound_s: float


@dataclass(frozen=True)
class OutageFigures(Finding):
    """What the client did while the control plane was down, and after: answers per server
    while it was down (known ones, added ones), and seconds from its return to each added
    server's first answer (``None``: never)."""

    down_s: float
    bound_s: float
    known_while_down: dict[str, int]
    added_while_down: dict[str, int]
    added_reached_s: dict[str, float | None]


def lab(stage: Stage) -> None:
    """Stop the control plane, publish one more server while it is down, start it again, and
    wait until the added server answered (for ``steady`` seconds) or its bound passed."""
    plan = stage.plan
    known = plan.server_ids(1, plan.options.scale_to)
    added = plan.servers_total
    # Started first and published only once the control plane is gone, as a pod would become
    # ready while the control plane restarts.
    stage.start_servers(added, added)
    stopped = stage.mark("control plane stopped")
    stage.stop_control_plane()
    stage.publish_servers(added)
    stage.mark(f"server-{added} published, control plane down")
    stage.hold(plan.options.outage)
    restarting = stage.mark("control plane started again")
    restarted = stage.start_control_plane()
    bound = bounds.rejoin_bound(restarted - stopped)
    new = plan.server_ids(added, added)
    steady = plan.options.steady

    def found_and_steady() -> bool:
        t = stage.all_reached_since(restarted, new)
        return t is not None and time.time() >= t + steady

    stage.hold(bound + steady, found_and_steady)
    stage.records[NAME] = Outage(stopped, restarting, restarted, tuple(known), tuple(new), bound)


def cluster(run: ClusterRun) -> None:
    """Scale the control plane to zero, add a server while it is gone, scale it back to one;
    then read the client's log for this phase."""
    cluster_, watch = run.cluster, run.plan.scenario.watch
    known = cluster_.pods("server")
    stopped = run.clock()
    cluster_.scale(CONTROL_PLANE, 0)
    # The old pod must be gone before the new server is ready, or it would push it.
    cluster_.wait_pods_gone(CONTROL_PLANE)
    cluster_.scale("server", len(known) + 1)
    added = sorted(set(cluster_.pods("server")) - set(known))
    run.sleep(watch.phase_s)
    restarting = run.clock()
    cluster_.scale(CONTROL_PLANE, 1)
    restarted = run.clock()
    bound = bounds.rejoin_bound(restarted - stopped, margin_s=bounds.CLUSTER_MARGIN_S)
    run.sleep(max(watch.phase_s, bound))
    run.readings[NAME] = clientlog.json_lines(cluster_.client_logs())
    run.records[NAME] = Outage(stopped, restarting, restarted, tuple(known), tuple(added), bound)


def measure(outage: Outage, reading: Reading) -> OutageFigures:
    items = reading.answers
    down = count_between(items, outage.stopped, outage.restarting)
    first: dict[str, float] = {}
    for a in items:
        if a.t >= outage.restarted and a.server_id in outage.added:
            first.setdefault(a.server_id, a.t)
    return OutageFigures(
        down_s=round(outage.restarted - outage.stopped, 3),
        bound_s=outage.bound_s,
        known_while_down={s: down.get(s, 0) for s in outage.known},
        added_while_down={s: down.get(s, 0) for s in outage.added},
        added_reached_s={
            s: round(first[s] - outage.restarted, 3) if s in first else None for s in outage.added
        },
    )


def finding(result: Verdict) -> OutageFigures | None:
    found = result.findings.get(NAME)
    return found if isinstance(found, OutageFigures) else None


def _calls_go_on(name: str, result: Verdict, bound: float | None) -> Check | None:
    outage = finding(result)
    if outage is None:
        return None
    known = outage.known_while_down
    answered = [s for s, n in known.items() if n]
    detail = (
        f"{sum(known.values())} answers from {len(answered)} of the {len(known)} known servers "
        f"in {outage.down_s:.1f}s"
    )
    return Check(name, bool(known) and len(answered) == len(known), detail)


def _found_once_back(name: str, result: Verdict, bound: float | None) -> Check | None:
    outage = finding(result)
    if outage is None:
        return None
    early = [s for s, n in outage.added_while_down.items() if n]
    reached = outage.added_reached_s
    never = [s for s, t in reached.items() if t is None]
    late = [s for s, t in reached.items() if t is not None and t > outage.bound_s]
    if early:
        detail = "answered while the control plane was down: " + ", ".join(early)
    elif never:
        detail = "never reached: " + ", ".join(never)
    else:
        times = ", ".join(f"{s} {t:.2f}s" for s, t in reached.items())
        detail = f"after it was back: {times} (bound {outage.bound_s}s)"
    return Check(name, bool(reached) and not (early or never or late), detail)


PHASE = Phase(
    name=NAME,
    lab=lab,
    cluster=cluster,
    measure=measure,
    functions={CALLS_GO_ON: _calls_go_on, FOUND_ONCE_BACK: _found_once_back},
    servers_added=1,
)
