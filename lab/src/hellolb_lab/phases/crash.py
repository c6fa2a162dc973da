"""``crash``: the server that answered the most in the last second killed (SIGKILL), as a crash
would: no drain, no goodbye. The kubelet takes the pod out of the endpoints and restarts its
container at once (the first restart has no back-off), on the same address, back in DNS once it
listens; then the client runs for ``settle`` seconds.

Lab only: kubectl cannot crash a server (inside its pod the server is PID 1, and the kernel
drops a SIGKILL sent to a namespace's init from within that namespace), and deleting a pod is a
graceful stop.
"""

from __future__ import annotations

import dataclasses
import signal
import time
from typing import TYPE_CHECKING, Any

from hellolb_lab import catalogue, clientlog, disruption
from hellolb_lab.checks import Check, chosen_ends, count_text, phase_streams
from hellolb_lab.disruption import Disruption
from hellolb_lab.launchers import SERVER_STARTED
from hellolb_lab.measure import Window
from hellolb_lab.phases import leaving
from hellolb_lab.phases.base import Phase, Reading
from hellolb_lab.verdict import Verdict

if TYPE_CHECKING:
    from hellolb_lab.catalogue import Scenario
    from hellolb_lab.stage import Stage

NAME = "crash"
LOSSLESS = "no failed call in the crash"
STREAMS_CRASH = "streams on the killed server end as expected and reopen"


def lab(stage: Stage) -> None:
    """Kill the busiest server, restart it as the kubelet would, then let the client run."""
    plan = stage.plan
    i = stage.busiest_server()
    victim, name = stage.servers[i], plan.server(i).name
    victim.stopped = True
    # Timed just before the signal: on a busy machine the client may see the server's
    # connections break before the lab reads its clock again.
    killed_at = time.time()
    victim.signal(signal.SIGKILL)
    start = stage.mark(f"{name} killed (SIGKILL)", killed_at)
    stage.publish_endpoints([e for e in stage.endpoints if e != i])
    victim.popen.wait(timeout=plan.options.startup_timeout)
    restarted = stage.launch_server(i, restarts=1)
    restarted.wait_event(lambda e: e.get("event") == SERVER_STARTED, plan.options.startup_timeout)
    stage.publish_endpoints([*stage.endpoints, i])
    settled = stage.mark(f"{name} restarted, back in DNS")
    stage.hold(plan.options.settle)
    stage.records[NAME] = Window(
        NAME,
        start,
        settled,
        time.time(),
        servers_after=tuple(plan.server(e).name for e in stage.endpoints),
        facts={"killed": name, "restarted_s": round(settled - start, 3)},
    )


def measure(window: Window, reading: Reading) -> Disruption:
    """The crash's disruption; its facts also count the calls the client had in flight when
    the server died, the most it could lose."""
    in_flight = clientlog.calls_in_flight(reading.events, window.start)
    window = dataclasses.replace(window, facts={**window.facts, "in_flight": in_flight})
    return disruption.judge(window, reading.answers, reading.failures)


def _streams_crash(name: str, result: Verdict, bound: float | None) -> Check | None:
    fig, w = phase_streams(result, NAME)
    if fig is None or w is None:
        return None
    code = catalogue.get(result.scenario).streams.crash_code
    held, ends = w["killed_held"], w["killed_ends"]
    reopened = sum(w["open_after"].values()) == fig["slots"]
    unexpected = set(w["other_ends"]) - chosen_ends(fig)
    ok = held > 0 and ends == {code: held} and not unexpected and reopened
    detail = f"{w['killed']} held {held}, ended {count_text(ends)} (expected {code}); "
    detail += f"other ends {count_text(w['other_ends'])}; after {count_text(w['open_after'])}"
    return Check(name, ok, detail)


def _stream_checks(phase: Phase, scenario: Scenario) -> tuple[str, ...]:
    """Judged where the scenario says how a killed server's streams end."""
    return (STREAMS_CRASH,) if scenario.streams.crash_code is not None else ()


def _cells(d: Any) -> dict[str, str]:
    return {"crash failed": f"{d.failed} of {d.facts.get('in_flight', '?')} in flight"}


PHASE = Phase(
    name=NAME,
    lab=lab,
    measure=measure,
    functions={LOSSLESS: leaving.lossless(NAME)},
    headline=(LOSSLESS,),
    stream_functions={STREAMS_CRASH: _streams_crash},
    choose_stream_checks=_stream_checks,
    columns=("crash failed",),
    cells=_cells,
    describe=leaving.describe,
)
