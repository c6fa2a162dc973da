"""The images run as the rendered manifests say a cluster runs them: the server's security
settings, its gRPC probes, its drain on SIGTERM, and the client reaching it by the scenario's
target. Every setting comes from ``kubectl kustomize k8s/overlays/<scenario>``."""

from __future__ import annotations

import threading
import time

import grpc
import podrun
import pytest
from hellolb.v1 import hello_pb2, hello_pb2_grpc

pytestmark = pytest.mark.slow

#: The scenarios whose client dials the server's own Service (the others put a proxy, a
#: sidecar or an xDS control plane in between, whose images are not built here).
SCENARIOS = ["headless", "clusterip"]
#: Linux capability sets and flags of a process, as /proc/PID/status spells them.
NO_CAPABILITIES = "0000000000000000"
SECCOMP_FILTER = "2"


def pod_spec(deployment) -> dict:
    return deployment["spec"]["template"]["spec"]


def container_spec(deployment, name: str) -> dict:
    (found,) = [c for c in pod_spec(deployment)["containers"] if c["name"] == name]
    return found


def proc_status(container) -> dict[str, str]:
    """/proc/1/status of the container, read inside it: the ids as its user namespace sees
    them (rootless engines map them to other ids outside)."""
    text = container.exec("python", "-c", "print(open('/proc/1/status').read())").stdout
    lines = text.decode().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


@pytest.fixture(scope="module", params=SCENARIOS)
def scenario(request):
    return request.param


@pytest.fixture(scope="module")
def server(pod_engine, service_images, scenario, rendered):
    deployment = rendered(scenario, "Deployment", "server")
    with podrun.pod(pod_engine, deployment) as the_pod:
        container = the_pod.container("server", service_images["server"])
        container.start()
        container.wait_ready()
        yield container
        if container.running():
            container.engine("kill", "--signal=KILL", container.name, check=False)


def hello(ip: str, port: int, client_id: str, timeout: float = 2.0) -> hello_pb2.HelloResponse:
    with grpc.insecure_channel(f"{ip}:{port}") as channel:
        return hello_pb2_grpc.HelloServiceStub(channel).Hello(
            hello_pb2.HelloRequest(client_id=client_id, counter=1), timeout=timeout
        )


def test_every_field_of_the_server_and_client_pods_is_applied_or_named(rendered, scenario):
    for name in ("server", "client"):
        skipped = podrun.not_applied(pod_spec(rendered(scenario, "Deployment", name)))
        assert "imagePullPolicy" in " ".join(skipped)
        print(f"{scenario}/{name}: not applied: {skipped}")


def test_the_image_passes_run_as_non_root_even_without_the_manifests_run_as_user(
    engine, service_images
):
    image_user = engine.image_user(service_images["server"])
    podrun.verify_run_as_non_root({"runAsNonRoot": True}, image_user)
    with pytest.raises(podrun.PodError, match="will run as root"):
        podrun.verify_run_as_non_root({"runAsNonRoot": True}, "0")
    with pytest.raises(podrun.PodError, match="non-numeric"):
        podrun.verify_run_as_non_root({"runAsNonRoot": True}, "app")


def test_the_server_runs_as_its_user_without_capabilities_or_privilege_gain(server):
    security = server.security()
    status = proc_status(server)
    uid = str(security["runAsUser"])
    gid = str(security["runAsGroup"])
    assert status["Uid"].split() == [uid] * 4
    assert status["Gid"].split() == [gid] * 4
    assert security["capabilities"]["drop"] == ["ALL"]
    for capability_set in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert status[capability_set] == NO_CAPABILITIES, capability_set
    assert security["allowPrivilegeEscalation"] is False
    assert status["NoNewPrivs"] == "1"
    assert security["seccompProfile"]["type"] == "RuntimeDefault"
    assert status["Seccomp"] == SECCOMP_FILTER


def test_the_root_file_system_is_as_writable_as_the_manifest_says(server):
    writable = not server.security().get("readOnlyRootFilesystem", False)
    result = server.engine(
        "exec", server.name, "python", "-c", "open('/app/.write-check', 'w').close()", check=False
    )
    assert (result.returncode == 0) is writable, result.stderr


def test_probes_and_pre_stop_need_no_shell(server):
    for key in ("readinessProbe", "livenessProbe"):
        assert set(server.spec[key]) & {"exec"} == set(), key
    assert set(server.spec["lifecycle"]["preStop"]) == {"sleep"}


def test_the_native_grpc_probes_find_it_serving(server):
    for probe in (server.readiness(), server.liveness()):
        assert probe is not None
        assert probe.check(server.pod.ip) == "SERVING"


def test_the_pod_fields_reach_the_server(server):
    answer = hello(server.pod.ip, server.readiness().port, "pod-fields")
    assert answer.server_pod_ip == server.pod.ip
    assert answer.server_node == podrun.NODE_NAME
    assert answer.server_id == server.pod.name


def test_the_client_reaches_the_server_by_the_scenarios_target(
    pod_engine, service_images, server, scenario, rendered
):
    deployment = rendered(scenario, "Deployment", "client")
    spec = container_spec(deployment, "client")
    target = next(e["value"] for e in spec["env"] if e["name"] == "SERVER_ADDRESS")
    service = target.removeprefix("dns:///").rsplit(":", 1)[0]
    assert rendered(scenario, "Service", service)
    # The Service's name resolves to the server pod: its cluster DNS record, as a host entry.
    with podrun.pod(pod_engine, deployment, {service: server.pod.ip}) as the_pod:
        client = the_pod.container("client", service_images["client"])
        client.start()
        deadline = time.monotonic() + 60
        answered = []
        while time.monotonic() < deadline and len(answered) < 5:
            answered = [e for e in client.events() if e.get("event") == "client.response"]
            assert client.running(), client.output()
            time.sleep(0.5)
        assert len(answered) >= 5, client.output()[-3000:]
        assert {e["server_id"] for e in answered} == {server.pod.name}
        stopped = client.stop()
        summaries = [e for e in client.events() if e.get("event") == "client.summary"]
    assert stopped.exit_code == 0
    assert not stopped.killed
    assert summaries[-1]["final"] is True
    assert summaries[-1]["errors_total_count"] == 0


def test_sigterm_drains_then_exits_within_the_pods_grace(server):
    """Runs last in the module: it stops the server."""
    probe = server.readiness()
    port = probe.port
    answers: list[str] = []
    statuses: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            statuses.append(probe.check(server.pod.ip))
            try:
                answers.append(hello(server.pod.ip, port, "drain", timeout=1.0).server_id)
            except grpc.RpcError as error:
                answers.append(error.code().name)
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = server.stop()
    finally:
        done.set()
        watcher.join(10)
    assert not result.killed, f"SIGKILL after {result.budget} s"
    assert result.exit_code == 0
    assert result.seconds < result.budget
    # Health said NOT_SERVING while calls were still answered: the drain.
    assert "NOT_SERVING" in statuses
    first_not_serving = statuses.index("NOT_SERVING")
    assert server.pod.name in answers[first_not_serving:]
    events = [e["event"] for e in server.events()]
    assert "server.drained" in events
    print(f"drain: SIGTERM to exit {result.seconds:.1f} s of {result.budget:.0f} s")
