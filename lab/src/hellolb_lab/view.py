"""The live picture: answers per server over time, one row per server, events marked.

Each column is a time slice (1 s, wider for long runs); the bar height in a cell is how many
answers that server gave in the slice, relative to the busiest cell. ``·`` means the server was
running but got nothing; blank means it did not exist yet, or no longer. The ruler above the
rows marks the lab's events (scale-up, proxy scale-up, client restart, rollout, crash) with a
letter explained below the chart, and a ``dns`` row stars the seconds in which the client looked
its target name up again.

On a terminal the picture is redrawn in place; otherwise (a pipe, a CI log) the view prints a
short progress line now and then, and the full picture once at the end.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from hellolb_lab.clientlog import Answer

BARS = "▁▂▃▄▅▆▇█"
IDLE = "·"
LOOKUPS_NOTE = "(* = client looked up the name)"
MAX_COLUMNS = 60
#: How a mark of the xDS control plane's push begins: a chart draws these apart from the
#: phases' marks, as ticks of their own (an xds run has a few dozen).
PUSH_MARK = "xDS pushed"
#: Seconds per slice of the saved series (:func:`series`): answers per server per second.
SERIES_STEP_S = 1.0


@dataclass
class Picture:
    """Everything the view draws; the lab and the log reader fill it in."""

    title: str
    start: float
    answers: list[Answer] = field(default_factory=list)
    #: server id -> when it started (None: unknown, drawn from its first answer)
    servers: dict[str, float | None] = field(default_factory=dict)
    #: server id -> when it exited for good (a rollout's old servers)
    gone: dict[str, float] = field(default_factory=dict)
    #: (time, label) of the lab's events
    marks: list[tuple[float, str]] = field(default_factory=list)
    errors: int = 0
    #: calls answered RESOURCE_EXHAUSTED (a limit, not a failure: not in ``errors``)
    limited: int = 0
    #: when each failed call that the client logged ended (``errors`` may count more: a
    #: cluster client's summaries count failures whose lines were not read)
    failed: list[float] = field(default_factory=list)
    #: times the client's target name was looked up in the lab DNS (re-resolutions)
    lookups: list[float] = field(default_factory=list)


def render(picture: Picture, now: float, width: int = MAX_COLUMNS) -> str:
    """The picture as text (no escape codes)."""
    elapsed = max(now - picture.start, 0.001)
    step = max(1.0, math.ceil(elapsed / width))
    # Whole columns only: a last, partial slice would look like a drop in traffic.
    columns = max(1, math.floor(elapsed / step))
    servers = dict(picture.servers)
    for a in picture.answers:
        servers.setdefault(a.server_id, None)
    cells: dict[str, list[int]] = {s: [0] * columns for s in servers}
    totals: dict[str, int] = dict.fromkeys(servers, 0)
    first: dict[str, float] = {}
    for a in picture.answers:
        # An answer at ``now`` itself counts: the log reader's picture ends at its last answer.
        if a.t > now:
            continue
        col = int((a.t - picture.start) // step)
        if 0 <= col < columns:
            cells[a.server_id][col] += a.count
        totals[a.server_id] += a.count
        first.setdefault(a.server_id, a.t)
    peak = max((n for row in cells.values() for n in row), default=0) or 1
    name_width = max([len(s) for s in servers] + [8])

    ruler, legend = _ruler(picture, step, columns)
    lines = [f"{picture.title}   {elapsed:5.1f}s   (column = {step:g}s, bar = answers)"]
    lines.append(" " * name_width + "  " + "".join(ruler))
    for server in sorted(servers, key=_natural):
        born = servers[server] if servers[server] is not None else first.get(server, now)
        gone = picture.gone.get(server, math.inf)
        row = []
        for col, count in enumerate(cells[server]):
            col_end = picture.start + (col + 1) * step
            if count:
                row.append(BARS[min(len(BARS) - 1, (count * len(BARS) - 1) // peak)])
            elif born is not None and born < col_end and col_end - step < gone:
                row.append(IDLE)
            else:
                row.append(" ")
        lines.append(f"{server:<{name_width}}  {''.join(row)}  {totals[server]:>6}")
    if picture.lookups:
        lines.append(f"{'dns':<{name_width}}  {_lookups(picture, step, columns)}  {LOOKUPS_NOTE}")
    lines.append(
        f"{'':<{name_width}}  answers {sum(totals.values())}, failed RPCs {picture.errors}"
        + (f", limited {picture.limited}" if picture.limited else "")
    )
    lines.extend("  " + item for item in legend)
    return "\n".join(lines)


def series(picture: Picture, end: float, step: float = SERIES_STEP_S) -> dict[str, Any]:
    """The picture as a run's saved results keep it, to be drawn again without the run.

    Answers per server per ``step`` seconds from the start to ``end``, every answer counted (the
    last slice may be partial: unlike the terminal, a chart shows its x axis); when each server
    started (``None``: unknown) and left; the marks; failed calls per slice and in all; the
    client's name lookups. Times are seconds from ``start`` (epoch seconds).
    """
    start = picture.start
    slices = max(1, math.ceil((end - start) / step))

    def slot(t: float) -> int:
        return min(max(int((t - start) // step), 0), slices - 1)

    def since(t: float) -> float:
        return round(t - start, 3)

    servers = dict(picture.servers)
    for a in picture.answers:
        servers.setdefault(a.server_id, None)
    answers = {s: [0] * slices for s in sorted(servers, key=_natural)}
    for a in picture.answers:
        answers[a.server_id][slot(a.t)] += a.count
    failed = [0] * slices
    for t in picture.failed:
        failed[slot(t)] += 1
    return {
        "start": start,
        "end": end,
        "step_s": step,
        "answers": answers,
        "started": {s: None if t is None else since(t) for s, t in sorted(servers.items())},
        "gone": {s: since(t) for s, t in sorted(picture.gone.items())},
        "marks": [{"t": since(t), "label": label} for t, label in sorted(picture.marks)],
        "failed": failed,
        "failed_total": max(picture.errors, len(picture.failed)),
        "lookups": [since(t) for t in sorted(picture.lookups)],
    }


def _natural(name: str) -> tuple[str, int]:
    """``server-10`` after ``server-9``: the name's text, then its trailing number."""
    head = name.rstrip("0123456789")
    return head, int(name[len(head) :] or 0)


def _ruler(picture: Picture, step: float, columns: int) -> tuple[list[str], list[str]]:
    """The lettered marks above the rows, and the legend that explains them."""
    ruler = [" "] * columns
    legend = []
    for i, (t, label) in enumerate(sorted(picture.marks)):
        letter = chr(ord("A") + i)
        col = min(max(int((t - picture.start) // step), 0), columns - 1)
        ruler[col] = letter
        legend.append(f"{letter} {label} at {t - picture.start:.1f}s")
    return ruler, legend


def _lookups(picture: Picture, step: float, columns: int) -> str:
    """A star in every column in which the client looked its target name up."""
    row = [" "] * columns
    for t in picture.lookups:
        col = int((t - picture.start) // step)
        if 0 <= col < columns:
            row[col] = "*"
    return "".join(row)


def progress_line(picture: Picture, now: float) -> str:
    """One plain line: per-server totals so far, then failed and limited calls."""
    totals: dict[str, int] = {}
    for a in picture.answers:
        totals[a.server_id] = totals.get(a.server_id, 0) + a.count
    per = " ".join(f"{s}={totals[s]}" for s in sorted(totals, key=_natural)) or "no answers yet"
    counts = f"failed={picture.errors} limited={picture.limited}"
    return f"[{picture.title} {now - picture.start:5.1f}s] {per} {counts}"


class LiveView:
    """Redraws a :class:`Picture` on a terminal, or prints progress lines elsewhere."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        live: bool | None = None,
        interval: float = 0.5,
        plain_interval: float = 5.0,
        quiet: bool = False,
    ) -> None:
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.interval = interval if self.live else plain_interval
        self.quiet = quiet
        self._last = 0.0
        self._drawn_lines = 0

    def update(self, picture: Picture, *, force: bool = False, now: float | None = None) -> None:
        """Draw if the interval has passed (or ``force``); ``now`` is the picture's clock."""
        wall = time.time()
        if self.quiet or (not force and wall - self._last < self.interval):
            return
        self._last = wall
        now = wall if now is None else now
        if self.live:
            text = render(picture, now)
            if self._drawn_lines:
                self.stream.write(f"\x1b[{self._drawn_lines}F\x1b[J")
            self.stream.write(text + "\n")
            self._drawn_lines = text.count("\n") + 1
        else:
            self.stream.write(progress_line(picture, now) + "\n")
        self.stream.flush()

    def finish(self, picture: Picture, end: float | None = None) -> None:
        """The final picture, drawn once (in place of the live one on a terminal)."""
        if self.quiet:
            return
        if self.live and self._drawn_lines:
            self.stream.write(f"\x1b[{self._drawn_lines}F\x1b[J")
        self.stream.write(render(picture, end or time.time()) + "\n")
        self.stream.flush()
        self._drawn_lines = 0


def table(rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> str:
    """A plain Markdown table (also readable in a terminal)."""
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    out = ["| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |"]
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells:
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    return "\n".join(out)
