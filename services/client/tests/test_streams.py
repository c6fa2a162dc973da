"""Stream mode against real server processes: where streams go, and how each way of ending
one counts (a drain, a maximum connection age, a server gone for good)."""

import itertools
import signal
from collections import Counter
from datetime import datetime

import pytest
from hello_client import events

pytestmark = pytest.mark.slow

HOSTS = ("127.0.5.1", "127.0.5.2", "127.0.5.3")


def start_servers(spawn, port, hosts=HOSTS, **env):
    servers = {}
    for n, host in enumerate(hosts, 1):
        servers[f"s{n}"] = spawn(
            "hello_server",
            BIND_ADDRESS=host,
            PORT=str(port),
            SERVER_ID=f"s{n}",
            **{"WORK_TIME": "0", **env},
        )
    for server in servers.values():
        server.wait_event("server.started", timeout=15)
    return servers


def stream_client(spawn, port, hosts=HOSTS, **env):
    target = "ipv4:" + ",".join(f"{host}:{port}" for host in hosts)
    settings = {
        "CLIENT_MODE": "streams",
        "TICK_INTERVAL": "50ms",
        "SUMMARY_INTERVAL": "500ms",
        "LOG_RESPONSES": "false",
        **env,
    }
    return spawn("hello_client", SERVER_ADDRESS=target, **settings)


def opened(client, count, timeout=15, start=0):
    """Wait for ``count`` streams opened from event index ``start`` on; return them."""
    client.wait_for(
        lambda e: (
            len([x for x in client.events[start:] if x["event"] == events.STREAM_OPENED]) >= count
        ),
        timeout,
    )
    return [e for e in client.events[start:] if e["event"] == events.STREAM_OPENED][:count]


def final_summary(client):
    return client.wait_event(events.SUMMARY, timeout=30, final=True)


def test_streams_on_a_draining_server_end_ok_and_reopen_elsewhere_with_no_error(spawn, port_on):
    port = port_on(HOSTS[0])
    servers = start_servers(spawn, port, DRAIN_DELAY="500ms")
    client = stream_client(spawn, port, CONCURRENCY="6")
    first = opened(client, 6)
    where = Counter(e["server_id"] for e in first)
    drained, moved = where.most_common(1)[0]
    index = len(client.events)
    servers[drained].signal(signal.SIGTERM)
    assert servers[drained].wait(timeout=15) == 0
    # Every stream that was on it comes back, on another server.
    again = opened(client, moved, start=index)
    assert all(e["server_id"] != drained for e in again)
    assert all(e["reconnect_seconds"] is not None for e in again)
    client.signal(signal.SIGTERM)
    assert client.wait(timeout=15) == 0

    summary = final_summary(client)
    assert summary["errors_total_count"] == 0
    assert summary["stream_ends_total"] == {"OK": moved}
    assert summary["reconnects_total"] == moved
    assert drained not in summary["streams_by_server"]
    assert summary["streams_open"] == 6
    ends = [e for e in client.named(events.STREAM_ENDED) if not e["by_client"]]
    assert {(e["server_id"], e["code"], e["end_reason"], e["error"]) for e in ends} == {
        (drained, "OK", "drain", False)
    }
    closed = servers[drained].wait_event("server.streams_closed", timeout=1)
    assert closed["streams"] == moved


def test_max_connection_age_plus_grace_cuts_streams_with_unavailable(spawn, port_on):
    port = port_on(HOSTS[0])
    age, grace = 0.6, 0.6
    start_servers(
        spawn, port, hosts=HOSTS[:1], MAX_CONNECTION_AGE="600ms", MAX_CONNECTION_AGE_GRACE="600ms"
    )
    client = stream_client(spawn, port, hosts=HOSTS[:1], CONCURRENCY="2", LOG_RESPONSES="true")
    client.wait_for(
        lambda e: e["event"] == events.STREAM_ENDED and e["code"] == "UNAVAILABLE", timeout=15
    )
    opened(client, 4)  # both streams came back
    client.signal(signal.SIGTERM)
    assert client.wait(timeout=15) == 0

    cut = [e for e in client.named(events.STREAM_ENDED) if not e["by_client"]]
    assert cut
    assert {(e["code"], e["details"], e["error"]) for e in cut} == {
        ("UNAVAILABLE", "max connection age", False)
    }
    # grpc jitters the age by up to 10 %; the grace is a hard cut after it.
    for end in cut:
        assert 0.9 * age + grace - 0.1 <= end["lifetime_seconds"] <= 1.1 * age + grace + 1.5
    summary = final_summary(client)
    assert summary["errors_total_count"] == 0
    assert summary["reconnects_total"] >= len(cut)
    assert client.named(events.TICK)


def test_without_a_grace_the_goaway_alone_ends_no_stream(spawn, port_on):
    port = port_on(HOSTS[0])
    start_servers(spawn, port, hosts=HOSTS[:1], MAX_CONNECTION_AGE="300ms")
    client = stream_client(spawn, port, hosts=HOSTS[:1], CONCURRENCY="2", MAX_DURATION="1.5s")
    assert client.wait(timeout=30) == 0
    summary = final_summary(client)
    assert summary["stream_ends_total"] == {}
    assert summary["streams_open"] == 2
    assert summary["streams_opened_total"] == 2


def wall(event):
    return datetime.fromisoformat(event["timestamp"]).timestamp()


def test_a_slot_backs_off_when_its_server_is_gone(spawn, port_on):
    port = port_on(HOSTS[0])
    servers = start_servers(spawn, port, hosts=HOSTS[:1])
    client = stream_client(spawn, port, hosts=HOSTS[:1], CONCURRENCY="2", RPC_RETRIES="3")
    opened(client, 2)
    servers["s1"].popen.kill()
    servers["s1"].wait(timeout=10)

    def failed_opens(slot):
        return [
            e
            for e in client.named(events.STREAM_ENDED)
            if e["slot"] == slot and e["ticks"] == 0 and not e["by_client"]
        ]

    # Five failed opens of slot 1 take at least 0.1 + 0.2 + 0.4 + 0.8 s of pauses.
    client.wait_for(lambda e: len(failed_opens(1)) >= 5, timeout=20)
    client.signal(signal.SIGTERM)
    assert client.wait(timeout=15) == 0

    for slot in (1, 2):
        ends = failed_opens(slot)
        assert {e["code"] for e in ends} == {"UNAVAILABLE"}
        # Each pause doubles, from 0.1 s up to 2 s: a slot never spins.
        gaps = [wall(b) - wall(a) for a, b in itertools.pairwise(ends)]
        for n, gap in enumerate(gaps[:4]):
            assert gap >= 0.1 * 2**n - 0.01, gaps
        # Every third failed open in a row is one error, like a call out of retries.
        assert [e["error"] for e in ends] == [n % 3 == 2 for n in range(len(ends))]
    summary = final_summary(client)
    errors = sum(len(failed_opens(slot)) // 3 for slot in (1, 2))
    assert summary["errors_total"] == {"UNAVAILABLE": errors}
    # The streams the kill cut had ticks: ends, not errors.
    cut = [e for e in client.named(events.STREAM_ENDED) if e["ticks"] > 0 and not e["by_client"]]
    assert len(cut) == 2
    assert not any(e["error"] for e in cut)


def test_a_server_that_refuses_streams_costs_an_error_per_open_and_a_pause_after_each(
    spawn, port_on
):
    port = port_on(HOSTS[0])
    start_servers(
        spawn,
        port,
        hosts=HOSTS[:1],
        FAULT_ERROR_RATE="1",
        FAULT_ERROR_CODE="PERMISSION_DENIED",
    )
    client = stream_client(spawn, port, hosts=HOSTS[:1], CONCURRENCY="1")
    client.wait_for(lambda e: len(client.named(events.STREAM_ENDED)) >= 3, timeout=15)
    client.signal(signal.SIGTERM)
    assert client.wait(timeout=15) == 0
    ends = [e for e in client.named(events.STREAM_ENDED) if not e["by_client"]]
    # Not a code to retry: each refused open is an error, named after the server that refused.
    assert {(e["code"], e["server_id"], e["ticks"], e["error"]) for e in ends} == {
        ("PERMISSION_DENIED", "s1", 0, True)
    }
    gaps = [wall(b) - wall(a) for a, b in itertools.pairwise(ends)]
    assert all(gap >= 0.1 * 2**n - 0.01 for n, gap in enumerate(gaps[:3])), gaps
    summary = final_summary(client)
    assert summary["errors_by_server_total"] == {"s1": len(ends)}
