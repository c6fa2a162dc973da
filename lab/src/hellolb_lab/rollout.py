"""``kubectl rollout restart deploy/server`` on the lab's real processes, one tick at a time.

On every tick of the run (:meth:`~hellolb_lab.stage.Stage.hold`) a :class:`Rollout` does what
the Deployment controller and the kubelet would have done by then:

1. a new server that listens is ready (the lab's pods are ready once they listen), and its
   address goes into DNS;
2. the controller's next step (:func:`~hellolb_lab.deployment.step`, with the overlay's strategy)
   starts new servers, each on a new address, and deletes old ones, the most recently started
   first; a deleted server's address leaves DNS at once (a terminating pod leaves the
   endpoints);
3. the kubelet stops each deleted server on the overlay's timings: the preStop pause, SIGTERM,
   SIGKILL after the grace period (:class:`~hellolb_lab.kubelet.Stops`).

It is done when every new server is available and every old one has exited.
"""

from __future__ import annotations

import time
from typing import Any

from hellolb_lab.deployment import deletion_order, step
from hellolb_lab.kubelet import Stops
from hellolb_lab.procs import Proc
from hellolb_lab.stage import Stage


class Rollout:
    """One rollout of the server Deployment, from the servers in DNS when it starts."""

    def __init__(self, stage: Stage) -> None:
        plan = stage.plan
        self.stage = stage
        self.strategy = plan.overlay.server_rollout
        self.replicas = len(stage.endpoints)
        self.surge, self.unavailable = self.strategy.resolve(self.replicas)
        names = {plan.server(i).name: i for i in stage.endpoints}
        started = {name: stage.picture.servers.get(name) or 0.0 for name in names}
        #: Old servers, in the order the controller deletes them.
        self.old = [names[name] for name in deletion_order(started)]
        self.next_index = max(stage.servers) + 1
        self.starting: dict[int, Proc] = {}
        #: New servers that are ready, and since when.
        self.ready: dict[int, float] = {}
        self.stops = Stops(plan.overlay.server_stop)
        self.rolled_out_at: float | None = None

    @property
    def new_servers(self) -> list[int]:
        return sorted([*self.starting, *self.ready])

    def advance(self) -> bool:
        """One tick: publish what became ready, take the controller's step, send the kubelet's
        signals. True once the rollout is complete and every old server has exited."""
        now = time.time()
        for i, proc in list(self.starting.items()):
            if self.stage.listening(proc):
                del self.starting[i]
                self.ready[i] = now
                self.stage.publish_endpoints([*self.stage.endpoints, i])
        available = sum(1 for t in self.ready.values() if now >= t + self.strategy.min_ready_s)
        move = step(
            self.replicas,
            self.surge,
            self.unavailable,
            old=len(self.old),
            new=len(self.starting) + len(self.ready),
            new_available=available,
        )
        for _ in range(move.start):
            self.starting[self.next_index] = self.stage.launch_server(self.next_index)
            self.next_index += 1
        for _ in range(move.delete):
            self._delete(self.old.pop(0), now)
        if self.rolled_out_at is None and not self.old and available == self.replicas:
            self.rolled_out_at = now
        for pod in self.stops.tick(now):
            self.stage.picture.gone[pod.proc.name] = now
        return self.rolled_out_at is not None and not self.stops.busy

    def _delete(self, i: int, now: float) -> None:
        """The controller deletes pod ``i``: out of the endpoints, and the kubelet stops it."""
        self.stage.publish_endpoints([e for e in self.stage.endpoints if e != i])
        self.stops.delete(self.stage.servers[i], now)

    def facts(self, start: float) -> dict[str, Any]:
        """What happened, for the verdict: the strategy as applied, and each old server's stop."""
        return {
            "replicas": self.replicas,
            "max_surge": self.surge,
            "max_unavailable": self.unavailable,
            "min_ready_s": self.strategy.min_ready_s,
            "rolled_out_s": None
            if self.rolled_out_at is None
            else round(self.rolled_out_at - start, 3),
            "stops": [pod.to_dict() for pod in self.stops.pods],
        }
