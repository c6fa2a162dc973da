"""The phases after the scale-up, one module each, and the one registry of them.

A scenario's record names its phases (:attr:`hellolb_lab.catalogue.Scenario.all_phases`);
everything else asks :data:`PHASES`: the plan what they need, the lab timeline and the cluster
check for their steps, the judging pipeline for their findings and checks, the tables for their
cells. Adding a phase: a module here with its :class:`~hellolb_lab.phases.base.Phase`, listed
below, and its name in a record.
"""

from __future__ import annotations

from hellolb_lab.errors import LabError
from hellolb_lab.phases import (
    canary_steps,
    crash,
    restart_client,
    restart_control_plane,
    rollout,
    scale_proxies,
)
from hellolb_lab.phases.base import Phase, Reading

__all__ = ["PHASES", "Phase", "Reading", "get"]

#: Every phase, by name, in the order the tables show their columns.
PHASES: dict[str, Phase] = {
    p.name: p
    for p in (
        scale_proxies.PHASE,
        restart_client.PHASE,
        restart_control_plane.PHASE,
        canary_steps.PHASE,
        rollout.PHASE,
        crash.PHASE,
    )
}


def get(name: str) -> Phase:
    """The phase ``name``; :class:`LabError` naming the known ones otherwise."""
    if name not in PHASES:
        raise LabError(f"no phase {name!r}; the phases after the scale-up: {', '.join(PHASES)}")
    return PHASES[name]
