"""The live update for real: edited files copied into the running server and client containers
as Skaffold and then Tilt copy them (the files their own rules select), then their restart
command. New code answers; the container and its PID 1 stay. The reload's figures (time to
the first answer of new code, calls failed meanwhile) are printed as benchmark figures.
An edit that the rules send to a rebuild (a proto, the lock file) is shown to need one."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import grpc
import liveupdate
import podrun
import pytest
from hellolb.v1 import hello_pb2, hello_pb2_grpc

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = "headless"
SERVICER = "services/server/src/hello_server/servicer.py"
CLIENT_INIT = "services/client/src/hello_client/__init__.py"
LIB_INIT = "libs/hellolb/src/hellolb/__init__.py"
#: How long a reload may take before the test gives up on it (the target is 2 s).
RELOAD_LIMIT_S = 30.0


def marker(label: str) -> str:
    """Appended to a module: one JSON line on stdout when the edited module is imported."""
    return (
        "\n\n# A live-update check's edit.\n"
        "import sys as _sys  # noqa: E402\n\n"
        f'_sys.stdout.write(\'{{"event": "edit.loaded", "edit": "{label}"}}\\n\')\n'
    )


def servicer_edit(label: str) -> str:
    """Appended to the servicer: every answer's message starts with ``label``."""
    return (
        "\n\n# A live-update check's edit.\n"
        "_unedited_hello = HelloServicer.Hello\n\n\n"
        "async def _edited_hello(self, request, context):\n"
        "    response = await _unedited_hello(self, request, context)\n"
        f"    response.message = {label!r} + response.message\n"
        "    return response\n\n\n"
        "HelloServicer.Hello = _edited_hello\n"
    )


def edited_tree(tmp: Path, edits: dict[str, str]) -> Path:
    """A copy of the edited files at their repository paths; the checkout stays untouched."""
    for relative, appended in edits.items():
        target = tmp / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((ROOT / relative).read_text() + appended)
    return tmp


@dataclass
class Prober:
    """Hello calls to the server pod, one every 20 ms on one channel, each without retries."""

    address: str
    calls: list[tuple[float, str]] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        # A short reconnect backoff: the figure is the server's, not a client's backoff.
        options = [
            ("grpc.initial_reconnect_backoff_ms", 50),
            ("grpc.max_reconnect_backoff_ms", 200),
        ]
        with grpc.insecure_channel(self.address, options=options) as channel:
            stub = hello_pb2_grpc.HelloServiceStub(channel)
            counter = 0
            while not self.stopped.is_set():
                counter += 1
                try:
                    answer = stub.Hello(
                        hello_pb2.HelloRequest(client_id="live-update", counter=counter),
                        timeout=1.0,
                    )
                    self.calls.append((time.monotonic(), answer.message))
                except grpc.RpcError as error:
                    self.calls.append((time.monotonic(), f"error:{error.code().name}"))
                time.sleep(0.02)

    def since(self, started: float) -> list[tuple[float, str]]:
        return [c for c in list(self.calls) if c[0] >= started]


def identity(container: podrun.Container) -> tuple[str, int, str, list[str]]:
    """The container's id, its PID 1 (as the host sees it), its start, and PID 1's arguments
    (after the interpreter, whose path the re-exec spells out in full)."""
    found = container.engine.inspect("container", container.name)
    cmdline = container.exec("python", "-c", "print(open('/proc/1/cmdline').read())").stdout
    arguments = cmdline.decode().rstrip("\n").split("\0")[1:]
    return found["Id"], found["State"]["Pid"], found["State"]["StartedAt"], arguments


def apply(container: podrun.Container, update: liveupdate.Update, source: Path) -> float:
    """Copy as the tool copies, then run its restart commands; when the restart began."""
    assert not update.rebuild, f"{update.tool} would rebuild for {update.copies}"
    container.exec(*update.tar_argv, input=liveupdate.tar_of(update.copies, source))
    started = time.monotonic()
    for argv in update.commands:
        container.exec(*argv)
    return started


def workdir(engine: podrun.Engine, image: str) -> str:
    return engine.inspect("image", image)["Config"].get("WorkingDir") or "/"


@pytest.fixture(scope="module")
def tilt_builds(tiltfile):
    return {c["ref"]: c for c in tiltfile().calls["docker_build"]}


def updates(engine, image: str, service: str, changed: list[str], tilt_builds):
    yield liveupdate.skaffold_update(f"hellolb-{service}", changed, workdir(engine, image))
    yield liveupdate.tilt_update(tilt_builds[f"hellolb-{service}"], changed)


@pytest.fixture(scope="module")
def pods(pod_engine, service_images, rendered):
    """A server pod and a client pod of the headless scenario, the client dialling the
    server by the scenario's target."""
    server_deployment = rendered(SCENARIO, "Deployment", "server")
    client_deployment = rendered(SCENARIO, "Deployment", "client")
    with podrun.pod(pod_engine, server_deployment) as server_pod:
        server = server_pod.container("server", service_images["server"])
        server.start()
        server.wait_ready()
        with podrun.pod(pod_engine, client_deployment, {"server": server_pod.ip}) as client_pod:
            client = client_pod.container("client", service_images["client"])
            client.start()
            wait_for(client, lambda e: e.get("event") == "client.response", 60)
            yield server, client


def wait_for(container: podrun.Container, predicate, timeout: float, after: int = 0) -> int:
    """Index of the first event from ``after`` on that matches; polls the container's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = container.events()
        for index in range(after, len(events)):
            if predicate(events[index]):
                return index
        time.sleep(0.1)
    raise AssertionError(f"no matching event in {timeout} s:\n{container.output()[-3000:]}")


def timestamp(event: dict) -> float:
    return datetime.fromisoformat(event["timestamp"]).timestamp()


def client_errors(client: podrun.Container) -> int:
    return sum(1 for e in client.events() if e.get("event") == "client.error")


def test_an_edited_server_file_answers_without_a_new_container(
    engine, service_images, tilt_builds, pods, tmp_path
):
    server, client = pods
    image = service_images["server"]
    before = identity(server)
    prober = Prober(f"{server.pod.ip}:{server.readiness().port}")
    thread = threading.Thread(target=prober.run, daemon=True)
    thread.start()
    figures = []
    try:
        for round_number, label in enumerate(["skaffold:", "tilt:"]):
            edits = {SERVICER: servicer_edit(label), LIB_INIT: marker(f"server-{label}")}
            source = edited_tree(tmp_path / str(round_number), edits)
            update = list(updates(engine, image, "server", list(edits), tilt_builds))[round_number]
            assert set(update.copies) == set(edits)
            errors_before = client_errors(client)
            started = apply(server, update, source)
            deadline = started + RELOAD_LIMIT_S
            while time.monotonic() < deadline:
                if any(m.startswith(label) for _, m in prober.since(started)):
                    break
                time.sleep(0.02)
            calls = prober.since(started)
            new = [t for t, m in calls if m.startswith(label)]
            assert new, f"{update.tool}: no answer from the edited code in {RELOAD_LIMIT_S} s"
            failed = sum(1 for t, m in calls if m.startswith("error:") and t <= new[0])
            # Old code after the first new answer would mean a second server answered.
            assert not [m for t, m in calls if t > new[0] and not m.startswith(label)]
            figures.append((update.tool, new[0] - started, failed, errors_before))
            assert server.readiness().check(server.pod.ip) == "SERVING"
    finally:
        prober.stopped.set()
        thread.join(5)
    assert identity(server) == before, "the container or its PID 1 changed"
    loaded = [e["edit"] for e in server.events() if e.get("event") == "edit.loaded"]
    assert loaded == ["server-skaffold:", "server-tilt:"]
    time.sleep(1)  # the client's last retries settle
    for tool, seconds, failed, _ in figures:
        print(
            f"live update, server, {tool}: new code answers {seconds:.2f} s after the restart "
            f"command; {failed} bare calls failed meanwhile"
        )
    print(
        f"client (its own retries) calls failed across both server reloads: "
        f"{client_errors(client) - figures[0][3]}"
    )


def test_an_edited_client_file_runs_without_a_new_container(
    engine, service_images, tilt_builds, pods, tmp_path
):
    _server, client = pods
    image = service_images["client"]
    before = identity(client)
    for round_number, label in enumerate(["skaffold", "tilt"]):
        edits = {CLIENT_INIT: marker(f"client-{label}"), LIB_INIT: marker(f"lib-{label}")}
        source = edited_tree(tmp_path / str(round_number), edits)
        update = list(updates(engine, image, "client", list(edits), tilt_builds))[round_number]
        assert set(update.copies) == set(edits)
        seen = len(client.events())
        errors = client_errors(client)
        apply(client, update, source)
        loaded = wait_for(
            client,
            lambda e, label=label: e.get("edit") == f"client-{label}",
            RELOAD_LIMIT_S,
            seen,
        )
        answered = wait_for(
            client, lambda e: e.get("event") == "client.response", RELOAD_LIMIT_S, loaded
        )
        assert wait_for(client, lambda e, label=label: e.get("edit") == f"lib-{label}", 5, seen)
        events = client.events()
        (signal,) = [e for e in events[seen:loaded] if e.get("event") == "client.signal"]
        assert signal["signal"] == "SIGHUP"
        # From the client's own log: the signal taken to the first answer of the new process.
        seconds = timestamp(events[answered]) - timestamp(signal)
        print(
            f"live update, client, {update.tool}: answers again {seconds:.2f} s after it took "
            f"the SIGHUP; {client_errors(client) - errors} calls failed meanwhile"
        )
    assert identity(client) == before, "the container or its PID 1 changed"


@pytest.mark.parametrize("changed", ["protos/hellolb/v1/hello.proto", "uv.lock"])
@pytest.mark.parametrize("service", ["server", "client"])
def test_a_proto_or_lock_edit_is_a_rebuild_for_both_tools(
    engine, service_images, tilt_builds, service, changed
):
    image = service_images[service]
    for update in updates(engine, image, service, [changed], tilt_builds):
        assert update.rebuild, f"{update.tool} would sync {changed}"
        assert not update.copies


def test_a_proto_edit_reaches_the_code_only_through_a_rebuild(engine, service_images, tmp_path):
    """The generated code is made at build time from protos/: a copied .proto would change
    nothing in the running container. A real build of the edited tree has the new field."""
    context = tmp_path / "context"
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for relative in listed:
        if (ROOT / relative).is_file():
            (context / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / relative, context / relative)
    proto = context / "protos/hellolb/v1/hello.proto"
    text = proto.read_text()
    edited = text.replace(
        "message HelloResponse {", "message HelloResponse {\n  string edited = 99;", 1
    )
    assert edited != text, "HelloResponse not found in the proto"
    proto.write_text(edited)
    tag = f"proto-edit-{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        [str(ROOT / "containers" / "images.sh"), "server"],
        env={**podrun.engine_env(), "ENGINE": engine.name, "CONTEXT": str(context), "TAG": tag},
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    check = (
        "import json; from hellolb.v1 import hello_pb2; "
        "print(json.dumps(sorted(hello_pb2.HelloResponse.DESCRIPTOR.fields_by_name)))"
    )
    try:
        for image, expected in ((f"hellolb-server:{tag}", True), (service_images["server"], False)):
            out = engine("run", "--rm", "--entrypoint=python", image, "-c", check).stdout
            assert ("edited" in json.loads(out)) is expected, image
    finally:
        engine("rmi", f"hellolb-server:{tag}", check=False)
