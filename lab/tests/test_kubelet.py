"""The kubelet's stop of a deleted pod, with real processes and real signals: the pause, then
SIGTERM, then SIGKILL once the grace (counted from the pause) is over."""

import sys
import time

from hellolb_lab.deployment import PodStop
from hellolb_lab.kubelet import Stops
from hellolb_lab.polling import wait_until
from hellolb_lab.procs import Supervisor

#: Prints when it got SIGTERM (epoch seconds), then exits 0; or ignores SIGTERM when told to.
POD = """
import json, signal, sys, time
def stop(signum, frame):
    print(json.dumps({"event": "sigterm", "t": time.time()}), flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN if sys.argv[1] == "stubborn" else stop)
print(json.dumps({"event": "up"}), flush=True)
time.sleep(60)
"""


def start(sup: Supervisor, name: str, kind: str = "polite"):
    proc = sup.start(name, [sys.executable, "-c", POD, kind])
    proc.wait_event(lambda e: e["event"] == "up", timeout=10)
    return proc


def run_until_gone(stops: Stops, timeout: float) -> None:
    """Tick the kubelet, as the run does while it holds, until every deleted pod has exited."""

    def gone() -> bool:
        stops.tick(time.time())
        return not stops.busy

    wait_until(gone, timeout, "every deleted pod to exit")


def test_sigterm_comes_after_the_pause_and_the_pod_exits_on_its_own(tmp_path):
    with Supervisor(tmp_path) as sup:
        proc = start(sup, "pod")
        stops = Stops(PodStop(prestop_s=0.5, grace_s=10))
        deleted = time.time()
        stops.delete(proc, deleted)
        run_until_gone(stops, timeout=10)
    (pod,) = stops.pods
    got = proc.wait_event(lambda e: e["event"] == "sigterm", timeout=1)["t"]
    assert got - deleted >= 0.5
    assert pod.to_dict()["exit_code"] == 0
    assert not pod.to_dict()["killed"]
    assert not sup.procs[0].running()


def test_a_pod_that_ignores_sigterm_is_killed_when_the_grace_is_over(tmp_path):
    with Supervisor(tmp_path) as sup:
        proc = start(sup, "stubborn", "stubborn")
        stops = Stops(PodStop(prestop_s=0.2, grace_s=1.0))
        deleted = time.time()
        stops.delete(proc, deleted)
        run_until_gone(stops, timeout=10)
    (pod,) = stops.pods
    assert pod.sigterm_at is not None
    assert pod.sigkill_at is not None
    assert pod.sigkill_at - deleted >= 1.0
    assert pod.to_dict()["exit_code"] == -9
    assert pod.to_dict()["killed"]


def test_a_deleted_pod_is_expected_to_exit(tmp_path):
    """The supervisor's liveness check leaves a deleted pod alone once it is gone."""
    with Supervisor(tmp_path) as sup:
        proc = start(sup, "pod")
        Stops(PodStop(prestop_s=0, grace_s=5)).delete(proc, time.time())
        proc.popen.kill()
        proc.popen.wait(timeout=5)
        sup.check_alive()
