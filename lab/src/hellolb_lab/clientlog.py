"""The client's log lines, read one way: a line becomes an event, an event becomes answers.

The lab (the client's stdout), the cluster log reader (``kubectl logs ... | hellolb-lab watch``)
and the cluster check (``kubectl logs`` text) all turn client log lines into :class:`Answer`
values here. A ``client.response`` line is one answer at its own timestamp (exact); a
``client.summary`` line is its ``by_server_window`` counts at the summary's timestamp (only as
precise as ``SUMMARY_INTERVAL``). Event and field names come from the client
(:mod:`hello_client.events`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hello_client import events as client

Event = Mapping[str, Any]
#: ``client.error``'s status code field (hello_client.runner writes it; its events module names
#: no constant for it).
ERROR_CODE = "code"


@dataclass(frozen=True)
class Failure:
    """A call that failed, after the client's retries, at ``t`` (epoch seconds), with its status
    code and the seconds it took since it was sent."""

    t: float
    code: str
    latency_s: float = 0.0
    client_id: str = ""


@dataclass(frozen=True)
class Answer:
    """``count`` answers from ``server_id`` seen at ``t`` (epoch seconds) by ``client_id``."""

    t: float
    server_id: str
    count: int = 1
    client_id: str = ""


def parse_line(line: str) -> dict[str, Any] | None:
    """The JSON event in ``line``, after any prefix (``[pod/client-x/client] {...}``), or None
    when the line holds none (kubectl's own messages, Envoy's plain-text log)."""
    start = line.find("{")
    if start < 0:
        return None
    try:
        event = json.loads(line[start:])
    except ValueError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


def parse_timestamp(value: str | float | int) -> float:
    """Epoch seconds from an ISO 8601 timestamp (as the services log it) or a number."""
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def is_response(event: Event) -> bool:
    return event.get("event") == client.RESPONSE and bool(event.get(client.SERVER_ID))


def is_summary(event: Event) -> bool:
    return event.get("event") == client.SUMMARY


def is_error(event: Event) -> bool:
    return event.get("event") == client.ERROR


def answers_of(event: Event) -> list[Answer]:
    """The answers one response or summary line reports; none for any other line."""
    who = str(event.get(client.CLIENT_ID, ""))
    if is_response(event):
        t = parse_timestamp(event[client.TIMESTAMP])
        return [Answer(t, str(event[client.SERVER_ID]), 1, who)]
    if is_summary(event):
        t = parse_timestamp(event[client.TIMESTAMP])
        window = event.get(client.BY_SERVER_WINDOW) or {}
        return [Answer(t, str(s), int(n), who) for s, n in window.items() if n]
    return []


def answers_from_events(events: Iterable[Event]) -> list[Answer]:
    """Every answer in ``events``, oldest first: from the responses when there are any (exact),
    else from the summaries."""
    responses: list[Answer] = []
    summaries: list[Answer] = []
    for event in events:
        (responses if is_response(event) else summaries).extend(answers_of(event))
    chosen = responses or summaries
    chosen.sort(key=lambda a: a.t)
    return chosen


def failed_rpcs(events: Iterable[Event], until: float | None = None) -> int:
    """Failed calls (before ``until``): ``client.error`` lines, or the summaries' totals if
    larger.

    ``errors_total_count`` is cumulative per client, so the largest value per client counts.
    """
    errors = 0
    totals: dict[str, int] = {}
    for event in events:
        if until is not None and parse_timestamp(event.get(client.TIMESTAMP, 0)) >= until:
            continue
        if is_error(event):
            errors += 1
        elif is_summary(event):
            who = str(event.get(client.CLIENT_ID, ""))
            count = int(event.get(client.ERRORS_TOTAL_COUNT) or 0)
            totals[who] = max(totals.get(who, 0), count)
    return max(errors, sum(totals.values()))


def failures(events: Iterable[Event]) -> list[Failure]:
    """Every failed call that a ``client.error`` line reports, oldest first."""
    found = [
        Failure(
            parse_timestamp(e[client.TIMESTAMP]),
            str(e.get(ERROR_CODE, "")),
            float(e.get(client.LATENCY_MS) or 0.0) / 1000,
            str(e.get(client.CLIENT_ID, "")),
        )
        for e in events
        if is_error(e) and client.TIMESTAMP in e
    ]
    return sorted(found, key=lambda f: f.t)


def calls_in_flight(events: Iterable[Event], t: float) -> int:
    """Calls the client had sent and not yet seen end at ``t``: answered or failed later, and
    sent (their end minus their latency) before it."""
    count = 0
    for e in events:
        if (is_response(e) or is_error(e)) and client.TIMESTAMP in e:
            end = parse_timestamp(e[client.TIMESTAMP])
            if end - float(e.get(client.LATENCY_MS) or 0.0) / 1000 <= t < end:
                count += 1
    return count
