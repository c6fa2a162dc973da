"""The shared verdict: what the client's answers say about a run around the scale-up.

One module measures every run, wherever the logs come from: the local lab, the cluster log
reader (``kubectl logs -f ... | hellolb-lab watch``) and the cluster check. Its input is the
answers :mod:`hellolb_lab.clientlog` reads from the client's log lines; whether the measurements
are what the scenario expects is :mod:`hellolb_lab.checks`' question.

Typical use from a cluster check::

    events = [e for line in log_lines if (e := clientlog.parse_line(line))]
    result = verdict.judge(
        "maxage",
        clientlog.answers_from_events(events),
        scale_at=scaled_at_epoch_seconds,          # when replicas went 3 -> 5
        servers_before=pods_before,                 # pod names, from kubectl get pods
        servers_after=pods_after,
        end=time.time(),
        failed_rpcs=clientlog.failed_rpcs(events),
    )

Times are seconds since the epoch (floats). Nothing here sleeps, reads files or starts anything.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from hellolb_lab.catalogue import Reach, Scenario
from hellolb_lab.clientlog import Answer
from hellolb_lab.streamverdict import STREAMS
from hellolb_lab.streamverdict import describe as describe_streams

if TYPE_CHECKING:
    from hellolb_lab.checks import Check
    from hellolb_lab.disruption import Disruption

#: Largest max/min ratio of answers per server that still counts as "balanced".
BALANCED_RATIO = 1.5


@dataclass(frozen=True)
class Balance:
    """Answers per server in a window, and how even they are (max/min; inf if one got none)."""

    per_server: dict[str, int]
    ratio: float

    @property
    def balanced(self) -> bool:
        return len(self.per_server) > 0 and self.ratio <= BALANCED_RATIO


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
    #: The phases in which servers left (a rollout, a crash), measured, by name.
    disruptions: dict[str, Disruption] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``inf`` ratios become ``None``)."""
        data = asdict(self)
        for key in ("balance_before", "balance_after"):
            if math.isinf(data[key]["ratio"]):
                data[key]["ratio"] = None
        data["disruptions"] = {k: d.to_dict() for k, d in self.disruptions.items()}
        return data


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
    disruptions: Mapping[str, Disruption] | None = None,
) -> Verdict:
    """Measure a run around the scale-up at ``scale_at``.

    ``servers_before``/``servers_after`` are the ids of the servers that existed before and after
    the scale-up (the lab knows them; on a cluster they are the pod names). When omitted,
    ``servers_before`` is the set that answered before ``scale_at`` and ``servers_after`` adds the
    servers that answered only later, so a server that never answered cannot be counted as new:
    pass the ids whenever you have them. With ``scale_at=None`` everything counts as "before".
    ``end`` is where the scale-up's part of the run ends: where servers start leaving, whose
    ``disruptions`` are measured apart (:mod:`hellolb_lab.disruption`).
    """
    items = sorted(answers, key=lambda a: a.t)
    if end is not None:
        items = [a for a in items if a.t < end]
    before_counts = count_between(items, None, scale_at)
    after_counts = count_between(items, scale_at, None) if scale_at is not None else {}
    old = set(servers_before) if servers_before is not None else set(before_counts)
    after = set(servers_after) if servers_after is not None else old | set(after_counts)
    new = tuple(sorted(after - old))

    reached = _reached(items, scale_at, new)
    time_to_all = time_to_all_of(reached)
    steady_from = scale_at
    if scale_at is not None and time_to_all is not None:
        steady_from = scale_at + time_to_all
    steady = count_between(items, steady_from, None) if scale_at is not None else {}
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
        servers_by_client=_servers_by_client(items),
        answers_total=sum(a.count for a in items),
        failed_rpcs=failed_rpcs,
        extra=dict(extra or {}),
        disruptions=dict(disruptions or {}),
    )


def time_to_all_of(reached: Mapping[str, float | None]) -> float | None:
    """Seconds until the last of the servers in ``reached`` first answered; ``None`` when one
    never did, or there are none."""
    times = [t for t in reached.values() if t is not None]
    return max(times) if times and len(times) == len(reached) else None


def _reached(
    items: list[Answer], scale_at: float | None, new: tuple[str, ...]
) -> dict[str, float | None]:
    """Seconds from the scale-up to each new server's first answer (None: it never answered)."""
    first_seen: dict[str, float] = {}
    for a in items:
        if scale_at is not None and a.t >= scale_at and a.server_id not in first_seen:
            first_seen[a.server_id] = a.t
    return {
        s: round(first_seen[s] - scale_at, 3) if s in first_seen and scale_at is not None else None
        for s in new
    }


@dataclass(frozen=True)
class Outage:
    """The xDS control plane stopped while the client ran: when it was told to stop, when to
    start again (it was down for sure in between) and when it served again; the servers the
    client knew, the ones added meanwhile, and the seconds within which those must answer once
    it serves (:func:`hellolb_lab.bounds.rejoin_bound`)."""

    stopped: float
    restarting: float
    restarted: float
    known: tuple[str, ...]
    added: tuple[str, ...]
    bound_s: float


#: The verdict's ``extra`` key for :func:`outage_figures`.
OUTAGE = "control_plane_outage"


def outage_figures(answers: Iterable[Answer], outage: Outage) -> dict[str, Any]:
    """What the client did while the control plane was down, and after: answers per server
    while it was down (known ones, added ones), and seconds from its return to each added
    server's first answer (``None``: never)."""
    items = sorted(answers, key=lambda a: a.t)
    down = count_between(items, outage.stopped, outage.restarting)
    first: dict[str, float] = {}
    for a in items:
        if a.t >= outage.restarted and a.server_id in outage.added:
            first.setdefault(a.server_id, a.t)
    return {
        "down_s": round(outage.restarted - outage.stopped, 3),
        "bound_s": outage.bound_s,
        "known_while_down": {s: down.get(s, 0) for s in outage.known},
        "added_while_down": {s: down.get(s, 0) for s in outage.added},
        "added_reached_s": {
            s: round(first[s] - outage.restarted, 3) if s in first else None for s in outage.added
        },
    }


def _servers_by_client(items: list[Answer]) -> dict[str, tuple[str, ...]]:
    by_client: dict[str, set[str]] = defaultdict(set)
    for a in items:
        by_client[a.client_id].add(a.server_id)
    return {c: tuple(sorted(s)) for c, s in sorted(by_client.items())}


def ratio_text(value: float) -> str:
    """A max/min ratio as the verdicts print it: two decimals, or ``inf``."""
    return "inf" if math.isinf(value) else f"{value:.2f}"


def format_verdict(scenario: Scenario, result: Verdict, checks: Iterable[Check] = ()) -> str:
    """A few plain lines a person reads at a glance.

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
    lines.append(f"  answers {result.answers_total}, failed RPCs {result.failed_rpcs}")
    lines.extend(d.describe() for d in result.disruptions.values())
    if STREAMS in result.extra:
        lines.extend(describe_streams(result.extra[STREAMS]))
    for check in checks:
        lines.append(f"  [{check.status}] {check.name}: {check.detail}")
    return "\n".join(lines)
