"""One way to wait: ask again until an answer comes or a deadline passes.

Every wait in the lab is bounded in time and polls at a short interval; nothing sleeps as a way to
synchronise. :func:`poll` returns ``None`` at the deadline, :func:`wait_for` raises
:class:`~hellolb_lab.errors.LabError` naming what it waited for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from hellolb_lab.errors import LabError

T = TypeVar("T")


def poll(probe: Callable[[], T | None], timeout: float, interval: float = 0.05) -> T | None:
    """Call ``probe`` until it returns something other than ``None``, for at most ``timeout`` s.

    The probe runs at least once. It may raise to stop the wait early (a process died).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        time.sleep(min(interval, remaining))


def wait_for(
    probe: Callable[[], T | None],
    timeout: float,
    what: str | Callable[[], str],
    interval: float = 0.05,
) -> T:
    """:func:`poll`, or :class:`LabError` naming ``what`` (a text, or a function that says what
    was last seen) when the deadline passes."""
    value = poll(probe, timeout, interval)
    if value is None:
        text = what() if callable(what) else what
        raise LabError(f"timed out after {timeout:g}s waiting for {text}")
    return value


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll ``predicate`` until it is true; :class:`LabError` naming ``what`` after ``timeout``."""
    wait_for(lambda: True if predicate() else None, timeout, what, interval)
