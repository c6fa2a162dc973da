"""A finished run, judged: the verdict, the checks, the latency and what the tables read."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hello_client import events as client
from hello_client.stats import percentile

from hellolb_lab import checks, clientlog, judging
from hellolb_lab.checks import Check
from hellolb_lab.judging import Evidence, StreamSetup
from hellolb_lab.measure import Window
from hellolb_lab.phases import scale_proxies
from hellolb_lab.stage import Stage
from hellolb_lab.verdict import Verdict
from hellolb_lab.view import Picture, series
from hellolb_lab.xds import launch

#: Seconds after a client is ready before its latency counts: it has settled by then.
SETTLE_S = 1.0
#: A run's saved results, in its log folder: what ``--json`` writes, picture included, from
#: which ``hellolb-lab chart`` draws the run again.
RESULTS = "results.json"


@dataclass
class RunResult:
    """A finished run: the verdict, the checks, and what the benchmark reads."""

    scenario: str
    verdict: Verdict
    checks: list[Check]
    bound: float | None
    marks: list[tuple[float, str]]
    settings: dict[str, Any]
    latency_ms: dict[str, float | None]
    #: Requests per proxy replica, where the run scaled the proxies.
    proxy_requests: dict[str, int]
    #: Milliseconds from each publication to the xDS push that carried it, by client.
    xds_push_ms: dict[str, list[float]]
    log_dir: str
    picture: Picture
    #: When the clients stopped: the picture's end.
    end: float

    @property
    def ok(self) -> bool:
        return checks.passed(self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "ok": self.ok,
            "checks": [c.__dict__ for c in self.checks],
            "reach_bound_s": self.bound,
            "marks": [{"t": t, "label": label} for t, label in self.marks],
            "settings": self.settings,
            "latency_ms": self.latency_ms,
            "proxy_requests": self.proxy_requests,
            "xds_push_ms": self.xds_push_ms,
            "verdict": self.verdict.to_dict(),
            "log_dir": self.log_dir,
            "picture": series(self.picture, self.end),
        }

    @property
    def results_path(self) -> Path:
        return Path(self.log_dir) / RESULTS

    def save(self) -> Path:
        """Write :meth:`to_dict` beside the run's logs; the file's path."""
        path = self.results_path
        path.write_text(json.dumps(self.to_dict(), indent=1, default=str) + "\n")
        return path


def judge(stage: Stage, scale_at: float, end: float) -> RunResult:
    """Judge a finished run of ``stage``: the scale-up at ``scale_at`` up to where the phases
    started (or ``end``), and each phase by what it recorded (:mod:`hellolb_lab.judging`)."""
    plan = stage.plan
    events = stage.client_events()
    windows = [r for r in stage.records.values() if isinstance(r, Window)]
    leaving = min((w.start for w in windows), default=end)
    streams = None
    if plan.streams:
        after_end = stage.after_end if stage.after_end is not None else leaving
        streams = StreamSetup(plan.stream_slots, plan.stream_cut_s, after_end)
    evidence = Evidence(
        scenario=plan.scenario,
        events=events,
        scale_at=scale_at,
        servers_before=plan.server_ids(1, plan.first_servers),
        servers_after=plan.server_ids(1, plan.options.scale_to),
        end=leaving,
        reach_bound_s=plan.bound,
        records=stage.records,
        streams=streams,
    )
    result, checks = judging.judge(evidence)
    split = scale_proxies.finding(result)
    return RunResult(
        scenario=plan.scenario.name,
        verdict=result,
        checks=checks,
        bound=plan.bound,
        marks=stage.marks,
        settings=plan.settings(),
        latency_ms=latency(events, until=leaving),
        proxy_requests={} if split is None else split.total,
        xds_push_ms=xds_push_ms(stage) if plan.control_plane is not None else {},
        log_dir=str(plan.log_dir),
        picture=stage.picture,
        end=end,
    )


def xds_push_ms(stage: Stage) -> dict[str, list[float]]:
    """Milliseconds from each time the servers were published to the xDS push that gave a
    client exactly those servers, by client."""
    plan = stage.plan
    assert plan.control_plane is not None
    events = [e for proc in stage.control_planes for e in proc.snapshot()]
    delays = launch.push_delays(events, stage.xds_publications, plan.control_plane.port)
    return {node: [round(d * 1000, 1) for d in found] for node, found in delays.items()}


def latency(events: list[dict[str, Any]], until: float | None = None) -> dict[str, float | None]:
    """The client-seen latency of settled clients (p50, p99, mean, in ms) and the sample size,
    from the answers before ``until`` (where servers start leaving)."""
    ready = {
        str(e.get(client.CLIENT_ID)): clientlog.parse_timestamp(e[client.TIMESTAMP])
        for e in events
        if e.get("event") == client.READY
    }
    samples = sorted(
        float(e[client.LATENCY_MS])
        for e in events
        if clientlog.is_response(e)
        and ready.get(str(e.get(client.CLIENT_ID)), 0.0) + SETTLE_S
        <= clientlog.parse_timestamp(e[client.TIMESTAMP])
        < (until if until is not None else math.inf)
    )
    p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
    return {
        "p50": None if p50 is None else round(p50, 3),
        "p99": None if p99 is None else round(p99, 3),
        "mean": round(statistics.fmean(samples), 3) if samples else None,
        "count": len(samples),
    }
