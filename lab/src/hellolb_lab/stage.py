"""Run second: the processes of one planned run, started, published, watched and drawn.

A :class:`Stage` does what its :class:`~hellolb_lab.plan.Plan` says and nothing else: it starts
the lab DNS, the servers, the Envoys and the clients under one
:class:`~hellolb_lab.procs.Supervisor`, puts addresses into DNS only once their processes are
ready (as endpoints appear only for ready pods), and keeps the :class:`~hellolb_lab.view.Picture`
up to date from the client's and the DNS server's log lines. The order of these steps is the
timeline's (:mod:`hellolb_lab.timeline`).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from hello_client import events as client

from hellolb_lab import clientlog, dns, envoy
from hellolb_lab.disruption import Window
from hellolb_lab.plan import EnvoyProcess, Plan
from hellolb_lab.polling import poll
from hellolb_lab.procs import Proc, Supervisor, find_binary
from hellolb_lab.view import LiveView, Picture

#: The server's log event once it listens (hello_server writes it).
SERVER_STARTED = "server.started"
#: Seconds within which the lab DNS must answer a change it was just given.
DNS_PUBLISH_TIMEOUT_S = 5.0


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
        self.marks: list[tuple[float, str]] = []
        #: Requests per proxy replica at named moments (see :meth:`count_proxy_requests`).
        self.proxy_requests: dict[str, dict[str, int]] = {}
        #: The phases in which servers left, by name, for the verdict.
        self.windows: dict[str, Window] = {}
        self._lock = threading.Lock()

    # -- starting ---------------------------------------------------------------------------

    def start_dns(self) -> None:
        host, port = self.plan.net.dns
        argv = [sys.executable, "-m", "hellolb_lab.dns", "--listen", f"{host}:{port}"]
        argv += ["--zone", str(self.zone.path), "--ttl", str(dns.DEFAULT_TTL)]
        proc = self.sup.start("dns", argv, on_event=self._on_dns_event)
        proc.wait_event(lambda e: e.get("event") == dns.STARTED, self._timeout)

    def start_servers(self, first: int, last: int) -> None:
        """Start servers ``first..last`` and wait until every one listens."""
        started = [self.launch_server(i) for i in range(first, last + 1)]
        for proc in started:
            proc.wait_event(lambda e: e.get("event") == SERVER_STARTED, self._timeout)

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
        spec = self.plan.client(index)
        argv = [sys.executable, "-m", "hello_client"]
        proc = self.sup.start(spec.name, argv, spec.env, on_event=self._on_client_event)
        self.clients.append(proc)
        proc.wait_event(lambda e: e.get("event") == client.READY, self._timeout)
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
        """Make every one of ``names`` answer ``ips``, and wait until the DNS server does."""
        for name in names:
            self.zone.publish(name, ips)
        host, port = self.plan.net.dns
        for name in names:
            dns.wait_answers(host, port, name, ips, timeout=DNS_PUBLISH_TIMEOUT_S)

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

    def mark(self, label: str) -> float:
        t = time.time()
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
        """The server in DNS that answered the most in the last ``seconds``, by index."""
        since = time.time() - seconds
        with self._lock:
            counts = Counter(a.server_id for a in self.picture.answers if a.t >= since)
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
        if clientlog.is_response(event):
            with self._lock:
                self.picture.answers.extend(clientlog.answers_of(event))
        elif clientlog.is_error(event):
            with self._lock:
                self.picture.errors += 1

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
