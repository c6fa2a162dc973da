"""One scenario's timeline on loopback, with real processes, real DNS and a real Envoy.

The timeline follows the cluster walkthrough: the overlay's servers (3) answer for a while,
two more servers start and only then are published in DNS (the scale-up), and the run goes on.
In the proxy scenario the proxy is then scaled 1 -> 3 the same way, and later the client is
restarted; in the clusterip scenario the client is restarted too, to show that a new connection
may land on another server but still on one only.

What runs where is read from the overlay, not from the scenario's name:

- a client target whose Service is headless is answered with the servers' addresses;
- a ClusterIP Service gets the kube-proxy stand-in (an Envoy TCP proxy on a virtual address);
- a ``proxy`` Deployment runs the ConfigMap's Envoy once per replica, each on its own address,
  and the client target ``proxy`` is answered with the proxies' addresses;
- an Envoy container in the client pod runs the ConfigMap's Envoy next to each client.

Addresses live in one ``127.X.Y.0/24`` block (:class:`Net`): DNS ``.1``, servers ``.11-.19``,
proxies ``.21-.29``, the virtual ClusterIP ``.30``, sidecars ``.41-.49``.
"""

from __future__ import annotations

import re
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hello_client.stats import percentile

from hellolb_lab import dns, envoy, verdict
from hellolb_lab import overlay as overlays
from hellolb_lab.procs import LabError, Proc, Supervisor, check_all_free, find_binary
from hellolb_lab.verdict import Check, Verdict
from hellolb_lab.view import LiveView, Picture

#: Scenarios the lab runs on one machine, in tour order.
SCENARIOS = ("clusterip", "headless", "maxage", "proxy", "sidecar")

#: Scenarios that need a real cluster, with the reason.
CLUSTER_ONLY = {
    "linkerd": (
        "linkerd needs a Kubernetes cluster: its proxy is injected and configured by the Linkerd "
        "control plane, which the lab cannot run. Use the cluster walkthrough (make e2e "
        "SCENARIO=linkerd); the lab's sidecar scenario shows the same per-client proxy shape "
        "with Envoy."
    )
}


@dataclass(frozen=True)
class Net:
    """The lab's own addresses: one 127.X.Y.0/24 block and the DNS port."""

    prefix: str = "127.0.10"
    dns_port: int = 5353

    def __post_init__(self) -> None:
        if not re.fullmatch(r"127\.\d{1,3}\.\d{1,3}", self.prefix) or any(
            int(p) > 255 for p in self.prefix.split(".")
        ):
            raise LabError(f"--net must look like 127.X.Y (a /24 on loopback), got {self.prefix!r}")

    @property
    def dns(self) -> tuple[str, int]:
        return (f"{self.prefix}.1", self.dns_port)

    def server(self, i: int) -> str:
        return f"{self.prefix}.{10 + i}"

    def proxy(self, i: int) -> str:
        return f"{self.prefix}.{20 + i}"

    @property
    def vip(self) -> str:
        return f"{self.prefix}.30"

    def sidecar(self, i: int) -> str:
        return f"{self.prefix}.{40 + i}"


@dataclass(frozen=True)
class Options:
    """Phase lengths (seconds) and overrides; the defaults keep a tour near a minute and a half.

    ``after=None`` derives the phase after the scale-up from the settings: the bound within which
    the new servers must be reached (the phase ends ``steady`` seconds after they all were), or
    ``headless_after`` where nothing is expected to reach them.
    """

    warmup: float = 4.0
    after: float | None = None
    headless_after: float = 6.0
    steady: float = 3.0
    idle: float = 4.0
    restart: float = 4.0
    scale_to: int = 5
    proxy_scale_to: int = 3
    summary_interval: str = "2s"
    work_time: str | None = None
    round_interval: str | None = None
    server_env: dict[str, str] = field(default_factory=dict)
    client_env: dict[str, str] = field(default_factory=dict)
    net: Net = field(default_factory=Net)
    log_dir: Path | None = None
    k8s_dir: Path | None = None
    startup_timeout: float = 30.0


@dataclass
class RunResult:
    """A finished run: the verdict, the checks, and what the benchmark reads."""

    scenario: str
    verdict: Verdict
    checks: list[Check]
    bound: float | None
    marks: list[tuple[float, str]]
    settings: dict[str, Any]
    latency_ms: dict[str, float | None]
    proxy_requests: dict[str, dict[str, int]]
    log_dir: str
    picture: Picture

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "ok": self.ok,
            "checks": [c.__dict__ for c in self.checks],
            "reach_bound_s": self.bound,
            "marks": [{"t": t, "label": label} for t, label in self.marks],
            "settings": self.settings,
            "latency_ms": self.latency_ms,
            "proxy_requests": self.proxy_requests,
            "verdict": self.verdict.to_dict(),
            "log_dir": self.log_dir,
        }


def split_target(target: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of a gRPC target such as ``dns:///server:50051``."""
    match = re.fullmatch(r"(?:(dns|ipv4):(?://[^/]*/)?)?([^:/,]+):(\d+)", target)
    if match is None:
        raise LabError(f"the lab cannot rewrite SERVER_ADDRESS={target!r}")
    return match[1] or "dns", match[2], int(match[3])


class Lab:
    """Runs one scenario; use :func:`run` unless you need the pieces."""

    def __init__(
        self,
        scenario: str,
        options: Options,
        view: LiveView | None = None,
        ov: overlays.Overlay | None = None,
    ) -> None:
        if scenario in CLUSTER_ONLY:
            raise LabError(CLUSTER_ONLY[scenario])
        if scenario not in SCENARIOS:
            raise LabError(f"unknown scenario {scenario!r}; the lab runs: {', '.join(SCENARIOS)}")
        self.scenario = scenario
        self.options = options
        self.net = options.net
        self.view = view or LiveView(quiet=True)
        self.ov = ov or overlays.load(scenario, options.k8s_dir)
        self.log_dir = options.log_dir or self._default_log_dir()
        self.zone = dns.Zone(self.log_dir / "zone.json")
        self._lock = threading.Lock()
        self.picture = Picture(title=scenario, start=time.time())
        self.clients: list[Proc] = []
        self.servers: list[Proc] = []
        self.proxies: list[Proc] = []
        self.marks: list[tuple[float, str]] = []
        self.end: float | None = None
        self._derive()

    # -- settings ---------------------------------------------------------------------------

    def _default_log_dir(self) -> Path:
        k8s = self.options.k8s_dir or overlays.find_k8s_dir()
        return k8s.parent / ".lab" / "runs" / self.scenario

    def _derive(self) -> None:
        ov, opts = self.ov, self.options
        self.server_env = {**ov.server_env, **opts.server_env, "LOG_FORMAT": "json"}
        if opts.work_time is not None:
            self.server_env["WORK_TIME"] = opts.work_time
        self.port = int(self.server_env.get("PORT", "50051"))
        self.client_env = {
            **ov.client_env,
            "SUMMARY_INTERVAL": opts.summary_interval,
            **opts.client_env,
            "LOG_FORMAT": "json",
            "STARTUP_TIMEOUT": f"{opts.startup_timeout:g}s",
        }
        if opts.round_interval is not None:
            self.client_env["ROUND_INTERVAL"] = opts.round_interval
        scheme, host, target_port = split_target(self.client_env.get("SERVER_ADDRESS", ""))
        self.kube_proxy = scheme == "dns" and ov.services.get(host.split(".")[0]) is False
        self.target_is_proxy = ov.proxy_replicas is not None and host.split(".")[0] == "proxy"
        if scheme == "ipv4":
            if not ov.sidecar:
                raise LabError(f"{self.scenario}: an ipv4 target needs a sidecar in the overlay")
            self.target_name = None
            self.target_port = target_port
        else:
            fqdn = host if "." in host else f"{host}.{ov.namespace}.svc.cluster.local"
            self.target_name = fqdn
            self.target_port = target_port
        self.envoy_config = ov.envoy_config
        self.dns_refresh = (
            envoy.dns_refresh_seconds(ov.envoy_config) if ov.envoy_config is not None else None
        )
        if ov.uses_envoy and any(
            c.get("respect_dns_ttl") for c in envoy.dns_clusters(ov.envoy_config or {})
        ):
            self.dns_refresh = float(dns.DEFAULT_TTL)
        self.bound = self._reach_bound()
        if opts.after is not None:
            self.after = opts.after
        elif self.bound is not None:
            self.after = self.bound
        else:
            self.after = opts.headless_after

    def _reach_bound(self) -> float | None:
        return overlays.reach_bound(
            self.scenario,
            server_env=self.server_env,
            client_env=self.client_env,
            envoy_config=self.envoy_config,
            dns_refresh_s=self.dns_refresh,
        )

    def settings(self) -> dict[str, Any]:
        return {
            "net": self.net.prefix,
            "dns": f"{self.net.dns[0]}:{self.net.dns[1]}",
            "server_replicas": self.ov.server_replicas,
            "scale_to": self.options.scale_to,
            "proxy_replicas": self.ov.proxy_replicas,
            "server_env": self.server_env,
            "client_env": {**self.client_env, "SERVER_ADDRESS": self.client_target(1)},
            "envoy_dns_refresh_s": self.dns_refresh,
            "phases_s": {
                "warmup": self.options.warmup,
                "after": self.after,
                "steady": self.options.steady,
                "idle": self.options.idle,
                "restart": self.options.restart,
            },
        }

    def client_target(self, index: int) -> str:
        if self.target_name is None:
            return f"ipv4:{self.net.sidecar(index)}:{self.target_port}"
        host, port = self.net.dns
        return f"dns://{host}:{port}/{self.target_name}:{self.target_port}"

    # -- processes --------------------------------------------------------------------------

    def _endpoints(self) -> list[tuple[str, int, bool]]:
        host, port = self.net.dns
        wanted = [(host, port, True), (host, port, False)]
        wanted += [
            (self.net.server(i), self.port, False) for i in range(1, self.options.scale_to + 1)
        ]
        envoy_ports = envoy.listener_ports(self.envoy_config) if self.envoy_config else []
        if self.ov.proxy_replicas is not None:
            for i in range(1, max(self.options.proxy_scale_to, self.ov.proxy_replicas) + 1):
                wanted += [(self.net.proxy(i), p, False) for p in envoy_ports]
        if self.ov.sidecar:
            wanted += [(self.net.sidecar(i), p, False) for i in (1, 2) for p in envoy_ports]
        if self.kube_proxy:
            wanted += [(self.net.vip, self.target_port, False), (self.net.vip, 9901, False)]
        return wanted

    def _on_client_event(self, proc: Proc, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "client.response" and event.get("server_id"):
            answer = verdict.Answer(
                verdict.parse_timestamp(event["timestamp"]),
                str(event["server_id"]),
                1,
                str(event.get("client_id", proc.name)),
            )
            with self._lock:
                self.picture.answers.append(answer)
        elif kind == "client.error":
            with self._lock:
                self.picture.errors += 1

    def _on_dns_event(self, proc: Proc, event: dict[str, Any]) -> None:
        """Note when the client (not a proxy) looks its target name up: a re-resolution."""
        if (
            event.get("event") == "dns.query"
            and event.get("qtype") == "A"
            and self.target_name is not None
            and event.get("name") == self.target_name
            and not str(event.get("peer", "")).startswith(f"{self.net.dns[0]}:")
        ):
            with self._lock:
                self.picture.lookups.append(float(event["timestamp"]))

    def _start_dns(self, sup: Supervisor) -> None:
        host, port = self.net.dns
        proc = sup.start(
            "dns",
            [
                sys.executable,
                "-m",
                "hellolb_lab.dns",
                "--listen",
                f"{host}:{port}",
                "--zone",
                str(self.zone.path),
                "--ttl",
                str(dns.DEFAULT_TTL),
            ],
            on_event=self._on_dns_event,
        )
        proc.wait_event(lambda e: e.get("event") == "dns.started", self.options.startup_timeout)

    def _start_server(self, sup: Supervisor, i: int) -> Proc:
        ip = self.net.server(i)
        env = {
            **self.server_env,
            "POD_NAME": f"server-{i}",
            "POD_IP": ip,
            "NODE_NAME": "lab",
            "BIND_ADDRESS": ip,
        }
        proc = sup.start(f"server-{i}", [sys.executable, "-m", "hello_server"], env)
        self.servers.append(proc)
        self.picture.servers[f"server-{i}"] = time.time()
        return proc

    def _wait_servers(self, procs: list[Proc]) -> None:
        for proc in procs:
            proc.wait_event(
                lambda e: e.get("event") == "server.started", self.options.startup_timeout
            )

    def _start_envoy(self, sup: Supervisor, name: str, ip: str, config: dict[str, Any]) -> Proc:
        binary = find_binary("envoy")
        path = envoy.write(config, self.log_dir / f"{name}.envoy.yaml")
        proc = sup.start(name, envoy.argv(binary, path, self.ov.envoy_args), {"POD_NAME": name})
        admin = self._admin(ip, config)
        envoy.wait_ready(admin, self.options.startup_timeout, alive=proc.running)
        return proc

    @staticmethod
    def _admin(ip: str, config: dict[str, Any]) -> tuple[str, int]:
        sa = config["admin"]["address"]["socket_address"]
        return (sa.get("address", ip), int(sa["port_value"]))

    def _start_proxy(self, sup: Supervisor, i: int) -> Proc:
        assert self.envoy_config is not None
        config = envoy.adapt(self.envoy_config, dns=self.net.dns, listen_ip=self.net.proxy(i))
        proc = self._start_envoy(sup, f"proxy-{i}", self.net.proxy(i), config)
        self.proxies.append(proc)
        return proc

    def _start_client(self, sup: Supervisor, index: int) -> Proc:
        if self.ov.sidecar:
            assert self.envoy_config is not None
            ip = self.net.sidecar(index)
            config = envoy.adapt(self.envoy_config, dns=self.net.dns, listen_ip=ip)
            self._start_envoy(sup, f"client-{index}-envoy", ip, config)
        env = {
            **self.client_env,
            "SERVER_ADDRESS": self.client_target(index),
            "POD_NAME": f"client-{index}",
            "POD_IP": "127.0.0.1",
            "NODE_NAME": "lab",
        }
        proc = sup.start(
            f"client-{index}",
            [sys.executable, "-m", "hello_client"],
            env,
            on_event=self._on_client_event,
        )
        self.clients.append(proc)
        proc.wait_event(lambda e: e.get("event") == "client.ready", self.options.startup_timeout)
        return proc

    def _publish_servers(self, count: int) -> None:
        ips = [self.net.server(i) for i in range(1, count + 1)]
        names = [name for name, _ in envoy.dns_names(self.envoy_config or {})]
        if self.kube_proxy:
            names.append(self._endpoints_name())
        elif self.target_name is not None and not self.target_is_proxy:
            names.append(self.target_name)
        for name in names:
            self.zone.publish(name, ips)
        host, port = self.net.dns
        for name in names:
            dns.wait_answers(host, port, name, ips, timeout=5)

    def _publish_proxies(self, count: int) -> None:
        assert self.target_name is not None
        ips = [self.net.proxy(i) for i in range(1, count + 1)]
        self.zone.publish(self.target_name, ips)
        dns.wait_answers(*self.net.dns, self.target_name, ips, timeout=5)

    def _endpoints_name(self) -> str:
        return f"endpoints.server.{self.ov.namespace}.lab"

    def _proxy_requests(self) -> dict[str, int]:
        """Requests each proxy replica has received so far (its Envoy counters)."""
        out = {}
        for i, proc in enumerate(self.proxies, start=1):
            admin = (self.net.proxy(i), self._admin(self.net.proxy(i), self._proxy_config(i))[1])
            stats = envoy.counters(admin, "http\\.")
            out[proc.name] = sum(
                v
                for k, v in stats.items()
                if k.endswith(".downstream_rq_total") and not k.startswith("http.admin.")
            )
        return out

    def _proxy_config(self, i: int) -> dict[str, Any]:
        assert self.envoy_config is not None
        return envoy.adapt(self.envoy_config, dns=self.net.dns, listen_ip=self.net.proxy(i))

    # -- the timeline -----------------------------------------------------------------------

    def _mark(self, label: str) -> float:
        t = time.time()
        self.marks.append((t, label))
        self.picture.marks.append((t, label))
        return t

    def _phase(
        self, sup: Supervisor, seconds: float, done: Callable[[], bool] | None = None
    ) -> None:
        """Run ``seconds`` (less if ``done()``), redrawing and watching the children."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            sup.check_alive()
            with self._lock:
                self.view.update(self.picture)
            if done is not None and done():
                return
            time.sleep(0.1)

    def _all_new_reached_since(self, scale_at: float, new: list[str]) -> float | None:
        first: dict[str, float] = {}
        with self._lock:
            for a in self.picture.answers:
                if a.t >= scale_at and a.server_id in new:
                    first.setdefault(a.server_id, a.t)
        return max(first.values()) if len(first) == len(new) else None

    def run(self) -> RunResult:
        opts, ov = self.options, self.ov
        if self.log_dir.exists():
            shutil.rmtree(self.log_dir)
        self.log_dir.mkdir(parents=True)
        if ov.uses_envoy or self.kube_proxy:
            find_binary("envoy")
        check_all_free(self._endpoints())
        first = ov.server_replicas
        if opts.scale_to <= first:
            raise LabError(f"--scale-to must exceed the overlay's {first} server replicas")
        proxy_requests: dict[str, dict[str, int]] = {}
        with Supervisor(self.log_dir) as sup:
            self._start_dns(sup)
            self._wait_servers([self._start_server(sup, i) for i in range(1, first + 1)])
            self._publish_servers(first)
            if self.kube_proxy:
                config = envoy.clusterip_config(
                    vip=self.net.vip,
                    port=self.target_port,
                    endpoints_name=self._endpoints_name(),
                    dns=self.net.dns,
                )
                self._start_envoy(sup, "clusterip", self.net.vip, config)
                self.zone.publish(self.target_name or "", [self.net.vip])
            if ov.proxy_replicas is not None:
                for i in range(1, ov.proxy_replicas + 1):
                    self._start_proxy(sup, i)
                self._publish_proxies(ov.proxy_replicas)
            self.picture.start = time.time()
            self._start_client(sup, 1)
            self._phase(sup, opts.warmup)

            new_ids = [f"server-{i}" for i in range(first + 1, opts.scale_to + 1)]
            self._wait_servers(
                [self._start_server(sup, i) for i in range(first + 1, opts.scale_to + 1)]
            )
            self._publish_servers(opts.scale_to)
            scale_at = self._mark(f"servers {first} -> {opts.scale_to} in DNS")

            def reached_and_steady() -> bool:
                t = self._all_new_reached_since(scale_at, new_ids)
                return t is not None and time.time() >= t + opts.steady

            wait_steady = self.bound is not None and opts.after is None
            self._phase(
                sup,
                self.after + (opts.steady if wait_steady else 0),
                reached_and_steady if wait_steady else None,
            )

            if ov.proxy_replicas is not None:
                before = self._proxy_requests()
                for i in range(ov.proxy_replicas + 1, opts.proxy_scale_to + 1):
                    self._start_proxy(sup, i)
                self._publish_proxies(opts.proxy_scale_to)
                self._mark(f"proxies {ov.proxy_replicas} -> {opts.proxy_scale_to} in DNS")
                self._phase(sup, opts.idle)
                at_restart = self._proxy_requests()
                self._restart_client(sup)
                self._phase(sup, opts.restart)
                at_end = self._proxy_requests()
                added = [p.name for p in self.proxies[ov.proxy_replicas :]]
                proxy_requests = {
                    "before_restart": {p: at_restart[p] - before.get(p, 0) for p in added},
                    "after_restart": {p: at_end[p] - at_restart[p] for p in added},
                    "total": at_end,
                }
            elif self.kube_proxy:
                self._restart_client(sup)
                self._phase(sup, opts.restart)
            end = self.end = time.time()
            for client in self.clients:
                sup.stop(client)
        return self._result(scale_at, end, first, proxy_requests)

    def _restart_client(self, sup: Supervisor) -> None:
        old = self.clients[-1]
        sup.stop(old)
        self._mark(f"client restarted ({old.name} -> client-{len(self.clients) + 1})")
        self._start_client(sup, len(self.clients) + 1)

    def _result(
        self, scale_at: float, end: float, first: int, proxy_requests: dict[str, dict[str, int]]
    ) -> RunResult:
        events = [e for c in self.clients for e in c.snapshot()]
        answers = verdict.answers_from_events(events)
        extra: dict[str, Any] = {}
        if proxy_requests:
            extra["proxy_requests"] = {
                k: proxy_requests[k] for k in ("before_restart", "after_restart")
            }
        result = verdict.judge(
            self.scenario,
            answers,
            scale_at=scale_at,
            servers_before=[f"server-{i}" for i in range(1, first + 1)],
            servers_after=[f"server-{i}" for i in range(1, self.options.scale_to + 1)],
            end=end,
            failed_rpcs=verdict.failed_rpcs(events),
            extra=extra,
        )
        checks = verdict.expected(self.scenario, result, reach_bound_s=self.bound)
        ready = {
            str(e.get("client_id")): verdict.parse_timestamp(e["timestamp"])
            for e in events
            if e.get("event") == "client.ready"
        }
        # Latency of the settled client: from one second after it was ready.
        latencies = [
            float(e["latency_ms"])
            for e in events
            if e.get("event") == "client.response"
            and verdict.parse_timestamp(e["timestamp"])
            >= ready.get(str(e.get("client_id")), 0.0) + 1.0
        ]
        latencies.sort()
        p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
        latency = {
            "p50": None if p50 is None else round(p50, 3),
            "p99": None if p99 is None else round(p99, 3),
            "mean": round(statistics.fmean(latencies), 3) if latencies else None,
            "count": len(latencies),
        }
        return RunResult(
            scenario=self.scenario,
            verdict=result,
            checks=checks,
            bound=self.bound,
            marks=self.marks,
            settings=self.settings(),
            latency_ms=latency,
            proxy_requests=proxy_requests,
            log_dir=str(self.log_dir),
            picture=self.picture,
        )


def run(scenario: str, options: Options | None = None, view: LiveView | None = None) -> RunResult:
    """Run one scenario's timeline and judge it."""
    lab = Lab(scenario, options or Options(), view)
    try:
        return lab.run()
    finally:
        if view is not None:
            view.finish(lab.picture, lab.end)
