"""Uneven servers: a slow one, a failing one, the closed-loop callers that show them, and
grpc's weighted_round_robin reading the servers' ORCA load reports."""

import statistics
from collections import defaultdict

import pytest
from hello_client import events

pytestmark = pytest.mark.slow

HOSTS = ("127.0.6.1", "127.0.6.2", "127.0.6.3")
OTHER_HOSTS = ("127.0.6.4", "127.0.6.5", "127.0.6.6")
SLOW = "s3"


def start_servers(spawn, port, slow_env, hosts=HOSTS, **env):
    """One server per host, ``s1``.. in order; the last one also gets ``slow_env``."""
    servers = []
    for n, host in enumerate(hosts, 1):
        extra = slow_env if n == len(hosts) else {}
        servers.append(
            spawn(
                "hello_server",
                BIND_ADDRESS=host,
                PORT=str(port),
                SERVER_ID=f"s{n}",
                **{**env, **extra},
            )
        )
    for server in servers:
        server.wait_event("server.started", timeout=15)
    return servers


def target(port, hosts=HOSTS):
    return "ipv4:" + ",".join(f"{host}:{port}" for host in hosts)


def final_summary(client):
    return client.wait_event(events.SUMMARY, timeout=30, final=True)


def test_closed_loop_callers_report_percentiles_and_shares_of_a_slow_server(spawn, port_on):
    port = port_on(HOSTS[0])
    start_servers(spawn, port, {"FAULT_LATENCY": "150ms"}, WORK_TIME="5ms")
    client = spawn(
        "hello_client",
        SERVER_ADDRESS=target(port),
        CLIENT_MODE="closed_loop",
        CONCURRENCY="6",
        MAX_ROUNDS="15",
    )
    assert client.wait(timeout=60) == 0
    summary = final_summary(client)
    assert summary["mode"] == "closed_loop"
    assert summary["answers_total"] == 6 * 15
    assert summary["rounds_total"] == 0
    assert client.named(events.STOPPED)[0]["reason"] == "max_rounds"

    latencies = defaultdict(list)
    for response in client.named(events.RESPONSE):
        latencies[response["server_id"]].append(response["latency_ms"])
    # The slow server is slower by its injected latency, every time.
    assert min(latencies[SLOW]) >= 150
    assert max(statistics.median(latencies[s]) for s in ("s1", "s2")) < min(latencies[SLOW])
    # round_robin gives it its equal share all the same, so a third of the calls are slow:
    # the median is a fast call, the 90th percentile a slow one.
    assert 0.25 <= summary["share_by_server_total"][SLOW] <= 0.42
    assert summary["latency_ms_p50_total"] < 150 <= summary["latency_ms_p90_total"]
    assert summary["latency_ms_p90_total"] <= summary["latency_ms_p99_total"]


def test_a_failing_server_fails_its_share_of_calls_with_its_code(spawn, port_on):
    port = port_on(HOSTS[0])
    (server,) = start_servers(
        spawn,
        port,
        {"FAULT_ERROR_RATE": "0.25", "FAULT_ERROR_CODE": "INTERNAL"},
        hosts=HOSTS[:1],
        WORK_TIME="0",
    )
    client = spawn(
        "hello_client", SERVER_ADDRESS=target(port, HOSTS[:1]), CONCURRENCY="4", MAX_ROUNDS="10"
    )
    assert client.wait(timeout=30) == 0
    summary = final_summary(client)
    # 40 calls, one in four failed: exactly 10, every time (INTERNAL is not retried).
    assert summary["errors_total"] == {"INTERNAL": 10}
    assert summary["errors_by_server_total"] == {"s1": 10}
    assert summary["answers_total"] == 30
    assert summary["limited_total"] == 0
    assert {e["server_id"] for e in client.named(events.ERROR)} == {"s1"}
    faulted = server.named("rpc.faulted")
    assert [e["call"] for e in faulted] == [4, 8, 12, 16, 20, 24, 28, 32, 36, 40]
    assert {e["code"] for e in faulted} == {"INTERNAL"}


def test_a_limiting_server_limits_its_share_of_calls_and_fails_none(spawn, port_on):
    port = port_on(HOSTS[0])
    start_servers(
        spawn,
        port,
        {"FAULT_ERROR_RATE": "0.25", "FAULT_ERROR_CODE": "RESOURCE_EXHAUSTED"},
        hosts=HOSTS[:1],
        WORK_TIME="0",
    )
    client = spawn(
        "hello_client",
        SERVER_ADDRESS=target(port, HOSTS[:1]),
        CONCURRENCY="4",
        MAX_ROUNDS="10",
        LIMIT_BACKOFF="10ms",
        LIMIT_BACKOFF_MAX="20ms",
    )
    assert client.wait(timeout=30) == 0
    summary = final_summary(client)
    # The same 10 of 40 calls, now limited (not retried: no pushback), none failed.
    assert (summary["limited_total"], summary["limited_by_server_total"]) == (10, {"s1": 10})
    assert (summary["errors_total"], summary["errors_total_count"]) == ({}, 0)
    assert summary["answers_total"] == 30
    limited = client.named(events.LIMITED)
    assert {(e["code"], e["server_id"], e["pushback_ms"]) for e in limited} == {
        ("RESOURCE_EXHAUSTED", "s1", None)
    }
    assert not client.named(events.ERROR)


def last_full_window(client):
    windows = [s for s in client.named(events.SUMMARY) if not s["final"]]
    assert len(windows) >= 3
    return windows[-1]


def test_weighted_round_robin_moves_calls_off_the_server_that_reports_more_load(spawn, port_on):
    # Two fleets at once, the same but for the load reports: each has one server 10x slower,
    # which at the same call rate reports 10x the utilization, so a tenth the weight.
    port = port_on(HOSTS[0])
    clients = {}
    for orca, hosts in (("true", HOSTS), ("false", OTHER_HOSTS)):
        start_servers(
            spawn, port, {"FAULT_LATENCY": "90ms"}, hosts, WORK_TIME="10ms", ORCA_REPORTS=orca
        )
        clients[orca] = spawn(
            "hello_client",
            SERVER_ADDRESS=target(port, hosts),
            CLIENT_MODE="closed_loop",
            CONCURRENCY="6",
            LB_POLICY="weighted_round_robin",
            WRR_BLACKOUT_PERIOD="0",
            WRR_WEIGHT_UPDATE_PERIOD="100ms",
            SUMMARY_INTERVAL="500ms",
            MAX_DURATION="2.5s",
            LOG_RESPONSES="false",
        )
    for client in clients.values():
        assert client.wait(timeout=60) == 0
        assert final_summary(client)["errors_total_count"] == 0
    # The last full window, once the weights have settled.
    weighted = last_full_window(clients["true"])
    assert weighted["share_by_server_window"].get(SLOW, 0.0) < 0.2, weighted
    # No reports, no weights: weighted_round_robin is round_robin.
    even = last_full_window(clients["false"])
    assert even["share_by_server_window"][SLOW] > 0.25, even


def test_outlier_detection_ejects_a_server_that_fails_fast(spawn, port_on):
    port = port_on(HOSTS[0])
    # INTERNAL is not retried: every call the failing server takes is an error the client sees.
    start_servers(
        spawn, port, {"FAULT_ERROR_RATE": "1", "FAULT_ERROR_CODE": "INTERNAL"}, WORK_TIME="5ms"
    )
    clients = {
        detection: spawn(
            "hello_client",
            SERVER_ADDRESS=target(port),
            CLIENT_MODE="closed_loop",
            CONCURRENCY="6",
            OUTLIER_DETECTION=detection,
            OUTLIER_INTERVAL="200ms",
            OUTLIER_FAILURE_PERCENTAGE="50",
            OUTLIER_MIN_CALLS="5",
            SUMMARY_INTERVAL="500ms",
            MAX_DURATION="2s",
            LOG_RESPONSES="false",
        )
        for detection in ("true", "false")
    }
    for client in clients.values():
        assert client.wait(timeout=60) == 0
    # Ejected at one of the interval ticks (every 200 ms): a burst of errors, then none.
    errors = clients["true"].named(events.ERROR)
    assert errors
    assert last_full_window(clients["true"])["errors_window"] == {}
    # Without it, failing fast, the server keeps its share of the calls for good, and the
    # callers keep going.
    failing = last_full_window(clients["false"])
    assert failing["errors_by_server_window"] == {SLOW: failing["errors_window"]["INTERNAL"]}
    assert failing["errors_window"]["INTERNAL"] > 0.3 * failing["answers_window"] > 0
    assert len(errors) < final_summary(clients["false"])["errors_total_count"]
