"""``scale_proxies``: the proxy replicas scaled the way the servers were (1 -> 3), with the
client kept running; new replicas stay idle until a new client connection (a restart) finds
them. Its finding, the requests of each added replica before and after the client restart,
is measured with :mod:`hellolb_lab.phases.restart_client`'s counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hellolb_lab.checks import Check
from hellolb_lab.measure import Finding
from hellolb_lab.phases.base import Phase, Reading
from hellolb_lab.verdict import Verdict

if TYPE_CHECKING:
    from hellolb_lab.clusterrun import ClusterRun
    from hellolb_lab.stage import Stage

NAME = "scale_proxies"
IDLE = "new proxy replicas idle until the client restarts"
BUSY = "new proxy replicas busy after the client restarts"


@dataclass(frozen=True)
class ProxySplit(Finding):
    """Requests of each proxy replica added by the scale-up, before and after the client
    restart; and, in the lab, every replica's total."""

    before_restart: dict[str, int]
    after_restart: dict[str, int]
    total: dict[str, int]


def lab(stage: Stage) -> None:
    """Scale the proxy replicas the way the servers were, then let the client run."""
    plan = stage.plan
    first, to = plan.overlay.proxy_replicas or 0, plan.options.proxy_scale_to
    stage.count_proxy_requests("before_scale")
    stage.start_proxies(first + 1, to)
    stage.publish_target([plan.net.proxy(i) for i in range(1, to + 1)])
    stage.mark(f"proxies {first} -> {to} in DNS")
    stage.hold(plan.options.idle)
    stage.records[NAME] = stage.proxy_requests


def cluster(run: ClusterRun) -> None:
    """Scale the proxy, then count the new proxies' requests while the client keeps running."""
    old = set(run.cluster.pods("proxy"))
    run.cluster.scale("proxy", run.plan.proxy_scale_to)
    run.new_proxies = sorted(set(run.cluster.pods("proxy")) - old)
    start = run.clock()
    run.sleep(run.plan.scenario.watch.phase_s)
    run.proxy_requests["before_restart"] = run.proxy_requests_since(start)
    run.records[NAME] = run.proxy_requests


def measure(counts: dict[str, dict[str, int]], reading: Reading) -> ProxySplit | None:
    """The split from the counts taken at named moments: the lab's counters (``before_scale``,
    ``before_restart``, ``after_restart``, each a total so far), or the cluster's requests
    counted from each moment on (``before_restart``, ``after_restart``). ``None`` in the lab
    before the client restarted."""
    if "before_scale" not in counts:
        before, after = counts.get("before_restart", {}), counts.get("after_restart", {})
        return ProxySplit(dict(before), dict(after), {}) if counts else None
    if not {"before_restart", "after_restart"} <= set(counts):
        return None
    before, at_restart, at_end = (
        counts["before_scale"],
        counts["before_restart"],
        counts["after_restart"],
    )
    added = [p for p in at_end if p not in before]
    return ProxySplit(
        before_restart={p: at_restart[p] - before.get(p, 0) for p in added},
        after_restart={p: at_end[p] - at_restart[p] for p in added},
        total=dict(at_end),
    )


def finding(result: Verdict) -> ProxySplit | None:
    found = result.findings.get(NAME)
    return found if isinstance(found, ProxySplit) else None


def _idle(name: str, result: Verdict, bound: float | None) -> Check | None:
    split = finding(result)
    if split is None:
        return None
    before = split.before_restart
    detail = ", ".join(f"{p}: {n}" for p, n in before.items()) or "no new replicas"
    return Check(name, bool(before) and not any(before.values()), detail)


def _busy(name: str, result: Verdict, bound: float | None) -> Check | None:
    split = finding(result)
    if split is None:
        return None
    after = split.after_restart
    detail = ", ".join(f"{p}: {n}" for p, n in after.items()) or "no new replicas"
    return Check(name, bool(after) and all(after.values()), detail)


PHASE = Phase(
    name=NAME,
    lab=lab,
    cluster=cluster,
    measure=measure,
    functions={IDLE: _idle, BUSY: _busy},
)
