"""The report text: a verdict as the few lines a person reads at a glance, with its checks.

The top layer of the judging: it reads the verdict, the scenario's record and the phases'
own lines (:mod:`hellolb_lab.phases`), and imports nothing that runs.
"""

from __future__ import annotations

from collections.abc import Iterable

from hellolb_lab.catalogue import Reach, Scenario
from hellolb_lab.checks import Check
from hellolb_lab.measure import ratio_text
from hellolb_lab.phases import PHASES
from hellolb_lab.streamverdict import describe as describe_streams
from hellolb_lab.verdict import Verdict


def format_verdict(scenario: Scenario, result: Verdict, checks: Iterable[Check] = ()) -> str:
    """The verdict's lines, then one per check.

    Servers per client are listed when several clients answered, and always where the scenario
    balances connections, not calls (one client, one server).
    """
    lines = [f"verdict: {result.scenario}"]
    before = ", ".join(f"{s}={n}" for s, n in result.servers_before.items()) or "none"
    after = ", ".join(f"{s}={n}" for s, n in result.servers_after.items()) or "none"
    lines.append(f"  before scale-up: {before}")
    lines.append(f"  after scale-up:  {after}")
    if result.new_servers:
        reached = ", ".join(
            f"{s} {'never' if t is None else f'{t:.1f}s'}" for s, t in result.reached.items()
        )
        total = "never" if result.time_to_all_new is None else f"{result.time_to_all_new:.1f}s"
        lines.append(f"  new servers reached: {reached} (all: {total})")
    lines.append(
        f"  balance max/min: before {ratio_text(result.balance_before.ratio)}, "
        f"steady state after {ratio_text(result.balance_after.ratio)}"
    )
    if len(result.servers_by_client) > 1 or scenario.reach is Reach.NEW_CONNECTION:
        per_client = "; ".join(f"{c}: {', '.join(s)}" for c, s in result.servers_by_client.items())
        lines.append(f"  servers per client: {per_client}")
    # Limited calls (RESOURCE_EXHAUSTED) are not failed ones; named only when there were some.
    limited = f", limited {result.limited_calls}" if result.limited_calls else ""
    lines.append(f"  answers {result.answers_total}, failed RPCs {result.failed_rpcs}{limited}")
    for name, finding in result.findings.items():
        describe = PHASES[name].describe
        if describe is not None:
            lines.extend(describe(finding))
    if result.streams is not None:
        lines.extend(describe_streams(result.streams))
    for check in checks:
        lines.append(f"  [{check.status}] {check.name}: {check.detail}")
    return "\n".join(lines)
