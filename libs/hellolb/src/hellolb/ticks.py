"""What server and client agree on for the ``Ticks`` stream, beyond the proto itself."""

from __future__ import annotations

#: The interval a ``TicksRequest`` asks for when it leaves ``interval_ms`` at 0.
DEFAULT_INTERVAL_MS = 1000
#: The shortest and longest intervals a server accepts (INVALID_ARGUMENT outside them).
MIN_INTERVAL_MS = 10
MAX_INTERVAL_MS = 3_600_000

#: Trailing metadata key a server sets when it ends a stream itself, with the reason as
#: value. gRPC 1.85 drops the details of an OK status on the way, so the reason travels here.
END_REASON_KEY = "hellolb-stream-end"
#: The reason a draining server gives: open a new stream, on another server.
END_DRAIN = "drain"
