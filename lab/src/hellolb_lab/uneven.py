"""Uneven servers: one of three servers slow or failing, and what each balancer does about it.

Each balancer of :mod:`hellolb_lab.balancers` gets its own lane, on its own loopback block:
three real servers, the third one bad (:func:`~hellolb_lab.balancers.fault`), the proxy
scenario's Envoy in front of them where the balancer is Envoy's, and a real client whose
``CONCURRENCY`` callers each call again as soon as they are answered (``closed_loop``: rounds
would start every server with the same calls in flight and hide least request). The lanes run
side by side, so each sees the same machine at the same time; a lane mostly waits, on the work
time and the injected latency.

Compute first, run second: :func:`plan` says every process of every lane without starting one;
:func:`run` starts them all, lets the policies settle for the warm-up (at least
:func:`~hellolb_lab.balancers.settle_seconds`), measures for ``measure_s``, and reads each
client's own log: every call that ended in the window, which server took it (an error names its
server in a trailer), and how long it took. This is a benchmark: it prints figures, with ratios
against round robin from the same run; the tests assert the behaviours.
"""

from __future__ import annotations

import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from hello_client import events as client
from hello_client.stats import percentile

from hellolb_lab import balancers, clientlog, envoy
from hellolb_lab import overlay as overlays
from hellolb_lab.balancers import Balancer, Fault
from hellolb_lab.errors import LabError
from hellolb_lab.launchers import SERVER_STARTED, wait_ready
from hellolb_lab.options import Net
from hellolb_lab.plan import EnvoyProcess, Process
from hellolb_lab.polling import poll
from hellolb_lab.procs import Proc, Supervisor, check_all_free, find_binary
from hellolb_lab.view import table

PORT = 50051
SERVERS = 3
#: The server that gets the fault, by its id.
BAD = f"server-{SERVERS}"
#: The Envoy config the Envoy balancers start from: this scenario's ConfigMap.
PROXY_SCENARIO = "proxy"


@dataclass(frozen=True)
class Setup:
    """One comparison: the fault, the load, the phase lengths and where it runs.

    Lane ``i`` (from 0, in table order) runs on ``127.X.(Y + i)`` for ``net = "127.X.Y"``.
    """

    fault: str = "slow"
    work_time_ms: float = 50.0
    slowdown: float = 10.0
    error_code: str = "INTERNAL"
    callers: int = 10
    warmup_s: float = 3.0
    measure_s: float = 5.0
    balancers: tuple[str, ...] | None = None
    net: str = "127.0.20"
    log_dir: Path | None = None
    k8s_dir: Path | None = None
    startup_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.warmup_s < balancers.settle_seconds():
            raise LabError(
                f"--warmup must be at least {balancers.settle_seconds():g} s, the time the "
                "policies need to settle"
            )
        if self.measure_s <= 0 or self.callers < 1 or self.work_time_ms <= 0:
            raise LabError("--measure, --callers and --work-time must be above zero")
        if self.slowdown < 1:
            raise LabError(f"--slowdown must be at least 1, got {self.slowdown:g}")
        self.lane_net(len(balancers.chosen(self.balancers)) - 1)  # every lane has its block
        codes = [c.name for c in grpc.StatusCode if c is not grpc.StatusCode.OK]
        if self.error_code.upper() not in codes:
            raise LabError(f"--error-code {self.error_code!r}: expected one of {', '.join(codes)}")

    def lane_net(self, i: int) -> Net:
        """Lane ``i``'s block: ``net`` with its third number counted up by ``i``."""
        _, second, third = Net(self.net).prefix.split(".")
        if int(third) + i > 255:
            raise LabError(f"--net {self.net!r}: no room for {i + 1} blocks after it")
        return Net(f"127.{second}.{int(third) + i}")

    @property
    def bad(self) -> Fault:
        return balancers.fault(self.fault, self.work_time_ms, self.slowdown, self.error_code)


@dataclass(frozen=True)
class Lane:
    """One balancer's processes: three servers (the last one bad), its Envoy, its client."""

    balancer: Balancer
    net: Net
    servers: tuple[Process, ...]
    client: Process
    envoy: EnvoyProcess | None = None

    def endpoints(self) -> list[tuple[str, int, bool]]:
        """Every address and port the lane binds (for the check before anything starts)."""
        used = [(s.address, PORT, False) for s in self.servers]
        if self.envoy is not None:
            used += [
                (self.envoy.address, p, False)
                for p in envoy.listener_ports(dict(self.envoy.config))
            ]
        return used


def _server_env(
    name: str, address: str, setup: Setup, bad: bool, balancer: Balancer
) -> dict[str, str]:
    env = {
        "SERVER_ID": name,
        "POD_NAME": name,
        "BIND_ADDRESS": address,
        "PORT": str(PORT),
        "WORK_TIME": f"{setup.work_time_ms:g}ms",
        "ORCA_REPORTS": "true" if balancers.reads_load_reports(balancer) else "false",
        "DRAIN_DELAY": "0",
        "LOG_FORMAT": "json",
    }
    return {**env, **setup.bad.env} if bad else env


def plan_lane(
    i: int, balancer: Balancer, setup: Setup, envoy_base: Mapping[str, Any] | None
) -> Lane:
    """Lane ``i``: its addresses, environments and (for Envoy) config; starts nothing."""
    net = setup.lane_net(i)
    servers = tuple(
        Process(
            f"server-{n}",
            net.server(n),
            _server_env(f"server-{n}", net.server(n), setup, n == SERVERS, balancer),
        )
        for n in range(1, SERVERS + 1)
    )
    proxy = None
    if balancer.envoy:
        if envoy_base is None:
            raise LabError(f"{balancer.name} needs the {PROXY_SCENARIO} scenario's Envoy config")
        address = net.proxy(1)
        config = balancers.envoy_config(
            envoy_base, balancer, servers=[(s.address, PORT) for s in servers], listen_ip=address
        )
        proxy = EnvoyProcess("proxy-1", address, config)
    if proxy is not None:
        target = f"ipv4:{proxy.address}:{balancers.listener_port(proxy.config)}"
    else:
        target = "ipv4:" + ",".join(f"{s.address}:{PORT}" for s in servers)
    env = {
        "CLIENT_ID": f"client-{balancer.name}",
        "SERVER_ADDRESS": target,
        "CLIENT_MODE": "closed_loop",
        "CONCURRENCY": str(setup.callers),
        # One connection to a proxy: the health it would watch is whichever server the
        # stream reached (as in the proxy scenario's overlay).
        "HEALTH_CHECK": "false" if proxy is not None else "true",
        "LOG_RESPONSES": "true",
        "SUMMARY_INTERVAL": "60s",
        "LOG_FORMAT": "json",
        **balancer.client_env,
    }
    return Lane(
        balancer, net, servers, Process(f"client-{balancer.name}", net.sidecar(1), env), proxy
    )


def plan(setup: Setup, envoy_base: Mapping[str, Any] | None) -> list[Lane]:
    """Every lane of the comparison, in table order."""
    return [
        plan_lane(i, b, setup, envoy_base) for i, b in enumerate(balancers.chosen(setup.balancers))
    ]


@dataclass(frozen=True)
class Call:
    """One call the client saw end: when, which server (None: no server of ours named
    itself), how long it took, and its status code (``OK`` for an answer)."""

    t: float
    server: str | None
    latency_ms: float
    code: str = "OK"


def calls_of(events: Iterable[Mapping[str, Any]]) -> list[Call]:
    """The client's answers and errors, oldest first."""
    found = []
    for e in events:
        if clientlog.is_response(e):
            code = "OK"
        elif clientlog.is_error(e):
            code = str(e.get(clientlog.ERROR_CODE, ""))
        else:
            continue
        server = e.get(client.SERVER_ID)
        found.append(
            Call(
                clientlog.parse_timestamp(e[client.TIMESTAMP]),
                None if server is None else str(server),
                float(e.get(client.LATENCY_MS) or 0.0),
                code,
            )
        )
    return sorted(found, key=lambda c: c.t)


@dataclass(frozen=True)
class Figures:
    """What one balancer did in the measured window (and the errors before it)."""

    balancer: str
    label: str
    seconds: float
    calls: int
    answers: int
    errors: int
    errors_before: int
    bad_calls: int
    by_server: Mapping[str, int]
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None

    @property
    def bad_share(self) -> float:
        """The bad server's share of the calls that ended in the window (answered or not)."""
        return self.bad_calls / self.calls if self.calls else 0.0

    @property
    def answers_per_s(self) -> float:
        return self.answers / self.seconds

    def to_dict(self) -> dict[str, Any]:
        return {
            **{k: getattr(self, k) for k in self.__dataclass_fields__},
            "bad_share": round(self.bad_share, 4),
            "answers_per_s": round(self.answers_per_s, 1),
        }


def figures(lane: Lane, calls: Sequence[Call], start: float, end: float) -> Figures:
    """The lane's figures over calls that ended in ``[start, end)``; errors before ``start``
    (the warm-up) apart: what a failing server cost before a policy routed around it."""
    window = [c for c in calls if start <= c.t < end]
    answered = sorted(c.latency_ms for c in window if c.code == "OK")
    by_server = Counter(c.server or "none" for c in window)

    def p(fraction: float) -> float | None:
        return percentile(answered, fraction)

    return Figures(
        balancer=lane.balancer.name,
        label=lane.balancer.label,
        seconds=end - start,
        calls=len(window),
        answers=len(answered),
        errors=sum(1 for c in window if c.code != "OK"),
        errors_before=sum(1 for c in calls if c.t < start and c.code != "OK"),
        bad_calls=by_server.get(BAD, 0),
        by_server=dict(sorted(by_server.items())),
        p50_ms=p(0.5),
        p90_ms=p(0.9),
        p99_ms=p(0.99),
    )


@dataclass
class Comparison:
    """Every lane's figures, in table order, with what was compared."""

    setup: Setup
    fault: Fault
    rows: list[Figures] = field(default_factory=list)
    log_dir: Path | None = None

    def of(self, name: str) -> Figures:
        return next(r for r in self.rows if r.balancer == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fault": self.fault.name,
            "describe": self.fault.describe,
            "work_time_ms": self.setup.work_time_ms,
            "callers": self.setup.callers,
            "warmup_s": self.setup.warmup_s,
            "measure_s": self.setup.measure_s,
            "rows": [r.to_dict() for r in self.rows],
        }


def run(setup: Setup, report: Callable[[str], None] = print) -> Comparison:
    """Start every lane side by side, warm up, measure, stop; the figures of each lane."""
    k8s = setup.k8s_dir or overlays.find_k8s_dir()
    proxy = overlays.load(PROXY_SCENARIO, k8s)
    lanes = plan(setup, proxy.envoy_config)
    check_all_free(e for lane in lanes for e in lane.endpoints())
    log_dir = setup.log_dir or Path(".lab/runs/uneven") / setup.fault
    comparison = Comparison(setup, setup.bad, log_dir=log_dir)
    with Supervisor(log_dir) as sup:
        clients = _start(sup, lanes, setup, proxy.envoy_args, log_dir, report)
        start = time.time()
        report(
            f"uneven: {len(lanes)} balancers side by side, one server of three "
            f"{comparison.fault.describe}; warm-up {setup.warmup_s:g} s, measuring "
            f"{setup.measure_s:g} s"
        )
        end = start + setup.warmup_s + setup.measure_s

        def alive() -> None:
            sup.check_alive()  # a lane whose process died stops the run with its log

        poll(alive, end - time.time(), interval=0.2)
        # All at once: each client lets its callers' calls finish (a slow one takes its
        # time), then logs and exits; a second SIGTERM changes nothing.
        for proc in clients:
            proc.signal(signal.SIGTERM)
        for proc in clients:
            sup.stop(proc)
    for lane, proc in zip(lanes, clients, strict=True):
        calls = calls_of(proc.snapshot())
        comparison.rows.append(figures(lane, calls, start + setup.warmup_s, end))
    return comparison


def _start(
    sup: Supervisor,
    lanes: Sequence[Lane],
    setup: Setup,
    envoy_args: Sequence[str],
    log_dir: Path,
    report: Callable[[str], None],
) -> list[Proc]:
    """Every lane's servers, then Envoys, then clients, each kind side by side; the clients,
    once every one has found its servers."""
    timeout = setup.startup_timeout
    server_argv = [sys.executable, "-m", "hello_server"]
    servers = [
        sup.start(f"{lane.balancer.name}.{s.name}", server_argv, s.env)
        for lane in lanes
        for s in lane.servers
    ]
    for proc in servers:
        wait_ready(proc, SERVER_STARTED, timeout)
    report(f"uneven: {len(servers)} servers listen")
    proxies = []
    binary = find_binary("envoy") if any(lane.envoy for lane in lanes) else ""
    for lane in lanes:
        if lane.envoy is None:
            continue
        name = f"{lane.balancer.name}.{lane.envoy.name}"
        path = envoy.write(dict(lane.envoy.config), log_dir / f"{name}.envoy.yaml")
        argv = envoy.argv(binary, path, envoy_args)
        proxies.append((lane.envoy, sup.start(name, argv, {"POD_NAME": name})))
    for spec, proc in proxies:
        envoy.wait_ready(spec.admin, timeout, alive=proc.running)
    client_argv = [sys.executable, "-m", "hello_client"]
    clients = [sup.start(lane.client.name, client_argv, lane.client.env) for lane in lanes]
    for proc in clients:
        wait_ready(proc, client.READY, timeout)
    return clients


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "-"
    return f"{value / base:.2f}"


COLUMNS = (
    "balancer",
    "bad server's share",
    "answers/s",
    "x RR",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "p90 x RR",
    "errors",
    "errors in warm-up",
)


def table_rows(comparison: Comparison) -> list[dict[str, str]]:
    """One row per balancer; ratios against the baseline (grpc round robin) when it ran."""
    base = next((r for r in comparison.rows if r.balancer == balancers.BASELINE), None)
    out = []
    for r in comparison.rows:
        out.append(
            {
                "balancer": r.label,
                "bad server's share": f"{r.bad_share:.0%}",
                "answers/s": f"{r.answers_per_s:.0f}",
                "x RR": _ratio(r.answers_per_s, base.answers_per_s if base else None),
                "p50 ms": _ms(r.p50_ms),
                "p90 ms": _ms(r.p90_ms),
                "p99 ms": _ms(r.p99_ms),
                "p90 x RR": _ratio(r.p90_ms, base.p90_ms if base else None),
                "errors": str(r.errors),
                "errors in warm-up": str(r.errors_before),
            }
        )
    return out


def format_table(comparison: Comparison) -> str:
    s = comparison.setup
    head = (
        f"one server of {SERVERS} {comparison.fault.describe}; {s.work_time_ms:g} ms of work "
        f"per call, {s.callers} closed-loop callers per balancer, {s.measure_s:g} s measured "
        f"after {s.warmup_s:g} s of warm-up"
    )
    return head + "\n\n" + table(table_rows(comparison), COLUMNS)
