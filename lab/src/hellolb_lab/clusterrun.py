"""A cluster check in progress, for its phases' steps: the plan computed before any command
runs (:class:`CheckPlan`), and the run (:class:`ClusterRun`): the cluster, its clock, and what
each phase recorded. The steps themselves are the phases' (:mod:`hellolb_lab.phases`); the
check is :mod:`hellolb_lab.e2e`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hello_client.config import ClientConfig

from hellolb_lab import clientlog, envoy
from hellolb_lab.catalogue import Scenario
from hellolb_lab.cluster import Cluster


def count_proxy_requests(log_text: str) -> int:
    """Requests an Envoy served, from its access-log lines."""
    return sum(
        1 for e in clientlog.json_lines(log_text) if e.get("event") == envoy.ACCESS_LOG_EVENT
    )


@dataclass(frozen=True)
class CheckPlan:
    """The check's steps for one scenario, computed before any command runs."""

    scenario: Scenario
    scale_to: int
    proxy_scale_to: int
    bound: float | None
    #: Deployments that must be ready before the client starts afresh: the servers, and the
    #: proxy or the xDS control plane where the overlay has one.
    ready_first: tuple[str, ...]
    #: The scenario's phases that run on a cluster, by name.
    phases: tuple[str, ...]
    #: The overlay's client settings, parsed once by the client's own parser.
    client_config: ClientConfig
    #: The client's ``CLIENT_MODE`` for the check (``None``: the overlay's). In stream mode,
    #: the streams the client keeps open and the seconds within which the servers' maximum
    #: age and grace cut one (:func:`bounds.stream_cut`, with the cluster margin).
    client_mode: str | None = None
    stream_slots: int = 0
    stream_cut_s: tuple[float, float] | None = None

    @property
    def streams(self) -> bool:
        return self.stream_slots > 0


@dataclass
class ClusterRun:
    """One check in progress: the plan, the cluster, its clock, and what the phases did."""

    plan: CheckPlan
    cluster: Cluster
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    new_proxies: list[str] = field(default_factory=list)
    proxy_requests: dict[str, dict[str, int]] = field(default_factory=dict)
    #: What each phase did, by its name, for the judging (:mod:`hellolb_lab.phases`).
    records: dict[str, Any] = field(default_factory=dict)
    #: The client's log as a phase read it right after it ran, by the phase's name.
    readings: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def proxy_requests_since(self, since: float) -> dict[str, int]:
        logs = {p: self.cluster.proxy_logs_since(p, since) for p in self.new_proxies}
        return {p: count_proxy_requests(text) for p, text in logs.items()}
