"""What a run did to the client's streams, measured: the stream-mode part of the verdict.

Shared like :mod:`hellolb_lab.verdict`: the lab and the cluster check both read the client's
``client.stream_opened`` and ``client.stream_ended`` lines (:func:`clientlog.stream_lives`) and
measure them here; :mod:`hellolb_lab.checks` says whether the figures are what the scenario's
stream expectation (its record's ``streams``) wants. The figures:

- **open at the scale-up** and **open after it**: streams per server at the scale-up, and where
  the scenario's own phases start (the end of the phase after the scale-up), each taken at the
  moment of the second before it when the most were open (:func:`settled_open`);
- **moved**: streams that ended between those two moments, by how they ended, and the streams
  opened meanwhile, per server; and every end before the scenario's phases, with the lifetimes
  of each slot's first stream (opened as the client connected, so maxage cuts it at its
  connection's age + grace);
- per phase in which servers left (a rollout, a crash): stream ends by how they ended (``OK
  (drain)`` when a draining server ended it), the ends the client counted as errors, failed
  opens, where the streams are once the phase ended (settled the same way), the seconds each
  slot went without a stream (reconnect), and, in a crash, the status codes the killed server's
  streams ended with.

A stream the client closed itself, as it stopped or restarted, is no end of a stream here.
Times are epoch seconds. Nothing here sleeps, reads files or starts anything.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hello_client.stats import percentile
from hellolb import ticks

from hellolb_lab.clientlog import FailedOpen, StreamLife

if TYPE_CHECKING:
    from hellolb_lab.measure import Window

#: The verdict's ``extra`` key for :func:`figures`.
STREAMS = "streams"


#: How the checks and tables name the two ends a server chooses.
DRAIN_END = f"OK ({ticks.END_DRAIN})"
MAX_AGE_END = "UNAVAILABLE (max age)"
#: What grpc says when a maximum connection age plus its grace cut a stream (grpcio 1.85: the
#: server's "max connection age", or the client's view of the GOAWAY's "max_age").
MAX_AGE_DETAILS = ("max connection age", "max_age")


def end_label(life: StreamLife) -> str:
    """How a stream ended, in the tables' words: its status code, and ``(drain)`` when a
    draining server ended it, ``(max age)`` when the connection's age and grace cut it."""
    code = life.code or "?"
    if life.end_reason == ticks.END_DRAIN:
        return f"{code} ({ticks.END_DRAIN})"
    if code == "UNAVAILABLE" and any(d in life.details for d in MAX_AGE_DETAILS):
        return MAX_AGE_END
    return code


#: Seconds before a moment within which a slot that was between two streams counts as
#: holding one: the client opens the next stream at once, and it took at most 0.3 s in the
#: lab's runs (the slowest reconnect), so a second covers it on a busy machine.
SETTLE_S = 1.0


def open_at(lives: Iterable[StreamLife], t: float) -> dict[str, int]:
    """Streams open at ``t``, per server."""
    return dict(sorted(Counter(s.server_id for s in lives if s.open_at(t)).items()))


def settled_open(lives: Sequence[StreamLife], t: float) -> dict[str, int]:
    """Streams open per server at the latest moment of the :data:`SETTLE_S` before ``t`` at
    which the most of them were open: where servers cut streams (maxage), a slot may be
    between two streams at ``t`` itself."""
    # The count changes only as a stream opens or ends: look right after each open and
    # right before each end (but the client's own, as it stops: no stream follows those).
    moments = [t] + [s.opened for s in lives if t - SETTLE_S <= s.opened < t]
    moments += [
        s.ended - 1e-6
        for s in lives
        if s.ended is not None and not s.by_client and t - SETTLE_S < s.ended <= t
    ]
    counts = [(sum(open_at(lives, m).values()), m) for m in moments]
    return open_at(lives, max(counts)[1])


def _ended_between(lives: Iterable[StreamLife], start: float, end: float) -> list[StreamLife]:
    return [s for s in lives if s.ended is not None and not s.by_client and start <= s.ended < end]


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def window_figures(
    window: Window, lives: Sequence[StreamLife], failed: Sequence[FailedOpen]
) -> dict[str, Any]:
    """The streams of one phase in which servers left (see the module docstring)."""
    ended = _ended_between(lives, window.start, window.end)
    opened = [s for s in lives if window.start <= s.opened < window.end]
    reconnects = sorted(s.reconnect_s for s in opened if s.reconnect_s is not None)
    opens = [f for f in failed if window.start <= f.t < window.end]
    out: dict[str, Any] = {
        "ends": dict(sorted(Counter(end_label(s) for s in ended).items())),
        "errors": sum(s.error for s in ended) + sum(f.error for f in opens),
        "failed_opens": dict(sorted(Counter(f.code for f in opens).items())),
        "open_after": settled_open(lives, window.end - 1e-3),
        "new_servers": list(window.new_servers),
        "reconnect_s_p50": _rounded(percentile(reconnects, 0.5)),
        "reconnect_s_max": _rounded(reconnects[-1] if reconnects else None),
    }
    killed = window.facts.get("killed")
    if killed is not None:
        out["killed"] = killed
        held = [s for s in lives if s.server_id == killed and s.open_at(window.start - 1e-3)]
        out["killed_held"] = len(held)
        # By status code alone: a connection that had its GOAWAY for age before the crash
        # reads as an age cut in the details, though the crash closed it.
        out["killed_ends"] = dict(
            sorted(Counter(s.code or "?" for s in held if s.ended is not None).items())
        )
        out["other_ends"] = dict(
            sorted(Counter(end_label(s) for s in ended if s not in held).items())
        )
    return out


def figures(
    lives: Sequence[StreamLife],
    failed: Sequence[FailedOpen],
    *,
    scale_at: float,
    after_end: float,
    slots: int,
    first_servers: Sequence[str],
    new_servers: Sequence[str],
    windows: Mapping[str, Window],
    cut_s: tuple[float, float] | None,
    later: tuple[Sequence[StreamLife], Sequence[FailedOpen]] | None = None,
) -> dict[str, Any]:
    """Every stream figure of a run, JSON-ready (see the module docstring). ``slots`` is the
    streams the client keeps open (its ``CONCURRENCY``); ``cut_s`` the seconds within which
    the server's maximum age and grace cut a stream (:func:`hellolb_lab.bounds.stream_cut`).
    ``later`` are the streams read once the phases ran, where they come from a later read of
    the log (on a cluster, the log of a client started again holds only its own streams)."""
    phase_lives, phase_failed = later if later is not None else (lives, failed)
    moved = _ended_between(lives, scale_at, after_end)
    early = _ended_between(lives, 0.0, after_end)
    return {
        "slots": slots,
        "first_servers": list(first_servers),
        "new_servers": list(new_servers),
        "cut_s": None if cut_s is None else list(cut_s),
        "open_at_scale": settled_open(lives, scale_at),
        "open_after_scale": settled_open(lives, after_end),
        "opened_after_scale": dict(
            sorted(Counter(s.server_id for s in lives if scale_at <= s.opened < after_end).items())
        ),
        "moved": dict(sorted(Counter(end_label(s) for s in moved).items())),
        "ended_before_phases": dict(sorted(Counter(end_label(s) for s in early).items())),
        # A slot's first stream opens as the client connects: its lifetime is its connection's.
        "first_lifetimes_s": sorted(
            round(s.ended - s.opened, 3)
            for s in early
            if s.ended is not None and s.reconnect_s is None
        ),
        "ends_total": dict(
            sorted(Counter(end_label(s) for s in lives if s.ended and not s.by_client).items())
        ),
        "windows": {
            name: window_figures(w, phase_lives, phase_failed) for name, w in windows.items()
        },
    }


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k}={n}" for k, n in counts.items()) or "none"


def describe(fig: Mapping[str, Any]) -> list[str]:
    """A few plain lines for the verdict."""
    lines = [
        f"  streams at the scale-up: {_counts(fig['open_at_scale'])}",
        f"  streams after it:        {_counts(fig['open_after_scale'])} "
        f"(ended meanwhile: {_counts(fig['moved'])})",
    ]
    for name, w in fig["windows"].items():
        reconnect = w["reconnect_s_max"]
        slowest = "none" if reconnect is None else f"{reconnect:.3f}s"
        lines.append(
            f"  {name}: stream ends {_counts(w['ends'])}; errors {w['errors']}; "
            f"after it {_counts(w['open_after'])}; slowest reconnect {slowest}"
        )
    return lines
