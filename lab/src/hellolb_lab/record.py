"""What a scenario record is made of: the types of :mod:`hellolb_lab.catalogue`'s records.

A record says how a scenario balances calls, whether the lab can run it or it needs a cluster,
how many proxy hops a call crosses, what happens to servers added later (:class:`Reach`), the
rule its time bound follows (:class:`Bound`), what a rollout and a crash do to its client, the
checks of its scale-up, the named phases after it (:mod:`hellolb_lab.phases`), what it does to
long-lived streams (:class:`StreamExpectation`), whether a service mesh runs in it, and how long
the cluster check watches it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

#: A scenario's Kubernetes namespace is this prefix and its name (see :func:`namespace`).
NAMESPACE_PREFIX = "grpc-lb-"


def namespace(name: str) -> str:
    """The namespace of scenario ``name``: prefixed, so that no scenario can take a namespace a
    tool owns by default (Linkerd's control plane lives in ``linkerd``)."""
    return NAMESPACE_PREFIX + name


class Reach(enum.Enum):
    """What happens to the servers added by the scale-up; it decides the tables' wording."""

    #: Every new server answers within the scenario's bound.
    BOUNDED = "every new server answers within the bound"
    #: No new server ever answers: the client never resolves the name again.
    NEVER = "no new server answers"
    #: Only a new connection (a restarted client) can land on a new server, by chance.
    NEW_CONNECTION = "only a new connection can reach a new server"


class Bound(enum.Enum):
    """The rule for the seconds within which every new server must answer.

    :func:`hellolb_lab.bounds.reach_bound` computes it from the overlay's settings; the margin
    is 2 s in the lab and 5 s on a cluster.
    """

    NONE = "no bound: new servers are not expected to answer"
    MAX_AGE = "max connection age x 1.1 (gRPC's jitter) + the client's re-resolution floor + margin"
    ENVOY_DNS = "Envoy's DNS refresh interval + margin"
    CONTROL_PLANE = "10 s for the control plane to push the new endpoints + margin"
    XDS_PUSH = "1 s for the xDS control plane to push the new endpoints + margin"


@dataclass(frozen=True)
class Phase:
    """A record's use of a phase after the scale-up, by its name in :mod:`hellolb_lab.phases`.

    ``on_cluster=False`` keeps the step to the lab: the cluster check follows the walkthrough.
    """

    name: str
    on_cluster: bool = True


#: Phases every scenario runs after its own: servers leave. The crash stays in the lab: kubectl
#: cannot crash a server (inside its pod the server is PID 1, and the kernel drops a SIGKILL
#: sent to a namespace's init from within that namespace), and deleting a pod is a graceful stop.
COMMON_PHASES = (Phase("rollout"), Phase("crash", on_cluster=False))


@dataclass(frozen=True)
class ClusterWatch:
    """Seconds the cluster check lets the client run: before the scale-up, after it, and in each
    of the scenario's own phases."""

    warmup_s: float = 20.0
    observe_s: float = 40.0
    phase_s: float = 20.0


@dataclass(frozen=True)
class Scenario:
    """One scenario. ``rollout`` and ``crash`` say, in the docs' words, what its client goes
    through when every server is replaced and when one is killed. ``needs_cluster`` is the
    reason the lab cannot run it, if it cannot."""

    name: str
    balancing: str
    shows: str
    hops: int
    reach: Reach
    bound: Bound
    rollout: str
    crash: str
    #: The checks of the scale-up (:data:`hellolb_lab.checks.CHECKS`); its phases bring theirs.
    checks: tuple[str, ...]
    #: What it does to the client's streams.
    streams: StreamExpectation
    phases: tuple[Phase, ...] = ()
    #: Its pods run Linkerd's proxy, so the mesh is installed before it is deployed.
    meshed: bool = False
    needs_cluster: str | None = None
    watch: ClusterWatch = field(default_factory=ClusterWatch)

    @property
    def in_lab(self) -> bool:
        return self.needs_cluster is None

    @property
    def namespace(self) -> str:
        return namespace(self.name)

    @property
    def all_phases(self) -> tuple[Phase, ...]:
        """The phases after the scale-up: the scenario's own, then the common ones."""
        return (*self.phases, *COMMON_PHASES)

    @property
    def stream_checks(self) -> tuple[str, ...]:
        """The checks of the scale-up the stream-mode verdict runs, in order; its phases bring
        theirs (:func:`hellolb_lab.judging.stream_check_names`)."""
        expect = self.streams
        start = {Spread.ONE: (STREAMS_ON_ONE,), Spread.EVERY: (STREAMS_SPREAD,), Spread.ANY: ()}
        moves = STREAMS_MOVE_AT_AGE if expect.moves is Moves.AT_AGE else STREAMS_STAY
        return (*COMMON_STREAM_CHECKS, *start[expect.start], moves)


# -- Streams: what a scenario does to long-lived streams (the client's stream mode) ----------


class Spread(enum.Enum):
    """Where the client's streams are right after it opened them."""

    #: The client's one connection, through the virtual address, reaches one server.
    ONE = "on one server: the client's one connection"
    #: The proxy picks a server for each stream.
    EVERY = "over every server: the proxy picks a server per stream"
    #: gRPC's round_robin takes each stream to the next server it is connected to; the
    #: servers that connected first may get more.
    ANY = "over the servers the client is connected to when it opens them"


class Moves(enum.Enum):
    """When a stream leaves the server it started on, other than with that server."""

    NEVER = "never: a stream stays on its server, whatever servers are added"
    #: At the connection's maximum age plus its grace, as a hard cut (UNAVAILABLE).
    AT_AGE = "at the connection's maximum age plus its grace, cut with UNAVAILABLE"


@dataclass(frozen=True)
class StreamExpectation:
    """What a scenario does to streams: where they are at start, when they move, the status a
    stream on a killed server ends with (``None``: the scenario has no crash phase), and what
    to set for streams in it. In every scenario a rollout ends streams with OK (the server's
    drain) and the client opens them again on the new servers."""

    start: Spread
    moves: Moves
    crash_code: str | None
    advice: str


#: The stream checks, by the names the verdict prints.
STREAMS_HELD = "every slot holds a stream at the scale-up"
STREAMS_ON_ONE = "streams on one server at start"
STREAMS_SPREAD = "streams over every first server at start"
STREAMS_STAY = "streams stay where they started after the scale-up"
STREAMS_MOVE_AT_AGE = "streams move only at age + grace, to every server"

#: Checks every scenario runs, before its phases' headline checks and its own
#: (:func:`hellolb_lab.judging.check_names`).
COMMON_CHECKS = ("answers", "no failed RPC")
#: Checks of every scenario in stream mode, before the ones its expectation adds.
COMMON_STREAM_CHECKS = ("answers", STREAMS_HELD)
