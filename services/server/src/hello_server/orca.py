"""Per-call ORCA load reports, in the ``endpoint-load-metrics-bin`` trailer of every Hello call.

Python's grpcio has no ORCA API, but a client reads the report from the call's trailing
metadata whatever wrote it: a serialized ``xds.data.orca.v3.OrcaLoadReport`` under
``endpoint-load-metrics-bin`` (gRFC A51). grpcio's ``weighted_round_robin`` (gRFC A58) and
Envoy's ``client_side_weighted_round_robin`` weigh each server by
``rps_fractional / (utilization + eps / rps_fractional * error_utilization_penalty)``, taking
``application_utilization`` as the utilization when it is above zero and ``cpu_utilization``
otherwise (grpc's weighted_round_robin.cc; Envoy's client-side WRR docs). A report with a zero
rate or utilization leaves the weight as it was. A caller that ignores the trailer loses nothing.

What the report says, over the last second or so (longer after an idle spell):

- ``rps_fractional``: Hello calls finished per second, failed ones included;
- ``eps``: of those, calls that did not end OK, per second;
- ``application_utilization``: Hello calls in progress, on average: the seconds of calls
  served per second. A server made slower (work time, injected latency) keeps each call
  longer, so at the same rate it reports more; its weight, rate over utilization, is one over
  its mean call time;
- ``cpu_utilization``: CPU seconds this process used per second (1.0 = one core).

Streams are left out: a stream's report would arrive only when it ends, and the time a stream
is open says nothing about how busy the server is.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
from xds.data.orca.v3 import orca_load_report_pb2

TRAILER_KEY = "endpoint-load-metrics-bin"
#: The span rates and utilization are measured over.
WINDOW = 1.0
#: How old the report a call carries may be: it is rebuilt at most this often, so each call
#: only attaches bytes that are ready.
REFRESH = 0.1

Trailer = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Sample:
    """Running totals at one moment."""

    at: float
    calls: int
    errors: int
    busy: float  # call-seconds: calls in progress, integrated over time
    cpu: float


class LoadMeter:
    """Counts the calls a server finishes and the time they take, and reports the load."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        cpu_clock: Callable[[], float] = time.process_time,
        window: float = WINDOW,
        refresh: float = REFRESH,
    ) -> None:
        self._clock = clock
        self._cpu_clock = cpu_clock
        self._window = window
        self._refresh = refresh
        self._in_flight = 0
        self._calls = 0
        self._errors = 0
        self._busy = 0.0
        now = clock()
        self._changed = now
        self._samples: deque[Sample] = deque([self._sample(now)])
        self._built = now
        self._trailer: Trailer = ((TRAILER_KEY, b""),)

    def _advance(self, now: float) -> None:
        self._busy += self._in_flight * (now - self._changed)
        self._changed = now

    def _sample(self, now: float) -> Sample:
        return Sample(now, self._calls, self._errors, self._busy, self._cpu_clock())

    def begin(self) -> None:
        self._advance(self._clock())
        self._in_flight += 1

    def end(self, failed: bool) -> None:
        self._advance(self._clock())
        self._in_flight -= 1
        self._calls += 1
        self._errors += failed

    def report(self) -> orca_load_report_pb2.OrcaLoadReport:
        """The load over the last window, from the totals now and from the window's start."""
        now = self._clock()
        self._advance(now)
        current = self._sample(now)
        self._samples.append(current)
        # Keep the newest sample at least a window old as the base, and drop older ones.
        while len(self._samples) > 2 and self._samples[1].at <= now - self._window:
            self._samples.popleft()
        base = self._samples[0]
        span = now - base.at
        if span <= 0:
            return orca_load_report_pb2.OrcaLoadReport()
        return orca_load_report_pb2.OrcaLoadReport(
            cpu_utilization=max(0.0, current.cpu - base.cpu) / span,
            application_utilization=(current.busy - base.busy) / span,
            rps_fractional=(current.calls - base.calls) / span,
            eps=(current.errors - base.errors) / span,
        )

    def trailer(self) -> Trailer:
        """The trailing metadata a call carries: the report, at most ``refresh`` old."""
        now = self._clock()
        if now - self._built >= self._refresh:
            self._built = now
            self._trailer = ((TRAILER_KEY, self.report().SerializeToString()),)
        return self._trailer

    @contextmanager
    def measure(self, context: grpc.aio.ServicerContext) -> Iterator[None]:
        """Count one call, and attach the report to whatever status it ends with.

        The report goes on at the start, so that an abort carries it too (grpc.aio sends the
        trailing metadata set before ``abort``), and again at the end with what is newer.
        Any exception, an abort or a cancellation included, counts the call as failed.
        """
        self.begin()
        context.set_trailing_metadata(self.trailer())
        try:
            yield
        except BaseException:
            self.end(failed=True)
            raise
        self.end(failed=False)
        context.set_trailing_metadata(self.trailer())
