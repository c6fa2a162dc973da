"""The tour's and the bench's table rows: what each run says, in the words its record asks for.

A scenario whose new servers can only be reached by a new connection (:attr:`Reach.NEW_CONNECTION`)
reports how many a restarted client happened to reach; the others report when every new server
answered, or how many never did. The last columns are the servers leaving: the calls that failed
in the rollout, the seconds in which the client ran on fewer servers than before it (see
:mod:`hellolb_lab.disruption`), and the calls that failed in the crash, of those in flight.
"""

from __future__ import annotations

import math
from typing import Any

from hellolb_lab import catalogue
from hellolb_lab.catalogue import Reach
from hellolb_lab.outcome import RunResult
from hellolb_lab.phases import PHASES
from hellolb_lab.verdict import Verdict

VERSUS = f"p50 vs {catalogue.BASELINE}"
#: The phases' columns (the servers leaving), in the registry's order.
LEAVING_COLUMNS = tuple(c for p in PHASES.values() for c in p.columns)
TOUR_COLUMNS = (
    "scenario",
    "first servers",
    "new servers",
    "balance after",
    "failed",
    *LEAVING_COLUMNS,
    "expected",
)
BENCH_COLUMNS = (
    "scenario",
    "hops",
    "balance max/min",
    "new servers reached",
    "p50 ms",
    "p99 ms",
    "p50 added ms",
    VERSUS,
    *LEAVING_COLUMNS,
)


def _by_new_connection(v: Verdict) -> str:
    hit = sum(1 for t in v.reached.values() if t is not None)
    return f"{hit} of {len(v.new_servers)}, by a new connection only"


def _never(v: Verdict) -> int:
    return sum(1 for t in v.reached.values() if t is None)


def leaving_cells(v: Verdict) -> dict[str, str]:
    """The phases' columns, each phase's cells from its finding; blank for a phase that did
    not run."""
    cells = dict.fromkeys(LEAVING_COLUMNS, "")
    for name, finding in v.findings.items():
        phase_cells = PHASES[name].cells
        if phase_cells is not None:
            cells.update(phase_cells(finding))
    return cells


def tour_row(result: RunResult) -> dict[str, str]:
    v = result.verdict
    answered = sum(1 for n in v.servers_before.values() if n)
    if catalogue.get(result.scenario).reach is Reach.NEW_CONNECTION:
        new = _by_new_connection(v)
    elif v.time_to_all_new is not None:
        new = f"all reached in {v.time_to_all_new:.1f}s"
    else:
        new = f"{_never(v)} of {len(v.new_servers)} never"
    ratio = v.balance_after.ratio
    return {
        "scenario": result.scenario,
        "first servers": f"{answered} of {len(v.servers_before)} answered",
        "new servers": new,
        "balance after": "idle servers" if math.isinf(ratio) else f"{ratio:.2f}",
        "failed": str(v.failed_rpcs),
        **leaving_cells(v),
        "expected": "yes" if result.ok else "NO",
    }


def bench_row(result: RunResult, baseline_p50: float | None) -> dict[str, Any]:
    """One bench row; the last two columns compare its median latency with the baseline's."""
    v = result.verdict
    record = catalogue.get(result.scenario)
    if record.reach is Reach.NEW_CONNECTION:
        reached = _by_new_connection(v)
    elif v.time_to_all_new is not None:
        reached = f"after {v.time_to_all_new:.1f}s"
    else:
        reached = f"never ({_never(v)} idle)" if v.new_servers else "never"
    ratio = v.balance_after.ratio
    p50 = result.latency_ms["p50"]
    row: dict[str, Any] = {
        "scenario": result.scenario,
        "hops": record.hops,
        "balance max/min": "inf (idle servers)" if math.isinf(ratio) else f"{ratio:.2f}",
        "new servers reached": reached,
        "p50 ms": p50,
        "p99 ms": result.latency_ms["p99"],
        "p50 added ms": "",
        VERSUS: "",
        **leaving_cells(v),
    }
    if p50 is not None and baseline_p50:
        row["p50 added ms"] = f"{p50 - baseline_p50:+.2f}"
        row[VERSUS] = f"{p50 / baseline_p50:.2f}x"
    return row
