"""Start the xDS lab's processes under a :class:`~hellolb_lab.procs.Supervisor`.

The control plane, the servers it publishes and the clients that use it, each a real process
stopped by its PID. The tests, the benchmark and the lab's timeline start them the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hellolb_lab import clientlog
from hellolb_lab.procs import Proc, Supervisor
from hellolb_lab.xds import stream
from hellolb_lab.xds.bootstrap import grpc_bootstrap_json


def control_plane_argv(
    listen: tuple[str, int],
    zone: Path,
    services: Iterable[str],
    *,
    lb_policy: str | None = None,
    lb_policy_file: Path | None = None,
) -> list[str]:
    """``python -m hellolb_lab.xds ...`` for ``services`` (``LISTENER=ZONE_NAME[:PORT]``)."""
    argv = [sys.executable, "-m", "hellolb_lab.xds", "--listen", f"{listen[0]}:{listen[1]}"]
    argv += ["--zone", str(zone)]
    for service in services:
        argv += ["--service", service]
    if lb_policy is not None:
        argv += ["--lb-policy", lb_policy]
    if lb_policy_file is not None:
        argv += ["--lb-policy-file", str(lb_policy_file)]
    return argv


def start_control_plane(sup: Supervisor, name: str, argv: list[str], timeout: float = 30.0) -> Proc:
    """Start the control plane and wait until it serves (``xds.started``)."""
    proc = sup.start(name, argv)
    proc.wait_event(lambda e: e.get("event") in (stream.STARTED, stream.STOPPED), timeout)
    return proc


def start_server(
    sup: Supervisor,
    server_id: str,
    ip: str,
    port: int,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> Proc:
    """A hello_server on ``ip:port``, waited for until it serves."""
    full = {
        "BIND_ADDRESS": ip,
        "PORT": str(port),
        "SERVER_ID": server_id,
        "POD_IP": ip,
        "LOG_FORMAT": "json",
        **(env or {}),
    }
    proc = sup.start(server_id, [sys.executable, "-m", "hello_server"], full)
    proc.wait_event(lambda e: e.get("event") == "server.started", timeout)
    return proc


def client_env(target: str, xds: tuple[str, int], client_id: str, **extra: str) -> dict[str, str]:
    """A hello_client's environment for an ``xds:`` target, bootstrap included.

    The bootstrap's node id is the client id, so the control plane's log names the client.
    """
    authority = target[len("xds://") :].partition("/")[0] if target.startswith("xds://") else ""
    bootstrap = grpc_bootstrap_json(
        f"{xds[0]}:{xds[1]}", client_id, authorities=[authority] if authority else []
    )
    return {
        "SERVER_ADDRESS": target,
        "GRPC_XDS_BOOTSTRAP_CONFIG": bootstrap,
        "CLIENT_ID": client_id,
        "LOG_FORMAT": "json",
        **extra,
    }


def start_client(sup: Supervisor, client_id: str, env: Mapping[str, str]) -> Proc:
    return sup.start(client_id, [sys.executable, "-m", "hello_client"], env)


def answers(proc: Proc, server_id: str | None = None, since: float = 0.0) -> list[float]:
    """Times (epoch seconds) of the client's answers from ``server_id`` (any) at or after
    ``since``."""
    out = []
    for event in proc.snapshot():
        if not clientlog.is_response(event):
            continue
        if server_id is not None and event.get("server_id") != server_id:
            continue
        t = clientlog.parse_timestamp(event["timestamp"])
        if t >= since:
            out.append(t)
    return out


def first_answer(proc: Proc, server_id: str, since: float) -> float | None:
    """The time of the first answer from ``server_id`` at or after ``since``, if any."""
    times = answers(proc, server_id, since)
    return min(times) if times else None


def events(proc: Proc, name: str, **fields: Any) -> list[dict[str, Any]]:
    """The logged events called ``name`` whose fields match."""
    return [
        e
        for e in proc.snapshot()
        if e.get("event") == name and all(e.get(k) == v for k, v in fields.items())
    ]
