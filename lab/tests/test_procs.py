"""Process supervision: stopped by PID, always; busy ports and missing binaries refused."""

import os
import socket
import subprocess
import sys

import pytest
from hellolb_lab import polling, procs
from hellolb_lab.errors import LabError

SLEEPER = [
    sys.executable,
    "-c",
    "import json,time; print(json.dumps({'event':'up'}), flush=True); time.sleep(60)",
]


def test_every_process_is_stopped_when_the_block_fails(tmp_path):
    started = []

    def run():
        with procs.Supervisor(tmp_path) as sup:
            started.extend([sup.start("a", SLEEPER), sup.start("b", SLEEPER)])
            started[0].wait_event(lambda e: e["event"] == "up", timeout=10)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run()
    assert len(started) == 2
    for p in started:
        assert not p.running()
        with pytest.raises(ProcessLookupError):
            os.kill(p.pid, 0)


def test_sigkill_after_the_grace(tmp_path):
    stubborn = [
        sys.executable,
        "-c",
        "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        'print(\'{"event":"up"}\', flush=True); time.sleep(60)',
    ]
    with procs.Supervisor(tmp_path, stop_grace=0.5) as sup:
        p = sup.start("stubborn", stubborn)
        p.wait_event(lambda e: e["event"] == "up", timeout=10)
        assert sup.stop(p) == -9


def test_a_dead_process_is_reported_with_its_log(tmp_path):
    with procs.Supervisor(tmp_path) as sup:
        p = sup.start("crash", [sys.executable, "-c", "print('bad config'); raise SystemExit(2)"])
        with pytest.raises(LabError, match="exited with code 2"):
            p.wait_event(lambda e: False, timeout=10)
        with pytest.raises(LabError, match="bad config"):
            sup.check_alive()


def test_busy_tcp_port_is_refused():
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.92.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(LabError, match=rf"127\.0\.92\.1:{port}/tcp is not available"):
            procs.check_all_free([("127.0.92.1", port, False), ("127.0.92.2", port, False)])
        procs.check_free("127.0.92.2", port)


def test_missing_binary_is_named():
    with pytest.raises(LabError, match="no-such-tool not found"):
        procs.find_binary("no-such-tool")
    assert procs.find_binary("envoy").endswith("envoy")


def test_children_get_sigterm_when_the_lab_dies(tmp_path):
    """A lab killed with SIGKILL cannot clean up; the kernel's parent-death signal does."""
    script = tmp_path / "lab.py"
    script.write_text(
        "import sys, time\n"
        "from pathlib import Path\n"
        "from hellolb_lab import procs\n"
        "sup = procs.Supervisor(Path(sys.argv[1]))\n"
        f"p = sup.start('child', {SLEEPER!r})\n"
        "p.wait_event(lambda e: e['event'] == 'up', timeout=10)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    lab = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "logs")], stdout=subprocess.PIPE, text=True
    )
    try:
        child = int(lab.stdout.readline())
        lab.kill()
        lab.wait(timeout=10)
        polling.wait_until(lambda: not _alive(child), timeout=10, what="the orphan to exit")
    finally:
        if lab.poll() is None:
            lab.kill()


def test_a_missing_program_is_reported(tmp_path):
    with procs.Supervisor(tmp_path) as sup:
        p = sup.start("ghost", ["/nonexistent/program"])
        with pytest.raises(LabError, match="exited with code 127"):
            p.wait_event(lambda e: False, timeout=10)
    assert "cannot start /nonexistent/program" in p.log_path.read_text()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); look at its state
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
