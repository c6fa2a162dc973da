"""Validation of gRPC target strings (the SERVER_ADDRESS variable).

Accepted forms, as grpc's resolvers understand them:

- ``host:port``                       resolved by the default resolver (DNS)
- ``dns:///host:port``                DNS, the system's servers
- ``dns://DNS_IP:DNS_PORT/host:port`` DNS, asking that server directly
- ``ipv4:IP:port[,IP:port...]``       a fixed list of IPv4 addresses
- ``ipv6:[IP]:port[,[IP]:port...]``   a fixed list of IPv6 addresses
- ``unix:/path``                      a Unix domain socket
- ``xds:///host:port``                xDS: the control plane in the bootstrap serves the
                                      listener ``host:port`` (see :mod:`hello_client.xds`)
- ``xds://AUTHORITY/host:port``       xDS, from the control plane of that bootstrap authority
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv6Address

TARGET_HELP = (
    "host:port, dns:///host:port, dns://DNS_IP:PORT/host:port, "
    "ipv4:IP:port[,IP:port], ipv6:[IP]:port[,[IP]:port], unix:/path, "
    "xds:///host:port or xds://AUTHORITY/host:port"
)

_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*\.?$")
# An authority names an entry of the bootstrap's "authorities" (gRFC A47): a DNS-like name.
_AUTHORITY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._:-]{0,251}[A-Za-z0-9])?$")
_HOST_PORT = re.compile(r"^(?P<host>\[[^\]]+\]|[^:\[\]]+):(?P<port>\d{1,5})$")


def _valid_port(text: str) -> bool:
    return text.isdigit() and 1 <= int(text) <= 65535


def _valid_host(host: str) -> bool:
    if host.startswith("["):
        return _is_ipv6(host[1:-1])
    return bool(_HOSTNAME.match(host))


def _is_ipv4(text: str) -> bool:
    try:
        IPv4Address(text)
    except ValueError:
        return False
    return True


def _is_ipv6(text: str) -> bool:
    try:
        IPv6Address(text)
    except ValueError:
        return False
    return True


def _valid_host_port(text: str) -> bool:
    match = _HOST_PORT.match(text)
    if match is None:
        return False
    return _valid_host(match["host"]) and _valid_port(match["port"])


def _valid_address_list(text: str, family: str) -> bool:
    parts = text.split(",")
    for part in parts:
        match = _HOST_PORT.match(part)
        if not match or not _valid_port(match["port"]):
            return False
        host = match["host"]
        if family == "ipv4" and not _is_ipv4(host):
            return False
        if family == "ipv6" and not (host.startswith("[") and _is_ipv6(host[1:-1])):
            return False
    return bool(parts)


def split_xds(target: str) -> tuple[str | None, str] | None:
    """``(authority, listener)`` of a valid ``xds:`` target (authority None if it has none),
    or None for any other target."""
    if not target.startswith("xds:") or any(c.isspace() for c in target):
        return None
    rest = target[4:]
    authority: str | None = None
    if rest.startswith("//"):
        authority, sep, rest = rest[2:].partition("/")
        if not sep or (authority and not _AUTHORITY.match(authority)):
            return None
    if not _valid_host_port(rest):
        return None
    return authority or None, rest


def is_valid_target(target: str) -> bool:
    """True when ``target`` is one of the forms in this module's docstring."""
    if not target or any(c.isspace() for c in target):
        return False
    if target.startswith("dns:"):
        rest = target[4:]
        if rest.startswith("//"):
            authority, sep, name = rest[2:].partition("/")
            if not sep:
                return False
            if authority and not _valid_host_port(authority):
                return False
            return _valid_host_port(name)
        return _valid_host_port(rest)
    if target.startswith("ipv4:"):
        return _valid_address_list(target[5:], "ipv4")
    if target.startswith("ipv6:"):
        return _valid_address_list(target[5:], "ipv6")
    if target.startswith("xds:"):
        return split_xds(target) is not None
    if target.startswith("unix:"):
        return len(target) > len("unix:")
    return _valid_host_port(target)
