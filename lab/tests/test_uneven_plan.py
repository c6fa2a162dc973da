"""The uneven-servers comparison computed without a process: its lanes, the Envoy configs each
balancer derives from the proxy scenario's ConfigMap (checked by the real Envoy), and the
figures read from a client's log lines."""

import subprocess
import sys
from datetime import UTC, datetime

import pytest
from hellolb_lab import balancers, envoy, uneven
from hellolb_lab.errors import LabError
from hellolb_lab.procs import find_binary


@pytest.fixture(scope="module")
def proxy_config(overlay_of):
    return overlay_of("proxy").envoy_config


@pytest.fixture(scope="module")
def lanes(proxy_config, lab_net):
    return uneven.plan(uneven.Setup(fault="slow", net=lab_net(130)), proxy_config)


def cluster_of(config):
    (cluster,) = config["static_resources"]["clusters"]
    return cluster


def test_every_balancer_gets_its_own_block_and_three_servers_the_third_one_bad(lanes):
    assert [lane.balancer.name for lane in lanes] == balancers.names()
    addresses = [s.address for lane in lanes for s in lane.servers]
    assert len(set(addresses)) == len(addresses) == 3 * len(lanes)
    assert len({lane.net.prefix for lane in lanes}) == len(lanes)
    for lane in lanes:
        faulty = [s.name for s in lane.servers if "FAULT_LATENCY" in s.env]
        assert faulty == [uneven.BAD]


def test_a_grpc_balancer_connects_to_every_server_an_envoy_one_to_its_proxy(lanes):
    for lane in lanes:
        env = lane.client.env
        assert env["CLIENT_MODE"] == "closed_loop"
        if lane.balancer.envoy:
            assert lane.envoy is not None
            assert env["SERVER_ADDRESS"] == f"ipv4:{lane.envoy.address}:{uneven.PORT}"
            assert env["HEALTH_CHECK"] == "false"
        else:
            assert lane.envoy is None
            assert env["SERVER_ADDRESS"].count(",") == uneven.SERVERS - 1
            assert env["HEALTH_CHECK"] == "true"
    by_name = {lane.balancer.name: lane.client.env for lane in lanes}
    assert by_name["weighted_round_robin"]["LB_POLICY"] == "weighted_round_robin"
    assert by_name["outlier_detection"]["OUTLIER_DETECTION"] == "true"
    assert "OUTLIER_DETECTION" not in by_name["round_robin"]


def test_envoy_balancers_change_only_the_clusters_balancing(lanes, proxy_config):
    shipped = cluster_of(proxy_config)
    route = proxy_config["static_resources"]["listeners"][0]["filter_chains"]
    for lane in lanes:
        if lane.envoy is None:
            continue
        config = lane.envoy.config
        cluster = cluster_of(config)
        # The routes (timeout, retries) and the upstream settings are the ConfigMap's.
        listener = config["static_resources"]["listeners"][0]
        assert listener["filter_chains"] == route
        assert listener["address"]["socket_address"]["address"] == lane.envoy.address
        assert cluster["health_checks"] == shipped["health_checks"]
        assert (
            cluster["typed_extension_protocol_options"]
            == shipped["typed_extension_protocol_options"]
        )
        assert cluster["type"] == "STATIC"
        endpoints = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        assert [e["endpoint"]["address"]["socket_address"]["address"] for e in endpoints] == [
            s.address for s in lane.servers
        ]
    clusters = {lane.balancer.name: cluster_of(lane.envoy.config) for lane in lanes if lane.envoy}
    assert "outlier_detection" not in clusters["envoy_round_robin"]
    assert clusters["envoy_least_request"]["lb_policy"] == "LEAST_REQUEST"
    assert clusters["envoy_outlier_detection"]["outlier_detection"] == shipped["outlier_detection"]
    unejected = clusters["envoy_outlier_detection_unejected"]["outlier_detection"]
    assert unejected == {
        **shipped["outlier_detection"],
        "successful_active_health_check_uneject_host": True,
    }
    wrr = clusters["envoy_weighted_round_robin"]
    assert "lb_policy" not in wrr
    (policy,) = wrr["load_balancing_policy"]["policies"]
    assert policy["typed_extension_config"]["name"] == balancers.CSWRR


def test_envoy_accepts_every_envoy_balancers_config(lanes, tmp_path):
    binary = find_binary("envoy")
    for lane in lanes:
        if lane.envoy is not None:
            path = envoy.write(dict(lane.envoy.config), tmp_path / f"{lane.balancer.name}.yaml")
            envoy.validate(binary, path)


def test_the_faults():
    slow = balancers.fault("slow", work_ms=20, slowdown=10)
    assert slow.env == {"FAULT_LATENCY": "180ms"}
    failing = balancers.fault("failing", work_ms=20, code="RESOURCE_EXHAUSTED")
    assert failing.env == {"FAULT_ERROR_RATE": "1", "FAULT_ERROR_CODE": "RESOURCE_EXHAUSTED"}
    with pytest.raises(LabError, match="unknown fault"):
        balancers.fault("flaky", work_ms=20)


def test_a_warmup_shorter_than_the_policies_settling_is_refused():
    with pytest.raises(LabError, match="at least"):
        uneven.Setup(warmup_s=balancers.settle_seconds() / 2)


def test_an_unknown_balancer_is_refused_before_anything_starts(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "hellolb_lab", "uneven", "--balancers", "round_robin,nope"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown balancer nope" in result.stderr
    assert not (tmp_path / ".lab").exists()


def line(t, event, server, latency_ms, **fields):
    stamp = datetime.fromtimestamp(t, UTC).isoformat()
    return {
        "event": event,
        "timestamp": stamp,
        "server_id": server,
        "latency_ms": latency_ms,
        **fields,
    }


def test_figures_count_the_window_and_the_errors_before_it(lanes):
    lane = lanes[0]
    events = [
        line(100.5, "client.error", uneven.BAD, 1, code="INTERNAL"),
        line(101.0, "client.response", "server-1", 10),
        line(101.2, "client.response", "server-2", 30),
        line(101.4, "client.error", uneven.BAD, 1, code="INTERNAL"),
        line(101.6, "client.response", uneven.BAD, 20),
        line(101.8, "client.error", None, 5000, code="DEADLINE_EXCEEDED"),
        line(102.0, "client.response", "server-1", 40),
        {"event": "client.summary", "timestamp": "x"},
    ]
    f = uneven.figures(lane, uneven.calls_of(events), start=101.0, end=102.0)
    assert (f.calls, f.answers, f.errors, f.errors_before) == (5, 3, 2, 1)
    assert f.bad_calls == 2
    assert f.bad_share == pytest.approx(2 / 5)
    assert f.by_server == {"none": 1, "server-1": 1, "server-2": 1, uneven.BAD: 2}
    # Latency percentiles are of the answered calls only: a fast error is no fast answer.
    assert (f.p50_ms, f.p99_ms) == (20, 30)
    assert f.answers_per_s == 3


def fig(name, answers, p90, bad_calls, errors=0):
    return uneven.Figures(
        balancer=name,
        label=name,
        seconds=2.0,
        calls=answers + errors,
        answers=answers,
        errors=errors,
        errors_before=0,
        bad_calls=bad_calls,
        by_server={},
        p50_ms=10.0,
        p90_ms=p90,
        p99_ms=p90,
    )


def test_the_table_gives_each_balancer_against_round_robin_from_the_same_run():
    comparison = uneven.Comparison(uneven.Setup(), balancers.fault("slow", 50))
    comparison.rows = [
        fig("envoy_least_request", 300, 50.0, 30),
        fig("round_robin", 100, 500.0, 33),
    ]
    lr, rr = uneven.table_rows(comparison)
    assert (lr["x RR"], lr["p90 x RR"], lr["bad server's share"]) == ("3.00", "0.10", "10%")
    assert (rr["x RR"], rr["p90 x RR"], rr["answers/s"]) == ("1.00", "1.00", "50")
    # Without the baseline in the run there is nothing to divide by.
    comparison.rows = comparison.rows[:1]
    assert uneven.table_rows(comparison)[0]["x RR"] == "-"
