"""The client's log vocabulary: event names and the fields readers rely on.

These names are the client's interface: the lab, the cluster log reader and the cluster check
import them from here instead of spelling them again, and the docs list them (log fields).
Change one only together with every reader.
"""

from __future__ import annotations

#: Settings, once at start.
CONFIG = "client.config"
#: One attempt of the start-up health check.
WAITING = "client.waiting"
#: The server answered SERVING; the loop starts.
READY = "client.ready"
#: No SERVING answer within ``STARTUP_TIMEOUT``.
STARTUP_FAILED = "client.startup_failed"
#: One answered call.
RESPONSE = "client.response"
#: One failed call, after its retries.
ERROR = "client.error"
#: One limited call: answered RESOURCE_EXHAUSTED after its retries; not a failure.
LIMITED = "client.limited"
#: Stream mode: a stream's first tick arrived, naming the server that took it.
STREAM_OPENED = "client.stream_opened"
#: Stream mode: one tick (only with ``LOG_RESPONSES``).
TICK = "client.tick"
#: Stream mode: a stream ended, with its status code, lifetime and tick count.
STREAM_ENDED = "client.stream_ended"
#: A call failed with something other than a gRPC error (a bug, logged with its traceback).
EXCEPTION = "client.exception"
#: Counts per ``SUMMARY_INTERVAL``, and once more at exit.
SUMMARY = "client.summary"
#: A signal asked the client to stop or reload.
SIGNAL = "client.signal"
#: SIGHUP: the client re-executes itself.
RELOADING = "client.reloading"
#: The loop ended, with ``reason``.
STOPPED = "client.stopped"

#: Fields every line carries.
TIMESTAMP = "timestamp"
CLIENT_ID = "client_id"
#: ``client.response``: the server that answered, and the client-seen latency.
SERVER_ID = "server_id"
LATENCY_MS = "latency_ms"
#: ``client.summary``: answers per server in the window, errors since start, last line.
BY_SERVER_WINDOW = "by_server_window"
ERRORS_TOTAL_COUNT = "errors_total_count"
#: ``client.summary``: limited calls (RESOURCE_EXHAUSTED) since start, never among the errors.
LIMITED_TOTAL = "limited_total"
#: ``client.limited``: the wait the server asked for (``grpc-retry-pushback-ms``), or None.
PUSHBACK_MS = "pushback_ms"
FINAL = "final"
#: ``client.summary``: which loop wrote it (``rounds``, ``closed_loop``, ``streams``), the
#: share of answers per server and the latency percentiles of the window.
MODE = "mode"
SHARE_BY_SERVER_WINDOW = "share_by_server_window"
LATENCY_MS_P50 = "latency_ms_p50"
LATENCY_MS_P90 = "latency_ms_p90"
LATENCY_MS_P99 = "latency_ms_p99"
#: ``client.summary`` in stream mode: open streams per server now, ends per status code since
#: start, and reconnects since start.
STREAMS_BY_SERVER = "streams_by_server"
STREAM_ENDS_TOTAL = "stream_ends_total"
RECONNECTS_TOTAL = "reconnects_total"
#: ``client.stream_opened`` and ``client.stream_ended``: the client's number for the stream,
#: and, on ``client.stream_ended``, its status code and lifetime.
STREAM = "stream"
CODE = "code"
LIFETIME_SECONDS = "lifetime_seconds"

#: Every client event starts with this; readers skip other lines (a sidecar's, kubectl's).
PREFIX = "client."
