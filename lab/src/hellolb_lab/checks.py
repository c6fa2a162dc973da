"""The expected behaviours of the scale-up, one function each, named by the scenario records.

Every check takes the measured :class:`~hellolb_lab.verdict.Verdict` and the scenario's reach
bound, and returns a :class:`Check` (passed or not, with the figures behind it), or ``None`` when
the run holds no data for it (a stream check outside stream mode). The phases' checks live with
their phases (:mod:`hellolb_lab.phases`); :mod:`hellolb_lab.judging` runs both. A new scenario
that needs a new kind of check adds one function to :data:`CHECKS` under the name its record
uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hellolb_lab.measure import ratio_text
from hellolb_lab.record import (
    STREAMS_HELD,
    STREAMS_MOVE_AT_AGE,
    STREAMS_ON_ONE,
    STREAMS_SPREAD,
    STREAMS_STAY,
)
from hellolb_lab.streamverdict import DRAIN_END, MAX_AGE_END
from hellolb_lab.verdict import Verdict


@dataclass(frozen=True)
class Check:
    """One expected behaviour and whether the run showed it. A check the run holds no data to
    judge (no new servers to look at) is ``judged=False``: neither passed nor failed."""

    name: str
    ok: bool
    detail: str
    judged: bool = True

    @property
    def status(self) -> str:
        return "not judged" if not self.judged else "ok" if self.ok else "FAIL"


def not_judged(name: str, why: str) -> Check:
    return Check(name, False, why, judged=False)


def passed(checks: Iterable[Check]) -> bool:
    """Every judged check held; a check that could not be judged fails nothing."""
    return all(c.ok for c in checks if c.judged)


CheckFunction = Callable[[str, Verdict, float | None], Check | None]


def _answers(name: str, result: Verdict, bound: float | None) -> Check:
    return Check(name, result.answers_total > 0, f"{result.answers_total} answers")


def _no_failed_rpc(name: str, result: Verdict, bound: float | None) -> Check:
    return Check(name, result.failed_rpcs == 0, f"{result.failed_rpcs} failed")


def _one_server_per_connection(name: str, result: Verdict, bound: float | None) -> Check:
    by_client = result.servers_by_client
    many = [c for c, servers in by_client.items() if len(servers) != 1]
    detail = ", ".join(f"{c}: {len(s)}" for c, s in by_client.items())
    return Check(name, not many and bool(by_client), detail)


def _balanced_first(name: str, result: Verdict, bound: float | None) -> Check:
    before = result.balance_before
    return Check(name, before.balanced, f"max/min {ratio_text(before.ratio)}")


def _new_servers_idle(name: str, result: Verdict, bound: float | None) -> Check:
    if not result.new_servers:
        return not_judged(name, "no new servers")
    got = {s: result.servers_after.get(s, 0) for s in result.new_servers}
    detail = ", ".join(f"{s}: {n}" for s, n in got.items())
    return Check(name, not any(got.values()), detail)


def _new_servers_reached(name: str, result: Verdict, bound: float | None) -> Check:
    if not result.new_servers:
        return not_judged(name, "no new servers")
    never = [s for s, t in result.reached.items() if t is None]
    ok = not never
    detail = f"all {len(result.new_servers)} new after {result.time_to_all_new}s"
    if never:
        detail = "never reached: " + ", ".join(never)
    if ok and bound is not None and result.time_to_all_new is not None:
        ok = result.time_to_all_new <= bound
        detail += f" (bound {bound}s)"
    return Check(name, ok, detail)


def _streams(result: Verdict) -> dict | None:
    """The stream figures (:func:`hellolb_lab.streamverdict.figures`), in stream mode."""
    return result.streams


def count_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {n}" for k, n in counts.items()) or "none"


def _streams_held(name: str, result: Verdict, bound: float | None) -> Check | None:
    fig = _streams(result)
    if fig is None:
        return None
    held = sum(fig["open_at_scale"].values())
    return Check(name, held == fig["slots"], f"{held} of {fig['slots']} open")


def _streams_on_one(name: str, result: Verdict, bound: float | None) -> Check | None:
    fig = _streams(result)
    if fig is None:
        return None
    return Check(name, len(fig["open_at_scale"]) == 1, count_text(fig["open_at_scale"]))


def _streams_spread(name: str, result: Verdict, bound: float | None) -> Check | None:
    fig = _streams(result)
    if fig is None:
        return None
    at = fig["open_at_scale"]
    empty = [s for s in fig["first_servers"] if not at.get(s)]
    return Check(name, not empty, "none on: " + ", ".join(empty) if empty else count_text(at))


def _streams_stay(name: str, result: Verdict, bound: float | None) -> Check | None:
    fig = _streams(result)
    if fig is None:
        return None
    before, after = fig["open_at_scale"], fig["open_after_scale"]
    on_new = [s for s in fig["new_servers"] if after.get(s)]
    ok = not fig["moved"] and before == after and not on_new
    detail = (
        f"before {count_text(before)}; after {count_text(after)}; ended {count_text(fig['moved'])}"
    )
    return Check(name, ok, detail)


def _streams_move_at_age(name: str, result: Verdict, bound: float | None) -> Check | None:
    fig = _streams(result)
    if fig is None:
        return None
    if fig["cut_s"] is None:
        return Check(name, False, "the servers set no maximum age and grace")
    low, high = fig["cut_s"]
    lifetimes = fig["first_lifetimes_s"]
    off = [t for t in lifetimes if not low <= t <= high]
    idle = [s for s in fig["new_servers"] if not fig["opened_after_scale"].get(s)]
    cut_only = set(fig["ended_before_phases"]) == {MAX_AGE_END}
    ok = cut_only and bool(lifetimes) and not off and not idle
    detail = f"ended {count_text(fig['ended_before_phases'])}, first streams lived "
    detail += f"{min(lifetimes, default=0):g}-"
    detail += f"{max(lifetimes, default=0):g}s (expected {low:g}-{high:g}s); "
    opened = count_text(fig["opened_after_scale"])
    detail += f"no stream on: {', '.join(idle)}" if idle else f"opened again on {opened}"
    return Check(name, ok, detail)


def phase_streams(result: Verdict, phase: str) -> tuple[dict | None, dict | None]:
    """The stream figures, and those of ``phase``'s window, where there are."""
    fig = _streams(result)
    return fig, None if fig is None else fig["windows"].get(phase)


def chosen_ends(fig: dict) -> set[str]:
    """The stream ends a server chooses: its drain, and where it limits its connections' age,
    the cut at age + grace."""
    return {DRAIN_END, MAX_AGE_END} if fig["cut_s"] is not None else {DRAIN_END}


#: The checks of the scale-up, by the names the catalogue's records use; each phase brings
#: its own (:mod:`hellolb_lab.phases`).
CHECKS: dict[str, CheckFunction] = {
    "answers": _answers,
    "no failed RPC": _no_failed_rpc,
    "one server per client connection": _one_server_per_connection,
    "balanced over the first servers": _balanced_first,
    "no traffic to the new servers": _new_servers_idle,
    "every new server reached": _new_servers_reached,
    STREAMS_HELD: _streams_held,
    STREAMS_ON_ONE: _streams_on_one,
    STREAMS_SPREAD: _streams_spread,
    STREAMS_STAY: _streams_stay,
    STREAMS_MOVE_AT_AGE: _streams_move_at_age,
}
