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
(:mod:`hellolb_lab.disruption`). Each phase's step is its module's in :mod:`hellolb_lab.phases`.

With ``--client-mode streams`` the check first sets the client's ``CLIENT_MODE`` (``kubectl set
env deploy/client``) and judges the run by the stream checks instead, the lab's too
(:mod:`hellolb_lab.streamverdict`).

The steps are planned first (:class:`CheckPlan`) and every command goes through
:class:`~hellolb_lab.cluster.Cluster`, so the whole check runs offline against a stand-in.
"""

from __future__ import annotations

from hellolb_lab import bounds, clientlog, judging
from hellolb_lab import overlay as overlays
from hellolb_lab.catalogue import Scenario
from hellolb_lab.checks import Check
from hellolb_lab.cluster import CANARY_SERVERS, CONTROL_PLANE
from hellolb_lab.clusterrun import CheckPlan, ClusterRun, count_proxy_requests
from hellolb_lab.errors import LabError
from hellolb_lab.judging import Evidence, StreamSetup
from hellolb_lab.options import Options
from hellolb_lab.phases import PHASES
from hellolb_lab.phases import get as get_phase
from hellolb_lab.plan import STREAM_MODE
from hellolb_lab.verdict import Verdict

__all__ = ["TOOLS", "CheckPlan", "ClusterRun", "count_proxy_requests", "plan_check", "run_check"]

#: The tools the check runs.
TOOLS = ("kubectl", "skaffold")


def plan_check(scenario: Scenario, ov: overlays.Overlay, options: Options) -> CheckPlan:
    """The check's steps, or :class:`LabError` when the record names a phase the check lacks."""
    phases = tuple(p.name for p in scenario.all_phases if p.on_cluster)
    unknown = [name for name in phases if get_phase(name).cluster is None]
    if unknown:
        raise LabError(f"{scenario.name}: the cluster check has no phase {unknown[0]!r}")
    server = bounds.server_settings(scenario.name, ov.server_env)
    client = bounds.client_settings(scenario.name, ov.client_env)
    bound = bounds.reach_bound(
        scenario,
        server=server,
        client=client,
        envoy_config=ov.envoy_config,
        margin_s=bounds.CLUSTER_MARGIN_S,
    )
    mode = options.client_mode
    streams = (mode or client.mode) == STREAM_MODE
    refused = [name for name in phases if not PHASES[name].stream_mode]
    if streams and refused:
        raise LabError(
            f"{scenario.name}: its {refused[0]} phase counts the calls of each step, and a "
            "stream stays on the backend it started on; run stream mode on linkerd, the same mesh"
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
        client_config=client,
        client_mode=mode,
        stream_slots=client.concurrency if streams else 0,
        stream_cut_s=bounds.stream_cut(server, margin_s=bounds.CLUSTER_MARGIN_S)
        if streams
        else None,
    )


def run_check(run: ClusterRun, *, deploy: bool = True) -> tuple[Verdict, list[Check]]:
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
        step = PHASES[name].cluster
        assert step is not None  # checked by plan_check()
        step(run)
    # The phases are measured on the client's log as it is now.
    later = clientlog.json_lines(cluster.client_logs()) if run.records else None
    evidence = Evidence(
        scenario=plan.scenario,
        events=clientlog.json_lines(client_log),
        scale_at=scale_at,
        servers_before=before,
        servers_after=after,
        end=end,
        reach_bound_s=plan.bound,
        records=run.records,
        later=later,
        readings=run.readings,
        streams=StreamSetup(plan.stream_slots, plan.stream_cut_s, end) if plan.streams else None,
    )
    return judging.judge(evidence)
