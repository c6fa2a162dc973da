"""Compute first: a scenario's run as a frozen plan, from its record, its overlay and the options.

A plan says everything a run will do before anything starts: every process's name, address and
environment, the client's target and what answers it, the DNS names to publish, the addresses
and ports to check, the reach bound and the phase lengths. It starts nothing and reads no clock,
so it can be tested without a process.

What runs where is read from the overlay, not from the scenario's name (:class:`Front`):

- a client target whose Service is headless is answered with the servers' addresses;
- a ClusterIP Service gets the kube-proxy stand-in (an Envoy TCP proxy on a virtual address);
- a ``proxy`` Deployment runs the ConfigMap's Envoy once per replica, each on its own address,
  and the client target ``proxy`` is answered with the proxies' addresses;
- an Envoy container in the client pod runs the ConfigMap's Envoy next to each client;
- an ``xds:`` target gets the lab's xDS control plane, standing in for the cluster's: it serves
  the listener the client asks for (``<service>.<namespace>:<port>``, as wongnai/xds names a
  Service port) with the addresses of the Service's Endpoints, and each client gets the
  overlay's bootstrap, pointed at the lab's control plane and naming the client
  (:mod:`hellolb_lab.controlplane`).

At about 390 lines this module is longer than the others on purpose: :class:`Plan`'s methods are
the one place where each process of a run gets its name, address, environment and config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hello_client.config import MODES as CLIENT_MODES
from hello_client.config import ClientConfig
from hello_client.xds import BOOTSTRAP_CONFIG, BOOTSTRAP_FILE
from hello_server.config import ServerConfig

from hellolb_lab import bounds, dns, envoy, front
from hellolb_lab import overlay as overlays
from hellolb_lab.catalogue import Scenario
from hellolb_lab.controlplane import ControlPlane, endpoints_name, plan_control_plane
from hellolb_lab.errors import LabError
from hellolb_lab.front import Front, Target
from hellolb_lab.options import Net, Options

#: The client mode whose runs the stream checks judge.
STREAM_MODE = "streams"
#: The kube-proxy stand-in's own port for Envoy's admin interface.
KUBE_PROXY_ADMIN_PORT = 9901


class PhaseNeeds(Protocol):
    """What a phase needs from the plan (:class:`hellolb_lab.phases.base.Phase` has these)."""

    @property
    def servers_added(self) -> int: ...

    @property
    def clients_added(self) -> int: ...

    @property
    def second_server_set(self) -> bool: ...


@dataclass(frozen=True)
class Process:
    """One process of the run: its name (the pod name it stands for), address and environment."""

    name: str
    address: str
    env: Mapping[str, str]


@dataclass(frozen=True)
class EnvoyProcess:
    """One Envoy of the run and the config it runs."""

    name: str
    address: str
    config: Mapping[str, Any]

    @property
    def admin(self) -> tuple[str, int]:
        sa = self.config["admin"]["address"]["socket_address"]
        return (sa.get("address", self.address), int(sa["port_value"]))


@dataclass(frozen=True)
class Plan:
    """One run, computed. Build it with :func:`make`."""

    scenario: Scenario
    overlay: overlays.Overlay
    options: Options
    log_dir: Path
    server_env: Mapping[str, str]
    client_env: Mapping[str, str]
    #: The servers' and the client's settings, parsed once from those environments by the
    #: services' own config classes (the client's with its target set aside: :attr:`target`).
    server_config: ServerConfig
    client_config: ClientConfig
    server_port: int
    target: Target
    dns_refresh_s: float | None
    bound: float | None
    after_s: float
    #: Every phase a record may name, by name: the plan asks them what they need
    #: (:data:`hellolb_lab.phases.PHASES`, handed over by :func:`hellolb_lab.timeline.plan`).
    phase_needs: Mapping[str, PhaseNeeds] = dataclasses.field(default_factory=dict)
    control_plane: ControlPlane | None = None
    #: Stream mode: the seconds within which the servers' maximum age and grace cut a stream
    #: (:func:`bounds.stream_cut`), and the streams the client keeps open (0: not stream mode).
    stream_cut_s: tuple[float, float] | None = None
    stream_slots: int = 0

    @property
    def streams(self) -> bool:
        """The client runs in stream mode: the run is judged by the stream checks."""
        return self.stream_slots > 0

    @property
    def net(self) -> Net:
        return self.options.net

    @property
    def first_servers(self) -> int:
        return self.overlay.server_replicas

    @property
    def wait_steady(self) -> bool:
        """End the phase after the scale-up early, once the new servers answered steadily."""
        return self.bound is not None and self.options.after is None

    @property
    def phases(self) -> tuple[str, ...]:
        """The phases after the scale-up, by name: the record's, as the options choose."""
        chosen, skip = self.options.phases, self.options.skip
        names = (p.name for p in self.scenario.all_phases)
        return tuple(n for n in names if (chosen is None or n in chosen) and n not in skip)

    @property
    def clients(self) -> int:
        """Clients the run starts: the first, and those its phases add (a restart)."""
        return 1 + sum(self.phase_needs[n].clients_added for n in self.phases)

    @property
    def servers_total(self) -> int:
        """Servers the run starts: ``scale_to``, and those its phases add."""
        return self.options.scale_to + sum(self.phase_needs[n].servers_added for n in self.phases)

    @property
    def servers_ever(self) -> int:
        """Server pods the run may start: :attr:`servers_total`, and as many again where a phase
        replaces every server (a rollout)."""
        second = any(self.phase_needs[n].second_server_set for n in self.phases)
        return self.servers_total * (2 if second else 1)

    @property
    def registry(self) -> str:
        """Where the lab publishes the servers for the client to find them."""
        return "DNS" if self.control_plane is None else "xDS"

    @property
    def needs_envoy(self) -> bool:
        return self.overlay.uses_envoy or self.target.front is Front.KUBE_PROXY

    def server_ids(self, first: int, last: int) -> list[str]:
        return [f"server-{i}" for i in range(first, last + 1)]

    def server(self, i: int) -> Process:
        ip = self.net.server(i)
        pod = {"POD_NAME": f"server-{i}", "POD_IP": ip, "NODE_NAME": "lab", "BIND_ADDRESS": ip}
        return Process(f"server-{i}", ip, {**self.server_env, **pod})

    def client_target(self, index: int) -> str:
        if self.target.front is Front.CONTROL_PLANE:
            return self.target.address
        if self.target.name is None:
            return f"ipv4:{self.net.sidecar(index)}:{self.target.port}"
        host, port = self.net.dns
        return f"dns://{host}:{port}/{self.target.name}:{self.target.port}"

    def bootstrap_path(self, index: int) -> Path:
        """Where client ``index``'s xDS bootstrap is written (the lab's ConfigMap mount)."""
        return self.log_dir / f"client-{index}.xds-bootstrap.json"

    def client(self, index: int) -> Process:
        name = f"client-{index}"
        pod = {"POD_NAME": name, "POD_IP": "127.0.0.1", "NODE_NAME": "lab"}
        env = {**self.client_env, "SERVER_ADDRESS": self.client_target(index), **pod}
        if self.control_plane is not None:
            env.pop(BOOTSTRAP_CONFIG, None)
            env[BOOTSTRAP_FILE] = str(self.bootstrap_path(index))
        return Process(name, "127.0.0.1", env)

    def _envoy(self, name: str, ip: str) -> EnvoyProcess:
        if self.overlay.envoy_config is None:
            raise LabError(f"{self.scenario.name}: the overlay runs no Envoy")
        config = envoy.adapt(self.overlay.envoy_config, dns=self.net.dns, listen_ip=ip)
        return EnvoyProcess(name, ip, config)

    def proxy(self, i: int) -> EnvoyProcess:
        return self._envoy(f"proxy-{i}", self.net.proxy(i))

    def sidecar(self, index: int) -> EnvoyProcess:
        return self._envoy(f"client-{index}-envoy", self.net.sidecar(index))

    @property
    def endpoints_name(self) -> str:
        """The name the kube-proxy and control plane stand-ins read the servers from (the
        server Service's Endpoints)."""
        return endpoints_name(self.overlay.namespace)

    def kube_proxy(self) -> EnvoyProcess:
        vip = self.net.vip
        config = envoy.clusterip_config(
            vip=vip,
            port=self.target.port,
            endpoints_name=self.endpoints_name,
            dns=self.net.dns,
            admin_port=KUBE_PROXY_ADMIN_PORT,
        )
        return EnvoyProcess("clusterip", vip, config)

    def server_names(self) -> list[str]:
        """The zone names that list the servers: Envoy's clusters, and the client's target when
        it names the servers (directly, or through the kube-proxy or control plane stand-in),
        as the zone holds them: fully qualified names lose their trailing dot."""
        config = dict(self.overlay.envoy_config or {})
        names = [dns.normalize(name) for name, _ in envoy.dns_names(config)]
        if self.target.front in (Front.KUBE_PROXY, Front.CONTROL_PLANE):
            names.append(self.endpoints_name)
        elif self.target.front is Front.SERVERS and self.target.name is not None:
            names.append(self.target.name)
        return names

    def endpoints(self) -> list[tuple[str, int, bool]]:
        """Every ``(host, port, udp)`` the run will bind, checked before anything starts."""
        host, port = self.net.dns
        wanted = [(host, port, True), (host, port, False)]
        servers = range(1, self.servers_ever + 1)
        wanted += [(self.net.server(i), self.server_port, False) for i in servers]
        if self.control_plane is not None:
            wanted.append((*self.control_plane.address, False))
        ports = envoy.listener_ports(dict(self.overlay.envoy_config or {}))
        if self.overlay.proxy_replicas is not None:
            proxies = max(self.options.proxy_scale_to, self.overlay.proxy_replicas)
            wanted += [(self.net.proxy(i), p, False) for i in range(1, proxies + 1) for p in ports]
        if self.overlay.sidecar:
            clients = range(1, self.clients + 1)
            wanted += [(self.net.sidecar(i), p, False) for i in clients for p in ports]
        if self.target.front is Front.KUBE_PROXY:
            vip = self.net.vip
            wanted += [(vip, self.target.port, False), (vip, KUBE_PROXY_ADMIN_PORT, False)]
        return wanted

    def settings(self) -> dict[str, Any]:
        """What the run used, as ``--json`` writes it."""
        opts = self.options
        return {
            "net": self.net.prefix,
            "dns": f"{self.net.dns[0]}:{self.net.dns[1]}",
            "server_replicas": self.first_servers,
            "scale_to": opts.scale_to,
            "proxy_replicas": self.overlay.proxy_replicas,
            "server_env": dict(self.server_env),
            "client_env": {**self.client_env, "SERVER_ADDRESS": self.client_target(1)},
            "envoy_dns_refresh_s": self.dns_refresh_s,
            "xds": None
            if self.control_plane is None
            else {
                "address": "{}:{}".format(*self.control_plane.address),
                "service": self.control_plane.service,
            },
            "phases_s": {
                "warmup": opts.warmup,
                "after": self.after_s,
                "steady": opts.steady,
                "idle": opts.idle,
                "restart": opts.restart,
                "settle": opts.settle,
                "outage": opts.outage,
            },
            "phases": list(self.phases),
            "server_rollout": dataclasses.asdict(self.overlay.server_rollout),
            "server_stop": dataclasses.asdict(self.overlay.server_stop),
        }


def make(
    scenario: Scenario,
    options: Options,
    ov: overlays.Overlay | None = None,
    *,
    phases: Mapping[str, PhaseNeeds],
) -> Plan:
    """The plan of one run of ``scenario``, whose phases are among ``phases``; its overlay is
    rendered unless given."""
    if not scenario.in_lab:
        raise LabError(scenario.needs_cluster or f"{scenario.name} needs a cluster")
    ov = ov or overlays.load(scenario.name, options.k8s_dir)
    _check_choices(scenario, ov, options, phases)
    server_env, client_env = _server_env(ov, options), _client_env(ov, options)
    server = bounds.server_settings(scenario.name, server_env)
    client = bounds.client_settings(scenario.name, client_env)
    dns_refresh = _dns_refresh(ov)
    bound = bounds.reach_bound(
        scenario,
        server=server,
        client=client,
        envoy_config=ov.envoy_config,
        dns_refresh_s=dns_refresh,
    )
    after = options.after if options.after is not None else bound
    streams = client.mode == STREAM_MODE
    cut = bounds.stream_cut(server) if streams else None
    if cut is not None and options.after is None:
        # Streams reach new servers only when the first ones are cut: wait for that.
        after = max(after or 0.0, cut[1])
    target = front.resolve(scenario.name, ov, client_env.get("SERVER_ADDRESS", ""))
    return Plan(
        scenario=scenario,
        overlay=ov,
        options=options,
        log_dir=options.log_dir or _default_log_dir(scenario.name, options.k8s_dir),
        server_env=server_env,
        client_env=client_env,
        server_config=server,
        client_config=client,
        server_port=server.port,
        target=target,
        dns_refresh_s=dns_refresh,
        bound=bound,
        after_s=after if after is not None else options.headless_after,
        control_plane=plan_control_plane(
            scenario.name, ov, target, client_env, server.port, options
        ),
        stream_cut_s=cut,
        stream_slots=client.concurrency if streams else 0,
        phase_needs=phases,
    )


def _check_choices(
    scenario: Scenario, ov: overlays.Overlay, options: Options, phases: Mapping[str, PhaseNeeds]
) -> None:
    """:class:`LabError` for a scale-up that adds no server or a phase no one knows."""
    if options.scale_to <= ov.server_replicas:
        raise LabError(f"--scale-to must exceed the overlay's {ov.server_replicas} server replicas")
    for name in (*(p.name for p in scenario.all_phases), *(options.phases or ()), *options.skip):
        if name not in phases:
            known = ", ".join(phases)
            raise LabError(f"no phase {name!r}; the phases after the scale-up: {known}")


def _server_env(ov: overlays.Overlay, options: Options) -> dict[str, str]:
    """The servers' environment: the overlay's, the options' on top, logs in JSON."""
    env = {**ov.server_env, **options.server_env, "LOG_FORMAT": "json"}
    if options.work_time is not None:
        env["WORK_TIME"] = options.work_time
    return env


def _client_env(ov: overlays.Overlay, options: Options) -> dict[str, str]:
    """The client's environment: the overlay's, the options' on top, logs in JSON."""
    env = {
        **ov.client_env,
        "SUMMARY_INTERVAL": options.summary_interval,
        **options.client_env,
        "LOG_FORMAT": "json",
        "STARTUP_TIMEOUT": f"{options.startup_timeout:g}s",
    }
    if options.round_interval is not None:
        env["ROUND_INTERVAL"] = options.round_interval
    if options.client_mode is not None:
        if options.client_mode not in CLIENT_MODES:
            raise LabError(
                f"--client-mode must be one of {', '.join(CLIENT_MODES)}, "
                f"got {options.client_mode!r}"
            )
        env["CLIENT_MODE"] = options.client_mode
    return env


def _dns_refresh(ov: overlays.Overlay) -> float | None:
    """How often the overlay's Envoy resolves the servers again: its refresh rate, or the lab
    DNS's TTL where the config follows TTLs."""
    if ov.envoy_config is None:
        return None
    if any(c.get("respect_dns_ttl") for c in envoy.dns_clusters(dict(ov.envoy_config))):
        return float(dns.DEFAULT_TTL)
    return envoy.dns_refresh_seconds(dict(ov.envoy_config))


def _default_log_dir(name: str, k8s_dir: Path | None) -> Path:
    k8s = k8s_dir or overlays.find_k8s_dir()
    return k8s.parent / ".lab" / "runs" / name
