"""The cluster log reader: ``kubectl logs -f -l app=client -c client -n <ns> | hellolb-lab watch``.

It reads the client's JSON log lines from a stream, draws the same picture as the lab while they
arrive, and when the stream ends (or on Ctrl-C) judges them with the shared verdict. Lines that
are not JSON objects (kubectl's own messages, ``--prefix`` labels) are skipped or stripped.

The reader cannot see when you scaled the Deployment. Pass ``--scale-at`` (the time ``kubectl
scale`` ran: ISO 8601, epoch seconds, or ``HH:MM:SS`` in UTC today) for exact timing; without it the
scale-up is taken to be the first answer from a server that was not answering at the start, and
``--expect-servers 5`` names the servers that never answered.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hello_client import events as client

from hellolb_lab import clientlog, judging
from hellolb_lab.catalogue import Scenario
from hellolb_lab.checks import Check
from hellolb_lab.clientlog import Answer
from hellolb_lab.judging import Evidence
from hellolb_lab.verdict import Verdict
from hellolb_lab.view import LiveView, Picture

#: Seconds at the start of the log whose servers count as "the first servers".
BASELINE_S = 2.0


def parse_when(text: str) -> float:
    """Epoch seconds from ISO 8601, a number, or ``HH:MM:SS`` (UTC, today)."""
    try:
        return float(text)
    except ValueError:
        pass
    if len(text) <= 8 and text.count(":") in (1, 2):
        today = datetime.now(UTC).date().isoformat()
        text = f"{today}T{text}+00:00"
    return clientlog.parse_timestamp(text)


@dataclass
class Reader:
    """Collects client events and keeps a :class:`Picture` of them up to date."""

    scenario: Scenario
    events: list[dict[str, Any]] = field(default_factory=list)
    picture: Picture = field(default_factory=lambda: Picture(title="watch", start=0.0))
    #: How :meth:`judge` found the scale-up time: given, inferred, or none seen.
    scale_at_note: str = "given"
    _responses: bool = False

    def __post_init__(self) -> None:
        self.picture.title = f"watch {self.scenario.name}"

    def feed(self, event: dict[str, Any]) -> None:
        if not str(event.get("event")).startswith(client.PREFIX):
            return
        self.events.append(event)
        if client.TIMESTAMP not in event:
            return
        if not self.picture.start:
            self.picture.start = clientlog.parse_timestamp(event[client.TIMESTAMP])
        if clientlog.is_response(event) or clientlog.is_tick(event):
            if not self._responses:
                # Responses (or a stream's ticks) are exact; drop the coarser summary counts
                # drawn so far.
                self._responses = True
                self.picture.answers.clear()
            self.picture.answers.extend(clientlog.answers_of(event))
        elif clientlog.is_summary(event):
            self.picture.errors = clientlog.failed_rpcs(self.events)
            self.picture.limited = clientlog.limited_calls(self.events)
            if not self._responses:
                self.picture.answers.extend(clientlog.answers_of(event))
        elif clientlog.is_error(event):
            self.picture.errors += 1
            self.picture.failed.append(clientlog.parse_timestamp(event[client.TIMESTAMP]))
        elif clientlog.is_limited(event):
            self.picture.limited += 1

    def judge(
        self,
        *,
        scale_at: float | None = None,
        expect_servers: int | None = None,
        reach_bound_s: float | None = None,
    ) -> tuple[Verdict, list[Check]]:
        """The verdict and checks of the lines read so far (:mod:`hellolb_lab.judging`); how
        the scale-up time was found is left in :attr:`scale_at_note`."""
        answers = clientlog.answers_from_events(self.events)
        self.scale_at_note = "given"
        if scale_at is None and answers:
            scale_at = infer_scale_at(answers)
            found = scale_at is not None
            self.scale_at_note = "inferred from the first new server" if found else "none seen"
        before = {a.server_id for a in answers if scale_at is None or a.t < scale_at}
        seen = {a.server_id for a in answers}
        after = set(seen)
        missing = (expect_servers or 0) - len(seen)
        after |= {f"(never answered {i})" for i in range(1, missing + 1)}
        evidence = Evidence(
            scenario=self.scenario,
            events=self.events,
            scale_at=scale_at,
            servers_before=before,
            servers_after=after,
            reach_bound_s=reach_bound_s,
        )
        return judging.judge(evidence)


def infer_scale_at(answers: list[Answer]) -> float | None:
    """Time of the first answer from a server that did not answer in the first seconds."""
    if not answers:
        return None
    start = answers[0].t
    first = {a.server_id for a in answers if a.t < start + BASELINE_S}
    return next((a.t for a in answers if a.server_id not in first), None)


def read(lines: Iterable[str], reader: Reader, view: LiveView, max_lines: int = 10**8) -> int:
    """Feed up to ``max_lines`` lines to ``reader``, drawing as they come; lines read."""
    count = 0
    for count, line in enumerate(lines, start=1):
        event = clientlog.parse_line(line)
        if event is not None:
            reader.feed(event)
            if reader.picture.answers:
                view.update(reader.picture, now=reader.picture.answers[-1].t)
        if count >= max_lines:
            break
    last = max((a.t for a in reader.picture.answers), default=time.time())
    view.finish(reader.picture, last)
    return count
