"""The lab's xDS control plane process: ADS on grpc.aio, fed by the zone file.

``python -m hellolb_lab.xds --listen 127.0.120.1:18000 --zone FILE
--service server.lab:50051=server.lab [--service ...] [--lb-policy round_robin]
[--lb-policy-file FILE] [--split LISTENER=CANARY_LISTENER --canary-weight-file FILE]``

Every ADS stream gets its own :class:`~.stream.AdsStream`; when the zone file changes, the
catalog is rebuilt and every stream is offered it, so a server published for DNS reaches every
connected client over EDS within milliseconds. A zone file that cannot be read keeps the last
good catalog (``xds.zone_invalid``). The policy file, if given, holds one policy name and is
watched the same way, so a test or the lab can change every Cluster's policy while clients run
(``xds.policy``, or ``xds.policy_invalid`` keeping the current one). A split sends part of a
listener's calls to a canary listener's cluster; the weight file holds the canary's percent (0 to
100, 0 when absent) and is watched too, so a new weight reaches every client by RDS alone
(``xds.weight``, or ``xds.weight_invalid`` keeping the current one). Everything is logged as
one JSON object per line (event names in :mod:`.stream`). SIGTERM or SIGINT stops the server:
open streams are cancelled, and clients keep what they have and reconnect when a control plane
is back.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
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
from hellolb_lab.xds.resources import Catalog, Service, Split, parse_service, parse_split
from hellolb_lab.xds.stream import (
    CONNECTED,
    DISCONNECTED,
    POLICY,
    POLICY_INVALID,
    STARTED,
    STOPPED,
    WEIGHT,
    WEIGHT_INVALID,
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
        splits: Sequence[tuple[str, str]] = (),
        weight_file: Path | None = None,
    ) -> None:
        self.zone = zone
        self.services = tuple(services)
        self.policy = policy
        self.policy_file = policy_file
        self.splits = tuple(splits)
        self.weight_file = weight_file
        #: The canary's percent in every split route.
        self.percent = 0
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

    def _read_weight(self) -> None:
        if self.weight_file is None or not self.weight_file.exists():
            return
        try:
            text = self.weight_file.read_text().strip()
        except OSError as error:
            text = f"(unreadable: {error.strerror})"
        percent = int(text) if re.fullmatch(r"[0-9]{1,3}", text) else -1
        if not 0 <= percent <= 100:
            self.log(
                {
                    "event": WEIGHT_INVALID,
                    "file": str(self.weight_file),
                    "value": text,
                    "expected": "the canary's percent, an integer from 0 to 100",
                    "kept": self.percent,
                }
            )
            return
        if percent != self.percent:
            self.log({"event": WEIGHT, "canary_percent": percent, "was": self.percent})
            self.percent = percent

    def reload(self) -> None:
        """Read the zone (and the policy and weight files); offer a changed catalog to every
        stream.

        A zone, policy or weight that cannot be used changes nothing.
        """
        self._read_policy()
        self._read_weight()
        splits = [Split(listener, canary, self.percent) for listener, canary in self.splits]
        try:
            records = self.zone.read()
            catalog = Catalog.build(self.services, records, self.policy, splits)
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
    parser.add_argument(
        "--split",
        action="append",
        default=[],
        type=_split_arg,
        metavar="LISTENER=CANARY_LISTENER",
        help="share LISTENER's calls with CANARY_LISTENER's cluster by weight; repeatable",
    )
    parser.add_argument(
        "--canary-weight-file",
        type=Path,
        help="a file holding the canary's percent (0-100) in every split, reread when it changes",
    )
    args = parser.parse_args(argv)
    served = {s.listener for s in args.service}
    for listener, canary in args.split:
        if not {listener, canary} <= served:
            parser.error(f"--split {listener}={canary}: both must be --service listeners")
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        parser.error(f"--listen {args.listen!r}: expected HOST:PORT")
    args.host, args.port = host, int(port)
    return args


def _split_arg(text: str) -> tuple[str, str]:
    try:
        return parse_split(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _service_arg(text: str) -> Service:
    try:
        return parse_service(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


async def serve(args: argparse.Namespace, log: Log = print_json) -> int:
    """Serve until SIGTERM or SIGINT; 0 on a clean stop."""
    plane = ControlPlane(
        Zone(args.zone),
        args.service,
        args.lb_policy,
        log,
        args.lb_policy_file,
        args.split,
        args.canary_weight_file,
    )
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
    for extra in (args.lb_policy_file, args.canary_weight_file):
        if extra is not None:
            watchers.append(FileWatcher(extra, plane.reload))
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
            "splits": {listener: canary for listener, canary in args.split},
            "canary_percent": plane.percent,
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
