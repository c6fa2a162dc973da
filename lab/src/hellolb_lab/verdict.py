"""The shared verdict: what the client's logs say about a scenario, and whether that is expected.

One module judges every run, wherever the logs come from: the local lab (which reads the
client's stdout), the cluster log reader (``kubectl logs -f -l app=client | hellolb-lab watch``)
and the Kubernetes end-to-end check. Its input is the client's parsed JSON log lines
(``client.summary``, optionally ``client.response``), as the README documents them (Log fields).

Typical use from a cluster check::

    from hellolb_lab import verdict

    events = [json.loads(line) for line in log_lines if line.startswith("{")]
    answers = verdict.answers_from_events(events)
    result = verdict.judge(
        "maxage",
        answers,
        scale_at=scaled_at_epoch_seconds,          # when replicas went 3 -> 5
        servers_before=pods_before,                 # pod names, from kubectl get pods
        servers_after=pods_after,
        end=time.time(),
        failed_rpcs=verdict.failed_rpcs(events),
    )
    bound = verdict.reach_bound("maxage", max_connection_age_s=10, dns_min_time_s=5)
    failures = [c for c in verdict.expected("maxage", result, reach_bound_s=bound) if not c.ok]

Times are seconds since the epoch (floats). Nothing here sleeps, reads files or starts anything.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

#: Scenarios the verdict knows. ``linkerd`` only runs on a cluster.
SCENARIOS = ("clusterip", "headless", "maxage", "proxy", "sidecar", "linkerd")

#: Largest max/min ratio of answers per server that still counts as "balanced".
BALANCED_RATIO = 1.5

#: Time added to every derived bound for process start-up, connecting and log timestamps.
DEFAULT_MARGIN_S = 2.0

#: gRPC spreads max connection age by +-10% so that connections do not all close at once.
MAX_AGE_JITTER = 1.1


@dataclass(frozen=True)
class Answer:
    """``count`` answers from ``server_id`` seen at ``t`` by ``client_id``."""

    t: float
    server_id: str
    count: int = 1
    client_id: str = ""


@dataclass(frozen=True)
class Balance:
    """Answers per server in a window, and how even they are (max/min; inf if one got none)."""

    per_server: dict[str, int]
    ratio: float

    @property
    def balanced(self) -> bool:
        return len(self.per_server) > 0 and self.ratio <= BALANCED_RATIO


@dataclass(frozen=True)
class Check:
    """One expected behaviour and whether the run showed it."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Verdict:
    """Measurements of one run around the scale-up.

    ``reached`` maps every new server to the seconds between the scale-up and its first answer,
    or ``None`` if it never answered. ``time_to_all_new`` is the largest of them (``None`` when
    any new server never answered). ``balance_after`` covers the steady state over every server
    that exists after the scale-up, from the moment every new server had answered (or from the
    scale-up, if some never did) to ``end``; an idle server makes its ratio infinite.
    """

    scenario: str
    scale_at: float | None
    end: float | None
    servers_before: dict[str, int]
    servers_after: dict[str, int]
    new_servers: tuple[str, ...]
    reached: dict[str, float | None]
    time_to_all_new: float | None
    balance_before: Balance
    balance_after: Balance
    servers_by_client: dict[str, tuple[str, ...]]
    answers_total: int
    failed_rpcs: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``inf`` ratios become ``None``)."""
        data = asdict(self)
        for key in ("balance_before", "balance_after"):
            if math.isinf(data[key]["ratio"]):
                data[key]["ratio"] = None
        return data


def parse_timestamp(value: str | float | int) -> float:
    """Epoch seconds from an ISO 8601 timestamp (as the services log it) or a number."""
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def answers_from_events(events: Iterable[Mapping[str, Any]]) -> list[Answer]:
    """Answers from parsed client log lines, oldest first.

    ``client.response`` lines give one answer each at its own timestamp (precise). When there are
    none, ``client.summary`` lines are used: ``by_server_window`` counted at the summary's
    timestamp, so times are only as precise as ``SUMMARY_INTERVAL``. Other events are ignored.
    """
    responses: list[Answer] = []
    summaries: list[Answer] = []
    for event in events:
        kind = event.get("event")
        client = str(event.get("client_id", ""))
        if kind == "client.response" and event.get("server_id") is not None:
            t = parse_timestamp(event["timestamp"])
            responses.append(Answer(t, str(event["server_id"]), 1, client))
        elif kind == "client.summary":
            t = parse_timestamp(event["timestamp"])
            for server, count in (event.get("by_server_window") or {}).items():
                if count:
                    summaries.append(Answer(t, str(server), int(count), client))
    chosen = responses or summaries
    chosen.sort(key=lambda a: a.t)
    return chosen


def failed_rpcs(events: Iterable[Mapping[str, Any]]) -> int:
    """Failed RPCs seen by the clients: ``client.error`` lines, or summaries' totals if larger.

    ``errors_total_count`` is cumulative per client, so the largest value per client is taken.
    """
    errors = 0
    totals: dict[str, int] = {}
    for event in events:
        kind = event.get("event")
        if kind == "client.error":
            errors += 1
        elif kind == "client.summary":
            client = str(event.get("client_id", ""))
            count = int(event.get("errors_total_count") or 0)
            totals[client] = max(totals.get(client, 0), count)
    return max(errors, sum(totals.values()))


def balance(counts: Mapping[str, int], servers: Collection[str] | None = None) -> Balance:
    """Max/min answers over ``servers`` (default: the servers in ``counts``)."""
    names = sorted(servers) if servers is not None else sorted(counts)
    per_server = {name: int(counts.get(name, 0)) for name in names}
    if not per_server:
        return Balance({}, math.inf)
    low, high = min(per_server.values()), max(per_server.values())
    return Balance(per_server, math.inf if low == 0 else high / low)


def count_between(
    answers: Iterable[Answer], start: float | None = None, end: float | None = None
) -> dict[str, int]:
    """Answers per server with ``start <= t < end`` (open ends when ``None``)."""
    counts: dict[str, int] = defaultdict(int)
    for a in answers:
        if (start is None or a.t >= start) and (end is None or a.t < end):
            counts[a.server_id] += a.count
    return dict(counts)


def judge(
    scenario: str,
    answers: Iterable[Answer],
    *,
    scale_at: float | None,
    servers_before: Collection[str] | None = None,
    servers_after: Collection[str] | None = None,
    end: float | None = None,
    failed_rpcs: int = 0,
    extra: Mapping[str, Any] | None = None,
) -> Verdict:
    """Measure a run around the scale-up at ``scale_at``.

    ``servers_before``/``servers_after`` are the ids of the servers that existed before and after
    the scale-up (the lab knows them; on a cluster they are the pod names). When omitted,
    ``servers_before`` is the set that answered before ``scale_at`` and ``servers_after`` adds the
    servers that answered only later, so a server that never answered cannot be counted as new:
    pass the ids whenever you have them. With ``scale_at=None`` everything counts as "before".
    """
    items = sorted(answers, key=lambda a: a.t)
    if end is not None:
        items = [a for a in items if a.t < end]
    before_counts = count_between(items, None, scale_at)
    after_counts = count_between(items, scale_at, None) if scale_at is not None else {}
    old = set(servers_before) if servers_before is not None else set(before_counts)
    after = set(servers_after) if servers_after is not None else old | set(after_counts)
    new = tuple(sorted(after - old))

    first_seen: dict[str, float] = {}
    for a in items:
        if scale_at is not None and a.t >= scale_at and a.server_id not in first_seen:
            first_seen[a.server_id] = a.t
    reached: dict[str, float | None] = {
        s: (
            round(first_seen[s] - scale_at, 3) if s in first_seen and scale_at is not None else None
        )
        for s in new
    }
    if new and all(v is not None for v in reached.values()):
        time_to_all: float | None = max(v for v in reached.values() if v is not None)
    else:
        time_to_all = None

    steady_from = scale_at
    if scale_at is not None and time_to_all is not None:
        steady_from = scale_at + time_to_all
    steady = count_between(items, steady_from, None) if scale_at is not None else {}

    by_client: dict[str, set[str]] = defaultdict(set)
    for a in items:
        by_client[a.client_id].add(a.server_id)

    return Verdict(
        scenario=scenario,
        scale_at=scale_at,
        end=end,
        servers_before={s: before_counts.get(s, 0) for s in sorted(old | set(before_counts))},
        servers_after={s: after_counts.get(s, 0) for s in sorted(after | set(after_counts))},
        new_servers=new,
        reached=reached,
        time_to_all_new=time_to_all,
        balance_before=balance(before_counts, old),
        balance_after=balance(steady, after),
        servers_by_client={c: tuple(sorted(s)) for c, s in sorted(by_client.items())},
        answers_total=sum(a.count for a in items),
        failed_rpcs=failed_rpcs,
        extra=dict(extra or {}),
    )


def reach_bound(
    scenario: str,
    *,
    max_connection_age_s: float | None = None,
    dns_min_time_s: float = 30.0,
    dns_refresh_s: float = 5.0,
    margin_s: float = DEFAULT_MARGIN_S,
) -> float | None:
    """Seconds within which every new server must have answered after the scale-up.

    - ``maxage``: a connection lives at most ``max_connection_age * 1.1`` (gRPC's jitter); its
      GOAWAY makes the client re-resolve, no sooner than the resolution floor allows.
    - ``proxy``/``sidecar``: Envoy re-resolves its STRICT_DNS cluster every ``dns_refresh_s``
      (the DNS TTL when ``respect_dns_ttl`` is set) and balances each request.
    - ``clusterip``/``headless``: ``None``, new servers are not expected to be reached.
    - ``linkerd``: ``None`` here; a cluster check passes its own bound to :func:`expected`.
    """
    if scenario == "maxage":
        if max_connection_age_s is None:
            raise ValueError("maxage needs max_connection_age_s")
        return round(max_connection_age_s * MAX_AGE_JITTER + dns_min_time_s + margin_s, 3)
    if scenario in ("proxy", "sidecar"):
        return round(dns_refresh_s + margin_s, 3)
    return None


def expected(scenario: str, result: Verdict, *, reach_bound_s: float | None = None) -> list[Check]:
    """The scenario's expected behaviour, checked against ``result``.

    - every scenario: no failed RPC, and some answers at all;
    - ``clusterip``: each client connection (client id) is answered by exactly one server;
    - ``headless``: balanced over the first servers, none of the new ones answered;
    - ``maxage``, ``proxy``, ``sidecar``, ``linkerd``: every new server answered within
      ``reach_bound_s`` (when given);
    - ``proxy``: when ``result.extra["proxy_requests"]`` is present (requests per proxy replica,
      split ``{"before_restart": {...}, "after_restart": {...}}`` for the added replicas), the new
      replicas got nothing until the client restarted and something after.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    checks = [
        Check("answers", result.answers_total > 0, f"{result.answers_total} answers"),
        Check("no failed RPC", result.failed_rpcs == 0, f"{result.failed_rpcs} failed"),
    ]
    if scenario == "clusterip":
        many = {c: s for c, s in result.servers_by_client.items() if len(s) != 1}
        checks.append(
            Check(
                "one server per client connection",
                not many and bool(result.servers_by_client),
                ", ".join(f"{c}: {len(s)}" for c, s in result.servers_by_client.items()),
            )
        )
    elif scenario == "headless":
        checks.append(
            Check(
                "balanced over the first servers",
                result.balance_before.balanced,
                f"max/min {_ratio(result.balance_before.ratio)}",
            )
        )
        got = {s: result.servers_after.get(s, 0) for s in result.new_servers}
        checks.append(
            Check(
                "no traffic to the new servers",
                bool(result.new_servers) and not any(got.values()),
                ", ".join(f"{s}: {n}" for s, n in got.items()) or "no new servers",
            )
        )
    else:
        never = [s for s, t in result.reached.items() if t is None]
        ok = bool(result.new_servers) and not never
        detail = f"all {len(result.new_servers)} new after {result.time_to_all_new}s"
        if never:
            detail = "never reached: " + ", ".join(never)
        if ok and reach_bound_s is not None and result.time_to_all_new is not None:
            ok = result.time_to_all_new <= reach_bound_s
            detail += f" (bound {reach_bound_s}s)"
        checks.append(Check("every new server reached", ok, detail))
    if scenario == "proxy" and "proxy_requests" in result.extra:
        split = result.extra["proxy_requests"]
        before = split.get("before_restart", {})
        after = split.get("after_restart", {})
        checks.append(
            Check(
                "new proxy replicas idle until the client restarts",
                bool(before) and not any(before.values()),
                ", ".join(f"{p}: {n}" for p, n in before.items()) or "no new replicas",
            )
        )
        checks.append(
            Check(
                "new proxy replicas busy after the client restarts",
                bool(after) and all(after.values()),
                ", ".join(f"{p}: {n}" for p, n in after.items()) or "no new replicas",
            )
        )
    return checks


def _ratio(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.2f}"


def format_verdict(result: Verdict, checks: Iterable[Check] = ()) -> str:
    """A few plain lines a person reads at a glance."""
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
        f"  balance max/min: before {_ratio(result.balance_before.ratio)}, "
        f"steady state after {_ratio(result.balance_after.ratio)}"
    )
    if len(result.servers_by_client) > 1 or result.scenario == "clusterip":
        per_client = "; ".join(f"{c}: {', '.join(s)}" for c, s in result.servers_by_client.items())
        lines.append(f"  servers per client: {per_client}")
    lines.append(f"  answers {result.answers_total}, failed RPCs {result.failed_rpcs}")
    for check in checks:
        lines.append(f"  [{'ok' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
    return "\n".join(lines)
