"""The client's log lines, read one way: a line becomes an event, an event becomes answers.

The lab (the client's stdout), the cluster log reader (``kubectl logs ... | hellolb-lab watch``)
and the cluster check (``kubectl logs`` text) all turn client log lines into :class:`Answer`
values here. A ``client.response`` line is one answer at its own timestamp (exact); a
``client.summary`` line is its ``by_server_window`` counts at the summary's timestamp (only as
precise as ``SUMMARY_INTERVAL``); in stream mode a ``client.tick`` line is one answer too. The
streams themselves, from ``client.stream_opened`` to ``client.stream_ended``, become
:class:`StreamLife` values. Event and field names come from the client
(:mod:`hello_client.events`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping
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


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON log events among ``text``'s lines; anything else (Envoy's own log, blanks)
    is skipped, as the cluster log reader does."""
    return [event for line in text.splitlines() if (event := parse_line(line))]


def parse_timestamp(value: str | float | int) -> float:
    """Epoch seconds from an ISO 8601 timestamp (as the services log it) or a number."""
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def is_response(event: Event) -> bool:
    return event.get("event") == client.RESPONSE and bool(event.get(client.SERVER_ID))


def is_tick(event: Event) -> bool:
    """A stream's tick: in stream mode, an answer of the server that holds the stream."""
    return event.get("event") == client.TICK and bool(event.get(client.SERVER_ID))


def is_summary(event: Event) -> bool:
    return event.get("event") == client.SUMMARY


def is_error(event: Event) -> bool:
    return event.get("event") == client.ERROR


def is_limited(event: Event) -> bool:
    """A limited call (RESOURCE_EXHAUSTED): counted apart, never as a failed one."""
    return event.get("event") == client.LIMITED


def answers_of(event: Event) -> list[Answer]:
    """The answers one response or summary line reports; none for any other line."""
    who = str(event.get(client.CLIENT_ID, ""))
    if is_response(event) or is_tick(event):
        t = parse_timestamp(event[client.TIMESTAMP])
        return [Answer(t, str(event[client.SERVER_ID]), 1, who)]
    if is_summary(event):
        t = parse_timestamp(event[client.TIMESTAMP])
        window = event.get(client.BY_SERVER_WINDOW) or {}
        return [Answer(t, str(s), int(n), who) for s, n in window.items() if n]
    return []


def answers_from_events(events: Iterable[Event]) -> list[Answer]:
    """Every answer in ``events``, oldest first: from the responses (or a stream's ticks) when
    there are any (exact), else from the summaries."""
    responses: list[Answer] = []
    summaries: list[Answer] = []
    for event in events:
        exact = is_response(event) or is_tick(event)
        (responses if exact else summaries).extend(answers_of(event))
    chosen = responses or summaries
    chosen.sort(key=lambda a: a.t)
    return chosen


def failed_rpcs(events: Iterable[Event], until: float | None = None) -> int:
    """Failed calls (before ``until``): ``client.error`` lines, or the summaries' totals if
    larger.

    ``errors_total_count`` is cumulative per client, so the largest value per client counts.
    """
    return _calls(events, until, is_error, client.ERRORS_TOTAL_COUNT)


def limited_calls(events: Iterable[Event], until: float | None = None) -> int:
    """Limited calls (before ``until``), counted as :func:`failed_rpcs` counts failed ones:
    ``client.limited`` lines, or the summaries' ``limited_total`` if larger."""
    return _calls(events, until, is_limited, client.LIMITED_TOTAL)


def _calls(
    events: Iterable[Event], until: float | None, is_line: Callable[[Event], bool], total: str
) -> int:
    lines = 0
    totals: dict[str, int] = {}
    for event in events:
        if until is not None and parse_timestamp(event.get(client.TIMESTAMP, 0)) >= until:
            continue
        if is_line(event):
            lines += 1
        elif is_summary(event):
            who = str(event.get(client.CLIENT_ID, ""))
            count = int(event.get(total) or 0)
            totals[who] = max(totals.get(who, 0), count)
    return max(lines, sum(totals.values()))


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
    """Calls the client had sent and not yet seen end at ``t``: answered, failed or limited
    later, and sent (their end minus their latency) before it."""
    count = 0
    for e in events:
        if (is_response(e) or is_error(e) or is_limited(e)) and client.TIMESTAMP in e:
            end = parse_timestamp(e[client.TIMESTAMP])
            if end - float(e.get(client.LATENCY_MS) or 0.0) / 1000 <= t < end:
                count += 1
    return count


def is_stream_opened(event: Event) -> bool:
    return event.get("event") == client.STREAM_OPENED and client.STREAM in event


def is_stream_ended(event: Event) -> bool:
    return event.get("event") == client.STREAM_ENDED and client.STREAM in event


#: ``client.stream_ended`` fields beyond the events module's constants (hello_client.streams).
END_REASON = "end_reason"
DETAILS = "details"
BY_CLIENT = "by_client"
STREAM_ERROR = "error"
TICKS = "ticks"
RECONNECT_SECONDS = "reconnect_seconds"


@dataclass(frozen=True)
class StreamLife:
    """One stream, from its first tick (``opened``, on ``server_id``) to its end (``None``
    while it was still open when the log was read). ``by_client``: the client closed it
    itself, as it stopped. ``reconnect_s``: seconds its slot went without a stream before it."""

    client_id: str
    number: int
    server_id: str
    opened: float
    ended: float | None = None
    code: str | None = None
    details: str = ""
    end_reason: str = ""
    by_client: bool = False
    error: bool = False
    reconnect_s: float | None = None

    def open_at(self, t: float) -> bool:
        return self.opened <= t and (self.ended is None or t < self.ended)


@dataclass(frozen=True)
class FailedOpen:
    """A stream that ended before its first tick: a refused or failed open, at ``t``."""

    t: float
    client_id: str
    server_id: str
    code: str
    error: bool


def stream_lives(events: Iterable[Event]) -> tuple[list[StreamLife], list[FailedOpen]]:
    """Every stream that had a tick, oldest first, and every open that got none."""
    opened: dict[tuple[str, int], StreamLife] = {}
    failed: list[FailedOpen] = []
    for e in events:
        who = str(e.get(client.CLIENT_ID, ""))
        if is_stream_opened(e):
            key = (who, int(e[client.STREAM]))
            reconnect = e.get(RECONNECT_SECONDS)
            opened[key] = StreamLife(
                who,
                key[1],
                str(e.get(client.SERVER_ID, "")),
                parse_timestamp(e[client.TIMESTAMP]),
                reconnect_s=None if reconnect is None else float(reconnect),
            )
        elif is_stream_ended(e):
            key = (who, int(e[client.STREAM]))
            t = parse_timestamp(e[client.TIMESTAMP])
            code, error = str(e.get(client.CODE, "")), bool(e.get(STREAM_ERROR))
            life = opened.get(key)
            if life is None or not e.get(TICKS, 1):
                failed.append(FailedOpen(t, who, str(e.get(client.SERVER_ID) or ""), code, error))
                continue
            opened[key] = dataclasses.replace(
                life,
                ended=t,
                code=code,
                details=str(e.get(DETAILS) or ""),
                end_reason=str(e.get(END_REASON) or ""),
                by_client=bool(e.get(BY_CLIENT)),
                error=error,
            )
    return sorted(opened.values(), key=lambda s: s.opened), sorted(failed, key=lambda f: f.t)
