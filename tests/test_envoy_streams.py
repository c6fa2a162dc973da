"""The proxy scenario's Envoy config carries a Ticks stream for as long as the server sends
ticks, run for real on loopback: a real server, a real DNS answer, the real Envoy.

To keep the test short, every finite route timeout of the config is cut to ``CUT_S`` (test
only): a stream that outlives several of those is held by no route timeout. A second virtual
host, reached by its own authority, has the same routes without the Ticks one, and shows what
the catch-all would do to a stream: cut it at ``CUT_S``, with an error the client does not
retry.
"""

from __future__ import annotations

import copy
import os
import sys
import time

import grpc
import pytest
from hellolb.v1 import hello_pb2, hello_pb2_grpc
from hellolb_lab import dns, envoy, overlay, procs

#: A loopback block of its own (test_envoy_resilience uses ``.120`` of the same octet).
OCTET = int(os.environ.get("HELLOLB_LAB_TEST_OCTET", 100 + os.getpid() % 150))
NET = f"127.{OCTET}.121"
DNS_IP, ENVOY_IP, SERVER_IP = f"{NET}.1", f"{NET}.21", f"{NET}.11"
#: Every finite route timeout, shortened for the test.
CUT_S = 1.0
#: How long the stream must live: several times the shortened timeout.
LIVE_S = 3 * CUT_S
TICK_MS = 100
#: The authority of the virtual host that has no Ticks route.
WITHOUT_TICKS_ROUTE = "without-ticks-route"
#: Added to every bound: a shared, busy 2-core machine.
MARGIN_S = 5.0
#: Taken off a lower bound: Envoy's timers run on libevent, which arms a timer from the time it
#: read when its loop woke (a cached, possibly coarse clock), not from this process's clock; a
#: cut was seen at 0.9999 s of a 1 s timeout, by the test's clock.
TIMER_SLACK_S = 0.005
TICKS_PATH = "/hellolb.v1.HelloService/Ticks"


def shortened(config: dict) -> dict:
    """The config with every finite route timeout at ``CUT_S``, and a virtual host without the
    Ticks route, ahead of the wildcard one."""
    out = copy.deepcopy(config)
    hcm = out["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    hosts = hcm["typed_config"]["route_config"]["virtual_hosts"]
    for host in hosts:
        for route in host["routes"]:
            if envoy._seconds(route["route"].get("timeout", "15s")) > 0:
                route["route"]["timeout"] = f"{CUT_S:g}s"
    (wildcard,) = hosts
    without = copy.deepcopy(wildcard)
    without["name"], without["domains"] = WITHOUT_TICKS_ROUTE, [WITHOUT_TICKS_ROUTE]
    without["routes"] = [r for r in without["routes"] if r["match"].get("path") != TICKS_PATH]
    assert len(without["routes"]) == len(wildcard["routes"]) - 1, "the config has a Ticks route"
    hosts.insert(0, without)
    return out


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    """One server behind the proxy scenario's Envoy; yields Envoy's address."""
    tmp_path = tmp_path_factory.mktemp("envoy-streams")
    ov = overlay.load("proxy")
    ((name, _),) = envoy.dns_names(ov.envoy_config)
    procs.check_all_free([(ip, p, False) for ip in (ENVOY_IP, SERVER_IP) for p in (50051, 9901)])
    zone = dns.Zone(tmp_path / "zone.json")
    zone.publish(name, [SERVER_IP])
    port = procs.free_port(DNS_IP, udp=True)
    dns_servers = dns.serve(DNS_IP, port, zone, ttl=1)
    try:
        with procs.Supervisor(tmp_path / "logs") as sup:
            # No drain at the end: nothing here watches the server leave.
            env = {**ov.server_env, "BIND_ADDRESS": SERVER_IP, "SERVER_ID": "server-1"}
            env["DRAIN_DELAY"] = "0s"
            server = sup.start("server-1", [sys.executable, "-m", "hello_server"], env)
            server.wait_event(lambda e: e.get("event") == "server.started", timeout=30)
            config = envoy.adapt(shortened(ov.envoy_config), dns=(DNS_IP, port), listen_ip=ENVOY_IP)
            path = envoy.write(config, tmp_path / "envoy.yaml")
            binary = procs.find_binary("envoy")
            envoy.validate(binary, path)
            proc = sup.start("envoy", envoy.argv(binary, path, ("--log-level", "warn")))
            envoy.wait_ready((ENVOY_IP, 9901), timeout=30, alive=proc.running)
            yield f"{ENVOY_IP}:50051"
    finally:
        for s in dns_servers:
            s.stop()


def read_ticks(target: str, seconds: float, authority: str | None = None) -> tuple[int, float, str]:
    """Read one Ticks stream through ``target`` for ``seconds`` at most: the ticks read, the
    seconds it lived and how it ended (``open`` if it was still going)."""
    options = [("grpc.default_authority", authority)] if authority else []
    with grpc.insecure_channel(target, options=options) as channel:
        stub = hello_pb2_grpc.HelloServiceStub(channel)
        request = hello_pb2.TicksRequest(client_id="envoy-streams", stream=1, interval_ms=TICK_MS)
        # Timed from before the call starts: Envoy's timer cannot start earlier. The only
        # deadline is the test's own bound, far beyond the time it reads.
        start, ticks = time.monotonic(), 0
        call = stub.Ticks(request, timeout=seconds + MARGIN_S)
        try:
            for _ in call:
                ticks += 1
                if time.monotonic() - start >= seconds:
                    call.cancel()
                    return ticks, time.monotonic() - start, "open"
        except grpc.RpcError as error:
            return ticks, time.monotonic() - start, error.code().name
        return ticks, time.monotonic() - start, "OK"


@pytest.mark.slow
def test_a_ticks_stream_outlives_every_route_timeout(proxy):
    ticks, lived, end = read_ticks(proxy, LIVE_S)
    assert end == "open", f"the stream ended with {end} after {lived:.1f}s"
    assert lived >= LIVE_S
    # Ticks kept coming the whole time, not just before the cut.
    assert ticks >= LIVE_S * 1000 / TICK_MS / 2, ticks


@pytest.mark.slow
def test_without_its_route_the_catch_all_timeout_cuts_the_stream(proxy):
    ticks, lived, end = read_ticks(proxy, LIVE_S, authority=WITHOUT_TICKS_ROUTE)
    # Envoy resets the stream when the route timeout fires: grpc reads the reset as INTERNAL,
    # an error, not a clean end a client would take as "open a new stream".
    assert end == "INTERNAL", end
    assert ticks > 0, "the stream was cut, not refused"
    assert CUT_S - TIMER_SLACK_S <= lived < CUT_S + MARGIN_S, lived
