"""Where the Envoy hop's time goes: ``python -m hellolb_lab.hopbench`` (``make hop-bench``).

One run starts the servers once (two sets of three on loopback, zero work time: one set without
ORCA load reports, one with them) behind the lab DNS, and one Envoy per variant, each running the
scenario's shipped ConfigMap (``k8s/overlays/<scenario>/envoy.yaml``, as the lab renders it) with
one thing changed:

- ``shipped``: the ConfigMap as it is, with the lab's ``--concurrency 1``;
- ``- <setting>``: the shipped config without one of its per-call settings (access log, active
  health checks, retries, outlier detection), each removed from the shipped config here
  (:data:`SETTINGS`), never kept as a second copy;
- ``bare``: without all of them: a listener, a router, an HTTP/2 round-robin cluster;
- the shipped config in front of servers that attach an ORCA load report to every answer;
  with ``--concurrency 2`` (Envoy's default on two cores, the pods' since they do not set it);
  with small buffers (:data:`SMALL_BUFFERS`);
- the shipped config with Envoy, the client and the servers placed on the two cores in turn
  (``sched_setaffinity``, as ``taskset -a -p`` does), while that variant is measured.

And ``direct``: no Envoy, the client balancing over the servers itself (the headless
scenario's path), with and without ORCA reports.

The client is a plain grpc.aio stub in this process, one call at a time with a pause between
calls (the lab bench's ``ROUND_INTERVAL``, 10 ms), so that the figures are the path, as
``hellolb-lab bench`` measures it, and not queueing. Every round measures every variant once,
in a shuffled order, so that a busy machine weighs on all of them alike; the table gives each
variant's median over every call, its hop (median minus ``direct``'s; and paired: the median of
its call minus ``direct``'s call of the same round), its difference to ``shipped`` (the share
of the hop a setting costs) and the CPU time its Envoy and its servers spent per call. This is
a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from hellolb.config import parse_duration
from hellolb.v1 import hello_pb2, hello_pb2_grpc

from hellolb_lab import dns, envoy, overlay
from hellolb_lab.errors import LabError
from hellolb_lab.options import Net
from hellolb_lab.polling import wait_for
from hellolb_lab.procs import check_all_free, find_binary
from hellolb_lab.view import table

SERVERS = 3
PORT = 50051
#: Per-connection buffers and HTTP/2 windows of 64 KiB, against Envoy's 1 MiB buffers and
#: 256 MiB / 1 MiB windows. Hello messages are a few hundred bytes: no limit is ever reached.
#: www.envoyproxy.io/docs/envoy/v1.40.0/api-v3/config/listener/v3/listener.proto
#: (per_connection_buffer_limit_bytes) and .../config/core/v3/protocol.proto
#: (Http2ProtocolOptions: initial_stream_window_size, initial_connection_window_size)
SMALL_BUFFER_BYTES = 65536


def _hcm(config: dict[str, Any]) -> dict[str, Any]:
    """The typed config of the first listener's HTTP connection manager (itself, to edit)."""
    try:
        listener = config["static_resources"]["listeners"][0]
        typed: dict[str, Any] = listener["filter_chains"][0]["filters"][0]["typed_config"]
    except (KeyError, IndexError, TypeError) as exc:
        raise LabError(f"the Envoy config has no HTTP connection manager ({exc!r})") from None
    return typed


def _clusters(config: dict[str, Any]) -> list[dict[str, Any]]:
    return list((config.get("static_resources") or {}).get("clusters") or [])


def _routes(config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for host in _hcm(config)["route_config"]["virtual_hosts"]:
        for route in host.get("routes") or []:
            if "route" in route:
                yield route["route"]


def _pop(where: dict[str, Any], key: str) -> bool:
    return where.pop(key, None) is not None


def drop_access_log(config: dict[str, Any]) -> bool:
    return _pop(_hcm(config), "access_log")


def drop_health_checks(config: dict[str, Any]) -> bool:
    return any([_pop(c, "health_checks") for c in _clusters(config)])


def drop_retries(config: dict[str, Any]) -> bool:
    return any([_pop(r, "retry_policy") for r in _routes(config)])


def drop_outlier_detection(config: dict[str, Any]) -> bool:
    return any([_pop(c, "outlier_detection") for c in _clusters(config)])


def _router(config: dict[str, Any]) -> dict[str, Any]:
    for http_filter in _hcm(config).get("http_filters") or []:
        if http_filter.get("name") == "envoy.filters.http.router":
            typed: dict[str, Any] = http_filter.setdefault("typed_config", {})
            return typed
    raise LabError("the Envoy config has no router filter")


def drop_lean(config: dict[str, Any]) -> bool:
    """Envoy's defaults again for the per-call extras the shipped config turns off: a generated
    ``x-request-id``, the router's ``x-envoy-*`` headers and its dynamic statistics."""
    found = _pop(_hcm(config), "generate_request_id")
    router = _router(config)
    return any([found, _pop(router, "dynamic_stats"), _pop(router, "suppress_envoy_headers")])


#: The shipped config's per-call settings, each with what removes it from a config (and says
#: whether there was one to remove); removing ``lean`` gives Envoy's defaults back.
SETTINGS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "access_log": drop_access_log,
    "health_checks": drop_health_checks,
    "retries": drop_retries,
    "outlier_detection": drop_outlier_detection,
    "lean": drop_lean,
}


WHAT = {
    "access_log": "its access log",
    "health_checks": "active health checks",
    "retries": "retries",
    "outlier_detection": "outlier detection",
    "lean": "lean calls (Envoy's request id, headers, stats)",
}


def small_buffers(config: dict[str, Any]) -> None:
    """64 KiB per-connection buffers (listeners, clusters) and HTTP/2 windows (upstream)."""
    for listener in (config.get("static_resources") or {}).get("listeners") or []:
        listener["per_connection_buffer_limit_bytes"] = SMALL_BUFFER_BYTES
    for cluster in _clusters(config):
        cluster["per_connection_buffer_limit_bytes"] = SMALL_BUFFER_BYTES
        options = cluster.get("typed_extension_protocol_options") or {}
        for proto in options.values():
            http2 = (proto.get("explicit_http_config") or {}).get("http2_protocol_options")
            if http2 is not None:
                http2["initial_stream_window_size"] = SMALL_BUFFER_BYTES
                http2["initial_connection_window_size"] = SMALL_BUFFER_BYTES


@dataclass(frozen=True)
class Placement:
    """CPUs for each party while a variant is measured (``None``: wherever the kernel likes)."""

    envoy: frozenset[int] | None = None
    client: frozenset[int] | None = None
    servers: frozenset[int] | None = None


@dataclass(frozen=True)
class Variant:
    name: str
    what: str
    envoy: bool = True
    drop: tuple[str, ...] = ()
    orca: bool = False
    concurrency: int = 1
    buffers: bool = False
    placement: Placement = field(default_factory=Placement)


C0, C1 = frozenset({0}), frozenset({1})
DIRECT = "direct"
SHIPPED = "shipped"
BARE = "bare"


def variants(cpus: int) -> list[Variant]:
    """Every variant, in table order; the placements need two CPUs."""
    out = [
        Variant(DIRECT, "no Envoy: the client balances over the servers", envoy=False),
        Variant("direct + ORCA", "no Envoy, servers attach ORCA reports", envoy=False, orca=True),
        Variant(BARE, "Envoy without any of the settings below", drop=tuple(SETTINGS)),
        Variant(SHIPPED, "the ConfigMap as shipped, --concurrency 1 (the lab's)"),
        *(Variant(f"- {name}", f"shipped without {WHAT[name]}", drop=(name,)) for name in SETTINGS),
        Variant("+ ORCA", "shipped, servers attach ORCA reports", orca=True),
        Variant("concurrency 2", "shipped, --concurrency 2 (Envoy's default here)", concurrency=2),
        Variant("small buffers", "shipped, 64 KiB connection buffers and windows", buffers=True),
    ]
    if cpus >= 2:
        out += [
            Variant(
                "Envoy alone on a core",
                "shipped; Envoy on CPU 1, client and servers on CPU 0",
                placement=Placement(C1, C0, C0),
            ),
            Variant(
                "Envoy with the client",
                "shipped; Envoy and client on CPU 0, servers on CPU 1",
                placement=Placement(C0, C0, C1),
            ),
            Variant(
                "Envoy with the servers",
                "shipped; Envoy and servers on CPU 1, client on CPU 0",
                placement=Placement(C1, C0, C1),
            ),
            Variant(
                "all on one core", "shipped; everything on CPU 0", placement=Placement(C0, C0, C0)
            ),
            Variant(
                "direct on one core",
                "no Envoy; client and servers on CPU 0",
                envoy=False,
                placement=Placement(None, C0, C0),
            ),
        ]
    return out


def variant_config(shipped: Mapping[str, Any], variant: Variant) -> dict[str, Any]:
    """The shipped config with the variant's settings removed (or buffers made small)."""
    config = json.loads(json.dumps(shipped))
    for name in variant.drop:
        if not SETTINGS[name](config):
            raise LabError(f"the shipped Envoy config has no {name} to remove")
    if variant.buffers:
        small_buffers(config)
    return config


def _tids(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except FileNotFoundError:
        return []


def set_cpus(pid: int, cpus: frozenset[int] | None, every: frozenset[int]) -> None:
    """Every thread of ``pid`` on ``cpus`` (all of them for ``None``), as ``taskset -a -p``."""
    for tid in _tids(pid):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(tid, cpus or every)


@dataclass
class Started:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def running(self) -> bool:
        return self.popen.poll() is None


class Processes:
    """Processes started with their output in a log file; all stopped by PID at the end."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Started] = []

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Started:
        base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TZ")}
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as sink:
            popen = subprocess.Popen(
                list(argv),
                env={**base, "PYTHONUNBUFFERED": "1", **env},
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started = Started(name, popen, log)
        self.started.append(started)
        return started

    def check(self) -> None:
        for p in self.started:
            if p.popen.poll() is not None:
                tail = p.log.read_text(errors="replace").strip().splitlines()[-5:]
                raise LabError(f"{p.name} exited ({p.popen.returncode}): {' / '.join(tail)}")

    def stop_all(self) -> None:
        for p in self.started:
            if p.popen.poll() is None:
                p.popen.terminate()
        deadline = time.monotonic() + 10
        for p in self.started:
            try:
                p.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait(timeout=5)


@dataclass
class Target:
    variant: Variant
    address: str
    envoy_pid: int | None
    server_pids: list[int]
    latencies: list[float] = field(default_factory=list)
    envoy_cpu_ns: int = 0
    server_cpu_ns: int = 0


def cpu_ns(pid: int) -> int:
    """CPU time every thread of ``pid`` has run so far, in ns (``/proc/PID/task/*/schedstat``:
    nanoseconds, where ``/proc/PID/stat`` counts clock ticks)."""
    total = 0
    for tid in _tids(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
    return total


def _place(targets: list[Target], t: Target, me: int, every: frozenset[int]) -> None:
    """Every process where ``t``'s placement wants it; the others anywhere."""
    place = t.variant.placement
    set_cpus(me, place.client, every)
    for other in targets:
        if other.envoy_pid is not None:
            set_cpus(other.envoy_pid, place.envoy if other is t else None, every)
    for pid in {p for other in targets for p in other.server_pids}:
        set_cpus(pid, place.servers, every)


async def measure(
    targets: list[Target],
    *,
    calls: int,
    pause: float,
    seed: int,
    check: Callable[[], None],
    report: Callable[[str], None],
) -> None:
    """``calls`` calls through every target, one at a time: each round calls every target once,
    in a shuffled order, so that the machine's load changes weigh on every variant alike.

    The CPU time of each call's Envoy and server processes is counted around that call, from
    just before it is sent to its answer: background work such as health checks falls into it
    only as often as it overlaps a call.
    """
    every = frozenset(os.sched_getaffinity(0))
    me = os.getpid()
    shuffle = random.Random(seed)  # noqa: S311 - an order of calls, not a secret
    service_config = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
    channels = {
        t.variant.name: grpc.aio.insecure_channel(
            t.address, options=[("grpc.service_config", service_config)]
        )
        for t in targets
    }
    placed: Placement | None = Placement()
    try:
        stubs = {n: hello_pb2_grpc.HelloServiceStub(c) for n, c in channels.items()}
        for t in targets:  # connections up, and every code path warm
            for i in range(20):
                await stubs[t.variant.name].Hello(
                    hello_pb2.HelloRequest(client_id="hopbench", counter=i), timeout=5
                )
        for i in range(1, calls + 1):
            order = list(targets)
            shuffle.shuffle(order)
            for t in order:
                if t.variant.placement != placed:
                    _place(targets, t, me, every)
                    placed = t.variant.placement
                request = hello_pb2.HelloRequest(client_id="hopbench", counter=i)
                pids = t.server_pids + ([t.envoy_pid] if t.envoy_pid else [])
                await asyncio.sleep(pause)
                before = {pid: cpu_ns(pid) for pid in pids}
                start = time.perf_counter()
                await stubs[t.variant.name].Hello(request, timeout=5)
                t.latencies.append((time.perf_counter() - start) * 1000)
                used = {pid: cpu_ns(pid) - before[pid] for pid in pids}
                t.server_cpu_ns += sum(used[p] for p in t.server_pids)
                if t.envoy_pid is not None:
                    t.envoy_cpu_ns += used[t.envoy_pid]
            if i % 100 == 0:
                check()
                report(f"hop-bench: {i} of {calls} calls per variant")
    finally:
        _place(targets, Target(Variant("", ""), "", None, []), me, every)
        for channel in channels.values():
            await channel.close()


def _ms(value: float) -> str:
    return f"{value:.3f}"


def _thirds(values: list[float]) -> list[float]:
    n = len(values) // 3
    return [statistics.median(values[k * n : (k + 1) * n]) for k in range(3)] if n else []


def rows(targets: list[Target]) -> list[dict[str, str]]:
    """The table: each variant's median, its hop over ``direct`` (from the medians, and paired),
    its paired hop's difference to ``shipped``'s (positive: the shipped config costs that much
    more than this variant), and the CPU time its Envoy and servers spent per call."""
    p50 = {t.variant.name: statistics.median(t.latencies) for t in targets}
    thirds = {t.variant.name: _thirds(t.latencies) for t in targets}
    direct = p50.get(DIRECT)
    # The i-th call of every variant came in the same round, within a fraction of a second:
    # the median of those differences leaves out how busy the machine was round by round.
    base = next((t.latencies for t in targets if t.variant.name == DIRECT), [])
    paired = {
        t.variant.name: statistics.median(a - b for a, b in zip(t.latencies, base, strict=False))
        for t in targets
        if base
    }
    shipped = paired.get(SHIPPED)
    out = []
    for t in targets:
        name, value = t.variant.name, p50[t.variant.name]
        lat = sorted(t.latencies)
        calls = len(lat)
        row = {
            "variant": name,
            "what": t.variant.what,
            "p50 ms": _ms(value),
            "p90 ms": _ms(lat[int(0.9 * (calls - 1))]),
            "hop ms": f"{value - direct:+.3f}" if direct is not None else "",
            "paired hop ms": f"{paired[name]:+.3f}" if name in paired else "",
            "hop by thirds": "",
            "shipped minus this ms": "",
            "of the shipped hop": "",
            "Envoy CPU us/call": f"{t.envoy_cpu_ns / calls / 1000:.0f}" if t.envoy_pid else "",
            "servers CPU us/call": f"{t.server_cpu_ns / calls / 1000:.0f}",
        }
        if direct is not None and thirds[name] and thirds[DIRECT]:
            row["hop by thirds"] = " ".join(
                f"{a - b:+.2f}" for a, b in zip(thirds[name], thirds[DIRECT], strict=True)
            )
        if shipped is not None and name in paired:
            row["shipped minus this ms"] = f"{shipped - paired[name]:+.3f}"
            if shipped and t.variant.envoy and name != SHIPPED:
                row["of the shipped hop"] = f"{100 * (shipped - paired[name]) / shipped:+.0f} %"
        out.append(row)
    return out


def _server_env(base: Mapping[str, str], name: str, ip: str, orca: bool) -> dict[str, str]:
    return {
        **base,
        "SERVER_ID": name,
        "POD_NAME": name,
        "POD_IP": ip,
        "NODE_NAME": "lab",
        "BIND_ADDRESS": ip,
        "PORT": str(PORT),
        "WORK_TIME": "0",
        "DRAIN_DELAY": "0",
        "ORCA_REPORTS": "true" if orca else "false",
    }


def run(args: argparse.Namespace) -> list[dict[str, str]]:
    ov = overlay.load(args.scenario, args.k8s)
    if ov.envoy_config is None:
        raise LabError(f"the {args.scenario} scenario runs no Envoy")
    shipped = ov.envoy_config
    ((name, _port),) = envoy.dns_names(shipped)
    chosen = [
        v for v in variants(len(os.sched_getaffinity(0))) if not args.only or v.name in args.only
    ]
    if not any(v.name == DIRECT for v in chosen):
        chosen.insert(0, variants(1)[0])
    net = Net(args.net, args.dns_port)
    listen = envoy.listener_ports(shipped)
    # Two server sets on their own /24 blocks' addresses: .11-.13 without ORCA, .14-.16 with.
    plain = [net.server(i) for i in range(1, SERVERS + 1)]
    orca = [net.server(i) for i in range(SERVERS + 1, 2 * SERVERS + 1)]
    envoy_ips = {v.name: f"{net.prefix}.{50 + i}" for i, v in enumerate(chosen) if v.envoy}
    check_all_free(
        [(ip, PORT, False) for ip in plain + orca]
        + [(ip, p, False) for ip in envoy_ips.values() for p in listen]
        + [(net.dns[0], net.dns[1], True)]
    )
    binary = find_binary("envoy")
    log_dir = args.logs or Path(tempfile.mkdtemp(prefix="hellolb-hopbench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    zone = dns.Zone(log_dir / "zone.json")
    orca_name = "orca." + name
    zone.publish(name, plain)
    zone.publish(orca_name, orca)
    dns_servers = dns.serve(net.dns[0], net.dns[1], zone, ttl=1)
    procs = Processes(log_dir)
    try:
        pids: dict[bool, list[int]] = {}
        for with_orca, ips in ((False, plain), (True, orca)):
            pids[with_orca] = []
            for n, ip in enumerate(ips, 1):
                sname = f"server-{'orca-' if with_orca else ''}{n}"
                env = _server_env(ov.server_env, sname, ip, with_orca)
                p = procs.start(sname, [sys.executable, "-m", "hello_server"], env)
                pids[with_orca].append(p.popen.pid)
        for ip in plain + orca:
            wait_for(functools.partial(_listening, ip), 60, f"server on {ip}:{PORT}")
        targets = []
        admins: list[tuple[str, tuple[str, int]]] = []
        for v in chosen:
            servers = orca if v.orca else plain
            if not v.envoy:
                address = "ipv4:" + ",".join(f"{ip}:{PORT}" for ip in servers)
                targets.append(Target(v, address, None, pids[v.orca]))
                continue
            ip = envoy_ips[v.name]
            config = variant_config(shipped, v)
            if v.orca:
                _rename(config, name, orca_name)
            config = envoy.adapt(config, dns=net.dns, listen_ip=ip)
            slug = v.name.replace(" ", "_").replace("+", "plus").replace("-", "minus")
            path = envoy.write(config, log_dir / f"{slug}.envoy.yaml")
            envoy.validate(binary, path)
            argv = envoy.argv(binary, path, ov.envoy_args)
            argv[argv.index("--concurrency") + 1] = str(v.concurrency)
            p = procs.start(f"envoy-{slug}", argv, {"POD_NAME": f"envoy-{slug}"})
            admins.append((v.name, (ip, listen[0])))
            envoy.wait_ready((ip, listen[0]), 60, p.running)
            targets.append(Target(v, f"ipv4:{ip}:{listen[-1]}", p.popen.pid, pids[v.orca]))
        for vname, admin in admins:
            wait_for(functools.partial(_healthy, admin, SERVERS), 60, f"{vname}'s servers healthy")
        asyncio.run(
            measure(
                targets,
                calls=args.calls,
                pause=parse_duration(args.pause),
                seed=args.seed,
                check=procs.check,
                report=lambda line: print(line, file=sys.stderr, flush=True),
            )
        )
        return rows(targets)
    finally:
        procs.stop_all()
        for server in dns_servers:
            server.stop()


def _rename(config: dict[str, Any], old: str, new: str) -> None:
    for cluster in envoy.dns_clusters(config):
        for group in (cluster.get("load_assignment") or {}).get("endpoints") or []:
            for lb in group.get("lb_endpoints") or []:
                sa = lb["endpoint"]["address"]["socket_address"]
                if sa["address"] == old:
                    sa["address"] = new


def _listening(ip: str) -> bool | None:
    with socket.socket() as s:
        s.settimeout(0.5)
        return True if s.connect_ex((ip, PORT)) == 0 else None


def _healthy(admin: tuple[str, int], wanted: int) -> bool | None:
    """Envoy sees ``wanted`` servers, each healthy (admin ``/clusters``)."""
    lines = envoy.admin_get(admin, "/clusters").splitlines()
    healthy = [line for line in lines if line.endswith("::health_flags::healthy")]
    return True if len(healthy) >= wanted else None


COLUMNS = (
    "variant",
    "what",
    "p50 ms",
    "p90 ms",
    "hop ms",
    "paired hop ms",
    "hop by thirds",
    "shipped minus this ms",
    "of the shipped hop",
    "Envoy CPU us/call",
    "servers CPU us/call",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="proxy", choices=("proxy", "sidecar"))
    parser.add_argument("--calls", type=int, default=400, help="calls per variant")
    parser.add_argument("--pause", default="10ms", help="between calls (the lab bench's)")
    parser.add_argument("--only", type=lambda s: s.split(","), default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--net", default="127.0.140", help="the 127.X.Y.0/24 block")
    parser.add_argument("--dns-port", type=int, default=5354)
    parser.add_argument("--k8s", type=Path, default=None)
    parser.add_argument("--logs", type=Path, default=None, help="process logs (a temp folder)")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here too")
    args = parser.parse_args(argv)
    try:
        table_rows = run(args)
    except LabError as exc:
        print(f"hop-bench: {exc}", file=sys.stderr)
        return 1
    print(
        f"{args.scenario}: {args.calls} calls per variant, one at a time, {args.pause} apart, "
        f"the variants in turn; zero server work; {os.cpu_count()} CPUs, load "
        f"{os.getloadavg()[0]:.1f} at the end"
    )
    print(table(table_rows, COLUMNS))
    if args.json is not None:
        args.json.write_text(json.dumps(table_rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
