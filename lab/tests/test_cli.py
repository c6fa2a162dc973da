"""The command line: refusals, --assert, --json, --chart, and nothing left running on Ctrl-C."""

import json
import signal
import socket
import subprocess
import sys
from collections import Counter

import pytest
from hellolb_lab import __main__ as main
from hellolb_lab import chart, clientlog, polling, procs
from hellolb_lab.cli import options_from
from hellolb_lab.errors import LabError
from hellolb_lab.outcome import RESULTS

LAB = [sys.executable, "-m", "hellolb_lab"]


def test_linkerd_needs_a_cluster():
    proc = subprocess.run([*LAB, "run", "linkerd"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "linkerd needs a Kubernetes cluster" in proc.stderr


def test_a_busy_address_is_refused_before_anything_starts(tmp_path, lab_net):
    net = lab_net(88)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind((f"{net}.1", 5353))
        proc = subprocess.run(
            [*LAB, "run", "headless", "--net", net, "--logs", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2
    assert f"{net}.1:5353/udp is not available" in proc.stderr
    assert not list(tmp_path.rglob("server-*.log"))


@pytest.mark.slow
def test_assert_fails_when_the_expected_behaviour_does_not_appear(tmp_path, lab_net):
    """Headless with a max connection age is no longer "headless": the new servers get traffic.
    The run's --json, its saved results and its --chart hold what it did."""
    out = tmp_path / "run.json"
    drawn = tmp_path / "run.svg"
    proc = subprocess.run(
        [
            *LAB,
            "run",
            "headless",
            "--net",
            lab_net(89),
            "--logs",
            str(tmp_path / "logs"),
            "--warmup",
            "2",
            "--after",
            "5",
            "--phases",
            "none",
            "--plain",
            "--assert",
            "--json",
            str(out),
            "--chart",
            str(drawn),
            "--server-env",
            "MAX_CONNECTION_AGE=1s",
            "--server-env",
            "MAX_CONNECTION_AGE_GRACE=5s",
            "--client-env",
            "DNS_MIN_TIME_BETWEEN_RESOLUTIONS=500ms",
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "[FAIL] no traffic to the new servers" in proc.stdout
    data = json.loads(out.read_text())
    assert data["ok"] is False
    assert data["verdict"]["servers_after"]["server-4"] > 0
    assert data["settings"]["server_env"]["MAX_CONNECTION_AGE"] == "1s"
    # the results saved beside the logs are what --json wrote, and the chart is drawn from them
    saved = json.loads((tmp_path / "logs" / RESULTS).read_text())
    assert saved == data
    assert f"chart written to {drawn}" in proc.stdout
    svg = drawn.read_text()
    figure = chart.draw(chart.chart_data(saved))
    lines = {
        line.get_gid(): line for ax in figure.axes for line in ax.get_lines() if line.get_gid()
    }
    responses = Counter(
        e["server_id"]
        for e in clientlog.json_lines((tmp_path / "logs" / "client-1.log").read_text())
        if clientlog.is_response(e)
    )
    assert responses["server-4"] > 0
    for server, line in lines.items():
        assert f'<g id="{server}">' in svg
        assert sum(y for y in line.get_ydata() if y == y) == responses[server], server
    assert set(responses) <= set(lines)


@pytest.mark.slow
def test_ctrl_c_stops_every_process(tmp_path, lab_net):
    net = lab_net(90)
    proc = subprocess.Popen(
        [
            *LAB,
            "run",
            "proxy",
            "--net",
            net,
            "--logs",
            str(tmp_path),
            "--plain",
            "--warmup",
            "30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: a test run started in the background (`cmd &` in a script)
        # passes SIGINT on ignored, and Python then keeps ignoring it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        client_log = tmp_path / "client-1.log"
        polling.wait_until(
            lambda: client_log.exists() and "client.response" in client_log.read_text(),
            timeout=60,
            what="the client's first answer",
        )
        proc.send_signal(signal.SIGINT)
        # Stopping takes the processes' 5 s grace at most, then SIGKILL, and the readers' 2 s.
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 130
    assert "every started process was stopped" in err

    def all_free():
        try:
            procs.check_all_free(
                [
                    (f"{net}.1", 5353, True),
                    (f"{net}.11", 50051, False),
                    (f"{net}.21", 50051, False),
                    (f"{net}.21", 9901, False),
                ]
            )
        except LabError:
            return None  # sockets may linger a moment after the exit
        return True

    polling.wait_for(all_free, 5, "every address of the run to be free", interval=0.1)


def test_phases_are_chosen_by_name():
    def chosen(*argv):
        opts = options_from(main.parser().parse_args(["run", "proxy", *argv]))
        return opts.phases, opts.skip

    assert chosen() == (None, ())
    assert chosen("--phases", "rollout,crash") == (("rollout", "crash"), ())
    assert chosen("--phases", "none", "--skip", "crash") == ((), ("crash",))


def test_an_unknown_phase_is_refused_before_anything_starts(tmp_path):
    proc = subprocess.run(
        [*LAB, "run", "headless", "--skip", "rolout", "--logs", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "no phase 'rolout'" in proc.stderr
    assert not list(tmp_path.rglob("*.log"))
