"""The client against real server processes on loopback addresses."""

import signal
from collections import Counter
from datetime import datetime

import pytest

pytestmark = pytest.mark.slow

HOSTS = ("127.0.1.1", "127.0.1.2", "127.0.1.3")

# Documented fields of each event (README, "Log fields"); every line must carry them.
FIELDS = {
    "client.config": {"server_address", "client_id", "concurrency", "lb_policy", "health_check"},
    "client.ready": {"attempts", "waited_seconds", "client_id"},
    "client.waiting": {"attempt", "delay_seconds", "error"},
    "client.response": {
        "client_id",
        "counter",
        "server_id",
        "server_pod_ip",
        "server_node",
        "peer",
        "via",
        "latency_ms",
        "message",
    },
    "client.error": {"client_id", "counter", "code", "details", "latency_ms"},
    "client.summary": {
        "client_id",
        "window_seconds",
        "answers_window",
        "answers_total",
        "rounds_total",
        "by_server_window",
        "by_server_total",
        "errors_window",
        "errors_total",
        "errors_total_count",
        "servers_window",
        "servers_total",
        "latency_ms_p50",
        "latency_ms_p99",
        "final",
    },
    "client.stopped": {"reason"},
    "server.config": {"server_id", "bind_address", "port", "work_time", "drain_delay"},
    "server.started": {"server_id", "address", "port"},
    "rpc.handled": {"server_id", "client_id", "counter", "peer", "duration_ms"},
    "server.stopping": {"server_id", "signal", "reason", "drain_seconds", "grace_seconds"},
    "server.drained": {"server_id", "seconds", "cut_short_by"},
    "server.stopped": {"server_id", "reason"},
}


def assert_documented(proc):
    assert proc.non_json == [], "every stdout line is JSON"
    for event in proc.events:
        assert {"event", "level", "timestamp"} <= event.keys()
        missing = FIELDS.get(event["event"], set()) - event.keys()
        assert not missing, f"{event['event']} lacks {missing}"


def start_servers(spawn, port, hosts=HOSTS, **env):
    servers = []
    for n, host in enumerate(hosts, 1):
        env_n = {"BIND_ADDRESS": host, "PORT": str(port), "SERVER_ID": f"s{n}", **env}
        servers.append(spawn("hello_server", **{"WORK_TIME": "0", **env_n}))
    for server in servers:
        server.wait_event("server.started", timeout=15)
    return servers


def target(port, hosts=HOSTS):
    return "ipv4:" + ",".join(f"{host}:{port}" for host in hosts)


def answers_by_server(client):
    return Counter(e["server_id"] for e in client.named("client.response"))


def final_summary(client):
    return client.wait_event("client.summary", timeout=30, final=True)


def test_round_robin_spreads_answers_evenly_over_three_servers(spawn, port_on):
    port = port_on(HOSTS[0])
    servers = start_servers(spawn, port, WORK_TIME="5ms")
    client = spawn(
        "hello_client", SERVER_ADDRESS=target(port), MAX_ROUNDS="30", CLIENT_ID="c1", SCENARIO="t"
    )
    assert client.wait(timeout=30) == 0
    counts = answers_by_server(client)
    assert set(counts) == {"s1", "s2", "s3"}
    assert sum(counts.values()) == 300
    assert max(counts.values()) / min(counts.values()) < 1.3
    summary = final_summary(client)
    assert summary["by_server_total"] == dict(sorted(counts.items()))
    assert summary["errors_total_count"] == 0
    assert all(e["scenario"] == "t" for e in client.events)
    assert_documented(client)
    for server in servers:
        assert_documented(server)


def test_pick_first_sticks_to_one_server(spawn, port_on):
    port = port_on(HOSTS[0])
    start_servers(spawn, port)
    client = spawn(
        "hello_client", SERVER_ADDRESS=target(port), MAX_ROUNDS="20", LB_POLICY="pick_first"
    )
    assert client.wait(timeout=30) == 0
    assert list(answers_by_server(client).values()) == [200]


def test_short_max_connection_age_reconnects_without_failed_calls(spawn, port_on):
    port = port_on(HOSTS[0])
    start_servers(
        spawn, port, WORK_TIME="20ms", MAX_CONNECTION_AGE="700ms", MAX_CONNECTION_AGE_GRACE="1s"
    )
    client = spawn("hello_client", SERVER_ADDRESS=target(port), MAX_DURATION="4s")
    assert client.wait(timeout=30) == 0
    summary = final_summary(client)
    assert summary["errors_total_count"] == 0
    assert summary["answers_total"] > 300
    by_connection = {(e["server_id"], e["via"]) for e in client.named("client.response")}
    per_server = Counter(server for server, _ in by_connection)
    # Each connection the server saw has its own client port: several per server.
    assert all(per_server[s] >= 3 for s in ("s1", "s2", "s3")), per_server


def test_sigterm_to_a_server_under_load_loses_no_call(spawn, port_on):
    port = port_on(HOSTS[0])
    servers = start_servers(spawn, port, WORK_TIME="100ms", SHUTDOWN_GRACE="5s")
    client = spawn("hello_client", SERVER_ADDRESS=target(port), MAX_DURATION="4s")
    client.wait_for(lambda e: e.get("event") == "client.response" and e["counter"] > 50, 15)
    servers[0].signal(signal.SIGTERM)
    assert servers[0].wait(timeout=6) == 0
    assert client.wait(timeout=30) == 0
    summary = final_summary(client)
    assert summary["errors_total_count"] == 0
    assert summary["by_server_total"]["s2"] > 0
    assert_documented(servers[0])


def seconds_after_sigterm(server):
    """When each call the server handled arrived, in seconds after its SIGTERM."""
    stopping = server.wait_event("server.stopping", timeout=1, signal="SIGTERM")

    def wall(event):
        return datetime.fromisoformat(event["timestamp"]).timestamp()

    return [wall(e) - e["duration_ms"] / 1000 - wall(stopping) for e in server.named("rpc.handled")]


@pytest.mark.parametrize("health_check", ["true", "false"])
def test_health_checking_decides_whether_a_draining_server_still_gets_calls(
    spawn, port_on, health_check
):
    port = port_on(HOSTS[0])
    servers = start_servers(spawn, port, WORK_TIME="20ms", DRAIN_DELAY="2s")
    client = spawn("hello_client", SERVER_ADDRESS=target(port), HEALTH_CHECK=health_check)
    for server_id in ("s1", "s2", "s3"):
        client.wait_event("client.response", timeout=15, server_id=server_id)
    servers[0].signal(signal.SIGTERM)
    assert servers[0].wait(timeout=15) == 0
    client.signal(signal.SIGTERM)
    assert client.wait(timeout=15) == 0
    latest = max(seconds_after_sigterm(servers[0]))
    if health_check == "true":
        # NOT_SERVING reaches the client within a round trip; half the drain is a wide margin.
        assert latest < 1.0
        assert final_summary(client)["errors_total_count"] == 0
    else:
        # Without it the client knows only of the GOAWAY, sent when the drain is over.
        assert latest > 1.0
    assert_documented(servers[0])


def test_pick_first_keeps_its_server_through_the_drain_then_moves_on_losing_no_call(spawn, port_on):
    port = port_on(HOSTS[0])
    started = start_servers(spawn, port, WORK_TIME="20ms", DRAIN_DELAY="2s")
    servers = {server.named("server.started")[0]["server_id"]: server for server in started}
    client = spawn("hello_client", SERVER_ADDRESS=target(port), LB_POLICY="pick_first")
    first = client.wait_event("client.response", timeout=15)["server_id"]
    servers[first].signal(signal.SIGTERM)
    assert servers[first].wait(timeout=15) == 0
    index = len(client.events)
    then = client.wait_for(
        lambda e: e.get("event") == "client.response" and e["server_id"] != first, 15, index
    )
    client.signal(signal.SIGTERM)
    assert client.wait(timeout=15) == 0
    # pick_first ignores health checking: calls kept coming until the server stopped.
    assert max(seconds_after_sigterm(servers[first])) > 1.0
    assert then["server_id"] in servers
    assert final_summary(client)["errors_total_count"] == 0


@pytest.mark.parametrize("retries", ["1", "3"])
def test_sigkill_loses_at_most_the_calls_the_killed_server_was_running(spawn, port_on, retries):
    port = port_on(HOSTS[0])
    servers = start_servers(spawn, port, WORK_TIME="1s", LOG_LEVEL="debug")
    client = spawn(
        "hello_client", SERVER_ADDRESS=target(port), CONCURRENCY="3", RPC_RETRIES=retries
    )
    for server_id in ("s1", "s2", "s3"):
        client.wait_event("client.response", timeout=15, server_id=server_id)
    # From now on each round of three calls gives one to each server.
    index = len(servers[0].events)
    running = servers[0].wait_event("rpc.received", timeout=15, start=index)["counter"]
    servers[0].popen.kill()
    servers[0].wait(timeout=5)
    handled = {e["counter"] for e in servers[0].named("rpc.handled")}
    assert running not in handled, "the kill came after the call was answered"
    client.wait_event("client.response", timeout=15, counter=running + 3)
    client.signal(signal.SIGTERM)
    assert client.wait(timeout=15) == 0
    lost = {e["counter"] for e in client.named("client.error")}
    if retries == "1":
        assert lost == {running}
    else:
        assert lost == set()
        answer = client.wait_event("client.response", timeout=1, counter=running)
        assert answer["server_id"] in ("s2", "s3")


def test_sigkill_of_the_only_server_is_counted_and_the_client_recovers(spawn, port):
    host = "127.0.0.1"
    server = start_servers(spawn, port, hosts=(host,), WORK_TIME="10ms")[0]
    client = spawn(
        "hello_client",
        SERVER_ADDRESS=f"{host}:{port}",
        RPC_RETRIES="1",
        RPC_TIMEOUT="1s",
        SUMMARY_INTERVAL="500ms",
        MAX_DURATION="60s",
    )
    client.wait_event("client.response", timeout=15, server_id="s1")
    server.popen.kill()
    server.wait(timeout=5)
    client.wait_event("client.error", timeout=15, code="UNAVAILABLE")
    assert client.popen.poll() is None

    revived = start_servers(spawn, port, hosts=(host,), SERVER_ID="s1-revived")[0]
    client.wait_event("client.response", timeout=30, server_id="s1-revived")
    summary = client.wait_for(
        lambda e: e.get("event") == "client.summary" and e["by_server_total"].get("s1-revived"),
        10,
    )
    assert summary["errors_total"]["UNAVAILABLE"] > 0
    client.signal(signal.SIGTERM)
    assert client.wait(timeout=15) == 0
    assert revived.popen.poll() is None
    assert_documented(client)


def test_sigterm_ends_the_round_and_logs_a_final_summary(spawn, port):
    start_servers(spawn, port, hosts=("127.0.0.1",), WORK_TIME="300ms")
    client = spawn("hello_client", SERVER_ADDRESS=f"127.0.0.1:{port}")
    client.wait_event("client.response", timeout=15)
    client.signal(signal.SIGTERM)
    assert client.wait(timeout=15) == 0
    summary = final_summary(client)
    # The round in flight was finished, not cut: every call sent got an answer.
    assert summary["answers_total"] % 10 == 0
    assert summary["errors_total_count"] == 0
    assert client.named("client.stopped")[-1]["reason"] == "signal"


def test_start_up_waits_for_the_server_with_backoff(spawn, port):
    client = spawn("hello_client", SERVER_ADDRESS=f"127.0.0.1:{port}", MAX_ROUNDS="1")
    client.wait_event("client.waiting", timeout=15, attempt=2)
    start_servers(spawn, port, hosts=("127.0.0.1",))
    assert client.wait(timeout=30) == 0
    waits = client.named("client.waiting")
    assert [w["attempt"] for w in waits] == list(range(1, len(waits) + 1))
    assert client.named("client.ready")[0]["attempts"] == len(waits) + 1
    assert_documented(client)


def test_start_up_gives_up_after_the_timeout(spawn, port):
    client = spawn("hello_client", SERVER_ADDRESS=f"127.0.0.1:{port}", STARTUP_TIMEOUT="1s")
    assert client.wait(timeout=15) == 1
    assert client.named("client.startup_failed")


def test_bad_configuration_exits_2_with_one_json_line(spawn):
    client = spawn("hello_client", CONCURRENCY="many")
    assert client.wait(timeout=15) == 2
    (line,) = client.events
    assert line["event"] == "config.invalid"
    assert (line["variable"], line["value"]) == ("CONCURRENCY", "many")
    assert line["expected"] == "a whole number from 1 to 10000"
    assert "Traceback" not in client.stderr
