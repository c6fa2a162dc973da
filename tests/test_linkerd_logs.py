"""`kubectl logs` reads the app's own container, also in pods as Linkerd injects them: the
documentation's commands and the cluster check's, decided by kubectl's own rule
(kubectl_logs.py) over the rendered overlays, and over the linkerd overlay after a stand-in of
Linkerd's injector (linkerd_injection.py) for each release: proxy first in the container list
(no native sidecar), or a native sidecar init container."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hellolb_lab import catalogue
from hellolb_lab.cluster import Cluster

ROOT = Path(__file__).resolve().parent.parent
OVERLAYS = sorted(p.name for p in (ROOT / "k8s" / "overlays").iterdir() if p.is_dir())


def load(name: str, path: Path) -> ModuleType:
    """A helper module by path (tests run with --import-mode=importlib)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


docs = load("doc_commands", ROOT / "tests" / "doc_commands.py")
injection = load("linkerd_injection", ROOT / "tests" / "linkerd_injection.py")
logs = load("kubectl_logs", ROOT / "tests" / "kubectl_logs.py")

#: The container that holds each workload's own log.
APP_CONTAINER = {"server": "server", "client": "client", "proxy": "envoy", "xds": "xds"}
RELEASES = sorted(injection.RELEASES)
DOC_LOGS = docs.kubectl_logs(ROOT)


def pods(docs_of, scenario: str, release: str | None = None) -> dict[str, dict[str, Any]]:
    """Workload -> pod template, as rendered, or as the given Linkerd release injects it."""
    deployments = [d for d in docs_of(scenario) if d["kind"] == "Deployment"]
    if release is None:
        return {d["metadata"]["name"]: d["spec"]["template"] for d in deployments}
    injector = injection.RELEASES[release]
    return {d["metadata"]["name"]: injection.inject(d, injector) for d in deployments}


def names(template: dict[str, Any], kind: str) -> list[str]:
    return [c["name"] for c in template["spec"].get(kind, [])]


def scenario_of(argv: tuple[str, ...]) -> str | None:
    """The scenario a command's namespace belongs to: grpc-lb-<scenario>, or a bare scenario
    name as older text writes it."""
    namespace = logs.parse(argv).namespace or ""
    bare = namespace.removeprefix("grpc-lb-")
    return bare if bare in OVERLAYS else None


def assert_reads_app_containers(argv, pod_set, loops=None) -> int:
    """Every pod ``argv`` selects in ``pod_set`` is read from its app container, or from the
    container ``-c`` names, which must exist there. Returns how many pods it selects."""
    command = logs.parse(argv)
    read = logs.containers_read(argv, pod_set, loops)
    for workload, containers in read.items():
        expected = command.container or APP_CONTAINER[workload]
        assert containers == [expected], f"{' '.join(argv)} reads {containers}"
    return len(read)


def names_another_scenarios_container(argv, pod_set, loops=None) -> bool:
    """True when ``-c`` names a container that the selected pods do not have: a command for
    another scenario's pods (the sidecar's Envoy), not for these."""
    command = logs.parse(argv)
    if not command.container:
        return False
    selected = logs.select(command, pod_set, loops)
    return any(
        command.container
        not in [*names(pod_set[w], "containers"), *names(pod_set[w], "initContainers")]
        for w in selected
    )


# -- the stand-in injector


def deployment(annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": "app", "namespace": "ns"},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "app"}, "annotations": annotations},
                "spec": {"containers": [{"name": "app", "image": "app"}]},
            }
        },
    }


def test_the_stand_in_leaves_pods_without_the_inject_annotation_alone():
    plain = deployment({})
    assert injection.inject(plain, injection.RELEASES["2.20"]) == plain["spec"]["template"]


@pytest.mark.parametrize(
    ("release", "annotations", "native"),
    [
        ("2.18", {}, False),
        ("2.18", {"config.beta.linkerd.io/proxy-enable-native-sidecar": "true"}, False),
        ("2.19", {}, False),
        ("2.19", {"config.beta.linkerd.io/proxy-enable-native-sidecar": "true"}, True),
        ("2.20", {}, True),
        ("2.20", {"config.linkerd.io/proxy-enable-native-sidecar": "false"}, False),
    ],
)
def test_the_stand_in_places_the_proxy_as_each_release_does(release, annotations, native):
    template = injection.inject(
        deployment({"linkerd.io/inject": "enabled", **annotations}), injection.RELEASES[release]
    )
    if native:
        assert names(template, "initContainers") == ["linkerd-init", "linkerd-proxy"]
        assert names(template, "containers") == ["app"]
        assert template["spec"]["initContainers"][1]["restartPolicy"] == "Always"
    else:
        assert names(template, "initContainers") == ["linkerd-init"]
        assert names(template, "containers") == ["linkerd-proxy", "app"]
        assert "postStart" in template["spec"]["containers"][0]["lifecycle"]
    labels = template["metadata"]["labels"]
    assert labels["linkerd.io/proxy-deployment"] == "app"
    assert labels["linkerd.io/workload-ns"] == "ns"
    assert "linkerd.io/proxy-version" in template["metadata"]["annotations"]


def test_without_the_default_container_annotation_kubectl_reads_linkerds_proxy():
    # What the annotation is for: kubectl's fallback is the first container.
    template = injection.inject(
        deployment({"linkerd.io/inject": "enabled"}), injection.RELEASES["2.19"]
    )
    argv = ("kubectl", "logs", "-l", "app=app")
    assert logs.containers_read(argv, {"app": template}) == {"app": ["linkerd-proxy"]}
    template["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"] = "app"
    assert logs.containers_read(argv, {"app": template}) == {"app": ["app"]}


# -- the linkerd scenario's pods


@pytest.mark.parametrize("release", ["2.19", "2.20"])
def test_linkerd_runs_the_scenarios_proxy_as_a_native_sidecar(docs_of, release):
    for workload, template in pods(docs_of, "linkerd", release).items():
        assert names(template, "initContainers") == ["linkerd-init", "linkerd-proxy"], workload
        assert names(template, "containers") == [APP_CONTAINER[workload]], workload
        assert template["spec"]["initContainers"][1]["restartPolicy"] == "Always"


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("app", ["client", "server"])
def test_kubectl_logs_without_c_reads_the_app_in_every_injected_pod(docs_of, release, app):
    argv = ("kubectl", "logs", "-l", f"app={app}", "-n", "grpc-lb-linkerd")
    assert assert_reads_app_containers(argv, pods(docs_of, "linkerd", release)) == 1


# -- every `kubectl logs` the documentation shows


@pytest.mark.parametrize("command", DOC_LOGS, ids=[f"{c.source}:{c.line}" for c in DOC_LOGS])
def test_documented_logs_commands_read_the_app_container(docs_of, command):
    checked = 0
    scenario = scenario_of(command.argv)
    if scenario is not None:
        checked += assert_reads_app_containers(command.argv, pods(docs_of, scenario), command.loops)
    # The same command on a meshed scenario (the text says: replace the namespace by the
    # scenario you run), for each Linkerd release's way of injecting.
    for release in RELEASES:
        meshed = pods(docs_of, "linkerd", release)
        try:
            if names_another_scenarios_container(command.argv, meshed, command.loops):
                continue
            checked += assert_reads_app_containers(command.argv, meshed, command.loops)
        except logs.UnresolvedError:
            continue
    assert checked, f"{command}: selects no pod of any scenario"


def test_the_documentation_has_logs_commands_to_check():
    assert DOC_LOGS, "no `kubectl logs` found in README.md or docs/"


# -- the cluster check's own `kubectl logs` calls


@pytest.mark.parametrize("scenario", OVERLAYS)
def test_the_cluster_checks_logs_calls_read_the_app_container(docs_of, scenario):
    calls: list[list[str]] = []

    def record(argv):
        calls.append(list(argv))
        return ""

    cluster = Cluster(namespace=catalogue.namespace(scenario), run=record)
    cluster.client_logs()
    cluster.proxy_logs_since("proxy-7d9f8b6c5-x2x9q", 0.0)
    log_calls = [tuple(c) for c in calls if "logs" in c]
    assert len(log_calls) == 2
    for argv in log_calls:
        own = pods(docs_of, scenario)
        try:
            assert_reads_app_containers(argv, own)
        except logs.UnresolvedError:
            assert "proxy" not in own, argv
        for release in RELEASES:
            try:
                assert_reads_app_containers(argv, pods(docs_of, "linkerd", release))
            except logs.UnresolvedError:
                continue
