"""The kubelet's part when a server pod is deleted, with real signals: its preStop pause, then
SIGTERM, then SIGKILL once the grace period (counted from the start of the pause) is over.

Nothing here waits: :meth:`Stops.tick` sends whatever is due and notes what has exited, and the
timeline calls it on every tick while it holds the run, so one pod's signals come on time while
the rollout starts others.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Any

from hellolb_lab.deployment import PodStop
from hellolb_lab.procs import Proc


@dataclass
class Stopping:
    """One deleted pod on its way out, and when each step happened (epoch seconds)."""

    proc: Proc
    deleted: float
    sigterm_at: float | None = None
    sigkill_at: float | None = None
    exited_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """When it got SIGTERM and exited, in seconds after its deletion, and how it ended."""

        def after(t: float | None) -> float | None:
            return None if t is None else round(t - self.deleted, 3)

        return {
            "server": self.proc.name,
            "sigterm_s": after(self.sigterm_at),
            "exited_s": after(self.exited_at),
            "exit_code": self.proc.popen.returncode,
            "killed": self.sigkill_at is not None,
        }


class Stops:
    """The pods being stopped, each on the overlay's timings."""

    def __init__(self, timings: PodStop) -> None:
        self.timings = timings
        self.pods: list[Stopping] = []

    def delete(self, proc: Proc, now: float) -> None:
        """The pod is deleted: its pause starts now; its exit is expected from here on."""
        proc.stopped = True
        self.pods.append(Stopping(proc, now))

    def tick(self, now: float) -> list[Stopping]:
        """Send the signals that are due; the pods that exited since the last tick."""
        exited = []
        for pod in self.pods:
            if pod.exited_at is not None:
                continue
            if not pod.proc.running():
                pod.exited_at = now
                exited.append(pod)
            elif pod.sigterm_at is None and now >= pod.deleted + self.timings.sigterm_after_s:
                pod.proc.signal(signal.SIGTERM)
                pod.sigterm_at = now
            elif pod.sigkill_at is None and now >= pod.deleted + self.timings.sigkill_after_s:
                pod.proc.signal(signal.SIGKILL)
                pod.sigkill_at = now
        return exited

    @property
    def busy(self) -> bool:
        """Some deleted pod has not exited yet."""
        return any(pod.exited_at is None for pod in self.pods)
