"""The lab's DNS server: real DNS answers on loopback, records changed while it runs.

It stands in for the cluster DNS. It answers ``A`` queries for the names in a zone file with the
current addresses and a short TTL, answers ``AAAA`` (and any other type) for a known name with an
empty NOERROR reply (gRPC asks for both), and NXDOMAIN for unknown names. The zone file is JSON,
``{"name": ["127.0.10.11", ...]}``; :class:`Zone` rewrites it atomically and the server rereads it
when it changes, so "publishing" new servers is one call. Every query is logged as one JSON line
(``dns.query``) so the lab can show when a client or proxy re-resolved.

Run as its own process: ``python -m hellolb_lab.dns --listen 127.0.10.1:5353 --zone FILE``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from dnslib import QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSServer

from hellolb_lab.polling import wait_for

#: Seconds a client or proxy may cache an answer: short, so a scale-up is seen quickly.
DEFAULT_TTL = 1

#: The server's log events: one per query, and its start, stop and failure.
QUERY = "dns.query"
STARTED = "dns.started"
STOPPED = "dns.stopped"
FAILED = "dns.failed"


def normalize(name: str) -> str:
    """Lower case, no trailing dot."""
    return name.rstrip(".").lower()


class Zone:
    """The zone file: names to IPv4 addresses. Writes are atomic (write, then rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, list[str]]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return {normalize(k): [str(ip) for ip in v] for k, v in data.items()}

    def publish(self, name: str, addresses: Iterable[str]) -> None:
        """Make ``name`` answer exactly ``addresses`` (other names stay as they are)."""
        records = self.read()
        records[normalize(name)] = list(addresses)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(records, indent=1, sort_keys=True))
        os.replace(tmp, self.path)


class ZoneResolver(BaseResolver):
    """dnslib resolver over a zone file, reread whenever the file changes."""

    def __init__(self, zone: Zone, ttl: int = DEFAULT_TTL, log: Any = None) -> None:
        self.zone = zone
        self.ttl = ttl
        self.log = log
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._records: dict[str, list[str]] = {}

    def records(self) -> dict[str, list[str]]:
        with self._lock:
            try:
                st = os.stat(self.zone.path)
                stamp: tuple[int, int] | None = (st.st_ino, st.st_mtime_ns)
            except FileNotFoundError:
                stamp = None
            if stamp != self._stamp:
                self._records = self.zone.read()
                self._stamp = stamp
            return self._records

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        reply = request.reply()
        qname = request.q.qname
        name = normalize(str(qname))
        qtype = QTYPE[request.q.qtype]
        addresses = self.records().get(name)
        if addresses is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype == QTYPE.A:
            for ip in addresses:
                reply.add_answer(RR(qname, QTYPE.A, rdata=A(ip), ttl=self.ttl))
        if self.log is not None:
            self.log(
                {
                    "event": QUERY,
                    "timestamp": time.time(),
                    "name": name,
                    "qtype": qtype,
                    "peer": f"{handler.client_address[0]}:{handler.client_address[1]}",
                    "protocol": handler.protocol,
                    "answers": addresses if request.q.qtype == QTYPE.A else [],
                }
            )
        return reply


class _QuietLogger:
    """dnslib's logger interface, silent: the resolver logs queries itself."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def serve(
    host: str, port: int, zone: Zone, ttl: int = DEFAULT_TTL, log: Any = None
) -> list[DNSServer]:
    """Start UDP and TCP DNS servers in threads; stop them with ``server.stop()``."""
    resolver = ZoneResolver(zone, ttl, log)
    servers = [
        DNSServer(resolver, port=port, address=host, tcp=tcp, logger=_QuietLogger())
        for tcp in (False, True)
    ]
    for server in servers:
        server.start_thread()
    return servers


def query(
    host: str, port: int, name: str, qtype: str = "A", timeout: float = 1.0, source: str = ""
) -> DNSRecord:
    """One real UDP query to ``host:port``, sent from ``source`` (any address if empty).

    The lab sends its own checks from the DNS server's address, so that its queries are told
    apart from the client's in the log.
    """
    question = DNSRecord.question(name, qtype)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.bind((source, 0))
        sock.sendto(question.pack(), (host, port))
        for _ in range(10):  # skip stray datagrams, bounded
            packet, _ = sock.recvfrom(65535)
            reply = DNSRecord.parse(packet)
            if reply.header.id == question.header.id:
                return reply
    raise OSError(f"no matching DNS reply from {host}:{port}")


def addresses(host: str, port: int, name: str, timeout: float = 1.0, source: str = "") -> list[str]:
    """The A records ``host:port`` answers for ``name`` (empty on NXDOMAIN)."""
    reply = query(host, port, name, "A", timeout, source)
    return sorted(str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A)


def wait_answers(
    host: str, port: int, name: str, expected: Iterable[str], timeout: float = 5.0
) -> None:
    """Poll the server until it answers ``expected`` for ``name``; :class:`LabError` if not.

    The queries come from ``host`` itself (see :func:`query`).
    """
    want = sorted(expected)
    got: list[str] | str = "no answer"

    def answered() -> bool | None:
        nonlocal got
        try:
            got = addresses(host, port, name, timeout=0.5, source=host)
        except OSError as exc:
            got = f"error: {exc}"
        return True if got == want else None

    wait_for(answered, timeout, lambda: f"DNS {host}:{port} to answer {want} for {name} ({got})")


def _print_json(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the DNS server until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m hellolb_lab.dns", description=__doc__)
    parser.add_argument("--listen", required=True, help="HOST:PORT, e.g. 127.0.10.1:5353")
    parser.add_argument("--zone", required=True, type=Path, help="zone file (JSON)")
    parser.add_argument("--ttl", type=int, default=DEFAULT_TTL)
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    # Wait for the stop signals instead of handling them: a handler that sets an Event
    # deadlocks when the signal lands while this thread holds that Event's lock (a stray DNS
    # server would then keep the lab's address). Blocked before the server threads start, so
    # that they inherit the mask and the signals stay pending for sigtimedwait.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    servers = serve(host, int(port), Zone(args.zone), args.ttl, _print_json)
    _print_json({"event": STARTED, "address": host, "port": int(port), "ttl": args.ttl})
    try:
        while signal.sigtimedwait(stop_signals, 0.5) is None:
            if not all(s.isAlive() for s in servers):
                _print_json({"event": FAILED})
                return 1
    finally:
        for server in servers:
            server.stop()
    _print_json({"event": STOPPED})
    return 0


if __name__ == "__main__":
    sys.exit(main())
