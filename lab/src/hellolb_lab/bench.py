"""The lab benchmark: every scenario measured in one run, with zero server work time.

Per scenario: the balance of answers per server in the steady state after the scale-up
(max/min), the time until every new server answered, the latency the client sees (p50/p99),
and what the extra hop costs against direct client-side balancing: the scenario's p50 minus,
and divided by, the headless scenario's p50 from the same run.

Servers answer at once (``WORK_TIME=0``) so latency is the path, not the work. The client sends
one call at a time (``CONCURRENCY=1``, unless ``--client-env`` says otherwise) and pauses
briefly between rounds (``ROUND_INTERVAL``), so that two cores shared by every process measure
the hops rather than queueing in the client's event loop. This is a measurement, not a test:
nothing fails.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

from hellolb_lab import scenarios
from hellolb_lab.scenarios import Options, RunResult
from hellolb_lab.view import LiveView, table

#: Proxy hops between client and server, per scenario.
HOPS = {"clusterip": 1, "headless": 0, "maxage": 0, "proxy": 1, "sidecar": 1}

COLUMNS = (
    "scenario",
    "hops",
    "balance max/min",
    "new servers reached",
    "p50 ms",
    "p99 ms",
    "p50 added ms",
    "p50 vs headless",
)


def bench_options(base: Options) -> Options:
    """``base`` with zero work time, one call at a time and a short pause between rounds."""
    return dataclasses.replace(
        base,
        work_time="0",
        round_interval=base.round_interval or "10ms",
        client_env={"CONCURRENCY": "1", **base.client_env},
    )


def row(result: RunResult, baseline_p50: float | None) -> dict[str, Any]:
    v = result.verdict
    ratio = v.balance_after.ratio
    p50 = result.latency_ms["p50"]
    reached = "never" if v.time_to_all_new is None else f"after {v.time_to_all_new:.1f}s"
    if v.time_to_all_new is None and v.new_servers:
        reached = f"never ({sum(1 for t in v.reached.values() if t is None)} idle)"
    if result.scenario == "clusterip":
        # The first connection stays put; only the restarted client's new connection can land on
        # a new server, by chance.
        hit = sum(1 for t in v.reached.values() if t is not None)
        reached = f"{hit} of {len(v.new_servers)}, by a new connection only"
    out: dict[str, Any] = {
        "scenario": result.scenario,
        "hops": HOPS.get(result.scenario, ""),
        "balance max/min": "inf (idle servers)" if math.isinf(ratio) else f"{ratio:.2f}",
        "new servers reached": reached,
        "p50 ms": p50,
        "p99 ms": result.latency_ms["p99"],
        "p50 added ms": "",
        "p50 vs headless": "",
    }
    if p50 is not None and baseline_p50:
        out["p50 added ms"] = f"{p50 - baseline_p50:+.2f}"
        out["p50 vs headless"] = f"{p50 / baseline_p50:.2f}x"
    return out


def run(
    options: Options,
    names: Sequence[str] = scenarios.SCENARIOS,
    view_factory: Callable[[], LiveView] | None = None,
    report: Callable[[str], None] = print,
) -> tuple[list[dict[str, Any]], list[RunResult]]:
    """Run ``names`` (headless first: it is the baseline) and return the table rows."""
    order = ["headless", *[n for n in names if n != "headless"]]
    results: dict[str, RunResult] = {}
    for name in order:
        report(f"bench: {name} ...")
        view = view_factory() if view_factory else None
        results[name] = scenarios.run(name, bench_options(options), view)
    baseline = results["headless"].latency_ms["p50"]
    rows = [row(results[n], baseline) for n in scenarios.SCENARIOS if n in results]
    return rows, [results[n] for n in scenarios.SCENARIOS if n in results]


def format_rows(rows: list[dict[str, Any]]) -> str:
    return table(rows, COLUMNS)
