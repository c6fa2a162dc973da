"""Start one kind of program each and wait until it is ready, by the event it logs then.

The stage, the uneven-balancing lab, the xDS tests and the xDS benchmark all start processes
through these, under a :class:`~hellolb_lab.procs.Supervisor`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from hellolb_lab import dns
from hellolb_lab.errors import LabError
from hellolb_lab.procs import Proc, Supervisor
from hellolb_lab.xds import stream as xds

#: The server's log event once it listens (hello_server writes it).
SERVER_STARTED = "server.started"
#: Seconds within which the lab DNS (and the xDS control plane) must take up a change it was
#: just given.
DNS_PUBLISH_TIMEOUT_S = 5.0

EventHandler = Callable[[Proc, dict[str, Any]], None]


def wait_ready(proc: Proc, event: str, timeout: float) -> dict[str, Any]:
    """The event ``proc`` logs once it is ready, waited for at most ``timeout`` seconds."""
    return proc.wait_event(lambda e: e.get("event") == event, timeout)


def start_dns(
    sup: Supervisor,
    listen: tuple[str, int],
    zone: Path,
    timeout: float,
    on_event: EventHandler | None = None,
) -> Proc:
    """The lab DNS server answering from ``zone``, once it serves."""
    argv = [sys.executable, "-m", "hellolb_lab.dns", "--listen", f"{listen[0]}:{listen[1]}"]
    argv += ["--zone", str(zone), "--ttl", str(dns.DEFAULT_TTL)]
    proc = sup.start("dns", argv, on_event=on_event)
    wait_ready(proc, dns.STARTED, timeout)
    return proc


def start_servers(
    sup: Supervisor, servers: Iterable[tuple[str, Mapping[str, str]]], timeout: float
) -> list[Proc]:
    """Start a hello_server per ``(name, environment)``, side by side, then wait until every
    one listens."""
    argv = [sys.executable, "-m", "hello_server"]
    started = [sup.start(name, argv, env) for name, env in servers]
    for proc in started:
        wait_ready(proc, SERVER_STARTED, timeout)
    return started


def start_client(
    sup: Supervisor, name: str, env: Mapping[str, str], on_event: EventHandler | None = None
) -> Proc:
    """A hello_client; wait for it with ``wait_ready(proc, client.READY, ...)`` where needed."""
    return sup.start(name, [sys.executable, "-m", "hello_client"], env, on_event=on_event)


def start_control_plane(
    sup: Supervisor,
    name: str,
    argv: list[str],
    timeout: float,
    on_event: EventHandler | None = None,
) -> Proc:
    """The lab's xDS control plane, once it serves; :class:`LabError` with its reason if it
    cannot listen."""
    proc = sup.start(name, argv, on_event=on_event)
    first = proc.wait_event(lambda e: e.get("event") in (xds.STARTED, xds.STOPPED), timeout)
    if first["event"] == xds.STOPPED:
        raise LabError(f"{name} stopped: {first.get('reason')}; log: {proc.log_path}")
    return proc
