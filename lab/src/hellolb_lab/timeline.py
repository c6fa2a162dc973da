"""One scenario's run on loopback, as named phases that read top to bottom.

The timeline follows the cluster walkthrough: the overlay's servers (3) answer for a while
(``warmup``); two more servers start and only then are published in DNS, and through it to the
xDS control plane where there is one (``scale_up``); the run goes on until the new servers had
their chance (``after``). Then come the scenario's own phases, by the names its catalogue record
lists: the proxy scenario scales the proxy 1 -> 3 the same way (``scale_proxies``) and restarts
the client (``restart_client``); the clusterip scenario restarts the client too, to show that a
new connection may land on another server, but still on one only; the xds scenario stops its
control plane, publishes one more server while it is down, and starts it again
(``restart_control_plane``). Every scenario ends with servers leaving: a rolling restart of
every server (``rollout``), then one server killed (``crash``).

A new phase is one function here, registered in :data:`PHASES` under the name a record uses.
"""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Callable

from hellolb_lab import bounds, catalogue, outcome, verdict
from hellolb_lab.catalogue import Scenario
from hellolb_lab.disruption import Window
from hellolb_lab.errors import LabError
from hellolb_lab.front import Front
from hellolb_lab.options import Options
from hellolb_lab.outcome import RunResult
from hellolb_lab.plan import RESTART_CONTROL_PLANE, Plan, make
from hellolb_lab.procs import Supervisor, check_all_free, find_binary
from hellolb_lab.rollout import Rollout
from hellolb_lab.stage import SERVER_STARTED, Stage
from hellolb_lab.view import LiveView


def run(
    scenario: str | Scenario, options: Options | None = None, view: LiveView | None = None
) -> RunResult:
    """Plan one scenario's run, run it, judge it."""
    record = catalogue.get(scenario) if isinstance(scenario, str) else scenario
    return run_plan(make(record, options or Options()), view)


def run_plan(plan: Plan, view: LiveView | None = None) -> RunResult:
    """Run a plan; every process it started is stopped (by PID) when it returns or raises."""
    prepare(plan)
    stage: Stage | None = None
    end: float | None = None
    try:
        with Supervisor(plan.log_dir) as sup:
            stage = Stage(plan, sup, view or LiveView(quiet=True))
            scale_at, end = serve(stage)
        return outcome.judge(stage, scale_at, end)
    finally:
        if view is not None and stage is not None:
            view.finish(stage.picture, end)


def prepare(plan: Plan) -> None:
    """A fresh log folder, and every phase, binary, address and port the run needs, checked
    first."""
    unknown = [name for name in plan.phases if name not in PHASES]
    if unknown:
        known = ", ".join(PHASES)
        raise LabError(f"{plan.scenario.name}: the lab has no phase {unknown[0]!r} ({known})")
    if plan.log_dir.exists():
        shutil.rmtree(plan.log_dir)
    plan.log_dir.mkdir(parents=True)
    if plan.needs_envoy:
        find_binary("envoy")
    check_all_free(plan.endpoints())


def serve(stage: Stage) -> tuple[float, float]:
    """The run, phase by phase; the time of the scale-up and the end."""
    start(stage)
    warmup(stage)
    scale_at = scale_up(stage)
    after(stage, scale_at)
    stage.after_end = time.time()
    for name in stage.plan.phases:
        PHASES[name](stage)
    return scale_at, stage.stop_clients()


def start(stage: Stage) -> None:
    """DNS (and the xDS control plane), the first servers, what answers the client's target,
    then the client."""
    plan = stage.plan
    stage.start_dns()
    if plan.control_plane is not None:
        stage.start_control_plane()
    stage.start_servers(1, plan.first_servers)
    stage.publish_servers(plan.first_servers)
    if plan.target.front is Front.KUBE_PROXY:
        stage.start_envoy(plan.kube_proxy())
        stage.publish_target([plan.net.vip])
    proxies = plan.overlay.proxy_replicas
    if proxies is not None:
        stage.start_proxies(1, proxies)
        if plan.target.front is Front.PROXIES:
            stage.publish_target([plan.net.proxy(i) for i in range(1, proxies + 1)])
    stage.picture.start = time.time()
    stage.start_client()


def warmup(stage: Stage) -> None:
    """The first servers answer on their own."""
    stage.hold(stage.plan.options.warmup)


def scale_up(stage: Stage) -> float:
    """Start the new servers; once they listen, publish them. The time it happened."""
    plan = stage.plan
    first, to = plan.first_servers, plan.options.scale_to
    stage.start_servers(first + 1, to)
    stage.publish_servers(to)
    return stage.mark(f"servers {first} -> {to} in {plan.registry}")


def after(stage: Stage, scale_at: float) -> None:
    """Until the bound; with a bound and no ``--after``, only until every new server has
    answered for ``steady`` seconds."""
    plan = stage.plan
    steady = plan.options.steady
    if not plan.wait_steady:
        stage.hold(plan.after_s)
        return
    new = plan.server_ids(plan.first_servers + 1, plan.options.scale_to)

    def reached_and_steady() -> bool:
        t = stage.all_reached_since(scale_at, new)
        return t is not None and time.time() >= t + steady

    stage.hold(plan.after_s + steady, reached_and_steady)


def scale_proxies(stage: Stage) -> None:
    """Scale the proxy replicas the way the servers were, then let the client run."""
    plan = stage.plan
    first, to = plan.overlay.proxy_replicas or 0, plan.options.proxy_scale_to
    stage.count_proxy_requests("before_scale")
    stage.start_proxies(first + 1, to)
    stage.publish_target([plan.net.proxy(i) for i in range(1, to + 1)])
    stage.mark(f"proxies {first} -> {to} in DNS")
    stage.hold(plan.options.idle)


def restart_client(stage: Stage) -> None:
    """Replace the client with a new one (a new pod): a new connection, a fresh DNS lookup."""
    if stage.proxies:
        stage.count_proxy_requests("before_restart")
    stage.restart_client()
    stage.hold(stage.plan.options.restart)
    if stage.proxies:
        stage.count_proxy_requests("after_restart")


def rollout(stage: Stage) -> None:
    """Replace every server as ``kubectl rollout restart deploy/server`` does
    (:mod:`hellolb_lab.rollout`), then let the client run for ``settle`` seconds."""
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
    stage.windows["rollout"] = Window(
        "rollout",
        start,
        settled,
        time.time(),
        servers_after=tuple(plan.server(i).name for i in stage.endpoints),
        new_servers=tuple(plan.server(i).name for i in roll.new_servers),
        facts=roll.facts(start),
    )


def crash(stage: Stage) -> None:
    """SIGKILL the server that answered the most in the last second, as a crash would: no drain,
    no goodbye. The kubelet takes the pod out of the endpoints and restarts its container at
    once (the first restart has no back-off), on the same address, back in DNS once it listens;
    then the client runs for ``settle`` seconds."""
    plan = stage.plan
    i = stage.busiest_server()
    victim, name = stage.servers[i], plan.server(i).name
    victim.stopped = True
    # Timed just before the signal: on a busy machine the client may see the server's
    # connections break before the lab reads its clock again.
    killed_at = time.time()
    victim.signal(signal.SIGKILL)
    start = stage.mark(f"{name} killed (SIGKILL)", killed_at)
    stage.publish_endpoints([e for e in stage.endpoints if e != i])
    victim.popen.wait(timeout=plan.options.startup_timeout)
    restarted = stage.launch_server(i, restarts=1)
    restarted.wait_event(lambda e: e.get("event") == SERVER_STARTED, plan.options.startup_timeout)
    stage.publish_endpoints([*stage.endpoints, i])
    settled = stage.mark(f"{name} restarted, back in DNS")
    stage.hold(plan.options.settle)
    stage.windows["crash"] = Window(
        "crash",
        start,
        settled,
        time.time(),
        servers_after=tuple(plan.server(e).name for e in stage.endpoints),
        facts={"killed": name, "restarted_s": round(settled - start, 3)},
    )


def restart_control_plane(stage: Stage) -> None:
    """Stop the xDS control plane while the client runs, publish one more server while it is
    down, and start it again: calls go on to the servers the client knows, and the added one
    answers once the control plane is back, within the client's reconnection wait."""
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
    outage = verdict.Outage(stopped, restarting, restarted, tuple(known), tuple(new), bound)
    stage.extra[verdict.OUTAGE] = outage


#: The phases a catalogue record may list, by name.
PHASES: dict[str, Callable[[Stage], None]] = {
    "scale_proxies": scale_proxies,
    "restart_client": restart_client,
    "rollout": rollout,
    "crash": crash,
    RESTART_CONTROL_PLANE: restart_control_plane,
}
