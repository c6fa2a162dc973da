"""Envoy in the lab: the scenario's own config, moved onto loopback; and the kube-proxy stand-in.

:func:`adapt` changes only what must differ on one machine: every DNS-resolved cluster asks the
lab's DNS server (a c-ares resolver with that address, no search domains), and the listeners and
the admin interface bind the replica's own lab address instead of ``0.0.0.0``/``127.0.0.1``.
Everything else (routes, load-balancing policy, refresh rate, HTTP/2 upstream, access log) is the
ConfigMap's.

:func:`clusterip_config` builds what a ClusterIP Service does with kube-proxy: connection-level
balancing on one virtual address. An Envoy TCP proxy picks a random backend for each new
connection and keeps the connection there; it learns the backends from the lab DNS, as
kube-proxy learns them from the Endpoints.
"""

from __future__ import annotations

import copy
import json
import subprocess
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml
from hellolb.config import parse_duration

from hellolb_lab.errors import LabError
from hellolb_lab.polling import wait_for

DNS_CLUSTER_TYPES = ("STRICT_DNS", "LOGICAL_DNS")
CARES = "envoy.network.dns_resolver.cares"
CARES_TYPE = (
    "type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig"
)
LOOPBACK_OR_ANY = ("0.0.0.0", "127.0.0.1", "::", "::1")
#: The event of the access-log line the scenarios' Envoy configs write for every request.
ACCESS_LOG_EVENT = "proxy.request"
# Admin requests go straight to loopback, never through an HTTP proxy from the environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _socket_addresses(config: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """The admin's and every listener's ``socket_address`` dicts."""
    admin = (config.get("admin") or {}).get("address", {}).get("socket_address")
    if admin is not None:
        yield admin
    for listener in (config.get("static_resources") or {}).get("listeners") or []:
        address = listener.get("address", {}).get("socket_address")
        if address is not None:
            yield address


def dns_clusters(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Clusters whose endpoints come from DNS."""
    clusters = (config.get("static_resources") or {}).get("clusters") or []
    return [c for c in clusters if c.get("type") in DNS_CLUSTER_TYPES]


def dns_names(config: dict[str, Any]) -> list[tuple[str, int]]:
    """``(hostname, port)`` of every DNS-resolved endpoint: the names the lab must answer."""
    names = []
    for cluster in dns_clusters(config):
        for group in (cluster.get("load_assignment") or {}).get("endpoints") or []:
            for lb in group.get("lb_endpoints") or []:
                sa = lb["endpoint"]["address"]["socket_address"]
                names.append((str(sa["address"]), int(sa["port_value"])))
    return names


def listener_ports(config: dict[str, Any]) -> list[int]:
    """Ports of the admin interface and the listeners."""
    return [int(sa["port_value"]) for sa in _socket_addresses(config)]


def dns_refresh_seconds(config: dict[str, Any]) -> float:
    """How often Envoy re-resolves its DNS clusters (Envoy's default is 5 s)."""
    rates = [_seconds(c.get("dns_refresh_rate", "5s")) for c in dns_clusters(config)]
    return max(rates) if rates else 5.0


def _seconds(value: str | float | int) -> float:
    """An Envoy duration (``"5s"``, ``"0.5s"``, or a number of seconds) in seconds."""
    if isinstance(value, int | float):
        return float(value)
    return parse_duration(value)


def adapt(config: dict[str, Any], *, dns: tuple[str, int], listen_ip: str) -> dict[str, Any]:
    """A copy of ``config`` for one lab replica (see the module docstring)."""
    out = copy.deepcopy(config)
    for sa in _socket_addresses(out):
        if sa.get("address") in LOOPBACK_OR_ANY:
            sa["address"] = listen_ip
    for cluster in dns_clusters(out):
        for legacy in ("dns_resolvers", "use_tcp_for_dns_lookups", "dns_resolution_config"):
            cluster.pop(legacy, None)
        cluster["typed_dns_resolver_config"] = {
            "name": CARES,
            "typed_config": {
                "@type": CARES_TYPE,
                "resolvers": [{"socket_address": {"address": dns[0], "port_value": dns[1]}}],
                "dns_resolver_options": {"no_default_search_domain": True},
            },
        }
    return out


TCP_PROXY_TYPE = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"


def _socket(address: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": address, "port_value": port}}


def clusterip_config(
    *,
    vip: str,
    port: int,
    endpoints_name: str,
    dns: tuple[str, int],
    admin_port: int = 9901,
    dns_refresh: str = "1s",
) -> dict[str, Any]:
    """The kube-proxy stand-in: TCP proxy on ``vip:port`` to a random backend per connection."""
    tcp_proxy = {
        "name": "envoy.filters.network.tcp_proxy",
        "typed_config": {
            "@type": TCP_PROXY_TYPE,
            "stat_prefix": "clusterip",
            "cluster": "endpoints",
        },
    }
    listener = {
        "name": "clusterip",
        "address": _socket(vip, port),
        "filter_chains": [{"filters": [tcp_proxy]}],
    }
    endpoint = {"endpoint": {"address": _socket(endpoints_name, port)}}
    cluster = {
        "name": "endpoints",
        "type": "STRICT_DNS",
        "dns_lookup_family": "V4_ONLY",
        "dns_refresh_rate": dns_refresh,
        "lb_policy": "RANDOM",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": "endpoints",
            "endpoints": [{"lb_endpoints": [endpoint]}],
        },
    }
    config = {
        "admin": {"address": _socket(vip, admin_port)},
        "static_resources": {"listeners": [listener], "clusters": [cluster]},
    }
    return adapt(config, dns=dns, listen_ip=vip)


def write(config: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def argv(binary: str, config_path: Path, overlay_args: Iterable[str] = ()) -> list[str]:
    """Envoy's command line: the overlay's arguments with the lab's config file.

    The lab adds ``--concurrency 1`` (two cores are shared by every process of a run) and
    ``--disable-hot-restart`` (several Envoys run side by side without a shared-memory base id).
    """
    args = list(overlay_args)
    out: list[str] = [binary]
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg in ("--config-path", "-c", "--concurrency", "--base-id"):
            skip = i + 1 < len(args)
            continue
        out.append(arg)
    out += ["--config-path", str(config_path), "--concurrency", "1"]
    if "--disable-hot-restart" not in out:
        out.append("--disable-hot-restart")
    return out


def validate(binary: str, config_path: Path, timeout: float = 60.0) -> None:
    """``envoy --mode validate``; raise :class:`LabError` with Envoy's words if it fails."""
    result = subprocess.run(
        [binary, "--mode", "validate", "--config-path", str(config_path), "--log-level", "error"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise LabError(f"envoy rejects {config_path}: {(result.stdout + result.stderr).strip()}")


def admin_get(admin: tuple[str, int], path: str, timeout: float = 1.0) -> str:
    """GET from the admin interface (loopback only)."""
    url = f"http://{admin[0]}:{admin[1]}{path}"
    with _NO_PROXY.open(url, timeout=timeout) as response:
        return response.read().decode()


def counters(admin: tuple[str, int], prefix: str) -> dict[str, int]:
    """Counters whose name starts with ``prefix``, from ``/stats?format=json``."""
    data = json.loads(admin_get(admin, f"/stats?format=json&filter=^{prefix}"))
    return {
        s["name"]: int(s["value"])
        for s in data.get("stats", [])
        if "name" in s and isinstance(s.get("value"), int)
    }


def wait_ready(
    admin: tuple[str, int], timeout: float, alive: Callable[[], bool] | None = None
) -> None:
    """Poll ``/ready`` until LIVE; ``alive()`` false (the process died) stops early."""
    last = "no answer"

    def live() -> bool | None:
        nonlocal last
        if alive is not None and not alive():
            raise LabError(f"envoy at {admin[0]}:{admin[1]} exited while starting")
        try:
            last = admin_get(admin, "/ready", timeout=0.5).strip()
        except OSError as exc:
            last = str(exc)
        return True if last == "LIVE" else None

    wait_for(live, timeout, lambda: f"envoy at {admin[0]}:{admin[1]} to be ready ({last})")
