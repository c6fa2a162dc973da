"""Benchmark: time from publishing a new server to its first call, over xDS and over DNS.

``python -m hellolb_lab.xdsbench [--samples 5] [--net 127.0.129] [--dns-max-age 1s]``

Both paths run the same hello_client against the same kind of servers, one after the other in
the same run, and each sample starts one more server and then publishes it in the zone:

- **xDS**: the client targets ``xds:///server.lab:50051``; the lab control plane notices the
  zone change and pushes EDS; the figure is zone write to first answer, with the push itself
  (zone write to ``xds.push``) beside it. The goal is under 50 ms on two cores.
- **DNS** (the baseline): the client targets the lab DNS server; a gRPC client re-resolves only
  when a connection closes, so the servers close theirs every ``--dns-max-age`` (the maxage
  scenario's mechanism, shortened) and the client's re-resolution floor is 0.

This is a measurement, not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hello_client import events as client_events
from hellolb.config import parse_duration

from hellolb_lab import dns, launchers, polling
from hellolb_lab.procs import Proc, Supervisor, free_port
from hellolb_lab.view import table
from hellolb_lab.xds import launch

NAME = "server.lab"
PORT = 50051
LISTENER = f"{NAME}:{PORT}"
GOAL_MS = 50.0
WAIT_S = 30.0
CLIENT_ENV = {"CONCURRENCY": "4", "ROUND_INTERVAL": "1ms", "SUMMARY_INTERVAL": "5s"}
SERVER_ENV = {"WORK_TIME": "0"}
CLIENT_ID = "bench-xds"
COLUMNS = ("path", "samples", "median ms", "min ms", "max ms", "push median ms", "vs xDS")


def _start_server(sup: Supervisor, server_id: str, ip: str, env: dict[str, str]) -> None:
    launchers.start_servers(
        sup, [(server_id, launch.server_env(server_id, ip, PORT, **env))], WAIT_S
    )


def _sample(
    sup: Supervisor,
    client: Proc,
    zone: dns.Zone,
    ips: list[str],
    server_id: str,
    server_env: dict[str, str],
) -> tuple[float, float]:
    """Start one more server and publish it: the time of the write, and seconds from the write
    to the server's first answer."""
    _start_server(sup, server_id, ips[-1], server_env)
    published = time.time()
    zone.publish(NAME, ips)
    answered = polling.wait_for(
        lambda: launch.first_answer(client, server_id, published),
        WAIT_S,
        f"the first answer from {server_id}",
        interval=0.01,
    )
    return published, answered - published


def xds_path(
    sup: Supervisor, folder: Path, prefix: str, samples: int
) -> tuple[list[float], list[float]]:
    zone = dns.Zone(folder / "xds-zone.json")
    host = f"{prefix}.1"
    address = (host, free_port(host))
    ips = [f"{prefix}.11"]
    _start_server(sup, "xds-s1", ips[0], SERVER_ENV)
    zone.publish(NAME, ips)
    argv = launch.control_plane_argv(address, zone.path, [f"{LISTENER}={NAME}"])
    plane = launchers.start_control_plane(sup, "xds", argv, WAIT_S)
    env = launch.client_env(f"xds:///{LISTENER}", address, CLIENT_ID, **CLIENT_ENV)
    client = launchers.start_client(sup, "xds-client", env)
    launchers.wait_ready(client, client_events.READY, WAIT_S)
    delays, publications = [], []
    for n in range(2, samples + 2):
        ips.append(f"{prefix}.{10 + n}")
        published, delay = _sample(sup, client, zone, list(ips), f"xds-s{n}", SERVER_ENV)
        delays.append(delay)
        publications.append((published, tuple(ips)))
    sup.stop(client)
    pushes = launch.push_delays(plane.snapshot(), publications, PORT)
    return delays, pushes.get(CLIENT_ID, [])


def dns_path(sup: Supervisor, folder: Path, prefix: str, samples: int, max_age: str) -> list[float]:
    zone = dns.Zone(folder / "dns-zone.json")
    host = f"{prefix}.2"
    port = free_port(host, udp=True)
    server_env = {**SERVER_ENV, "MAX_CONNECTION_AGE": max_age, "MAX_CONNECTION_AGE_GRACE": "5s"}
    ips = [f"{prefix}.41"]
    _start_server(sup, "dns-s1", ips[0], server_env)
    zone.publish(NAME, ips)
    launchers.start_dns(sup, (host, port), zone.path, WAIT_S)
    env = {
        "SERVER_ADDRESS": f"dns://{host}:{port}/{LISTENER}",
        "CLIENT_ID": "bench-dns",
        "DNS_MIN_TIME_BETWEEN_RESOLUTIONS": "0",
        "LOG_FORMAT": "json",
        **CLIENT_ENV,
    }
    client = launchers.start_client(sup, "dns-client", env)
    launchers.wait_ready(client, client_events.READY, WAIT_S)
    delays = []
    for n in range(2, samples + 2):
        ips.append(f"{prefix}.{40 + n}")
        delays.append(_sample(sup, client, zone, list(ips), f"dns-s{n}", server_env)[1])
    sup.stop(client)
    return delays


def _row(path: str, delays: Sequence[float], pushes: Sequence[float], base: float | None) -> dict:
    ms = sorted(d * 1000 for d in delays)
    median = statistics.median(ms)
    return {
        "path": path,
        "samples": len(ms),
        "median ms": f"{median:.1f}",
        "min ms": f"{ms[0]:.1f}",
        "max ms": f"{ms[-1]:.1f}",
        "push median ms": f"{statistics.median(pushes) * 1000:.1f}" if pushes else "",
        "vs xDS": f"{median / base:.0f}x" if base else "1x",
    }


def run(
    samples: int, prefix: str, max_age: str, report: Callable[[str], None] = print
) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="xds-bench-") as tmp:
        folder = Path(tmp)
        with Supervisor(folder / "logs") as sup:
            report(f"bench: xDS, {samples} new servers ...")
            xds_delays, pushes = xds_path(sup, folder, prefix, samples)
        with Supervisor(folder / "logs-dns") as sup:
            report(f"bench: DNS with MAX_CONNECTION_AGE={max_age}, {samples} new servers ...")
            dns_delays = dns_path(sup, folder, prefix, samples, max_age)
    base = statistics.median(xds_delays) * 1000
    return [
        _row("xDS push (lab control plane)", xds_delays, pushes, None),
        _row(f"DNS, connections closed every {max_age}", dns_delays, [], base),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hellolb_lab.xdsbench", description=__doc__)
    parser.add_argument("--samples", type=int, default=5, help="new servers per path")
    parser.add_argument("--net", default="127.0.129", help="a 127.X.Y block for the run")
    parser.add_argument("--dns-max-age", default="1s", help="the DNS path's MAX_CONNECTION_AGE")
    args = parser.parse_args(argv)
    parse_duration(args.dns_max_age)
    rows = run(max(1, min(args.samples, 20)), args.net, args.dns_max_age)
    print(table(rows, COLUMNS))
    median = float(rows[0]["median ms"])
    verdict = "meets" if float(rows[0]["max ms"]) < GOAL_MS else "misses"
    print(
        f"xDS: new servers answered {median:.1f} ms (median) after being published; "
        f"the slowest {verdict} the {GOAL_MS:.0f} ms goal."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
