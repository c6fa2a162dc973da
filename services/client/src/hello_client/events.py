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
FINAL = "final"

#: Every client event starts with this; readers skip other lines (a sidecar's, kubectl's).
PREFIX = "client."
