"""One ADS stream's state machine (state of the world), without I/O.

The server feeds it each request and each change of the catalog; it answers with the responses
to send and the events to log. Per resource type it keeps what the client subscribed to, the
version and nonce of the last response, and whether that response is still unanswered, which is
all the protocol needs (Envoy's "xDS REST and gRPC protocol" page):

- The first request of a type (empty nonce) is answered with the current resources. An empty
  first request for listeners or clusters is a wildcard: every service (Envoy does that).
- A request carrying the nonce of the last response, while that response is unanswered, is its
  ACK (no ``error_detail``; its ``version_info`` is the new version) or its NACK
  (``error_detail`` says why; ``version_info`` is the last version the client accepted, which it
  keeps using). Either way, if the request also changes the subscribed names, the new set is
  answered at once.
- A request carrying a nonce older than the last response's is stale and ignored: the client will
  answer the newer response anyway.
- A request carrying the last nonce again, after it was answered, is a re-request. Envoy sends
  one when it re-creates a cluster and subscribes the new cluster to the same endpoints: it is
  answered again with the current resources, or the new cluster would stay warming.
- When the catalog changes, each subscribed type whose resources changed for this client gets a
  new response, clusters first (:data:`~.resources.PUSH_ORDER`). A NACKed version is not sent
  again until the resources change.

Versions are content hashes (:func:`~.resources.version_of`), so a restarted control plane never
mistakes its new resources for what a reconnecting client already has; nonces count responses.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from hellolb_lab.xds.resources import (
    ENDPOINT,
    PUSH_ORDER,
    SHORT,
    WILDCARD_TYPES,
    Catalog,
    version_of,
)

#: Log events, one JSON object per line; fields are documented where they are built.
STARTED = "xds.started"
STOPPED = "xds.stopped"
ZONE = "xds.zone"
ZONE_INVALID = "xds.zone_invalid"
POLICY = "xds.policy"
POLICY_INVALID = "xds.policy_invalid"
#: The canary's share of a split route changed (its weight file), or the file held no percent.
WEIGHT = "xds.weight"
WEIGHT_INVALID = "xds.weight_invalid"
CONNECTED = "xds.connected"
DISCONNECTED = "xds.disconnected"
REQUEST = "xds.request"
ACK = "xds.ack"
NACK = "xds.nack"
PUSH = "xds.push"

#: Why a request was not an ACK or NACK (the ``kind`` field of ``xds.request``).
INITIAL = "initial"
SUBSCRIPTION = "subscription"
RE_REQUEST = "re-request"
STALE = "stale"
UNKNOWN_TYPE = "unknown-type"
#: Why a response was sent when no request asked (the ``reason`` field of ``xds.push``).
UPDATE = "update"


@dataclass
class _TypeState:
    names: frozenset[str] = frozenset()
    wildcard: bool = False
    version: str = ""
    nonce: str = ""
    awaiting: bool = False
    accepted: str = ""


@dataclass
class Step:
    """What to do after one input: send ``responses`` in order, log ``events``."""

    responses: list[discovery_pb2.DiscoveryResponse] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def _endpoints(resource: Message) -> list[str]:
    assert isinstance(resource, endpoint_pb2.ClusterLoadAssignment)
    return [
        f"{lb.endpoint.address.socket_address.address}:"
        f"{lb.endpoint.address.socket_address.port_value}"
        for locality in resource.endpoints
        for lb in locality.lb_endpoints
    ]


class AdsStream:
    """The state of one client's ADS stream. ``stream_id`` tells streams apart in the logs."""

    def __init__(self, stream_id: int, peer: str = "") -> None:
        self.stream_id = stream_id
        self.peer = peer
        self.node = ""
        self._types: dict[str, _TypeState] = {}
        self._nonces = itertools.count(1)

    def _fields(self, type_url: str) -> dict[str, Any]:
        return {
            "node": self.node,
            "stream": self.stream_id,
            "peer": self.peer,
            "type": SHORT.get(type_url, type_url),
        }

    def accepted_versions(self) -> dict[str, str]:
        """The version of each type the client last said it runs (ACK or NACK)."""
        return {SHORT[t]: s.accepted for t, s in self._types.items() if t in SHORT}

    def on_request(self, request: discovery_pb2.DiscoveryRequest, catalog: Catalog) -> Step:
        """Handle one DiscoveryRequest."""
        if request.node.id and not self.node:
            self.node = request.node.id
        type_url = request.type_url
        names = frozenset(request.resource_names)
        seen = {
            **self._fields(type_url),
            "version_info": request.version_info,
            "response_nonce": request.response_nonce,
            "resource_names": sorted(names),
        }
        step = Step()
        if type_url not in SHORT:
            step.events.append({"event": REQUEST, **seen, "kind": UNKNOWN_TYPE})
            return step
        state = self._types.get(type_url)
        if state is None or not request.response_nonce:
            if state is None:
                state = self._types[type_url] = _TypeState(
                    wildcard=type_url in WILDCARD_TYPES and not names
                )
            state.names = names
            state.accepted = request.version_info
            step.events.append({"event": REQUEST, **seen, "kind": INITIAL})
            self._respond(type_url, state, catalog, INITIAL, step)
            return step
        if request.response_nonce != state.nonce:
            step.events.append({"event": REQUEST, **seen, "kind": STALE})
            return step
        changed = not state.wildcard and names != state.names
        if state.awaiting:
            state.awaiting = False
            state.accepted = request.version_info
            if request.HasField("error_detail"):
                step.events.append(
                    {
                        "event": NACK,
                        **seen,
                        "version": state.version,
                        "kept_version": request.version_info,
                        "code": request.error_detail.code,
                        "reason": request.error_detail.message,
                    }
                )
            else:
                step.events.append({"event": ACK, **seen, "version": request.version_info})
            if changed:
                state.names = names
                self._respond(type_url, state, catalog, SUBSCRIPTION, step)
            return step
        kind = SUBSCRIPTION if changed else RE_REQUEST
        step.events.append({"event": REQUEST, **seen, "kind": kind})
        if changed:
            state.names = names
        self._respond(type_url, state, catalog, kind, step)
        return step

    def on_catalog(self, catalog: Catalog) -> Step:
        """Push every subscribed type whose resources changed for this client."""
        step = Step()
        for type_url in PUSH_ORDER:
            state = self._types.get(type_url)
            if state is None or not state.nonce:
                continue
            _, resources = self._select(type_url, state, catalog)
            if version_of(type_url, resources) != state.version:
                self._respond(type_url, state, catalog, UPDATE, step)
        return step

    @staticmethod
    def _select(
        type_url: str, state: _TypeState, catalog: Catalog
    ) -> tuple[list[str], list[Message]]:
        names = catalog.all_names(type_url) if state.wildcard else sorted(state.names)
        found = [(n, catalog.find(type_url, n)) for n in names]
        return [n for n, r in found if r is not None], [r for _, r in found if r is not None]

    def _respond(
        self, type_url: str, state: _TypeState, catalog: Catalog, reason: str, step: Step
    ) -> None:
        names, resources = self._select(type_url, state, catalog)
        state.version = version_of(type_url, resources)
        state.nonce = f"{self.stream_id}.{next(self._nonces)}"
        state.awaiting = True
        packed = []
        for resource in resources:
            any_message = any_pb2.Any()
            any_message.Pack(resource)
            packed.append(any_message)
        step.responses.append(
            discovery_pb2.DiscoveryResponse(
                version_info=state.version,
                resources=packed,
                type_url=type_url,
                nonce=state.nonce,
            )
        )
        event: dict[str, Any] = {
            "event": PUSH,
            **self._fields(type_url),
            "version": state.version,
            "nonce": state.nonce,
            "resources": names,
            "reason": reason,
        }
        if type_url == ENDPOINT:
            event["endpoints"] = {n: _endpoints(r) for n, r in zip(names, resources, strict=True)}
        step.events.append(event)
