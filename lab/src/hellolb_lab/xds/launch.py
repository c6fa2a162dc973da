"""What the xDS lab's processes need, and what their logs say.

The control plane's command line, a server's and an xDS client's environment, and the answers
and events in their logs. Starting them is :mod:`hellolb_lab.stage`'s job, the same for the
lab's timeline, the tests and the benchmark.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from hello_client import events as client

from hellolb_lab import clientlog
from hellolb_lab.procs import Proc
from hellolb_lab.xds import stream
from hellolb_lab.xds.bootstrap import grpc_bootstrap_json


def control_plane_argv(
    listen: tuple[str, int],
    zone: Path,
    services: Iterable[str],
    *,
    lb_policy: str | None = None,
    lb_policy_file: Path | None = None,
    splits: Iterable[str] = (),
    weight_file: Path | None = None,
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
    for split in splits:
        argv += ["--split", split]
    if weight_file is not None:
        argv += ["--canary-weight-file", str(weight_file)]
    return argv


def server_env(server_id: str, ip: str, port: int, **extra: str) -> dict[str, str]:
    """A hello_server's environment: listening on ``ip:port``, answering as ``server_id``."""
    return {
        "BIND_ADDRESS": ip,
        "PORT": str(port),
        "SERVER_ID": server_id,
        "POD_IP": ip,
        "LOG_FORMAT": "json",
        **extra,
    }


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


def answers(proc: Proc, server_id: str | None = None, since: float = 0.0) -> list[float]:
    """Times (epoch seconds) of the client's answers from ``server_id`` (any) at or after
    ``since``."""
    out = []
    for event in proc.snapshot():
        if not clientlog.is_response(event):
            continue
        if server_id is not None and event.get(client.SERVER_ID) != server_id:
            continue
        t = clientlog.parse_timestamp(event[client.TIMESTAMP])
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


def push_delays(
    plane_events: Iterable[dict[str, Any]],
    publications: Sequence[tuple[float, Sequence[str]]],
    port: int,
) -> dict[str, list[float]]:
    """Seconds from each publication (its time, the addresses it published) to the first EDS
    update pushed to a client with exactly those endpoints, by client (the push's node); a
    client that got none is left out of that publication's figures. Answers to a client's own
    requests (its first, or after it reconnected) are not pushes of a publication."""
    pushes = [
        e
        for e in plane_events
        if e.get("event") == stream.PUSH
        and e.get("type") == "EDS"
        and e.get("reason") == stream.UPDATE
    ]
    out: dict[str, list[float]] = {}
    for published, ips in publications:
        want = sorted(f"{ip}:{port}" for ip in ips)
        first: dict[str, float] = {}
        for push in pushes:
            t = float(push["timestamp"])
            got = sorted(ep for eps in push["endpoints"].values() for ep in eps)
            if t >= published and got == want:
                first.setdefault(str(push["node"]), t - published)
        for node, delay in first.items():
            out.setdefault(node, []).append(delay)
    return out
