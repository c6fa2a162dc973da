"""The lab benchmark: every scenario measured in one run, with zero server work time.

Per scenario: the balance of answers per server in the steady state after the scale-up
(max/min), the time until every new server answered, the latency the client sees (p50/p99),
and what the extra hop costs against direct client-side balancing: the scenario's p50 minus,
and divided by, the baseline scenario's p50 from the same run (the catalogue's ``BASELINE``).

Servers answer at once (``WORK_TIME=0``) so latency is the path, not the work. The client sends
one call at a time (``CONCURRENCY=1``, unless ``--client-env`` says otherwise) and pauses
briefly between rounds (``ROUND_INTERVAL``), so that two cores shared by every process measure
the hops rather than queueing in the client's event loop. This is a measurement, not a test:
nothing fails.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from hellolb_lab import catalogue, rows, timeline
from hellolb_lab.options import Options
from hellolb_lab.outcome import RunResult
from hellolb_lab.view import LiveView, table


def bench_options(base: Options) -> Options:
    """``base`` with zero work time, one call at a time and a short pause between rounds."""
    return dataclasses.replace(
        base,
        work_time="0",
        round_interval=base.round_interval or "10ms",
        client_env={"CONCURRENCY": "1", **base.client_env},
    )


def run(
    options: Options,
    names: Sequence[str] | None = None,
    view_factory: Callable[[], LiveView] | None = None,
    report: Callable[[str], None] = print,
) -> tuple[list[dict[str, Any]], list[RunResult]]:
    """Run ``names`` (every lab scenario by default; the baseline first) and return the rows, in
    tour order."""
    chosen = set(names or catalogue.lab_names()) | {catalogue.BASELINE}
    order = [catalogue.BASELINE, *(n for n in catalogue.lab_names() if n in chosen)]
    results: dict[str, RunResult] = {}
    for name in dict.fromkeys(order):
        report(f"bench: {name} ...")
        view = view_factory() if view_factory else None
        results[name] = timeline.run(name, bench_options(options), view)
    baseline = results[catalogue.BASELINE].latency_ms["p50"]
    ordered = [results[n] for n in catalogue.lab_names() if n in results]
    return [rows.bench_row(r, baseline) for r in ordered], ordered


def format_rows(table_rows: list[dict[str, Any]]) -> str:
    return table(table_rows, rows.BENCH_COLUMNS)
