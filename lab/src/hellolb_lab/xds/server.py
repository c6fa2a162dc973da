"""The lab's xDS control plane process: ADS on grpc.aio, fed by the zone file.

``python -m hellolb_lab.xds --listen 127.0.120.1:18000 --zone FILE
--service server.lab:50051=server.lab [--service ...] [--lb-policy round_robin]
[--lb-policy-file FILE]``

Every ADS stream gets its own :class:`~.stream.AdsStream`; when the zone file changes, the
catalog is rebuilt and every stream is offered it, so a server published for DNS reaches every
connected client over EDS within milliseconds. A zone file that cannot be read keeps the last
good catalog (``xds.zone_invalid``). The policy file, if given, holds one policy name and is
watched the same way, so a test or the lab can change every Cluster's policy while clients run
(``xds.policy``, or ``xds.policy_invalid`` keeping the current one). Everything is logged as
one JSON object per line (event names in :mod:`.stream`). SIGTERM or SIGINT stops the server:
open streams are cancelled, and clients keep what they have and reconnect when a control plane
is back.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from hellolb_lab.dns import Zone
from hellolb_lab.xds import policies
from hellolb_lab.xds.resources import Catalog, Service, parse_service
from hellolb_lab.xds.stream import (
    CONNECTED,
    DISCONNECTED,
    POLICY,
    POLICY_INVALID,
    STARTED,
    STOPPED,
    ZONE,
    ZONE_INVALID,
    AdsStream,
    Step,
)
from hellolb_lab.xds.watch import FileWatcher

Log = Callable[[dict[str, Any]], None]

#: Seconds open streams get to finish when the control plane stops.
STOP_GRACE_S = 0.5


def print_json(event: dict[str, Any]) -> None:
    """One JSON line on stdout, with the time (epoch seconds, as the lab DNS server logs)."""
    sys.stdout.write(json.dumps({**event, "timestamp": time.time()}) + "\n")
    sys.stdout.flush()


class ControlPlane(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    """The ADS service: a catalog, the open streams, and what to do when either changes."""

    def __init__(
        self,
        zone: Zone,
        services: Sequence[Service],
        policy: str,
        log: Log = print_json,
        policy_file: Path | None = None,
    ) -> None:
        self.zone = zone
        self.services = tuple(services)
        self.policy = policy
        self.policy_file = policy_file
        self.log = log
        self.catalog = Catalog.build(self.services, {}, policy)
        self._streams: dict[int, tuple[AdsStream, asyncio.Queue[Any]]] = {}
        self._ids = itertools.count(1)

    def _read_policy(self) -> None:
        if self.policy_file is None or not self.policy_file.exists():
            return
        try:
            name = self.policy_file.read_text().strip()
        except OSError as error:
            name = f"(unreadable: {error.strerror})"
        if name == self.policy:
            return
        if name not in policies.NAMES:
            self.log(
                {
                    "event": POLICY_INVALID,
                    "file": str(self.policy_file),
                    "value": name,
                    "expected": list(policies.NAMES),
                    "kept": self.policy,
                }
            )
            return
        self.log({"event": POLICY, "lb_policy": name, "was": self.policy})
        self.policy = name

    def reload(self) -> None:
        """Read the zone (and the policy file); offer a changed catalog to every stream.

        A zone or policy that cannot be used changes nothing.
        """
        self._read_policy()
        try:
            records = self.zone.read()
            catalog = Catalog.build(self.services, records, self.policy)
        except (OSError, ValueError, TypeError, AttributeError) as error:
            self.log({"event": ZONE_INVALID, "zone": str(self.zone.path), "error": str(error)})
            return
        if catalog == self.catalog:
            return
        self.catalog = catalog
        self.log(
            {
                "event": ZONE,
                "endpoints": {name: list(ips) for name, ips in catalog.endpoints.items()},
            }
        )
        for stream, outbox in self._streams.values():
            self._apply(stream.on_catalog(catalog), outbox)

    def _apply(self, step: Step, outbox: asyncio.Queue[Any]) -> None:
        for response in step.responses:
            outbox.put_nowait(response)
        for event in step.events:
            self.log(event)

    async def _read(
        self,
        requests: AsyncIterator[discovery_pb2.DiscoveryRequest],
        stream: AdsStream,
        outbox: asyncio.Queue[Any],
    ) -> None:
        try:
            async for request in requests:
                self._apply(stream.on_request(request, self.catalog), outbox)
        finally:
            outbox.put_nowait(None)

    async def StreamAggregatedResources(  # noqa: N802 - the generated servicer's name
        self,
        request_iterator: AsyncIterator[discovery_pb2.DiscoveryRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[discovery_pb2.DiscoveryResponse]:
        stream = AdsStream(next(self._ids), context.peer())
        outbox: asyncio.Queue[Any] = asyncio.Queue()
        self._streams[stream.stream_id] = (stream, outbox)
        self.log({"event": CONNECTED, "stream": stream.stream_id, "peer": stream.peer})
        reader = asyncio.create_task(self._read(request_iterator, stream, outbox))
        try:
            while (response := await outbox.get()) is not None:
                yield response
            if reader.done() and not reader.cancelled() and reader.exception() is not None:
                raise reader.exception()  # type: ignore[misc]
        finally:
            reader.cancel()
            del self._streams[stream.stream_id]
            self.log(
                {
                    "event": DISCONNECTED,
                    "stream": stream.stream_id,
                    "node": stream.node,
                    "peer": stream.peer,
                    "accepted": stream.accepted_versions(),
                }
            )


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m hellolb_lab.xds",
        description="The lab's xDS control plane: state-of-the-world ADS fed by a zone file.",
    )
    parser.add_argument("--listen", required=True, help="HOST:PORT, e.g. 127.0.120.1:18000")
    parser.add_argument("--zone", required=True, type=Path, help="zone file (JSON), as for dns")
    parser.add_argument(
        "--service",
        action="append",
        required=True,
        type=_service_arg,
        metavar="LISTENER=ZONE_NAME[:PORT]",
        help="serve LISTENER (e.g. server.lab:50051) with the addresses of ZONE_NAME; repeatable",
    )
    parser.add_argument(
        "--lb-policy",
        default=policies.DEFAULT,
        choices=policies.NAMES,
        help="the policy every Cluster names (default: %(default)s)",
    )
    parser.add_argument(
        "--lb-policy-file",
        type=Path,
        help="a file holding a policy name that overrides --lb-policy, reread when it changes",
    )
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        parser.error(f"--listen {args.listen!r}: expected HOST:PORT")
    args.host, args.port = host, int(port)
    return args


def _service_arg(text: str) -> Service:
    try:
        return parse_service(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


async def serve(args: argparse.Namespace, log: Log = print_json) -> int:
    """Serve until SIGTERM or SIGINT; 0 on a clean stop."""
    plane = ControlPlane(Zone(args.zone), args.service, args.lb_policy, log, args.lb_policy_file)
    # One process per address: never share the port silently (grpc.so_reuseport defaults to 1).
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(plane, server)
    try:
        server.add_insecure_port(f"{args.host}:{args.port}")
    except RuntimeError as error:
        log({"event": STOPPED, "reason": f"cannot listen on {args.listen}: {error}"})
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    plane.reload()
    watchers = [FileWatcher(args.zone, plane.reload)]
    if args.lb_policy_file is not None:
        watchers.append(FileWatcher(args.lb_policy_file, plane.reload))
    await server.start()
    for watcher in watchers:
        watcher.start()
    log(
        {
            "event": STARTED,
            "address": args.host,
            "port": args.port,
            "zone": str(args.zone),
            "services": {s.listener: f"{s.zone_name}:{s.port}" for s in plane.services},
            "lb_policy": plane.policy,
            "lb_policy_file": str(args.lb_policy_file or ""),
            "inotify": watchers[0].uses_inotify,
        }
    )
    await stop.wait()
    for watcher in watchers:
        watcher.stop()
    await server.stop(STOP_GRACE_S)
    log({"event": STOPPED, "reason": "signal"})
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(serve(_parse_args(argv)))
