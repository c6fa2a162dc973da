"""Test helpers shared by every package: real processes with their JSON logs, free ports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from hellolb_lab.procs import free_port

ROOT = Path(__file__).resolve().parent

Event = dict[str, object]


class Proc:
    """A running ``python -m <module>`` whose stdout is collected as parsed JSON lines."""

    def __init__(self, module: str, env: Mapping[str, str]) -> None:
        self.module = module
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("GRPC_", "LOG_"))}
        full_env.update({"LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"})
        full_env.update(env)
        self.popen = subprocess.Popen(
            [sys.executable, "-m", module],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.pid = self.popen.pid
        self.events: list[Event] = []
        self.non_json: list[str] = []
        self.stderr = ""
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._err_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._err_reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._changed:
                try:
                    self.events.append(json.loads(line))
                except json.JSONDecodeError:
                    self.non_json.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def _read_stderr(self) -> None:
        assert self.popen.stderr is not None
        self.stderr = self.popen.stderr.read()

    def named(self, event: str) -> list[Event]:
        with self._changed:
            return [e for e in self.events if e.get("event") == event]

    def wait_for(self, predicate: Callable[[Event], bool], timeout: float, start: int = 0) -> Event:
        """The first event from index ``start`` on that matches, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        seen = start
        with self._changed:
            while True:
                for event in self.events[seen:]:
                    if predicate(event):
                        return event
                seen = len(self.events)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (
                    self.popen.poll() is not None and not self._reader.is_alive()
                ):
                    raise AssertionError(
                        f"{self.module}: no matching event within {timeout}s; last lines: "
                        f"{self.events[-5:]} stderr: {self.stderr[-2000:]}"
                    )
                self._changed.wait(min(remaining, 0.2))

    def wait_event(self, name: str, timeout: float, start: int = 0, **fields: object) -> Event:
        return self.wait_for(
            lambda e: e.get("event") == name and all(e.get(k) == v for k, v in fields.items()),
            timeout,
            start,
        )

    def signal(self, sig: signal.Signals) -> None:
        self.popen.send_signal(sig)

    def wait(self, timeout: float) -> int:
        code = self.popen.wait(timeout)
        self._reader.join(timeout)
        self._err_reader.join(timeout)
        return code

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(10)
        self._reader.join(5)
        self._err_reader.join(5)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("stress", "the SIGTERM stress check (make stress)")
    group.addoption("--sigterms", type=int, default=6, help="SIGTERMs to send (default 6)")
    group.addoption("--busy-cores", type=int, default=0, help="cores to keep busy meanwhile")
    for side in ("server", "client"):
        group.addoption(
            f"--{side}-env",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help=f"a setting of every {side}, on top of the check's own",
        )


@pytest.fixture
def spawn() -> Iterator[Callable[..., Proc]]:
    """Start ``python -m MODULE`` processes; every one is killed by PID at teardown."""
    started: list[Proc] = []

    def _spawn(module: str, **env: str) -> Proc:
        proc = Proc(module, env)
        started.append(proc)
        return proc

    yield _spawn
    for proc in started:
        proc.stop()


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def port_on() -> Callable[[str], int]:
    """``port_on("127.0.1.2")``: a free port on that loopback address."""
    return free_port
