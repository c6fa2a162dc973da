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
        limited_calls=clientlog.limited_calls(events),
    )

Times are seconds since the epoch (floats). Nothing here sleeps, reads files or starts anything.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from hellolb_lab.clientlog import Answer
from hellolb_lab.measure import Balance, Finding, balance, count_between, json_ready, time_to_all_of


@dataclass(frozen=True)
class Verdict:
    """Measurements of one run around the scale-up.

    ``reached`` maps every new server to the seconds between the scale-up and its first answer,
    or ``None`` if it never answered. ``time_to_all_new`` is the largest of them (``None`` when
    any new server never answered). ``balance_after`` covers the steady state over every server
    that exists after the scale-up, from the moment every new server had answered (or from the
    scale-up, if some never did) to ``end``; an idle server makes its ratio infinite.
    ``findings`` are what the run's phases measured, by phase name (typed by each phase,
    :mod:`hellolb_lab.phases`); ``streams`` the stream figures of a stream-mode run
    (:func:`hellolb_lab.streamverdict.figures`), ``None`` otherwise.
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
    #: calls a limit answered (RESOURCE_EXHAUSTED): apart from, never among, ``failed_rpcs``
    limited_calls: int = 0
    findings: dict[str, Finding] = field(default_factory=dict)
    streams: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``inf`` ratios become ``None``)."""
        data = {k: v for k, v in asdict(self).items() if k != "findings"}
        data["findings"] = {k: f.to_dict() for k, f in self.findings.items()}
        return dict(json_ready(data))


def judge(
    scenario: str,
    answers: Iterable[Answer],
    *,
    scale_at: float | None,
    servers_before: Collection[str] | None = None,
    servers_after: Collection[str] | None = None,
    end: float | None = None,
    failed_rpcs: int = 0,
    limited_calls: int = 0,
    findings: Mapping[str, Finding] | None = None,
    streams: Mapping[str, Any] | None = None,
) -> Verdict:
    """Measure a run around the scale-up at ``scale_at``.

    ``servers_before``/``servers_after`` are the ids of the servers that existed before and after
    the scale-up (the lab knows them; on a cluster they are the pod names). When omitted,
    ``servers_before`` is the set that answered before ``scale_at`` and ``servers_after`` adds the
    servers that answered only later, so a server that never answered cannot be counted as new:
    pass the ids whenever you have them. With ``scale_at=None`` everything counts as "before".
    ``end`` is where the scale-up's part of the run ends: where the phases start, whose
    ``findings`` are measured apart (:mod:`hellolb_lab.phases`).
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
        limited_calls=limited_calls,
        findings=dict(findings or {}),
        streams=None if streams is None else dict(streams),
    )


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


def _servers_by_client(items: list[Answer]) -> dict[str, tuple[str, ...]]:
    by_client: dict[str, set[str]] = defaultdict(set)
    for a in items:
        by_client[a.client_id].add(a.server_id)
    return {c: tuple(sorted(s)) for c, s in sorted(by_client.items())}
