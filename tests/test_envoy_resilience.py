"""The proxy scenario's Envoy config, run for real on loopback: real servers, a real DNS answer
for the fully qualified Service name, the real Envoy (the lab moves only its addresses and its
resolver). A server that dies or stops is dropped by the health checks, and no call fails
meanwhile: the retry policy sends the failed ones to another server."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import grpc
import pytest
from hellolb.v1 import hello_pb2, hello_pb2_grpc
from hellolb_lab import dns, envoy, polling, procs

#: A loopback block of its own: the lab's tests use 127.<octet>.81-90 of the same octet.
OCTET = int(os.environ.get("HELLOLB_LAB_TEST_OCTET", 100 + os.getpid() % 150))
NET = f"127.{OCTET}.120"
DNS_IP = f"{NET}.1"
ENVOY_IP = f"{NET}.21"
SERVERS = [f"{NET}.{n}" for n in (11, 12, 13)]
#: Added to every bound taken from the config: a shared, busy 2-core machine.
MARGIN_S = 5.0
CALL_DEADLINE_S = 5.0


def health(admin: tuple[str, int]) -> dict[str, str]:
    """Server address -> Envoy's health flags for it, from the admin /clusters page."""
    flags = {}
    for line in envoy.admin_get(admin, "/clusters").splitlines():
        parts = line.split("::")
        if parts[0] == "server" and len(parts) == 4 and parts[2] == "health_flags":
            flags[parts[1].rsplit(":", 1)[0]] = parts[3]
    return flags


def retries(admin: tuple[str, int]) -> int:
    """Requests Envoy sent again to the server cluster."""
    return envoy.counters(admin, "cluster.server.upstream_rq_retry").get(
        "cluster.server.upstream_rq_retry", 0
    )


def drop_bound(config: dict) -> float:
    """Seconds the config allows between a server failing and Envoy dropping it."""
    (check,) = config["static_resources"]["clusters"][0]["health_checks"]
    seconds = envoy._seconds  # the lab's reading of an Envoy duration
    return seconds(check["interval"]) * check["unhealthy_threshold"] + seconds(check["timeout"])


class Mesh:
    """Three servers behind the proxy scenario's Envoy."""

    def __init__(
        self,
        sup: procs.Supervisor,
        config: dict,
        server_env: dict,
        resolver: tuple[str, int],
        tmp: Path,
    ) -> None:
        self.sup = sup
        self.config = config
        self.admin = (ENVOY_IP, 9901)
        self.servers = {}
        for n, ip in enumerate(SERVERS, 1):
            env = {**server_env, "BIND_ADDRESS": ip, "SERVER_ID": f"server-{n}", "WORK_TIME": "0"}
            env["LOG_FORMAT"] = "json"
            self.servers[ip] = sup.start(f"server-{n}", [sys.executable, "-m", "hello_server"], env)
        for proc in self.servers.values():
            proc.wait_event(lambda e: e.get("event") == "server.started", timeout=30)
        adapted = envoy.adapt(config, dns=resolver, listen_ip=ENVOY_IP)
        path = envoy.write(adapted, tmp / "envoy.yaml")
        binary = procs.find_binary("envoy")
        envoy.validate(binary, path)
        self.envoy = sup.start("envoy", envoy.argv(binary, path, ("--log-level", "warn")))
        envoy.wait_ready(self.admin, timeout=30, alive=self.envoy.running)

    def wait_health(self, wanted: dict[str, bool], timeout: float) -> float:
        """Seconds until every named server is (un)healthy as wanted."""
        start = time.monotonic()

        def settled() -> bool:
            flags = health(self.admin)
            return all((flags.get(ip) == "healthy") is ok for ip, ok in wanted.items())

        polling.wait_until(settled, timeout, f"Envoy to see {wanted}", interval=0.1)
        return time.monotonic() - start


@pytest.fixture
def mesh(overlay_of, tmp_path):
    ov = overlay_of("proxy")
    config = ov.envoy_config
    ((name, _),) = envoy.dns_names(config)
    assert name.endswith(".svc.cluster.local."), "the cluster asks for a fully qualified name"
    for ip in [DNS_IP, ENVOY_IP, *SERVERS]:
        procs.check_all_free([(ip, 50051, False), (ip, 9901, False)])
    zone = dns.Zone(tmp_path / "zone.json")
    zone.publish(name, SERVERS)
    port = procs.free_port(DNS_IP, udp=True)
    dns_servers = dns.serve(DNS_IP, port, zone, ttl=1)
    try:
        with procs.Supervisor(tmp_path / "logs", stop_grace=15.0) as sup:
            yield Mesh(sup, config, dict(ov.server_env), (DNS_IP, port), tmp_path)
    finally:
        for server in dns_servers:
            server.stop()


def call_while(stub, until, max_calls: int = 20_000) -> tuple[Counter, Counter]:
    """Hello calls one after another until ``until()``: answers per server, failures per
    status code."""
    answered: Counter = Counter()
    failed: Counter = Counter()
    for counter in range(1, max_calls + 1):
        request = hello_pb2.HelloRequest(client_id="resilience", counter=counter)
        try:
            answered[stub.Hello(request, timeout=CALL_DEADLINE_S).server_id] += 1
        except grpc.RpcError as error:
            failed[error.code().name] += 1
        if until():
            break
    return answered, failed


@pytest.fixture
def stub(mesh):
    with grpc.insecure_channel(f"{ENVOY_IP}:50051") as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield hello_pb2_grpc.HelloServiceStub(channel)


@pytest.mark.slow
def test_a_killed_server_is_dropped_and_no_call_fails(mesh, stub):
    bound = drop_bound(mesh.config) + MARGIN_S
    mesh.wait_health(dict.fromkeys(SERVERS, True), timeout=15)
    answered, failed = call_while(stub, lambda: False, max_calls=30)
    assert set(answered) == {"server-1", "server-2", "server-3"}, answered
    assert not failed

    victim = mesh.servers[SERVERS[0]]
    with contextlib.suppress(ProcessLookupError):
        os.kill(victim.pid, signal.SIGKILL)
    killed_at = time.monotonic()

    def dropped_or_late() -> bool:
        late = time.monotonic() - killed_at > bound
        return late or health(mesh.admin).get(SERVERS[0]) != "healthy"

    answered, failed = call_while(stub, dropped_or_late)
    assert health(mesh.admin).get(SERVERS[0]) != "healthy", f"still in use after {bound}s"
    assert not failed, f"calls failed while a server died: {failed}"
    # Some calls did go to the dead server meanwhile, and were sent again elsewhere.
    assert retries(mesh.admin) > 0, answered
    answered, failed = call_while(stub, lambda: False, max_calls=30)
    assert set(answered) == {"server-2", "server-3"}
    assert not failed


@pytest.mark.slow
def test_a_stopping_server_is_dropped_and_no_call_fails(mesh, stub):
    bound = drop_bound(mesh.config) + MARGIN_S
    mesh.wait_health(dict.fromkeys(SERVERS, True), timeout=15)
    stopping = mesh.servers[SERVERS[1]]
    os.kill(stopping.pid, signal.SIGTERM)
    stopped_at = time.monotonic()
    answered, failed = call_while(
        stub,
        lambda: (
            (health(mesh.admin).get(SERVERS[1]) != "healthy" and not stopping.running())
            or time.monotonic() - stopped_at > bound
        ),
    )
    assert not failed, f"calls failed while a server stopped: {failed}"
    assert sum(answered.values()) > 0
    assert health(mesh.admin).get(SERVERS[1]) != "healthy", f"still healthy after {bound}s"
    answered, failed = call_while(stub, lambda: False, max_calls=30)
    assert set(answered) == {"server-1", "server-3"}
    assert not failed
