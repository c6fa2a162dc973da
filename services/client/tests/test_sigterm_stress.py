"""Servers leave under load: SIGTERM them one after another and count every call the client lost.

A real client sends its rounds of calls (defaults: 10 at once, 5 s deadline, retries) to three
real servers on loopback addresses (100 ms of work per call, 5 s shutdown grace). Servers get
SIGTERM one after another, as in a rolling restart: each signalled server drains and exits, and
a new one starts on its address; the next server is signalled once the client is answered by
the new one, and by the server it is about to lose. A call the client could not get answered is
a lost call, counted by status code.

``make test`` runs a few SIGTERMs; ``make stress`` runs 100 with a core kept busy and prints the
figure. Options (see the root conftest): ``--sigterms``, ``--busy-cores``, and ``--server-env`` /
``--client-env KEY=VALUE`` to try other settings (``LB_POLICY=pick_first``, ``RPC_RETRIES=1``).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import pytest
from hello_server.config import ServerConfig
from hellolb.config import format_duration

pytestmark = pytest.mark.slow

# Each server's own address, as Kubernetes gives each pod its own IP.
HOSTS = ("127.0.2.1", "127.0.2.2", "127.0.2.3")
SERVER_ENV = {"WORK_TIME": "100ms", "SHUTDOWN_GRACE": "5s"}
# How long a server may take from SIGTERM to exit: the drain, the calls in flight (100 ms),
# and a margin for a busy machine. A call held until the grace runs out blows it.
EXIT_MARGIN = 2.5


def wall(event) -> float:
    return datetime.fromisoformat(event["timestamp"]).timestamp()


def env_option(values: list[str]) -> dict[str, str]:
    pairs = (value.split("=", 1) for value in values)
    return {key: val for key, val in pairs}


@dataclass
class Sigterm:
    server_id: str
    sent: float
    exit_seconds: float
    exit_code: int
    # The latest arrival of a call at the server after its SIGTERM, in ms after it.
    last_arrival_ms: float


@dataclass
class Figure:
    sigterms: list[Sigterm] = field(default_factory=list)
    seconds: float = 0.0
    answered: int = 0
    lost: Counter[str] = field(default_factory=Counter)
    # For each lost call: its code, and which SIGTERM it followed and by how long (ms).
    losses: list[tuple[str, int | None, float]] = field(default_factory=list)

    def report(self, settings: str) -> str:
        lost = ", ".join(f"{code}={n}" for code, n in sorted(self.lost.items())) or "none"
        costly = len({n for _, n, _ in self.losses if n is not None})
        lines = [
            f"{len(self.sigterms)} SIGTERMs in {self.seconds:.0f}s, {self.answered} calls "
            f"answered, {sum(self.lost.values())} lost ({lost}) after {costly} of the "
            f"SIGTERMs; {settings}",
            f"  latest call arriving at a server after its SIGTERM: "
            f"{max(s.last_arrival_ms for s in self.sigterms):.0f} ms after it; "
            f"slowest exit: {max(s.exit_seconds for s in self.sigterms):.2f}s after SIGTERM",
        ]
        for code, n, after in self.losses:
            when = "before any SIGTERM" if n is None else f"{after:.0f} ms after SIGTERM {n + 1}"
            lines.append(f"  lost {code}, ended {when}")
        return "\n".join(lines)


class Fleet:
    """A server on each of ``HOSTS``, one port; each slot can be given a new server."""

    def __init__(self, spawn, port_on, env: dict[str, str]) -> None:
        self.spawn = spawn
        self.port = port_on(HOSTS[0])
        self.env = env
        self.generation = [0] * len(HOSTS)
        self.procs = [self._start(slot) for slot in range(len(HOSTS))]
        for proc in self.procs:
            proc.wait_event("server.started", timeout=30)

    def _start(self, slot: int):
        self.generation[slot] += 1
        return self.spawn(
            "hello_server",
            BIND_ADDRESS=HOSTS[slot],
            PORT=str(self.port),
            SERVER_ID=self.server_id(slot),
            **self.env,
        )

    def server_id(self, slot: int) -> str:
        return f"s{slot + 1}.{self.generation[slot]}"

    def target(self) -> str:
        return "ipv4:" + ",".join(f"{host}:{self.port}" for host in HOSTS)

    def replace(self, slot: int) -> None:
        """A new server on the slot's address, once the old one has exited."""
        self.procs[slot] = self._start(slot)


def last_arrival_ms(server, sent: float) -> float:
    """How long after ``sent`` the last call the server handled arrived (0 if none did)."""
    arrivals = [wall(e) - e["duration_ms"] / 1000 for e in server.named("rpc.handled")]
    return max([(a - sent) * 1000 for a in arrivals if a >= sent], default=0.0)


def sigterm(fleet: Fleet, slot: int, exit_bound: float) -> Sigterm:
    proc = fleet.procs[slot]
    server_id = fleet.server_id(slot)
    sent = time.time()
    proc.signal(signal.SIGTERM)
    code = proc.wait(timeout=exit_bound + 30)
    exited = time.time() - sent
    return Sigterm(server_id, sent, exited, code, last_arrival_ms(proc, sent))


def rolling_sigterms(fleet: Fleet, client, count: int, exit_bound: float) -> Figure:
    figure = Figure()
    started = time.monotonic()
    since = 0
    for n in range(count):
        slot = n % len(HOSTS)
        # As in a rolling restart, one server at a time is out of rotation: every new server
        # answers before the next one leaves.
        for other in range(len(HOSTS)):
            client.wait_event("client.response", timeout=60, server_id=fleet.server_id(other))
        # Only a server the client is using now can lose the client's calls.
        client.wait_event(
            "client.response", timeout=60, start=since, server_id=fleet.server_id(slot)
        )
        figure.sigterms.append(sigterm(fleet, slot, exit_bound))
        fleet.replace(slot)
        since = len(client.events)
    client.signal(signal.SIGTERM)
    assert client.wait(timeout=30) == 0
    figure.seconds = time.monotonic() - started
    summary = client.wait_event("client.summary", timeout=5, final=True)
    figure.answered = summary["answers_total"]
    figure.lost = Counter(summary["errors_total"])
    for error in client.named("client.error"):
        before = [n for n, s in enumerate(figure.sigterms) if s.sent <= wall(error)]
        if before:
            after = (wall(error) - figure.sigterms[before[-1]].sent) * 1000
            figure.losses.append((error["code"], before[-1], after))
        else:
            figure.losses.append((error["code"], None, 0.0))
    return figure


@pytest.fixture
def busy_cores(request):
    """``--busy-cores`` processes that each keep a core busy while the test runs (1 h at most)."""
    loop = "import time\nend = time.monotonic() + 3600\nwhile time.monotonic() < end: pass"
    count = request.config.getoption("--busy-cores")
    procs = [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(count)]
    yield count
    for proc in procs:
        proc.kill()
        proc.wait(5)


def test_rolling_sigterms_under_load_lose_no_call(spawn, port_on, request, busy_cores):
    server_env = {**SERVER_ENV, **env_option(request.config.getoption("--server-env"))}
    client_env = env_option(request.config.getoption("--client-env"))
    fleet = Fleet(spawn, port_on, server_env)
    client = spawn("hello_client", SERVER_ADDRESS=fleet.target(), **client_env)
    drain = ServerConfig.from_env(server_env).drain_delay
    figure = rolling_sigterms(
        fleet, client, request.config.getoption("--sigterms"), exit_bound=drain + EXIT_MARGIN
    )

    shown = {"DRAIN_DELAY": format_duration(drain), **server_env, **client_env}
    settings = " ".join(f"{k}={v}" for k, v in shown.items())
    print("\n" + figure.report(f"{settings}, {busy_cores} core(s) kept busy"))
    assert figure.lost == Counter()
    assert all(s.exit_code == 0 for s in figure.sigterms)
    slow = [s for s in figure.sigterms if s.exit_seconds > drain + EXIT_MARGIN]
    assert not slow, f"servers held a call until their grace ran out: {slow}"
