"""A chart of one run, drawn with matplotlib from the run's saved results.

The chart shows what the terminal picture (:mod:`hellolb_lab.view`) shows: answers per server
per second, one line per server (drawn only while the server exists, at zero where it got
nothing), the run's events as lettered vertical lines explained below, failed calls per second
in a panel of their own, and the verdict's key figure in the title: when every new server
answered (or that none did), the balance after the scale-up, the failed calls.

It is drawn from the saved results alone (``results.json`` beside a run's logs, or what
``watch --json`` wrote), so ``hellolb-lab chart RESULTS.json --out FILE`` redraws it without
running again. :func:`chart_data` turns the results into the drawn data, a pure function;
:func:`draw` lays that out on a figure: one row and one line per server, one bar per second
with failed calls, one lettered line per mark of a phase, a tick per xDS push. A line's ``gid``
is its server (the pushes' ``pushes``), a mark's letter ``mark-A``: they name them in the
figure and in the SVG.

The figure has a white background and dark text, so it reads the same on a light and a dark
page; the SVG keeps its text as text (``svg.fonttype: none``), which keeps it small.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.patches import ConnectionPatch

from hellolb_lab.errors import LabError
from hellolb_lab.view import PUSH_MARK

#: What ``--chart`` and ``--out`` accept: the file's extension chooses the format.
FORMATS = (".svg", ".png")
FAILED_COLOUR = "#d62728"
#: A server's colour tells when it came: one of the first servers, one the scale-up added, or
#: a later one (a rollout's new pods, a server published while the control plane was down).
FIRST, NEW, LATER = "first", "new", "later"
GROUP_COLOURS = {FIRST: "#1f77b4", NEW: "#ff7f0e", LATER: "#2ca02c"}
MARK_COLOUR = "#444444"
PUSH_COLOUR = "#9467bd"
#: Rendering settings: text as text in the SVG, no timestamp or random ids, so that a chart
#: redrawn from the same results is the same file.
RC: dict[Any, Any] = {"svg.fonttype": "none", "svg.hashsalt": "hellolb-lab", "font.size": 9}


@dataclass(frozen=True)
class ChartData:
    """What the chart draws, every time in seconds from the run's start.

    ``answers`` holds, per server, its answers in each slice of ``step`` seconds, centred at
    ``x``; ``nan`` where the server did not exist. ``failed`` is failed calls per slice, and
    ``marks`` the run's events: letter, time, label.
    """

    title: str
    step: float
    x: tuple[float, ...]
    answers: dict[str, tuple[float, ...]]
    failed: tuple[int, ...]
    marks: tuple[tuple[str, float, str], ...]
    #: When the xDS control plane pushed a client a new list of servers (marks of their own)
    pushes: tuple[float, ...]
    #: When each server came: :data:`FIRST`, :data:`NEW` or :data:`LATER`.
    groups: dict[str, str]


def load(path: Path) -> dict[str, Any]:
    """A run's saved results from ``path``, with a clear error for anything else."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise LabError(f"chart: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise LabError(f"chart: {path} is not JSON: {exc}") from None
    if isinstance(data, list):
        raise LabError(f"chart: {path} holds {len(data)} runs (a tour's); chart one run's file")
    if not isinstance(data, dict) or not isinstance(data.get("picture"), dict):
        raise LabError(f"chart: {path} holds no run's picture (a run's results.json has one)")
    return data


def output_path(text: str) -> Path:
    """``--chart``/``--out``: a path whose extension is one of :data:`FORMATS`."""
    path = Path(text)
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"a chart is {' or '.join(FORMATS)}, not {path.name!r}")
    return path


def chart_data(results: Mapping[str, Any]) -> ChartData:
    """The drawn data of a run's saved results (its ``picture``, :func:`view.series`)."""
    picture = results["picture"]
    step = float(picture["step_s"])
    slices = max((len(v) for v in picture["answers"].values()), default=len(picture["failed"]))
    x = tuple(round((i + 0.5) * step, 3) for i in range(slices))
    answers = {
        server: _present(counts, picture["started"].get(server), picture["gone"].get(server), step)
        for server, counts in picture["answers"].items()
    }
    events = [m for m in picture["marks"] if not str(m["label"]).startswith(PUSH_MARK)]
    marks = tuple((_letter(i), float(m["t"]), str(m["label"])) for i, m in enumerate(events))
    pushes = tuple(float(m["t"]) for m in picture["marks"] if str(m["label"]).startswith(PUSH_MARK))
    verdict = results.get("verdict") or {}
    first = set(verdict.get("servers_before") or ())
    new = set(verdict.get("new_servers") or ())
    groups = {s: FIRST if s in first else NEW if s in new else LATER for s in answers}
    return ChartData(
        title=title(results),
        groups=groups,
        step=step,
        x=x,
        answers=answers,
        failed=tuple(int(n) for n in picture["failed"]),
        marks=marks,
        pushes=pushes,
    )


def _present(
    counts: list[int], started: float | None, gone: float | None, step: float
) -> tuple[float, ...]:
    """A server's answers per slice, ``nan`` in the slices before it started or after it left
    (a server whose start is unknown starts at its first answer); an answer always shows."""
    if started is None:
        first = next((i for i, n in enumerate(counts) if n), len(counts))
        started = first * step
    end = math.inf if gone is None else gone
    return tuple(
        float(n) if n or (started < (i + 1) * step and i * step < end) else math.nan
        for i, n in enumerate(counts)
    )


def _letter(i: int) -> str:
    """``A`` to ``Z``, then ``AA``, ``AB``...: the marks' names, as the terminal's ruler."""
    return chr(ord("A") + i) if i < 26 else _letter(i // 26 - 1) + chr(ord("A") + i % 26)


def title(results: Mapping[str, Any]) -> str:
    """The run's name and the verdict's key figures: when the new servers were reached, the
    balance once they were, the failed calls, and whether every check passed."""
    verdict = results.get("verdict") or {}
    scenario = results.get("scenario") or verdict.get("scenario") or "run"
    parts = []
    new = verdict.get("new_servers") or []
    if new:
        reached = verdict.get("time_to_all_new")
        answered = sum(1 for t in (verdict.get("reached") or {}).values() if t is not None)
        parts.append(
            f"new servers never all reached ({answered} of {len(new)})"
            if reached is None
            else f"all {len(new)} new servers within {reached:.1f} s"
        )
    ratio = (verdict.get("balance_after") or {}).get("ratio", "absent")
    if ratio != "absent":
        parts.append(f"balance max/min {'inf' if ratio is None else f'{ratio:.2f}'}")
    parts.append(f"{results['picture'].get('failed_total', 0)} failed calls")
    checks = results.get("checks")
    if checks:
        failed = sum(1 for c in checks if not c.get("ok"))
        parts.append("every check passed" if not failed else f"{failed} checks failed")
    return f"{scenario}: " + ", ".join(parts)


def draw(data: ChartData) -> Figure:
    """The chart of ``data``: one row per server, as the terminal draws it (its answers per
    slice on one scale shared by every row; blank where it did not exist), a row of failed
    calls, and the marks across every row."""
    rows = len(data.answers) + 1
    figure = Figure(figsize=(10, 1.2 + 0.42 * rows), facecolor="white", layout="constrained")
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    peak = max((y for ys in data.answers.values() for y in ys if y == y), default=0.0) or 1.0
    end = len(data.x) * data.step if data.x else data.step
    for ax, (server, ys) in zip(axes, data.answers.items(), strict=False):
        colour = GROUP_COLOURS[data.groups.get(server, LATER)]
        ax.plot(data.x, ys, drawstyle="steps-mid", color=colour, linewidth=1.4, gid=server)
        # Below zero a little, so that a line at zero is drawn whole.
        ax.set_ylim(-peak * 0.05, peak * 1.1)
        total = int(sum(y for y in ys if y == y))
        ax.text(1.005, 0.5, f"{total}", transform=ax.transAxes, va="center", fontsize=8)
        _row(ax, server)
    failed = axes[-1]
    hits = [(x, n) for x, n in zip(data.x, data.failed, strict=True) if n]
    failed.bar(
        [x for x, _ in hits],
        [n for _, n in hits],
        width=data.step * 0.9,
        color=FAILED_COLOUR,
    )
    top = max([n for _, n in hits] + [1])
    failed.set_ylim(0, top * 1.1)
    failed.text(
        1.005, 0.5, f"{sum(data.failed)}", transform=failed.transAxes, va="center", fontsize=8
    )
    _row(failed, "failed")
    failed.spines["bottom"].set_visible(True)
    failed.tick_params(axis="x", bottom=True)
    failed.set_xlim(0, end)
    failed.set_xlabel("seconds since the client started")
    failed.tick_params(axis="x", labelsize=8)
    for letter, t, _ in data.marks:
        # One line from the top row to the bottom one (a line per row would weigh the SVG).
        figure.add_artist(
            ConnectionPatch(
                (t, 1.0),
                (t, 0.0),
                coordsA=axes[0].get_xaxis_transform(),
                coordsB=failed.get_xaxis_transform(),
                color=MARK_COLOUR,
                linestyle="--",
                linewidth=0.7,
            )
        )
        axes[0].annotate(
            letter,
            (t, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(0, 5),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8,
            color=MARK_COLOUR,
            gid=f"mark-{letter}",
        )
    if data.pushes:
        axes[0].plot(
            data.pushes,
            [1.0] * len(data.pushes),
            "v",
            transform=axes[0].get_xaxis_transform(),
            color=PUSH_COLOUR,
            markersize=4,
            clip_on=False,
            gid="pushes",
        )
    figure.suptitle(data.title, x=0.01, ha="left", fontsize=10)
    figure.supylabel(f"answers per {data.step:g} s (row height {peak:g})", fontsize=8)
    legend = _legend(data.marks)
    if data.pushes:
        pushes = (
            f"  v  the xDS control plane pushed a client a new list of servers ({len(data.pushes)})"
        )
        legend = "\n".join(filter(None, (legend, pushes)))
    if legend:
        figure.text(0.01, 0.0, legend, va="top", fontsize=7.5, family="monospace")
    return figure


def _row(ax: Any, name: str) -> None:
    """One row: its name at the left, no y ticks and no frame (a server that exists and gets
    nothing is its line at zero; one that does not exist, nothing)."""
    ax.set_facecolor("white")
    ax.set_yticks([])
    ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    ax.spines[["top", "right", "left", "bottom"]].set_visible(False)
    ax.tick_params(axis="x", bottom=False)


def _legend(marks: tuple[tuple[str, float, str], ...]) -> str:
    """The marks' letters explained, in two columns when there are many."""
    items = [f"{letter:>2} {t:6.1f} s  {label}" for letter, t, label in marks]
    columns = 2 if len(items) > 6 else 1
    per = math.ceil(len(items) / columns)
    lines = []
    for r in range(per):
        lines.append("    ".join(f"{item:<52}" for item in items[r::per]).rstrip())
    return "\n".join(lines)


def save(results: Mapping[str, Any], path: Path) -> Path:
    """Draw ``results`` into ``path`` (SVG or PNG, by its extension)."""
    output_path(str(path))
    suffix = path.suffix.lower()
    meta = {"Date": None} if suffix == ".svg" else {"Software": None}
    with matplotlib.rc_context(RC):
        figure = draw(chart_data(results))
        figure.savefig(path, format=suffix[1:], metadata=meta, bbox_inches="tight")
    return path
