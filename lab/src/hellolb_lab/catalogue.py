"""The scenario catalogue: what each scenario is, in one record, read by everything else.

A record says how a scenario balances calls, whether the lab can run it or it needs a cluster,
how many proxy hops a call crosses, what happens to servers added later (:class:`Reach`), the
rule its time bound follows (:class:`Bound`), what a rollout and a crash do to its client, the
checks its verdict runs, the named phases its timeline adds after the scale-up, and how long the
cluster check watches it. The lab, the
verdicts, the tour and bench tables, the CLI's choices, the cluster check, the docs pages and the
tests all read these records; none of them spells a scenario out again.

Adding a scenario: one :class:`Scenario` record here, one overlay ``k8s/overlays/<name>`` and
its page ``docs/scenarios/<name>.md`` (and a check in :mod:`hellolb_lab.checks`, or a phase in
:mod:`hellolb_lab.phases`, when it needs a new one).
"""

from __future__ import annotations

from hellolb_lab.errors import LabError
from hellolb_lab.record import (
    COMMON_CHECKS,
    COMMON_PHASES,
    COMMON_STREAM_CHECKS,
    NAMESPACE_PREFIX,
    STREAMS_HELD,
    STREAMS_MOVE_AT_AGE,
    STREAMS_ON_ONE,
    STREAMS_SPREAD,
    STREAMS_STAY,
    Bound,
    ClusterWatch,
    Moves,
    Phase,
    Reach,
    Scenario,
    Spread,
    StreamExpectation,
    namespace,
)

__all__ = [
    "BASELINE",
    "COMMON_CHECKS",
    "COMMON_PHASES",
    "COMMON_STREAM_CHECKS",
    "NAMESPACE_PREFIX",
    "NEW_SERVER_REACHED",
    "SCENARIOS",
    "STREAMS_HELD",
    "STREAMS_MOVE_AT_AGE",
    "STREAMS_ON_ONE",
    "STREAMS_SPREAD",
    "STREAMS_STAY",
    "Bound",
    "ClusterWatch",
    "Moves",
    "Phase",
    "Reach",
    "Scenario",
    "Spread",
    "StreamExpectation",
    "get",
    "lab_names",
    "names",
    "namespace",
]

NEW_SERVER_REACHED = "every new server reached"

#: What the scenarios whose calls are balanced by Envoy go through.
ENVOY_ROLLOUT = (
    "no call fails: Envoy keeps an old server until its health checks see it drain, finds the "
    "new ones at its next DNS refresh, and sends a call a stopping server refused to another"
)
ENVOY_CRASH = (
    "no call fails: Envoy retries the calls in flight on another server, and its health checks "
    "and outlier detection take the dead one out"
)
#: What a client that balances over the servers by itself goes through in a crash.
DIRECT_CRASH = (
    "no call fails: the client's retries send the calls in flight to the servers it is still "
    "connected to"
)
#: Envoy resets the client's stream when the server behind it dies mid-stream: grpc reads the
#: reset as INTERNAL, which the client counts as an error.
ENVOY_CRASH_CODE = "INTERNAL"
#: A connection that breaks under a stream ends it with UNAVAILABLE, a reconnect.
DIRECT_CRASH_CODE = "UNAVAILABLE"
#: Advice for the scenarios whose Envoy carries streams.
ENVOY_ADVICE = (
    "a route for the streaming method with `timeout: 0s` (done in the overlays); to spread "
    "streams over new servers, end them from the server now and then"
)


#: Every scenario, in tour order.
SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="clusterip",
        balancing="a normal Service: kube-proxy picks a pod per connection",
        shows="one server gets every call",
        hops=1,
        reach=Reach.NEW_CONNECTION,
        bound=Bound.NONE,
        rollout=(
            "no call fails: when its server stops, the client's one connection closes and it "
            "opens another through the virtual address, to one new server"
        ),
        crash=(
            "no call fails: the calls in flight die with the connection, and the client's "
            "retries send them over a new one, to another server"
        ),
        checks=("one server per client connection",),
        streams=StreamExpectation(
            Spread.ONE,
            Moves.NEVER,
            DIRECT_CRASH_CODE,
            "nothing to set, nothing to gain: every stream shares the one connection's server",
        ),
        # In the lab only: a restarted client shows that a new connection may land on another
        # server, and still on one only.
        phases=(Phase("restart_client", on_cluster=False),),
    ),
    Scenario(
        name="headless",
        balancing="DNS returns every pod, the client balances `round_robin`",
        shows="even over the first 3 servers; the 2 added later get nothing",
        hops=0,
        reach=Reach.NEVER,
        bound=Bound.NONE,
        rollout=(
            "no call fails: the client drops each old server as it drains, finds the new ones when "
            "the first old one closes its connections, and then uses every one; with grpc's "
            "default 30 s re-resolution floor it can fail every call until the floor passes"
        ),
        crash=DIRECT_CRASH,
        checks=("balanced over the first servers", "no traffic to the new servers"),
        streams=StreamExpectation(
            Spread.ANY,
            Moves.NEVER,
            DIRECT_CRASH_CODE,
            "nothing for the rollout (the drain ends streams with OK); to reach new servers, a "
            "maximum connection age and grace as in `maxage`",
        ),
    ),
    Scenario(
        name="maxage",
        balancing="headless, and servers close connections after a maximum age",
        shows="clients reconnect, resolve again and reach the new pods",
        hops=0,
        reach=Reach.BOUNDED,
        bound=Bound.MAX_AGE,
        rollout=(
            "no call fails: the client finds the new servers when a connection reaches its "
            "maximum age or an old server closes its connections, and then uses every one"
        ),
        crash=DIRECT_CRASH,
        checks=(NEW_SERVER_REACHED,),
        streams=StreamExpectation(
            Spread.ANY,
            Moves.AT_AGE,
            DIRECT_CRASH_CODE,
            "a grace no longer than a stream may stay put (here 5 s, 14-16 s with the age); "
            "with no grace streams never move",
        ),
        watch=ClusterWatch(observe_s=60.0),
    ),
    Scenario(
        name="proxy",
        balancing="a central Envoy balances per call",
        shows="new servers within one DNS refresh; new proxy replicas stay idle",
        hops=1,
        reach=Reach.BOUNDED,
        bound=Bound.ENVOY_DNS,
        rollout=ENVOY_ROLLOUT,
        crash=ENVOY_CRASH,
        checks=(NEW_SERVER_REACHED,),
        streams=StreamExpectation(Spread.EVERY, Moves.NEVER, ENVOY_CRASH_CODE, ENVOY_ADVICE),
        phases=(Phase("scale_proxies"), Phase("restart_client")),
    ),
    Scenario(
        name="sidecar",
        balancing="an Envoy next to the client, in the same pod, balances per call",
        shows="new servers within one DNS refresh, no shared proxy to scale",
        hops=1,
        reach=Reach.BOUNDED,
        bound=Bound.ENVOY_DNS,
        rollout=ENVOY_ROLLOUT,
        crash=ENVOY_CRASH,
        checks=(NEW_SERVER_REACHED,),
        streams=StreamExpectation(Spread.EVERY, Moves.NEVER, ENVOY_CRASH_CODE, ENVOY_ADVICE),
    ),
    Scenario(
        name="linkerd",
        balancing="Linkerd injects its proxy next to client and server",
        shows="the same as `sidecar`, done by the mesh",
        hops=2,
        reach=Reach.BOUNDED,
        bound=Bound.CONTROL_PLANE,
        rollout=(
            "no call fails: the control plane takes a deleted pod out of the proxies' endpoints "
            "during its preStop pause, before it stops serving"
        ),
        crash="not run: the crash is a lab phase, and the lab cannot run linkerd",
        checks=(NEW_SERVER_REACHED,),
        streams=StreamExpectation(
            Spread.EVERY,
            Moves.NEVER,
            None,
            # linkerd.io/2/reference/timeouts: timeouts come only from annotations or a
            # ServiceProfile; the overlay sets none.
            "no `timeout.linkerd.io/request` (or ServiceProfile timeout) on the streaming route: "
            "Linkerd sets none by default, and one would cut streams; new servers get new streams "
            "only",
        ),
        meshed=True,
        needs_cluster=(
            "linkerd needs a Kubernetes cluster: its proxy is injected and configured by the "
            "Linkerd control plane, which the lab cannot run. Use the cluster walkthrough (make "
            "e2e SCENARIO=linkerd); the lab's sidecar scenario shows the same per-client proxy "
            "shape with Envoy."
        ),
    ),
    Scenario(
        name="xds",
        balancing="an xDS control plane pushes the servers to the client's own gRPC, "
        "which balances per call",
        shows="new servers as soon as they are published; no proxy, no DNS polling",
        hops=0,
        reach=Reach.BOUNDED,
        bound=Bound.XDS_PUSH,
        rollout=(
            "no call fails: the control plane withdraws a server as soon as it starts to stop "
            "and publishes a new one once it serves, and the client's gRPC follows each push"
        ),
        crash=DIRECT_CRASH,
        checks=(NEW_SERVER_REACHED,),
        streams=StreamExpectation(
            Spread.ANY,
            Moves.NEVER,
            DIRECT_CRASH_CODE,
            "nothing for the rollout; a pushed server gets new streams only, so end long streams "
            "from the server now and then",
        ),
        # The control plane stopped while the client runs, a server added meanwhile, and the
        # control plane started again.
        phases=(Phase("restart_control_plane"),),
    ),
    Scenario(
        name="canary",
        balancing="Linkerd's proxy splits each call between stable and canary servers by the "
        "weights of a GRPCRoute",
        shows="the canary's share follows the route's weight, step by step, and rolls back",
        hops=2,
        reach=Reach.BOUNDED,
        bound=Bound.CONTROL_PLANE,
        rollout=(
            "no call fails: the stable servers are replaced as in linkerd, with the canary's "
            "weight rolled back to 0"
        ),
        crash="not run: the crash is a lab phase, and the lab cannot run canary",
        checks=(NEW_SERVER_REACHED,),
        streams=StreamExpectation(
            Spread.EVERY,
            Moves.NEVER,
            None,
            # The route's weights choose a backend per request, and a stream is one request. Not
            # checked: the cluster check refuses stream mode for canary (see e2e.plan_check).
            "a weight applies to new streams only: a stream stays on the backend it started on, "
            "so end long streams from the server now and then, or a shift (and a rollback) never "
            "reaches them",
        ),
        meshed=True,
        # The weights 0, 10, 50 and 100, then 0 again, each watched after it applies.
        phases=(Phase("canary_steps"),),
        needs_cluster=(
            "canary needs a Kubernetes cluster: its weighted GRPCRoute is applied by Linkerd's "
            "proxy, configured by the Linkerd control plane, which the lab cannot run. Use the "
            "cluster walkthrough (make e2e SCENARIO=canary)."
        ),
        # Five weight steps, each: the push, a summary interval, then this window.
        watch=ClusterWatch(phase_s=30.0),
    ),
)

#: The scenario whose latency the bench compares the others with: direct client-side balancing.
BASELINE = "headless"


def names() -> tuple[str, ...]:
    """Every scenario's name, in tour order."""
    return tuple(s.name for s in SCENARIOS)


def lab_names() -> tuple[str, ...]:
    """The scenarios the lab runs on one machine, in tour order."""
    return tuple(s.name for s in SCENARIOS if s.in_lab)


def get(name: str) -> Scenario:
    """The record of ``name``; :class:`LabError` naming the known ones otherwise."""
    for scenario in SCENARIOS:
        if scenario.name == name:
            return scenario
    raise LabError(f"unknown scenario {name!r}; known: {', '.join(names())}")
