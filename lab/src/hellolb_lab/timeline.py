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

Each of those phases is one module of :mod:`hellolb_lab.phases`; this module runs the steps
every scenario shares and then the record's phases, by name.
"""

from __future__ import annotations

import shutil
import time

from hellolb_lab import catalogue, outcome
from hellolb_lab.catalogue import Scenario
from hellolb_lab.errors import LabError
from hellolb_lab.front import Front
from hellolb_lab.options import Options
from hellolb_lab.outcome import RunResult
from hellolb_lab.overlay import Overlay
from hellolb_lab.phases import PHASES
from hellolb_lab.plan import Plan, make
from hellolb_lab.procs import Supervisor, check_all_free, find_binary
from hellolb_lab.stage import Stage
from hellolb_lab.view import LiveView


def run(
    scenario: str | Scenario, options: Options | None = None, view: LiveView | None = None
) -> RunResult:
    """Plan one scenario's run, run it, judge it."""
    record = catalogue.get(scenario) if isinstance(scenario, str) else scenario
    return run_plan(plan(record, options or Options()), view)


def plan(scenario: Scenario, options: Options, ov: Overlay | None = None) -> Plan:
    """The plan of one run of ``scenario`` (:func:`hellolb_lab.plan.make`), with the phases
    of :data:`~hellolb_lab.phases.PHASES`."""
    return make(scenario, options, ov, phases=PHASES)


def run_plan(plan: Plan, view: LiveView | None = None) -> RunResult:
    """Run a plan, and save its results beside its logs (:meth:`RunResult.save`); every
    process it started is stopped (by PID) when it returns or raises."""
    prepare(plan)
    stage: Stage | None = None
    end: float | None = None
    try:
        with Supervisor(plan.log_dir) as sup:
            stage = Stage(plan, sup, view or LiveView(quiet=True))
            scale_at, end = serve(stage)
        result = outcome.judge(stage, scale_at, end)
        result.save()
        return result
    finally:
        if view is not None and stage is not None:
            view.finish(stage.picture, end)


def prepare(plan: Plan) -> None:
    """A fresh log folder, and every phase, binary, address and port the run needs, checked
    first."""
    unknown = [name for name in plan.phases if PHASES[name].lab is None]
    if unknown:
        raise LabError(f"{plan.scenario.name}: the phase {unknown[0]!r} has no lab step")
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
        step = PHASES[name].lab
        assert step is not None  # checked by prepare()
        step(stage)
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
