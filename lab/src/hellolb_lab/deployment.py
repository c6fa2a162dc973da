"""What Kubernetes does when server pods leave, as arithmetic: the Deployment controller's rolling
update, and the kubelet's stop of one pod.

The lab's rollout (:mod:`hellolb_lab.rollout`) asks :func:`step` what the controller would do
next and does it with real processes; the kubelet's timings (:class:`PodStop`) come from the
overlay. Nothing here starts a process or reads a clock.

The controller's rules, from its rolling update (``reconcileNewReplicaSet`` and
``reconcileOldReplicaSets`` in Kubernetes' ``pkg/controller/deployment/rolling.go``):

- new pods are created while old + new pods stay within ``replicas + maxSurge``;
- old pods are deleted while the available pods (old, and new ones ready for
  ``minReadySeconds``) stay at ``replicas - maxUnavailable`` or more, and not before the new
  pods that are not available yet are accounted for;
- a deleted (terminating) pod no longer counts: it is out of the Service's endpoints at once.

``maxSurge`` as a percentage rounds up, ``maxUnavailable`` rounds down, both 25% by default, and
when both come to 0 the controller lets one pod be unavailable.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from hellolb_lab.errors import LabError

#: Both fields' default, in the API's own words.
DEFAULT_SHARE = "25%"
#: The kubelet's default ``terminationGracePeriodSeconds``.
DEFAULT_GRACE_S = 30.0


def _scaled(value: int | str, replicas: int, *, round_up: bool, field: str) -> int:
    """An int-or-percentage field as a number of pods."""
    if isinstance(value, int) and value >= 0:
        return value
    match = re.fullmatch(r"(\d+)%", str(value))
    if match is None:
        raise LabError(f"the server Deployment's {field} is a count or a percentage, not {value!r}")
    share = int(match[1]) * replicas / 100
    return math.ceil(share) if round_up else math.floor(share)


@dataclass(frozen=True)
class RollingUpdate:
    """The server Deployment's rollout settings, as the overlay states them."""

    max_surge: int | str = DEFAULT_SHARE
    max_unavailable: int | str = DEFAULT_SHARE
    min_ready_s: float = 0.0

    def resolve(self, replicas: int) -> tuple[int, int]:
        """``(surge, unavailable)`` in pods for ``replicas`` pods."""
        surge = _scaled(self.max_surge, replicas, round_up=True, field="maxSurge")
        unavailable = _scaled(
            self.max_unavailable, replicas, round_up=False, field="maxUnavailable"
        )
        if surge == 0 and unavailable == 0:
            unavailable = 1
        return surge, unavailable


@dataclass(frozen=True)
class PodStop:
    """How the kubelet stops a server pod: the preStop pause (the pod is already out of the
    endpoints), then SIGTERM, then SIGKILL once ``grace_s`` have passed since the pause began
    (the grace period counts the preStop hook in)."""

    prestop_s: float = 0.0
    grace_s: float = DEFAULT_GRACE_S

    @property
    def sigterm_after_s(self) -> float:
        """Seconds from the deletion to SIGTERM: the pause, cut short by the grace."""
        return min(self.prestop_s, self.grace_s)

    @property
    def sigkill_after_s(self) -> float:
        """Seconds from the deletion to SIGKILL: the grace, or 2 s after SIGTERM when the pause
        used it all up (the kubelet's one-off extension)."""
        return self.grace_s if self.prestop_s < self.grace_s else self.grace_s + 2.0


@dataclass(frozen=True)
class Step:
    """What the controller does now: new pods to create, old pods to delete."""

    start: int
    delete: int


def step(
    replicas: int, surge: int, unavailable: int, *, old: int, new: int, new_available: int
) -> Step:
    """The controller's next move, with ``old`` old pods (all available), ``new`` new pods
    created and ``new_available`` of them available."""
    start = 0
    if new < replicas:
        start = max(0, min(replicas + surge - (old + new), replicas - new))
    new += start
    delete = 0
    min_available = replicas - unavailable
    new_unavailable = new - new_available
    if old and old + new - min_available - new_unavailable > 0:
        delete = max(0, min(old + new_available - min_available, old))
    return Step(start, delete)


def deletion_order(started: dict[str, float]) -> list[str]:
    """The old pods in the order the ReplicaSet deletes them: the most recently ready first
    (its ranking; on a cluster, pods doubled up on one node go before that), ties by name."""
    return sorted(started, key=lambda name: (-started[name], name))
