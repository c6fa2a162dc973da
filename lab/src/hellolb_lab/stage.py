"""Run second: the processes of one planned run, started, published, watched and drawn.

A :class:`Stage` does what its :class:`~hellolb_lab.plan.Plan` says and nothing else: it starts
the lab DNS, the xDS control plane, the servers, the Envoys and the clients under one
:class:`~hellolb_lab.procs.Supervisor`, puts addresses into DNS (and so into xDS) only once their
processes are ready (as endpoints appear only for ready pods), and keeps the
:class:`~hellolb_lab.view.Picture` up to date from the log lines of the client, the DNS server and
the control plane (a mark each time it pushes a client a new list of servers). The order of
these steps is the timeline's (:mod:`hellolb_lab.timeline`).

Its processes are started by :mod:`hellolb_lab.launchers`.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from hello_client import events as client

from hellolb_lab import clientlog, dns, envoy, streamverdict
from hellolb_lab.launchers import (
    DNS_PUBLISH_TIMEOUT_S,
    SERVER_STARTED,
    start_client,
    start_control_plane,
    start_dns,
    wait_ready,
)
from hellolb_lab.plan import EnvoyProcess, Plan
from hellolb_lab.polling import poll, wait_until
from hellolb_lab.procs import Proc, Supervisor, find_binary
from hellolb_lab.view import PUSH_MARK, LiveView, Picture
from hellolb_lab.xds import stream as xds


class Stage:
    """The running processes of one run, and the picture the view draws of them."""

    def __init__(self, plan: Plan, sup: Supervisor, view: LiveView) -> None:
        self.plan = plan
        self.sup = sup
        self.view = view
        self.zone = dns.Zone(plan.log_dir / "zone.json")
        self.picture = Picture(title=plan.scenario.name, start=time.time())
        self.clients: list[Proc] = []
        self.proxies: list[Proc] = []
        #: The running server pod of each index, and the indices in DNS (the endpoints).
        self.servers: dict[int, Proc] = {}
        self.endpoints: list[int] = []
        self.control_planes: list[Proc] = []
        self.marks: list[tuple[float, str]] = []
        #: Requests per proxy replica at named moments (see :meth:`count_proxy_requests`).
        self.proxy_requests: dict[str, dict[str, int]] = {}
        #: What each phase did, by its name, for the judging (:mod:`hellolb_lab.phases`).
        self.records: dict[str, Any] = {}
        #: Times the servers were published while the xDS control plane ran, and their
        #: addresses: what it pushed at once.
        self.xds_publications: list[tuple[float, tuple[str, ...]]] = []
        #: When the phase after the scale-up ended and the scenario's own phases began.
        self.after_end: float | None = None
        self._pushed: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()

    # -- starting ---------------------------------------------------------------------------

    def start_dns(self) -> None:
        start_dns(self.sup, self.plan.net.dns, self.zone.path, self._timeout, self._on_dns_event)

    def start_control_plane(self) -> float:
        """Start the xDS control plane (again); the time it serves."""
        plane = self.plan.control_plane
        assert plane is not None
        n = len(self.control_planes) + 1
        name = "xds" if n == 1 else f"xds-{n}"
        argv = plane.argv(self.zone.path)
        proc = start_control_plane(self.sup, name, argv, self._timeout, self._on_xds_event)
        self.control_planes.append(proc)
        return time.time()

    def stop_control_plane(self) -> None:
        """Stop the xDS control plane (SIGTERM), and wait until it has exited."""
        self.sup.stop(self.control_planes[-1])

    @property
    def control_plane_running(self) -> bool:
        return bool(self.control_planes) and self.control_planes[-1].running()

    def start_servers(self, first: int, last: int) -> None:
        """Start servers ``first..last`` and wait until every one listens."""
        started = [self.launch_server(i) for i in range(first, last + 1)]
        for proc in started:
            wait_ready(proc, SERVER_STARTED, self._timeout)

    def launch_server(self, i: int, restarts: int = 0) -> Proc:
        """Start server ``i`` (its container again, after ``restarts`` crashes) without waiting."""
        spec = self.plan.server(i)
        name = spec.name if not restarts else f"{spec.name}.restart-{restarts}"
        proc = self.sup.start(name, [sys.executable, "-m", "hello_server"], spec.env)
        self.servers[i] = proc
        self.picture.servers.setdefault(spec.name, time.time())
        return proc

    @staticmethod
    def listening(proc: Proc) -> bool:
        """The server has logged that it listens (in the lab, a pod is ready from then on)."""
        return any(e.get("event") == SERVER_STARTED for e in proc.snapshot())

    def start_envoy(self, spec: EnvoyProcess) -> Proc:
        path = envoy.write(dict(spec.config), self.plan.log_dir / f"{spec.name}.envoy.yaml")
        argv = envoy.argv(find_binary("envoy"), path, self.plan.overlay.envoy_args)
        proc = self.sup.start(spec.name, argv, {"POD_NAME": spec.name})
        envoy.wait_ready(spec.admin, self._timeout, alive=proc.running)
        return proc

    def start_proxies(self, first: int, last: int) -> None:
        for i in range(first, last + 1):
            self.proxies.append(self.start_envoy(self.plan.proxy(i)))

    def start_client(self) -> Proc:
        """Start the next client (with its sidecar, where the overlay has one); wait until ready."""
        index = len(self.clients) + 1
        if self.plan.overlay.sidecar:
            self.start_envoy(self.plan.sidecar(index))
        if self.plan.control_plane is not None:
            bootstrap = self.plan.control_plane.client_bootstrap(f"client-{index}")
            self.plan.bootstrap_path(index).write_text(json.dumps(bootstrap, indent=1))
        spec = self.plan.client(index)
        proc = start_client(self.sup, spec.name, spec.env, self._on_client_event)
        self.clients.append(proc)
        wait_ready(proc, client.READY, self._timeout)
        return proc

    def restart_client(self) -> None:
        """Stop the newest client (SIGTERM: its final summary) and start a new one."""
        old = self.clients[-1]
        self.sup.stop(old)
        self.mark(f"client restarted ({old.name} -> client-{len(self.clients) + 1})")
        self.start_client()

    def stop_clients(self) -> float:
        """Stop every client; the time the run ended."""
        end = time.time()
        for proc in self.clients:
            self.sup.stop(proc)
        return end

    @property
    def _timeout(self) -> float:
        return self.plan.options.startup_timeout

    # -- DNS --------------------------------------------------------------------------------

    def publish(self, names: list[str], ips: list[str]) -> None:
        """Make every one of ``names`` answer ``ips``, and wait until the DNS server does, and
        the xDS control plane too while it runs."""
        plane = self.plan.control_plane
        pushed = plane is not None and plane.zone_name in names and self.control_plane_running
        if pushed:
            self.xds_publications.append((time.time(), tuple(ips)))
        for name in names:
            self.zone.publish(name, ips)
        host, port = self.plan.net.dns
        for name in names:
            dns.wait_answers(host, port, name, ips, timeout=DNS_PUBLISH_TIMEOUT_S)
        if pushed:
            wait_until(
                lambda: self._serving() == tuple(sorted(ips)),
                DNS_PUBLISH_TIMEOUT_S,
                f"the xDS control plane to serve {', '.join(ips)}",
                interval=0.01,
            )

    def _serving(self) -> tuple[str, ...] | None:
        """The server addresses the running control plane serves now (its last zone event)."""
        plane = self.plan.control_plane
        assert plane is not None
        zones = [e for e in self.control_planes[-1].snapshot() if e.get("event") == xds.ZONE]
        return tuple(sorted(zones[-1]["endpoints"].get(plane.listener, []))) if zones else None

    def publish_servers(self, count: int) -> None:
        self.publish_endpoints(list(range(1, count + 1)))

    def publish_endpoints(self, servers: list[int]) -> None:
        """Make the servers' names answer exactly the addresses of ``servers`` (by index)."""
        self.endpoints = sorted(servers)
        ips = [self.plan.net.server(i) for i in self.endpoints]
        self.publish(self.plan.server_names(), ips)

    def publish_target(self, ips: list[str]) -> None:
        """Point the client's target name at ``ips`` (the proxies, or the virtual address)."""
        assert self.plan.target.name is not None
        self.publish([self.plan.target.name], ips)

    # -- watching ---------------------------------------------------------------------------

    def mark(self, label: str, t: float | None = None) -> float:
        """Mark an event on the picture, now or at ``t``; its time."""
        t = time.time() if t is None else t
        with self._lock:
            self.marks.append((t, label))
            self.picture.marks.append((t, label))
        return t

    def hold(
        self, seconds: float, done: Callable[[], bool] | None = None, interval: float = 0.1
    ) -> bool:
        """Let the run go on for ``seconds`` (less once ``done()``), redrawing and making sure
        every process the run still needs is alive; whether ``done()`` came true."""

        def tick() -> bool | None:
            self.sup.check_alive()
            with self._lock:
                self.view.update(self.picture)
            return True if done is not None and done() else None

        return poll(tick, seconds, interval=interval) is not None

    def busiest_server(self, seconds: float = 1.0) -> int:
        """The server in DNS that answered the most in the last ``seconds``, by index; in
        stream mode, the one that holds the most open streams now (a server that answered a
        moment ago may have ended its streams since)."""
        now = time.time()
        if self.plan.streams:
            lives, _ = clientlog.stream_lives(self.client_events())
            counts = Counter(streamverdict.open_at(lives, now))
        else:
            with self._lock:
                counts = Counter(a.server_id for a in self.picture.answers if a.t >= now - seconds)
        return max(self.endpoints, key=lambda i: (counts[self.plan.server(i).name], -i))

    def all_reached_since(self, since: float, servers: list[str]) -> float | None:
        """When the last of ``servers`` first answered after ``since``; None if one has not."""
        first: dict[str, float] = {}
        with self._lock:
            for a in self.picture.answers:
                if a.t >= since and a.server_id in servers:
                    first.setdefault(a.server_id, a.t)
        return max(first.values()) if len(first) == len(servers) else None

    def count_proxy_requests(self, moment: str) -> None:
        """Note the requests each proxy replica has received so far (its Envoy counters)."""
        counts = {}
        for i, proc in enumerate(self.proxies, start=1):
            stats = envoy.counters(self.plan.proxy(i).admin, "http\\.")
            counts[proc.name] = sum(
                v
                for k, v in stats.items()
                if k.endswith(".downstream_rq_total") and not k.startswith("http.admin.")
            )
        self.proxy_requests[moment] = counts

    def client_events(self) -> list[dict[str, Any]]:
        return [e for proc in self.clients for e in proc.snapshot()]

    def _on_client_event(self, proc: Proc, event: dict[str, Any]) -> None:
        if clientlog.is_response(event) or clientlog.is_tick(event):
            with self._lock:
                self.picture.answers.extend(clientlog.answers_of(event))
        elif clientlog.is_error(event):
            with self._lock:
                self.picture.errors += 1
                if client.TIMESTAMP in event:
                    self.picture.failed.append(clientlog.parse_timestamp(event[client.TIMESTAMP]))
        elif clientlog.is_limited(event):
            with self._lock:
                self.picture.limited += 1

    def _on_dns_event(self, proc: Proc, event: dict[str, Any]) -> None:
        """Note when the client (not a proxy, not the lab) looks its target name up."""
        name = self.plan.target.name
        if (
            event.get("event") == dns.QUERY
            and event.get("qtype") == "A"
            and name is not None
            and event.get("name") == name
            and not str(event.get("peer", "")).startswith(f"{self.plan.net.dns[0]}:")
        ):
            with self._lock:
                self.picture.lookups.append(float(event["timestamp"]))

    def _on_xds_event(self, proc: Proc, event: dict[str, Any]) -> None:
        """Mark each time the control plane pushes a client a list of servers it did not have."""
        if event.get("event") != xds.PUSH or event.get("type") != "EDS":
            return
        node = str(event.get("node"))
        endpoints = tuple(sorted(ep for eps in event["endpoints"].values() for ep in eps))
        if self._pushed.get(node) != endpoints:
            self._pushed[node] = endpoints
            label = f"{PUSH_MARK} {len(endpoints)} servers to {node}"
            self.mark(label, float(event["timestamp"]))
