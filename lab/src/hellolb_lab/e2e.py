"""The cluster check: one scenario on a real cluster, judged as the lab judges it.

    hellolb-lab e2e --scenario maxage        (or: make e2e SCENARIO=maxage)

It deploys the scenario with ``skaffold run -p <scenario>``, waits for the servers (and the
proxy), starts the client afresh so that it resolves all of them, lets it run, scales the
servers to ``--scale-to`` and keeps watching, for the times the scenario's catalogue record
gives. Then come the scenario's phases that run on a cluster: its own (the proxy scenario scales
the proxy and restarts the client, watching the new proxies' access logs; the xds scenario scales
its control plane to zero, adds a server, and scales the control plane back, reading the
client's log once more; the canary scenario shifts its route's weight in steps with
k8s/canary/canary-weight.sh and measures each step's split), then a rolling restart of every
server (``kubectl rollout restart deploy/server``, ``kubectl rollout status``, then until every
old pod is gone, and the client watched a while longer). The client's log lines are judged by
the same verdict and checks as the lab's, with the bound from the overlay's own settings and a
cluster margin; the rollout by the same measurements as the lab's rollout
(:mod:`hellolb_lab.disruption`).

With ``--client-mode streams`` the check first sets the client's ``CLIENT_MODE`` (``kubectl set
env deploy/client``) and judges the run by the stream checks instead, the lab's too
(:mod:`hellolb_lab.streamverdict`).

The steps are planned first (:class:`CheckPlan`) and every command goes through
:class:`~hellolb_lab.cluster.Cluster`, so the whole check runs offline against a stand-in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hello_client.config import ClientConfig
from hellolb.config import ConfigError

from hellolb_lab import (
    bounds,
    canary,
    checks,
    clientlog,
    disruption,
    envoy,
    streamverdict,
    verdict,
)
from hellolb_lab import overlay as overlays
from hellolb_lab.catalogue import Scenario
from hellolb_lab.checks import Check
from hellolb_lab.cluster import Cluster
from hellolb_lab.errors import LabError
from hellolb_lab.options import Options
from hellolb_lab.plan import STREAM_MODE

#: The tools the check runs.
TOOLS = ("kubectl", "skaffold")
#: The xds scenario's control-plane Deployment (k8s/components/xds).
CONTROL_PLANE = "xds"
#: The canary scenario's canary Deployment (k8s/components/canary).
CANARY_SERVERS = "server-canary"


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON log events among ``text``'s lines; anything else (Envoy's own log, blanks)
    is skipped, as the cluster log reader does."""
    return [event for line in text.splitlines() if (event := clientlog.parse_line(line))]


def count_proxy_requests(log_text: str) -> int:
    """Requests an Envoy served, from its access-log lines."""
    return sum(1 for e in json_lines(log_text) if e.get("event") == envoy.ACCESS_LOG_EVENT)


@dataclass(frozen=True)
class CheckPlan:
    """The check's steps for one scenario, computed before any command runs."""

    scenario: Scenario
    scale_to: int
    proxy_scale_to: int
    bound: float | None
    #: Deployments that must be ready before the client starts afresh: the servers, and the
    #: proxy or the xDS control plane where the overlay has one.
    ready_first: tuple[str, ...]
    #: The scenario's phases that run on a cluster, by name.
    phases: tuple[str, ...]
    #: The client's SUMMARY_INTERVAL, where a phase needs it (canary_steps): a summary counts
    #: the calls of the interval before it.
    summary_interval_s: float | None = None
    #: The client's ``CLIENT_MODE`` for the check (``None``: the overlay's). In stream mode,
    #: the streams the client keeps open and the seconds within which the servers' maximum
    #: age and grace cut one (:func:`bounds.stream_cut`, with the cluster margin).
    client_mode: str | None = None
    stream_slots: int = 0
    stream_cut_s: tuple[float, float] | None = None

    @property
    def streams(self) -> bool:
        return self.stream_slots > 0


def plan_check(scenario: Scenario, ov: overlays.Overlay, options: Options) -> CheckPlan:
    """The check's steps, or :class:`LabError` when the record names a phase the check lacks."""
    phases = tuple(p.name for p in scenario.all_phases if p.on_cluster)
    unknown = [name for name in phases if name not in PHASES]
    if unknown:
        raise LabError(f"{scenario.name}: the cluster check has no phase {unknown[0]!r}")
    bound = bounds.reach_bound(
        scenario,
        server_env=ov.server_env,
        client_env=ov.client_env,
        envoy_config=ov.envoy_config,
        margin_s=bounds.CLUSTER_MARGIN_S,
    )
    mode = options.client_mode
    streams = (mode or ov.client_env.get("CLIENT_MODE")) == STREAM_MODE
    if streams and "canary_steps" in phases:
        raise LabError(
            f"{scenario.name}: its weight steps count the calls of each step, and a stream "
            "stays on the backend it started on; run stream mode on linkerd, the same mesh"
        )
    return CheckPlan(
        scenario=scenario,
        scale_to=options.scale_to,
        proxy_scale_to=options.proxy_scale_to,
        bound=bound,
        ready_first=tuple(
            d for d in ("server", CANARY_SERVERS, "proxy", CONTROL_PLANE) if d in ov.deployments
        ),
        phases=phases,
        summary_interval_s=_summary_interval(ov) if "canary_steps" in phases else None,
        client_mode=mode,
        stream_slots=bounds.stream_slots(scenario.name, ov.client_env) if streams else 0,
        stream_cut_s=bounds.stream_cut(
            scenario.name, ov.server_env, margin_s=bounds.CLUSTER_MARGIN_S
        )
        if streams
        else None,
    )


def _summary_interval(ov: overlays.Overlay) -> float:
    """The client's SUMMARY_INTERVAL in the overlay, by the client's own parser."""
    try:
        return ClientConfig.from_env(ov.client_env).summary_interval
    except ConfigError as error:
        raise LabError(f"{ov.scenario}: the overlay sets {error}") from None


def evaluate(
    scenario: Scenario,
    client_log: str,
    *,
    scale_at: float,
    servers_before: Sequence[str],
    servers_after: Sequence[str],
    end: float,
    reach_bound_s: float | None,
    extra: Mapping[str, Any] | None = None,
    disruptions: Mapping[str, disruption.Disruption] | None = None,
    streams: Mapping[str, Any] | None = None,
) -> tuple[verdict.Verdict, list[Check]]:
    """Judge a scenario from the client's log text (all its JSON lines) around a scale-up, and
    the phases in which servers left, measured apart; with ``streams`` (the stream figures of
    a stream-mode run), by the stream checks."""
    events = json_lines(client_log)
    if streams is not None:
        extra = {**(extra or {}), streamverdict.STREAMS: dict(streams)}
    result = verdict.judge(
        scenario.name,
        clientlog.answers_from_events(events),
        scale_at=scale_at,
        servers_before=servers_before,
        servers_after=servers_after,
        end=end,
        failed_rpcs=clientlog.failed_rpcs(events, until=end),
        extra=extra,
        disruptions=disruptions,
    )
    if streams is not None:
        return result, checks.expected_streams(scenario, result)
    return result, checks.expected(scenario, result, reach_bound_s=reach_bound_s)


@dataclass
class ClusterRun:
    """One check in progress: the plan, the cluster, its clock, and what the phases measured."""

    plan: CheckPlan
    cluster: Cluster
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    new_proxies: list[str] = field(default_factory=list)
    proxy_requests: dict[str, dict[str, int]] = field(default_factory=dict)
    #: The phases in which servers left, for the verdict.
    windows: dict[str, disruption.Window] = field(default_factory=dict)
    #: What the phases measured beyond the first log read, for the verdict (by its name).
    extra: dict[str, Any] = field(default_factory=dict)

    def proxy_requests_since(self, since: float) -> dict[str, int]:
        logs = {p: self.cluster.proxy_logs_since(p, since) for p in self.new_proxies}
        return {p: count_proxy_requests(text) for p, text in logs.items()}


def scale_proxies(run: ClusterRun) -> None:
    """Scale the proxy, then count the new proxies' requests while the client keeps running."""
    old = set(run.cluster.pods("proxy"))
    run.cluster.scale("proxy", run.plan.proxy_scale_to)
    run.new_proxies = sorted(set(run.cluster.pods("proxy")) - old)
    start = run.clock()
    run.sleep(run.plan.scenario.watch.phase_s)
    run.proxy_requests["before_restart"] = run.proxy_requests_since(start)


def restart_client(run: ClusterRun) -> None:
    """Start the client afresh, then count the new proxies' requests again (if any)."""
    run.cluster.restart_client()
    restarted = run.clock()
    run.sleep(run.plan.scenario.watch.phase_s)
    if run.new_proxies:
        run.proxy_requests["after_restart"] = run.proxy_requests_since(restarted)


def rollout(run: ClusterRun) -> None:
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
    run.windows["rollout"] = disruption.Window(
        "rollout",
        start,
        settled,
        run.clock(),
        servers_after=tuple(after),
        new_servers=tuple(sorted(set(after) - set(before))),
        facts={"rolled_out_s": round(rolled_out - start, 3), "replicas": len(before)},
    )


def restart_control_plane(run: ClusterRun) -> None:
    """Scale the xDS control plane to zero, add a server while it is gone, scale it back to one;
    then read the client's log and measure what it did meanwhile."""
    cluster, watch = run.cluster, run.plan.scenario.watch
    known = cluster.pods("server")
    stopped = run.clock()
    cluster.scale(CONTROL_PLANE, 0)
    # The old pod must be gone before the new server is ready, or it would push it.
    cluster.wait_pods_gone(CONTROL_PLANE)
    cluster.scale("server", len(known) + 1)
    added = sorted(set(cluster.pods("server")) - set(known))
    run.sleep(watch.phase_s)
    restarting = run.clock()
    cluster.scale(CONTROL_PLANE, 1)
    restarted = run.clock()
    bound = bounds.rejoin_bound(restarted - stopped, margin_s=bounds.CLUSTER_MARGIN_S)
    run.sleep(max(watch.phase_s, bound))
    answers = clientlog.answers_from_events(json_lines(cluster.client_logs()))
    outage = verdict.Outage(stopped, restarting, restarted, tuple(known), tuple(added), bound)
    run.extra[verdict.OUTAGE] = verdict.outage_figures(answers, outage)


def canary_steps(run: ClusterRun) -> None:
    """Shift the canary's weight through :data:`canary.STEPS` and back to
    :data:`canary.ROLLBACK` with the weight script; after each shift, wait for Linkerd to push
    the route and for the client's summaries to hold only calls made since, then watch a
    window. Then read the client's log and measure each window's split."""
    cluster, watch = run.cluster, run.plan.scenario.watch
    if run.plan.summary_interval_s is None:
        raise LabError("canary_steps: the plan holds no summary interval")
    settle = bounds.CONTROL_PLANE_PUSH_S + run.plan.summary_interval_s
    steps: list[canary.Step] = []
    for percent in (*canary.STEPS, canary.ROLLBACK):
        cluster.canary_weight(percent)
        shifted = run.clock()
        run.sleep(settle)
        start = run.clock()
        run.sleep(watch.phase_s)
        steps.append(canary.Step(percent, shifted, start, run.clock()))
    events = json_lines(cluster.client_logs())
    before = clientlog.failed_rpcs(events, until=steps[0].shifted)
    failed = clientlog.failed_rpcs(events, until=steps[-1].end) - before
    answers = clientlog.answers_from_events(events)
    run.extra[canary.CANARY] = canary.figures(steps, answers, failed)


#: The phases a catalogue record may list that the check can run on a cluster, by name.
PHASES: dict[str, Callable[[ClusterRun], None]] = {
    "scale_proxies": scale_proxies,
    "restart_client": restart_client,
    "rollout": rollout,
    "restart_control_plane": restart_control_plane,
    "canary_steps": canary_steps,
}


def disruptions(run: ClusterRun) -> dict[str, disruption.Disruption]:
    """The phases in which servers left, measured on the client's log as it is now."""
    if not run.windows:
        return {}
    events = json_lines(run.cluster.client_logs())
    answers, failures = clientlog.answers_from_events(events), clientlog.failures(events)
    return {name: disruption.judge(w, answers, failures) for name, w in run.windows.items()}


def run_check(run: ClusterRun, *, deploy: bool = True) -> tuple[verdict.Verdict, list[Check]]:
    """Deploy, warm up, scale the servers, watch, run the scenario's phases, judge."""
    plan, cluster, watch = run.plan, run.cluster, run.plan.scenario.watch
    if deploy:
        cluster.deploy(plan.scenario.name)
    for name in plan.ready_first:
        cluster.rollout(name)
    if plan.client_mode is not None:
        cluster.set_client_env("CLIENT_MODE", plan.client_mode)
    # The client resolves its target once, when it starts. Deployed beside the servers it
    # may have started while only some were ready, and would balance over those alone:
    # start it afresh now that every server (and proxy) is ready.
    cluster.restart_client()
    run.sleep(watch.warmup_s)
    before = cluster.pods("server")
    cluster.scale("server", plan.scale_to)
    # Counted from the moment all of them are ready: before that a new pod is not in DNS.
    scale_at = run.clock()
    after = cluster.pods("server")
    run.sleep(watch.observe_s)
    end = run.clock()
    client_log = cluster.client_logs()
    for name in plan.phases:
        PHASES[name](run)
    extra = dict(run.extra)
    if run.proxy_requests:
        extra["proxy_requests"] = run.proxy_requests
    streams = None
    if plan.streams:
        streams = stream_figures(run, client_log, scale_at, end, before, after)
    return evaluate(
        plan.scenario,
        client_log,
        scale_at=scale_at,
        servers_before=before,
        servers_after=after,
        end=end,
        reach_bound_s=plan.bound,
        extra=extra or None,
        disruptions=disruptions(run),
        streams=streams,
    )


def stream_figures(
    run: ClusterRun,
    client_log: str,
    scale_at: float,
    end: float,
    before: Sequence[str],
    after: Sequence[str],
) -> dict[str, Any]:
    """The streams around the scale-up, from the log read when it was over, and in the phases
    in which servers left, from the log as it is now (:mod:`hellolb_lab.streamverdict`)."""
    plan = run.plan
    first = clientlog.stream_lives(json_lines(client_log))
    later = clientlog.stream_lives(json_lines(run.cluster.client_logs())) if run.windows else None
    return streamverdict.figures(
        *first,
        scale_at=scale_at,
        after_end=end,
        slots=plan.stream_slots,
        first_servers=before,
        new_servers=sorted(set(after) - set(before)),
        windows=run.windows,
        cut_s=plan.stream_cut_s,
        later=later,
    )
