"""The cluster check (``hellolb-lab e2e``) without a cluster: its log reading and verdicts on
client logs shaped as the docs describe them, and the kubectl/skaffold steps it takes, through a
stand-in command runner and clock."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import yaml
from hellolb_lab import __main__ as cli
from hellolb_lab import bounds, canary, catalogue, clientlog, cluster, e2e, judging, overlay
from hellolb_lab.errors import LabError
from hellolb_lab.options import Options
from hellolb_lab.phases import canary_steps, crash, rollout
from hellolb_lab.phases import restart_control_plane as outage_phase

T0 = 1_900_000_000.0
CANARY_POD = "server-canary-7d9c5-x2k4p"
OLD = ["server-a", "server-b", "server-c"]
NEW = ["server-d", "server-e"]


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def summary(t: float, by_server: dict[str, int], client: str = "client-1", errors: int = 0) -> str:
    """One client.summary line with the documented fields."""
    return json.dumps(
        {
            "event": "client.summary",
            "level": "info",
            "timestamp": iso(t),
            "scenario": "test",
            "client_id": client,
            "window_seconds": 5.0,
            "answers_window": sum(by_server.values()),
            "answers_total": 0,
            "rounds_total": 0,
            "by_server_window": by_server,
            "by_server_total": by_server,
            "errors_window": {},
            "errors_total": {"UNAVAILABLE": errors} if errors else {},
            "errors_total_count": errors,
            "servers_window": len(by_server),
            "servers_total": len(by_server),
            "latency_ms_p50": 201.0,
            "latency_ms_p99": 230.0,
            "final": False,
        }
    )


def client_log(before: list[str], after: list[str], *, scale_at: float, end: float, **kw) -> str:
    """Summaries every 5 s: even traffic over ``before`` until the scale-up, ``after`` since."""
    lines = ["not json: a startup banner", ""]
    t = T0 + 5
    while t < end:
        servers = before if t < scale_at else after
        lines.append(summary(t, dict.fromkeys(servers, 25), **kw))
        t += 5
    return "\n".join(lines)


def evaluate(scenario, client_log: str, *, reach_bound_s, **evidence):
    """Judge a scenario from the client's log text around a scale-up, as the check does."""
    events = clientlog.json_lines(client_log)
    return judging.judge(
        judging.Evidence(scenario, events, reach_bound_s=reach_bound_s, **evidence)
    )


def judge(scenario: str, after: list[str], bound: float | None = None, **kw):
    scale_at, end = T0 + 20, T0 + 60
    log = client_log(OLD, after, scale_at=scale_at, end=end, **kw)
    _, checks = evaluate(
        catalogue.get(scenario),
        log,
        scale_at=scale_at,
        servers_before=OLD,
        servers_after=OLD + NEW,
        end=end,
        reach_bound_s=bound,
    )
    return {c.name: c.ok for c in checks}


def test_only_json_objects_are_read_from_logs():
    text = "[info] envoy starting\n{broken\n[1, 2]\n" + summary(T0, {"a": 1})
    assert [e["event"] for e in clientlog.json_lines(text)] == ["client.summary"]


def test_proxy_requests_are_counted_from_envoy_access_log_lines():
    line = json.dumps({"event": "proxy.request", "upstream_host": "10.0.0.1:50051"})
    text = "\n".join(["[info] all clusters initialized", line, line, summary(T0, {"a": 1})])
    assert e2e.count_proxy_requests(text) == 2


def test_headless_passes_when_new_servers_stay_idle():
    assert all(judge("headless", OLD).values())


def test_headless_fails_when_a_new_server_is_reached():
    assert judge("headless", OLD + NEW)["no traffic to the new servers"] is False


def test_clusterip_passes_with_one_server_per_client():
    log = client_log(["server-a"], ["server-a"], scale_at=T0 + 20, end=T0 + 60)
    _, checks = evaluate(
        catalogue.get("clusterip"),
        log,
        scale_at=T0 + 20,
        servers_before=OLD,
        servers_after=OLD + NEW,
        end=T0 + 60,
        reach_bound_s=None,
    )
    assert all(c.ok for c in checks)


def test_clusterip_fails_when_one_client_reaches_several_servers():
    assert judge("clusterip", OLD)["one server per client connection"] is False


@pytest.mark.parametrize("scenario", ["maxage", "proxy", "sidecar", "linkerd", "xds"])
def test_balancing_scenarios_pass_when_new_servers_answer_within_the_bound(scenario):
    assert all(judge(scenario, OLD + NEW, bound=21.0).values())


@pytest.mark.parametrize("scenario", ["maxage", "proxy", "sidecar", "linkerd", "xds"])
def test_balancing_scenarios_fail_when_new_servers_never_answer(scenario):
    assert judge(scenario, OLD)["every new server reached"] is False


def test_failed_rpcs_fail_every_scenario():
    assert judge("headless", OLD, errors=3)["no failed RPC"] is False


def bound(overlay_of, scenario: str) -> float | None:
    return e2e.plan_check(catalogue.get(scenario), overlay_of(scenario), Options()).bound


def test_reach_bounds_come_from_the_rendered_overlays(overlay_of):
    # maxage: 10 s age x 1.1 jitter + 5 s resolution floor + the cluster margin.
    assert bound(overlay_of, "maxage") == 10 * 1.1 + 5 + bounds.CLUSTER_MARGIN_S
    # proxy and sidecar: Envoy's 5 s DNS refresh + the margin.
    for scenario in ("proxy", "sidecar"):
        assert bound(overlay_of, scenario) == 5 + bounds.CLUSTER_MARGIN_S
    assert bound(overlay_of, "headless") is None
    assert bound(overlay_of, "linkerd") == bounds.CONTROL_PLANE_PUSH_S + bounds.CLUSTER_MARGIN_S
    assert bound(overlay_of, "xds") == bounds.XDS_PUSH_S + bounds.CLUSTER_MARGIN_S


ADDED = ["server-f"]


#: The server pods a rollout creates, as many as it replaces.
ROLLED = ["server-p", "server-q", "server-r", "server-s", "server-t", "server-u"]


def response(t: float, server: str) -> str:
    return json.dumps(
        {"event": "client.response", "timestamp": iso(t), "client_id": "c", "server_id": server}
    )


def error(t: float) -> str:
    return json.dumps(
        {"event": "client.error", "timestamp": iso(t), "client_id": "c", "code": "UNAVAILABLE"}
    )


#: Seconds the old pods take to go, on the fake clock: pause, drain, stop.
OLD_PODS_GO_S = 10.0


def rollout_log(
    start: float, end: float, *, old: list[str], reached: list[str], errors: int
) -> str:
    """The client's lines around a rollout: answers from the ``old`` servers until they are
    gone, then from ``reached``, and ``errors`` failed calls right after it started."""
    lines = [error(start + 0.5) for _ in range(errors)]
    t = start - 5
    while t < end:
        servers = old if t < start + OLD_PODS_GO_S else reached
        lines += [response(t, s) for s in servers]
        t += 0.25
    return "\n".join(lines)


class FakeCluster:
    """Answers kubectl/skaffold like a cluster running one scenario, on a fake clock.

    The client's log follows what the client can know: the servers of its first look-up; the
    new ones once the servers are scaled (if ``new_servers_reached``); in the xds scenario, a
    server added while the control plane is scaled to zero only once it is back (if
    ``found_once_back``), with calls going on meanwhile; and after a rollout, answers from
    ``rollout_reached`` once the old pods are gone, with ``rollout_errors`` failed calls.
    """

    def __init__(
        self,
        scenario: str,
        new_servers_reached: bool,
        new_proxies_idle: bool,
        rollout_errors: int = 0,
        rollout_reached: list[str] | None = None,
        found_once_back: bool = True,
        canary_split: Callable[[int], int] | None = None,
        canary_errors: int = 0,
    ) -> None:
        self.scenario = scenario
        #: (from when, the canary's percent), as the weight script sets it; a route that applies
        #: at once gives the canary that percent of each summary's answers.
        self.weights: list[tuple[float, int]] = [(T0, 0)]
        self.canary_split = canary_split or (lambda percent: percent)
        self.canary_errors = canary_errors
        self.now = T0
        self.servers = len(OLD)
        self.proxy_scaled = False
        self.client_restarted_after_proxy_scale = False
        self.reached = new_servers_reached
        self.idle = new_proxies_idle
        self.rollout_errors = rollout_errors
        self.rollout_reached = rollout_reached
        self.rolled_out_at: float | None = None
        self.rolled_out: list[str] = []
        self.found_once_back = found_once_back
        self.control_plane_up = True
        #: (from when, the servers answering the client)
        self.segments: list[tuple[float, list[str]]] = [(T0, OLD)]

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def clock(self) -> float:
        return self.now

    def _scale(self, args: list[str]) -> None:
        replicas = int(next(a for a in args if a.startswith("--replicas=")).split("=")[1])
        if "deployment/server" in args:
            self.servers = replicas
            if self.control_plane_up and self.reached:
                self.segments.append((self.now, self.server_names()))
        elif "deployment/xds" in args:
            self.control_plane_up = replicas > 0
            if self.control_plane_up and self.found_once_back:
                self.segments.append((self.now, self.server_names()))
        else:
            self.proxy_scaled = True

    def server_names(self) -> list[str]:
        return (OLD + NEW + ADDED)[: self.servers]

    def client_log(self) -> str:
        lines = ["not json: a startup banner", ""]
        t = T0 + 5
        while t < self.now:
            servers = [s for start, s in self.segments if start < t][-1]
            by_server = dict.fromkeys(servers, 25)
            errors = 0
            if self.scenario == "canary":
                by_server = self.split(t, by_server)
                shifted = len(self.weights) > 1 and t > self.weights[1][0]
                errors = self.canary_errors if shifted else 0
            lines.append(summary(t, by_server, errors=errors))
            t += 5
        return "\n".join(lines)

    def split(self, t: float, by_server: dict[str, int]) -> dict[str, int]:
        """The same answers, the canary's share of them (the percent in force during the
        summary's 5 s) going to a canary pod."""
        percent = [p for start, p in self.weights if start <= t - 5][-1]
        total = sum(by_server.values())
        canary = total * self.canary_split(percent) // 100
        stable, rest = divmod(total - canary, len(by_server))
        split = {s: stable + (1 if i < rest else 0) for i, s in enumerate(by_server)}
        return {**split, CANARY_POD: canary}

    def run(self, argv) -> str:
        args = list(argv)
        if args[:2] == ["bash", cluster.CANARY_WEIGHT_SCRIPT]:
            self.weights.append((self.now, int(args[-1])))
        elif "restart" in args:
            self.rolled_out_at = self.now
            self.rolled_out = self.server_names()
        elif "--for=delete" in args:
            self.now += OLD_PODS_GO_S
        elif "scale" in args:
            self._scale(args)
        elif "delete" in args and "app=client" in args:
            # Only a client started after the proxies scaled can know the new ones.
            self.client_restarted_after_proxy_scale = self.proxy_scaled
        elif "get" in args and "app=server" in args:
            if self.rolled_out_at is not None:
                return " ".join(ROLLED[: self.servers])
            return " ".join(self.server_names())
        elif "get" in args and "app=proxy" in args:
            return " ".join(["proxy-1", "proxy-2", "proxy-3"] if self.proxy_scaled else ["proxy-1"])
        elif "logs" in args and "app=client" in args:
            log = self.client_log()
            if self.rolled_out_at is None:
                return log
            reached = self.rollout_reached
            if reached is None:
                reached = ROLLED[: self.servers]
            rollout = rollout_log(
                self.rolled_out_at,
                self.now,
                old=self.rolled_out,
                reached=reached,
                errors=self.rollout_errors,
            )
            return log + "\n" + rollout
        elif "logs" in args:
            busy = self.client_restarted_after_proxy_scale or not self.idle
            line = json.dumps({"event": "proxy.request"})
            return "\n".join([line] * 40) if busy else "[info] idle"
        return ""


def drive(
    overlay_of,
    scenario: str,
    reached: bool = True,
    idle: bool = True,
    found_once_back: bool = True,
    **options,
):
    fake = FakeCluster(
        scenario,
        reached,
        idle,
        rollout_errors=options.pop("rollout_errors", 0),
        rollout_reached=options.pop("rollout_reached", None),
        found_once_back=found_once_back,
        canary_split=options.pop("canary_split", None),
        canary_errors=options.pop("canary_errors", 0),
    )
    record = catalogue.get(scenario)
    stand_in = cluster.Cluster(record.namespace, fake.run)
    plan = e2e.plan_check(record, overlay_of(scenario), Options(**options))
    run = e2e.ClusterRun(plan, stand_in, sleep=fake.sleep, clock=fake.clock)
    _, checks = e2e.run_check(run)
    return stand_in.calls, {c.name: c.ok for c in checks}


def kubectl(scenario: str, *args: str) -> list[str]:
    return ["kubectl", "-n", catalogue.namespace(scenario), *args]


def test_the_check_deploys_with_the_scenarios_profile_then_scales_servers_3_to_5(overlay_of):
    calls, checks = drive(overlay_of, "maxage")
    assert calls[0] == ["skaffold", "run", "-p", "maxage", "--status-check=true"]
    assert kubectl("maxage", "scale", "deployment/server", "--replicas=5") in calls
    assert all(checks.values()), checks


def test_the_check_works_in_the_namespace_the_catalogue_names(overlay_of):
    calls, _ = drive(overlay_of, "headless")
    kubectl_calls = [c for c in calls if c[0] == "kubectl"]
    assert kubectl_calls
    assert all(c[1:3] == ["-n", "grpc-lb-headless"] for c in kubectl_calls)


@pytest.mark.parametrize("scenario", ["headless", "proxy", "xds"])
def test_the_client_starts_afresh_once_every_server_and_proxy_is_ready(overlay_of, scenario):
    calls, _ = drive(overlay_of, scenario)
    restart = calls.index(kubectl(scenario, "delete", "pod", "-l", "app=client", "--wait=true"))
    status = ["rollout", "status"]
    ready = [calls.index(kubectl(scenario, *status, "deployment/server", "--timeout=180s"))]
    if scenario == "proxy":
        ready.append(calls.index(kubectl(scenario, *status, "deployment/proxy", "--timeout=180s")))
    if scenario == "xds":
        # The client asks the control plane for its servers: it must be there first.
        ready.append(calls.index(kubectl(scenario, *status, "deployment/xds", "--timeout=180s")))
    scale = calls.index(kubectl(scenario, "scale", "deployment/server", "--replicas=5"))
    assert max(ready) < restart < scale


def test_scale_steps_follow_the_options(overlay_of):
    calls, _ = drive(overlay_of, "proxy", scale_to=4, proxy_scale_to=2)
    assert kubectl("proxy", "scale", "deployment/server", "--replicas=4") in calls
    assert kubectl("proxy", "scale", "deployment/proxy", "--replicas=2") in calls


def test_every_log_read_names_its_container(overlay_of, k8s_dir):
    calls, _ = drive(overlay_of, "proxy")
    docs = [d for d in yaml.safe_load_all(overlay.render("proxy", k8s_dir)) if d]
    logs = [c for c in calls if "logs" in c]
    assert logs
    for call in logs:
        container = call[call.index("-c") + 1]
        app = "client" if "app=client" in call else "proxy"
        deployment = next(
            d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == app
        )
        spec = deployment["spec"]["template"]["spec"]
        assert container in {c["name"] for c in spec["containers"]}, call


def test_a_lab_only_phase_does_not_run_on_the_cluster(overlay_of):
    """clusterip restarts its client in the lab only; the cluster check follows the walkthrough."""
    calls, _ = drive(overlay_of, "clusterip")
    restarts = [c for c in calls if "delete" in c and "app=client" in c]
    assert len(restarts) == 1  # the fresh start before the warm-up, and no other


def test_the_check_fails_when_maxage_never_reaches_the_new_servers(overlay_of):
    _, checks = drive(overlay_of, "maxage", reached=False)
    assert checks["every new server reached"] is False


def test_proxy_check_scales_the_proxy_then_restarts_the_client(overlay_of):
    calls, checks = drive(overlay_of, "proxy")
    scale_proxy = kubectl("proxy", "scale", "deployment/proxy", "--replicas=3")
    restart = kubectl("proxy", "delete", "pod", "-l", "app=client", "--wait=true")
    last_restart = len(calls) - 1 - calls[::-1].index(restart)
    assert calls.index(scale_proxy) < last_restart
    assert checks["new proxy replicas idle until the client restarts"] is True
    assert checks["new proxy replicas busy after the client restarts"] is True


def test_proxy_check_fails_when_new_proxies_get_traffic_before_the_restart(overlay_of):
    _, checks = drive(overlay_of, "proxy", idle=False)
    assert checks["new proxy replicas idle until the client restarts"] is False


def test_without_kubectl_or_skaffold_the_check_says_so(monkeypatch, capsys):
    monkeypatch.setattr(cli.shutil, "which", lambda _: None)
    assert cli.main(["e2e", "--scenario", "headless"]) == 2
    assert "not found on PATH" in capsys.readouterr().err


def test_a_phase_the_cluster_check_lacks_is_refused_before_any_command(overlay_of):
    record = dataclasses.replace(
        catalogue.get("headless"), phases=(catalogue.Phase("drain_a_node"),)
    )
    with pytest.raises(LabError, match="no phase 'drain_a_node'"):
        e2e.plan_check(record, overlay_of("headless"), Options())


# -- the rolling restart


@pytest.mark.parametrize("scenario", catalogue.names())
def test_every_scenario_ends_with_a_rolling_restart_and_no_crash(overlay_of, scenario):
    plan = e2e.plan_check(catalogue.get(scenario), overlay_of(scenario), Options())
    assert plan.phases[-1] == "rollout"
    assert "crash" not in plan.phases


def test_the_rollout_restarts_the_servers_then_waits_for_every_old_pod_to_go(overlay_of):
    calls, checks = drive(overlay_of, "headless")
    restart = calls.index(kubectl("headless", "rollout", "restart", "deployment/server"))
    status = kubectl("headless", "rollout", "status", "deployment/server", "--timeout=180s")
    assert calls[restart + 1] == status
    old = [f"pod/{p}" for p in OLD + NEW]
    wait = kubectl("headless", "wait", "--for=delete", *old, "--timeout=180s")
    assert calls.index(wait) > restart
    assert checks["no failed call in the rollout"] is True
    assert checks["every server answers after the rollout"] is True


def test_the_rollout_fails_the_check_when_calls_fail_during_it(overlay_of):
    _, checks = drive(overlay_of, "proxy", rollout_errors=3)
    assert checks["no failed call in the rollout"] is False
    assert checks["no failed RPC"] is True  # the scale-up's part of the run lost nothing


def test_the_rollout_fails_the_check_when_a_new_pod_gets_no_call(overlay_of):
    _, checks = drive(overlay_of, "maxage", rollout_reached=ROLLED[:3])
    assert checks["every server answers after the rollout"] is False


def test_clusterip_after_the_rollout_is_one_server_per_client(overlay_of):
    _, checks = drive(overlay_of, "clusterip", rollout_reached=ROLLED[:1])
    assert checks["one server per client after the rollout"] is True
    _, checks = drive(overlay_of, "clusterip")
    assert checks["one server per client after the rollout"] is False


def test_xds_check_stops_the_control_plane_adds_a_server_and_starts_it_again(overlay_of):
    calls, checks = drive(overlay_of, "xds")
    steps = [
        kubectl("xds", "scale", "deployment/xds", "--replicas=0"),
        kubectl("xds", "delete", "pod", "-l", "app=xds", "--wait=true"),
        kubectl("xds", "scale", "deployment/server", "--replicas=6"),
        kubectl("xds", "scale", "deployment/xds", "--replicas=1"),
    ]
    at = [calls.index(step) for step in steps]
    assert at == sorted(at)
    # The client's log is read again after the control plane is back.
    logs = [i for i, c in enumerate(calls) if "logs" in c and "app=client" in c]
    assert logs[-1] > at[-1]
    # Every check ran and passed but the crash's, a lab phase.
    expected = [c for c in judging.check_names(catalogue.get("xds")) if c != crash.LOSSLESS]
    assert checks == dict.fromkeys(expected, True)


def test_xds_check_fails_when_the_added_server_is_not_found_once_the_control_plane_is_back(
    overlay_of,
):
    _, checks = drive(overlay_of, "xds", found_once_back=False)
    assert checks[outage_phase.FOUND_ONCE_BACK] is False
    assert checks[outage_phase.CALLS_GO_ON] is True


def test_xds_check_waits_out_the_clients_reconnection_after_a_long_outage(overlay_of):
    fake = FakeCluster("xds", True, True)
    # A short phase: the client may wait longer than that to reconnect after a 10 s outage.
    record = dataclasses.replace(catalogue.get("xds"), watch=catalogue.ClusterWatch(phase_s=10))
    plan = e2e.plan_check(record, overlay_of("xds"), Options())
    run = e2e.ClusterRun(plan, cluster.Cluster(record.namespace, fake.run), fake.sleep, fake.clock)
    result, _ = e2e.run_check(run)
    outage = outage_phase.finding(result)
    assert outage is not None
    assert outage.bound_s == bounds.rejoin_bound(outage.down_s, margin_s=5)
    assert outage.bound_s > record.watch.phase_s
    # Watched after the return for that bound (the log was read at the end).
    back = fake.segments[-1][0]
    assert fake.now - back >= outage.bound_s


# -- the canary's weight steps


def test_canary_check_shifts_the_weight_in_steps_then_rolls_back_with_the_script(overlay_of):
    calls, checks = drive(overlay_of, "canary")
    script = ["bash", cluster.CANARY_WEIGHT_SCRIPT, "--namespace", "grpc-lb-canary"]
    shifts = [c for c in calls if c[:2] == script[:2]]
    assert shifts == [[*script, str(p)] for p in (0, 10, 50, 100, 0)]
    # After the scale-up, and before the servers' rollout (which runs at the rollback's 0%).
    at = calls.index(shifts[0])
    assert calls.index(kubectl("canary", "scale", "deployment/server", "--replicas=5")) < at
    assert at < calls.index(kubectl("canary", "rollout", "restart", "deployment/server"))
    expected = [c for c in judging.check_names(catalogue.get("canary")) if c != crash.LOSSLESS]
    assert checks == dict.fromkeys(expected, True)


def test_canary_check_waits_for_both_server_deployments_before_the_client_starts(overlay_of):
    calls, _ = drive(overlay_of, "canary")
    status = ["rollout", "status"]
    canary_ready = calls.index(
        kubectl("canary", *status, "deployment/server-canary", "--timeout=180s")
    )
    restart = calls.index(kubectl("canary", "delete", "pod", "-l", "app=client", "--wait=true"))
    assert canary_ready < restart


def test_canary_check_fails_when_the_split_follows_pod_count_not_the_weight(overlay_of):
    """One canary pod beside three stable ones, and no route: a quarter of the calls at every
    step (as with a plain Service)."""
    _, checks = drive(overlay_of, "canary", canary_split=lambda percent: 25)
    assert checks[canary_steps.SPLIT] is False
    assert checks[canary_steps.LOSSLESS] is True


@pytest.mark.parametrize("off_by", [10, -10])
def test_canary_check_fails_when_one_step_is_off_by_ten_points(overlay_of, off_by):
    """About 750 answers a step: 10 points is 5.5 standard deviations at 50%."""
    split = lambda percent: percent + off_by if percent == 50 else percent  # noqa: E731
    _, checks = drive(overlay_of, "canary", canary_split=split)
    assert checks[canary_steps.SPLIT] is False


def test_canary_check_fails_when_a_call_fails_during_the_steps(overlay_of):
    _, checks = drive(overlay_of, "canary", canary_errors=1)
    assert checks[canary_steps.LOSSLESS] is False
    assert checks["no failed RPC"] is True  # the scale-up's part of the run lost nothing


def test_canary_steps_are_counted_after_the_push_and_a_whole_summary_interval(overlay_of):
    fake = FakeCluster("canary", True, True)
    record = catalogue.get("canary")
    plan = e2e.plan_check(record, overlay_of("canary"), Options())
    run = e2e.ClusterRun(plan, cluster.Cluster(record.namespace, fake.run), fake.sleep, fake.clock)
    result, _ = e2e.run_check(run)
    figures = canary_steps.finding(result)
    assert figures is not None
    assert [s.percent for s in figures.splits] == [0, 10, 50, 100, 0]
    assert plan.client_config.summary_interval == 5.0  # the overlay's SUMMARY_INTERVAL
    # Each window starts when no summary in it can hold a call made under the old weight.
    shifts = [t for t, _ in fake.weights[1:]]
    assert figures.seconds == pytest.approx(
        5 * (bounds.CONTROL_PLANE_PUSH_S + 5.0 + record.watch.phase_s)
    )
    assert len(shifts) == 5


@pytest.mark.parametrize(
    ("percent", "canary_n", "stable_n", "ok"),
    [
        (0, 0, 1000, True),
        (0, 1, 999, False),  # a weight of 0 allows no stray call
        (100, 1000, 0, True),
        (100, 999, 1, False),
        (10, 100, 900, True),
        (10, 137, 863, True),  # 3.9 standard deviations (9.5 calls each)
        (10, 139, 861, False),  # 4.1
        (50, 500, 500, True),
        (10, 10, 90, True),
        (10, 5, 45, False),  # too few answers to judge
    ],
)
def test_a_step_holds_within_four_binomial_standard_deviations(percent, canary_n, stable_n, ok):
    assert canary.Split(percent, canary_n, stable_n).ok is ok


def test_canary_answers_are_told_apart_by_their_pod_name():
    assert canary.is_canary(CANARY_POD)
    assert not canary.is_canary("server-7d9c5b6f4-x2k4p")
    assert not canary.is_canary("server-a")


# -- stream mode


def stream_event(event: str, t: float, stream: int, server: str, **fields) -> str:
    return json.dumps(
        {
            "event": event,
            "timestamp": iso(t),
            "client_id": "c",
            "stream": stream,
            "slot": stream,
            "server_id": server,
            **fields,
        }
    )


class StreamCluster(FakeCluster):
    """A cluster whose client keeps ``slots`` streams: opened at its start over the first
    servers, where they stay; in a rollout, ended with ``rollout_code`` (OK from the drain by
    default) and opened again over the new servers 10 ms later."""

    def __init__(self, scenario: str, slots: int, rollout_code: str = "OK") -> None:
        super().__init__(scenario, new_servers_reached=False, new_proxies_idle=True)
        self.slots = slots
        self.rollout_code = rollout_code

    def client_log(self) -> str:
        lines = [super().client_log()]
        for n in range(1, self.slots + 1):
            lines.append(stream_event("client.stream_opened", T0 + 1, n, OLD[n % len(OLD)]))
        if self.rolled_out_at is not None:
            t = self.rolled_out_at + 2
            drain = "drain" if self.rollout_code == "OK" else ""
            for n in range(1, self.slots + 1):
                lines.append(
                    stream_event(
                        "client.stream_ended",
                        t,
                        n,
                        OLD[n % len(OLD)],
                        code=self.rollout_code,
                        details="",
                        end_reason=drain,
                        ticks=5,
                        error=self.rollout_code != "OK",
                        by_client=False,
                    )
                )
                new = ROLLED[n % self.servers]
                lines.append(
                    stream_event(
                        "client.stream_opened",
                        t + 0.01,
                        self.slots + n,
                        new,
                        reconnect_seconds=0.01,
                    )
                )
        return "\n".join(lines)


def drive_streams(overlay_of, scenario: str, rollout_code: str = "OK"):
    record = catalogue.get(scenario)
    slots = bounds.client_settings(scenario, overlay_of(scenario).client_env).concurrency
    fake = StreamCluster(scenario, slots, rollout_code)
    stand_in = cluster.Cluster(record.namespace, fake.run)
    plan = e2e.plan_check(record, overlay_of(scenario), Options(client_mode="streams"))
    run = e2e.ClusterRun(plan, stand_in, sleep=fake.sleep, clock=fake.clock)
    _, checks = e2e.run_check(run)
    return stand_in.calls, {c.name: c.ok for c in checks}


def test_stream_mode_sets_the_clients_mode_before_it_starts_afresh(overlay_of):
    calls, _ = drive_streams(overlay_of, "headless")
    set_env = kubectl(
        "headless", "set", "env", "deployment/client", "--containers=client", "CLIENT_MODE=streams"
    )
    restart = kubectl("headless", "delete", "pod", "-l", "app=client", "--wait=true")
    assert calls.index(set_env) < calls.index(restart)
    status = kubectl("headless", "rollout", "status", "deployment/client", "--timeout=180s")
    assert calls[calls.index(set_env) + 1] == status


def test_without_a_client_mode_the_check_leaves_the_client_as_deployed(overlay_of):
    calls, _ = drive(overlay_of, "headless")
    assert not [c for c in calls if "set" in c]


@pytest.mark.parametrize("scenario", ["headless", "proxy", "sidecar", "xds"])
def test_stream_mode_is_judged_by_the_stream_checks(overlay_of, scenario):
    _, checks = drive_streams(overlay_of, scenario)
    # the crash is a lab phase: its check has nothing to judge on a cluster
    names = judging.stream_check_names(catalogue.get(scenario))
    expected = [c for c in names if c != crash.STREAMS_CRASH]
    assert list(checks) == expected
    assert all(checks.values()), checks


def test_stream_mode_fails_when_the_rollout_ends_streams_with_an_error(overlay_of):
    _, checks = drive_streams(overlay_of, "proxy", rollout_code="INTERNAL")
    assert checks[rollout.STREAMS_DRAINED] is False
    assert checks[rollout.STREAMS_REOPENED] is True


def test_stream_mode_fails_maxage_when_no_stream_is_cut_at_age_plus_grace(overlay_of):
    _, checks = drive_streams(overlay_of, "maxage")
    assert checks[catalogue.STREAMS_MOVE_AT_AGE] is False


def test_stream_mode_is_refused_for_the_canary_with_the_reason(overlay_of):
    with pytest.raises(LabError, match="a stream stays on the backend it started on"):
        e2e.plan_check(
            catalogue.get("canary"), overlay_of("canary"), Options(client_mode="streams")
        )
