"""The expected behaviours, one function each, run in the order a scenario's record lists them.

Every check takes the measured :class:`~hellolb_lab.verdict.Verdict` and the scenario's reach
bound, and returns a :class:`Check` (passed or not, with the figures behind it), or ``None`` when
the run holds no data for it (the proxy replicas' requests, outside the proxy phase; a rollout
or a crash that did not run; the xDS control plane's outage, outside its restart phase). A new
scenario that needs a new kind of check adds one function to :data:`CHECKS` under the name its
record uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hellolb_lab import canary
from hellolb_lab.catalogue import (
    CALLS_GO_ON,
    CANARY_LOSSLESS,
    CANARY_SPLIT,
    CRASH_LOSSLESS,
    FOUND_ONCE_BACK,
    ROLLOUT_LOSSLESS,
    Scenario,
)
from hellolb_lab.verdict import OUTAGE, Verdict, ratio_text


@dataclass(frozen=True)
class Check:
    """One expected behaviour and whether the run showed it."""

    name: str
    ok: bool
    detail: str


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
    got = {s: result.servers_after.get(s, 0) for s in result.new_servers}
    detail = ", ".join(f"{s}: {n}" for s, n in got.items()) or "no new servers"
    return Check(name, bool(result.new_servers) and not any(got.values()), detail)


def _new_servers_reached(name: str, result: Verdict, bound: float | None) -> Check:
    never = [s for s, t in result.reached.items() if t is None]
    ok = bool(result.new_servers) and not never
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
}


def expected(
    scenario: Scenario, result: Verdict, *, reach_bound_s: float | None = None
) -> list[Check]:
    """The scenario's expected behaviour, checked against ``result``."""
    checks = [CHECKS[name](name, result, reach_bound_s) for name in scenario.expected_checks]
    return [c for c in checks if c is not None]
