"""Every `jq` the documentation pipes logs into keeps going past lines that are not JSON.

A pod's log mixes our JSON lines with plain-text ones: Envoy's own log in the proxy and sidecar
scenarios, Linkerd's proxy when a command reads it, a blank line. `jq` without
``-R 'fromjson?'`` stops at the first such line. Each documented jq program is run, with its
own flags, by the real `jq` over a sample log twice, with and without those lines: the answers
must be the same, and not empty.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load(name: str, path: Path) -> ModuleType:
    """A helper module by path (tests run with --import-mode=importlib)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


docs = load("doc_commands", ROOT / "tests" / "doc_commands.py")
PIPED_JQ = [c for c in docs.jq_commands(ROOT) if c.piped_in]
#: One-liners known to stop at the first plain-text line, with their fix, keyed by the command's
#: words: an entry applies only while that text is in the docs, and must then still fail (strict).
KNOWN_TO_STOP: dict[tuple[str, ...], str] = {}


def cases() -> list:
    out = []
    for command in PIPED_JQ:
        fix = KNOWN_TO_STOP.get(command.argv)
        reason = f"documentation to fix: {fix}"
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if fix else []
        out.append(pytest.param(command, marks=marks, id=f"{command.source}:{command.line}"))
    return out


def event(name: str, t: str, **fields) -> str:
    return json.dumps({"event": name, "level": "info", "timestamp": t, **fields})


def summary(t: str, window: dict[str, int], total: dict[str, int]) -> str:
    """A client.summary line; server ids are pod names, here their last 5 characters."""
    by_server = {f"server-7b9c6d-{k}": v for k, v in window.items()}
    total = {f"server-7b9c6d-{k}": v for k, v in total.items()}
    return event(
        "client.summary",
        t,
        scenario="linkerd",
        client_id="client-6d5f7c9b8-h2k4p",
        window_seconds=5.0,
        answers_window=sum(by_server.values()),
        answers_total=sum(total.values()),
        by_server_window=by_server,
        by_server_total=total,
        servers_window=len(by_server),
        servers_total=len(total),
        errors_window={},
        errors_total={"UNAVAILABLE": 1},
        errors_total_count=1,
        rounds_total=12,
        latency_ms_p50=201.3,
        latency_ms_p99=230.8,
        final=False,
    )


#: Our JSON lines, of every kind the documentation reads: the client's, a server's, Envoy's
#: access log.
JSON_LINES = [
    event("client.config", "2026-11-28T10:42:00.001Z", server_address="dns:///server:50051"),
    event(
        "client.response",
        "2026-11-28T10:42:01.120Z",
        counter=1,
        server_id="server-7b9c-x7k2q",
        latency_ms=201.0,
    ),
    summary("2026-11-28T10:42:05.002Z", {"x7k2q": 17, "m9c1d": 17}, {"x7k2q": 17, "m9c1d": 17}),
    event("rpc.handled", "2026-11-28T10:42:05.300Z", client_id="client-1", counter=40),
    json.dumps(
        {
            "event": "proxy.request",
            "timestamp": "2026-11-28T10:42:05.400Z",
            "proxy": "client-6d5f7c9b8-h2k4p",
            "downstream": "127.0.0.1:40112",
            "upstream_host": "10.244.1.7:50051",
            "path": "/hellolb.v1.HelloService/Hello",
            "grpc_status": "OK",
            "duration_ms": 201,
        }
    ),
    summary(
        "2026-11-28T10:42:10.004Z",
        {"x7k2q": 16, "p0zz8": 18},
        {"x7k2q": 33, "m9c1d": 17, "p0zz8": 18},
    ),
]
#: Lines that are not JSON, as pods print them: Envoy's own log, Linkerd's proxy, a blank.
PLAIN_LINES = [
    "[2026-11-28 10:41:59.812][1][info][main] [source/server/server.cc:463] initializing "
    "epoch 0 (base id=0, hot restart version=disabled)",
    "[     0.001842s]  INFO ThreadId(01) linkerd2_proxy: release 2.290.0 by linkerd",
    "",
    "[2026-11-28 10:42:03.001][14][info][upstream] "
    "[source/common/upstream/cluster_manager_impl.cc:251] cm init: all clusters initialized",
    "[     3.214511s]  WARN ThreadId(02) outbound: linkerd_app_core::serve: Server failed",
]


def mixed_log() -> str:
    lines = [PLAIN_LINES[0], PLAIN_LINES[1], *JSON_LINES[:3], PLAIN_LINES[2], PLAIN_LINES[3]]
    return "\n".join([*lines, *JSON_LINES[3:], PLAIN_LINES[4]]) + "\n"


def json_log() -> str:
    return "\n".join(JSON_LINES) + "\n"


@pytest.fixture(scope="module")
def jq() -> str:
    path = shutil.which("jq")
    if path is None:
        pytest.skip("jq is not installed (Debian package `jq`): the documented one-liners need it")
    return path


def run_jq(jq: str, args: tuple[str, ...], log: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [jq, *args], input=log, capture_output=True, text=True, timeout=30, check=False
    )


def test_the_sample_log_holds_lines_that_are_not_json():
    for line in PLAIN_LINES:
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
    assert len(mixed_log().splitlines()) == len(JSON_LINES) + len(PLAIN_LINES)


def test_the_documentation_pipes_logs_into_jq():
    assert PIPED_JQ, "no `... | jq` found in README.md or docs/"


@pytest.mark.parametrize("command", cases())
def test_documented_jq_programs_survive_lines_that_are_not_json(jq, command):
    args = command.argv[1:]
    clean = run_jq(jq, args, json_log())
    assert clean.returncode == 0, f"{command}\n{clean.stderr}"
    assert clean.stdout.strip(), f"{command}: the sample log gives this program nothing to show"
    mixed = run_jq(jq, args, mixed_log())
    assert mixed.returncode == 0, (
        f"{command}\nstops at the first line that is not JSON: {mixed.stderr.strip()}\n"
        "read lines as text and skip the others: jq -R 'fromjson? | ...'"
    )
    assert mixed.stdout == clean.stdout, command
