"""The expected behaviours, one function each, run in the order a scenario's record lists them.

Every check takes the measured :class:`~hellolb_lab.verdict.Verdict` and the scenario's reach
bound, and returns a :class:`Check` (passed or not, with the figures behind it), or ``None`` when
the run holds no data for it (the proxy replicas' requests, outside the proxy phase; a rollout
or a crash that did not run; the xDS control plane's outage, outside its restart phase). A new
scenario that needs a new kind of check adds one function to :data:`CHECKS` under the name its
record uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hellolb_lab import canary
from hellolb_lab.catalogue import (
    CALLS_GO_ON,
    CANARY_LOSSLESS,
    CANARY_SPLIT,
    CRASH_LOSSLESS,
    FOUND_ONCE_BACK,
    ROLLOUT_LOSSLESS,
    STREAM_EXPECTATIONS,
    STREAMS_CRASH,
    STREAMS_DRAINED,
    STREAMS_HELD,
    STREAMS_MOVE_AT_AGE,
    STREAMS_ON_ONE,
    STREAMS_REOPENED,
    STREAMS_SPREAD,
    STREAMS_STAY,
    Scenario,
    stream_checks,
)
from hellolb_lab.streamverdict import DRAIN_END, MAX_AGE_END, STREAMS
from hellolb_lab.verdict import OUTAGE, Verdict, ratio_text


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


def _proxy_split(result: Verdict, part: str) -> dict[str, int] | None:
    """Requests per added proxy replica before or after the client restart, if measured."""
    split = result.extra.get("proxy_requests")
    return None if split is None else dict(split.get(part, {}))


def _proxies_idle(name: str, result: Verdict, bound: float | None) -> Check | None:
    before = _proxy_split(result, "before_restart")
    if before is None:
        return None
    detail = ", ".join(f"{p}: {n}" for p, n in before.items()) or "no new replicas"
    return Check(name, bool(before) and not any(before.values()), detail)


def _proxies_busy(name: str, result: Verdict, bound: float | None) -> Check | None:
    after = _proxy_split(result, "after_restart")
    if after is None:
        return None
    detail = ", ".join(f"{p}: {n}" for p, n in after.items()) or "no new replicas"
    return Check(name, bool(after) and all(after.values()), detail)


def _lossless(phase: str) -> CheckFunction:
    """No call failed while servers left in ``phase``."""

    def check(name: str, result: Verdict, bound: float | None) -> Check | None:
        d = result.disruptions.get(phase)
        if d is None:
            return None
        detail = f"{d.failed} failed"
        if "in_flight" in d.facts:
            detail += f" of {d.facts['in_flight']} calls in flight when {d.facts['killed']} died"
        return Check(name, d.failed == 0, detail)

    return check


def _all_answer_after_rollout(name: str, result: Verdict, bound: float | None) -> Check | None:
    d = result.disruptions.get("rollout")
    if d is None:
        return None
    per = d.balance_after.per_server
    idle = [s for s, n in per.items() if not n]
    detail = f"max/min {ratio_text(d.balance_after.ratio)}"
    if idle:
        detail = "idle: " + ", ".join(idle)
    return Check(name, bool(per) and not idle, detail)


def _one_server_after_rollout(name: str, result: Verdict, bound: float | None) -> Check | None:
    d = result.disruptions.get("rollout")
    if d is None:
        return None
    by_client = d.servers_by_client_after
    detail = "; ".join(f"{c}: {', '.join(s)}" for c, s in by_client.items()) or "no answers"
    return Check(name, bool(by_client) and all(len(s) == 1 for s in by_client.values()), detail)


def _outage(result: Verdict) -> dict | None:
    """The control plane's outage as :func:`~hellolb_lab.verdict.outage_figures` measured it."""
    return result.extra.get(OUTAGE)


def _calls_go_on_while_down(name: str, result: Verdict, bound: float | None) -> Check | None:
    outage = _outage(result)
    if outage is None:
        return None
    known = outage["known_while_down"]
    answered = [s for s, n in known.items() if n]
    detail = (
        f"{sum(known.values())} answers from {len(answered)} of the {len(known)} known servers "
        f"in {outage['down_s']:.1f}s"
    )
    return Check(name, bool(known) and len(answered) == len(known), detail)


def _found_once_back(name: str, result: Verdict, bound: float | None) -> Check | None:
    outage = _outage(result)
    if outage is None:
        return None
    early = [s for s, n in outage["added_while_down"].items() if n]
    reached = outage["added_reached_s"]
    never = [s for s, t in reached.items() if t is None]
    late = [s for s, t in reached.items() if t is not None and t > outage["bound_s"]]
    if early:
        detail = "answered while the control plane was down: " + ", ".join(early)
    elif never:
        detail = "never reached: " + ", ".join(never)
    else:
        times = ", ".join(f"{s} {t:.2f}s" for s, t in reached.items())
        detail = f"after it was back: {times} (bound {outage['bound_s']}s)"
    return Check(name, bool(reached) and not (early or never or late), detail)


def _canary_split(name: str, result: Verdict, bound: float | None) -> Check | None:
    figures = result.extra.get(canary.CANARY)
    if figures is None:
        return None
    splits = canary.splits_of(figures)
    detail = "; ".join(s.text() for s in splits) or "no steps"
    return Check(name, bool(splits) and all(s.ok for s in splits), detail)


def _canary_lossless(name: str, result: Verdict, bound: float | None) -> Check | None:
    figures = result.extra.get(canary.CANARY)
    if figures is None:
        return None
    detail = f"{figures['failed']} failed in {figures['seconds']:.0f}s"
    return Check(name, figures["failed"] == 0, detail)


def _streams(result: Verdict) -> dict | None:
    """The stream figures (:func:`hellolb_lab.streamverdict.figures`), in stream mode."""
    return result.extra.get(STREAMS)


def _count(counts: dict[str, int]) -> str:
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
    return Check(name, len(fig["open_at_scale"]) == 1, _count(fig["open_at_scale"]))


def _streams_spread(name: str, result: Verdict, bound: float | None) -> Check | None:
    fig = _streams(result)
    if fig is None:
        return None
    at = fig["open_at_scale"]
    empty = [s for s in fig["first_servers"] if not at.get(s)]
    return Check(name, not empty, "none on: " + ", ".join(empty) if empty else _count(at))


def _streams_stay(name: str, result: Verdict, bound: float | None) -> Check | None:
    fig = _streams(result)
    if fig is None:
        return None
    before, after = fig["open_at_scale"], fig["open_after_scale"]
    on_new = [s for s in fig["new_servers"] if after.get(s)]
    ok = not fig["moved"] and before == after and not on_new
    detail = f"before {_count(before)}; after {_count(after)}; ended {_count(fig['moved'])}"
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
    detail = f"ended {_count(fig['ended_before_phases'])}, first streams lived "
    detail += f"{min(lifetimes, default=0):g}-"
    detail += f"{max(lifetimes, default=0):g}s (expected {low:g}-{high:g}s); "
    opened = _count(fig["opened_after_scale"])
    detail += f"no stream on: {', '.join(idle)}" if idle else f"opened again on {opened}"
    return Check(name, ok, detail)


def _stream_window(result: Verdict, phase: str) -> dict | None:
    fig = _streams(result)
    return None if fig is None else fig["windows"].get(phase)


def _chosen_ends(fig: dict) -> set[str]:
    """The stream ends a server chooses: its drain, and where it limits its connections' age,
    the cut at age + grace."""
    return {DRAIN_END, MAX_AGE_END} if fig["cut_s"] is not None else {DRAIN_END}


def _streams_drained(name: str, result: Verdict, bound: float | None) -> Check | None:
    fig, w = _streams(result), _stream_window(result, "rollout")
    if fig is None or w is None:
        return None
    ends = set(w["ends"])
    # Where the servers cut streams at age + grace, a stream may be cut before its server
    # drains: then a cut is as clean an end as the drain.
    drained = DRAIN_END in ends or (fig["cut_s"] is not None and bool(ends))
    clean = drained and ends <= _chosen_ends(fig) and w["errors"] == 0
    return Check(name, clean, f"ends {_count(w['ends'])}; errors {w['errors']}")


def _streams_reopened(name: str, result: Verdict, bound: float | None) -> Check | None:
    fig, w = _streams(result), _stream_window(result, "rollout")
    if fig is None or w is None:
        return None
    after = w["open_after"]
    old = [s for s in after if s not in w["new_servers"]]
    ok = sum(after.values()) == fig["slots"] and not old
    detail = f"{_count(after)}; slowest reconnect {w['reconnect_s_max']}s"
    return Check(name, ok, detail)


def _streams_crash(name: str, result: Verdict, bound: float | None) -> Check | None:
    fig, w = _streams(result), _stream_window(result, "crash")
    if fig is None or w is None:
        return None
    code = STREAM_EXPECTATIONS[result.scenario].crash_code
    held, ends = w["killed_held"], w["killed_ends"]
    reopened = sum(w["open_after"].values()) == fig["slots"]
    unexpected = set(w["other_ends"]) - _chosen_ends(fig)
    ok = held > 0 and ends == {code: held} and not unexpected and reopened
    detail = f"{w['killed']} held {held}, ended {_count(ends)} (expected {code}); "
    detail += f"other ends {_count(w['other_ends'])}; after {_count(w['open_after'])}"
    return Check(name, ok, detail)


#: Every check, by the name the catalogue's records use.
CHECKS: dict[str, CheckFunction] = {
    "answers": _answers,
    "no failed RPC": _no_failed_rpc,
    "one server per client connection": _one_server_per_connection,
    "balanced over the first servers": _balanced_first,
    "no traffic to the new servers": _new_servers_idle,
    "every new server reached": _new_servers_reached,
    "new proxy replicas idle until the client restarts": _proxies_idle,
    "new proxy replicas busy after the client restarts": _proxies_busy,
    ROLLOUT_LOSSLESS: _lossless("rollout"),
    "every server answers after the rollout": _all_answer_after_rollout,
    "one server per client after the rollout": _one_server_after_rollout,
    CRASH_LOSSLESS: _lossless("crash"),
    CALLS_GO_ON: _calls_go_on_while_down,
    FOUND_ONCE_BACK: _found_once_back,
    CANARY_SPLIT: _canary_split,
    CANARY_LOSSLESS: _canary_lossless,
    STREAMS_HELD: _streams_held,
    STREAMS_ON_ONE: _streams_on_one,
    STREAMS_SPREAD: _streams_spread,
    STREAMS_STAY: _streams_stay,
    STREAMS_MOVE_AT_AGE: _streams_move_at_age,
    STREAMS_DRAINED: _streams_drained,
    STREAMS_REOPENED: _streams_reopened,
    STREAMS_CRASH: _streams_crash,
}


def expected(
    scenario: Scenario, result: Verdict, *, reach_bound_s: float | None = None
) -> list[Check]:
    """The scenario's expected behaviour, checked against ``result``."""
    checks = [CHECKS[name](name, result, reach_bound_s) for name in scenario.expected_checks]
    return [c for c in checks if c is not None]


def expected_streams(scenario: Scenario, result: Verdict) -> list[Check]:
    """The scenario's expected stream behaviour (its entry in
    :data:`~hellolb_lab.catalogue.STREAM_EXPECTATIONS`), checked against a stream-mode run."""
    names = stream_checks(scenario.name)
    checks = [CHECKS[name](name, result, None) for name in names]
    return [c for c in checks if c is not None]
