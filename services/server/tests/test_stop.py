"""What each signal asks of the server, and how the drain ends."""

import asyncio
import signal
import time

import pytest
from hello_server.config import ServerConfig
from hello_server.server import Stop, drain, stop_request

CONFIG = ServerConfig.from_env({"DRAIN_DELAY": "3s"})


@pytest.mark.parametrize(
    ("sig", "why", "drain_seconds"),
    [
        (signal.SIGTERM, Stop.TERMINATE, 3.0),
        (signal.SIGINT, Stop.TERMINATE, 0.0),
        (signal.SIGHUP, Stop.RELOAD, 0.0),
    ],
)
def test_only_sigterm_drains(sig, why, drain_seconds):
    request = stop_request(sig, CONFIG)
    assert (request.why, request.signal, request.drain) == (why, sig.name, drain_seconds)


def run_drain(delay, *queued):
    async def scenario():
        signals = asyncio.Queue()
        for sig in queued:
            signals.put_nowait(sig)
        started = time.monotonic()
        cut_short_by = await drain(delay, signals)
        return cut_short_by, time.monotonic() - started

    return asyncio.run(scenario())


def test_the_drain_lasts_its_delay():
    cut_short_by, seconds = run_drain(0.2)
    assert cut_short_by is None
    assert seconds >= 0.2


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_second_stop_signal_ends_the_drain(sig):
    cut_short_by, seconds = run_drain(60, sig)
    assert cut_short_by == sig.name
    assert seconds < 30


def test_sighup_does_not_end_the_drain():
    cut_short_by, seconds = run_drain(0.2, signal.SIGHUP)
    assert cut_short_by is None
    assert seconds >= 0.2
