"""A finished run, judged: the verdict, the checks, the latency and what the tables read."""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass
from typing import Any

from hello_client import events as client
from hello_client.stats import percentile

from hellolb_lab import checks, clientlog, disruption, streamverdict, verdict
from hellolb_lab.checks import Check
from hellolb_lab.stage import Stage
from hellolb_lab.verdict import Verdict
from hellolb_lab.view import Picture
from hellolb_lab.xds import launch

#: Seconds after a client is ready before its latency counts: it has settled by then.
SETTLE_S = 1.0


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
    proxy_requests: dict[str, dict[str, int]]
    log_dir: str
    picture: Picture

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
            "verdict": self.verdict.to_dict(),
            "log_dir": self.log_dir,
        }


def judge(stage: Stage, scale_at: float, end: float) -> RunResult:
    """Judge a finished run of ``stage``: the scale-up at ``scale_at`` up to where servers
    started leaving (or ``end``), and each phase in which they left on its own."""
    plan = stage.plan
    events = stage.client_events()
    answers = clientlog.answers_from_events(events)
    leaving = min((w.start for w in stage.windows.values()), default=end)
    split = proxy_split(stage)
    extra: dict[str, Any] = {}
    if split:
        extra["proxy_requests"] = {k: split[k] for k in ("before_restart", "after_restart")}
    outage = stage.extra.get(verdict.OUTAGE)
    if outage is not None:
        extra[verdict.OUTAGE] = verdict.outage_figures(answers, outage)
    if plan.control_plane is not None:
        extra[XDS_PUSH_MS] = xds_push_ms(stage)
    if plan.streams:
        extra[streamverdict.STREAMS] = stream_figures(stage, events, scale_at, leaving)
    result = verdict.judge(
        plan.scenario.name,
        answers,
        scale_at=scale_at,
        servers_before=plan.server_ids(1, plan.first_servers),
        servers_after=plan.server_ids(1, plan.options.scale_to),
        end=leaving,
        failed_rpcs=clientlog.failed_rpcs(events, until=leaving),
        extra=extra,
        disruptions=disruptions(stage, events, answers),
    )
    return RunResult(
        scenario=plan.scenario.name,
        verdict=result,
        checks=checks.expected_streams(plan.scenario, result)
        if plan.streams
        else checks.expected(plan.scenario, result, reach_bound_s=plan.bound),
        bound=plan.bound,
        marks=stage.marks,
        settings=plan.settings(),
        latency_ms=latency(events, until=leaving),
        proxy_requests=split,
        log_dir=str(plan.log_dir),
        picture=stage.picture,
    )


def stream_figures(
    stage: Stage, events: list[dict[str, Any]], scale_at: float, leaving: float
) -> dict[str, Any]:
    """What the run did to the client's streams (:mod:`hellolb_lab.streamverdict`)."""
    plan = stage.plan
    lives, failed = clientlog.stream_lives(events)
    first = plan.server_ids(1, plan.first_servers)
    return streamverdict.figures(
        lives,
        failed,
        scale_at=scale_at,
        after_end=stage.after_end if stage.after_end is not None else leaving,
        slots=plan.stream_slots,
        first_servers=first,
        new_servers=plan.server_ids(plan.first_servers + 1, plan.options.scale_to),
        windows=stage.windows,
        cut_s=plan.stream_cut_s,
    )


def disruptions(
    stage: Stage, events: list[dict[str, Any]], answers: list[clientlog.Answer]
) -> dict[str, disruption.Disruption]:
    """Each phase in which servers left, measured; a crash also counts the calls the client
    had in flight when the server died, the most it could lose."""
    failures = clientlog.failures(events)
    measured = {}
    for name, window in stage.windows.items():
        if name == "crash":
            in_flight = clientlog.calls_in_flight(events, window.start)
            window = dataclasses.replace(window, facts={**window.facts, "in_flight": in_flight})
        measured[name] = disruption.judge(window, answers, failures)
    return measured


def proxy_split(stage: Stage) -> dict[str, dict[str, int]]:
    """Requests of the proxy replicas added by the proxy scale-up, before and after the client
    restart, and every replica's total; empty when the run scaled no proxies."""
    counts = stage.proxy_requests
    if not {"before_scale", "before_restart", "after_restart"} <= set(counts):
        return {}
    before, at_restart, at_end = (
        counts["before_scale"],
        counts["before_restart"],
        counts["after_restart"],
    )
    added = [p for p in at_end if p not in before]
    return {
        "before_restart": {p: at_restart[p] - before.get(p, 0) for p in added},
        "after_restart": {p: at_end[p] - at_restart[p] for p in added},
        "total": at_end,
    }


#: The verdict's ``extra`` key for :func:`xds_push_ms`.
XDS_PUSH_MS = "xds_push_ms"


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
