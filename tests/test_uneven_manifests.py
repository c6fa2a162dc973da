"""k8s/uneven/<scenario>: one slow server pod added to a running scenario, behind its Service.

Each folder renders (real ``kubectl kustomize``) the scenario's own server Deployment as a second
Deployment ``server-slow`` and nothing else, validated strictly against the Kubernetes schema;
its pods are the scenario's server pods but for the fault, which the server's own configuration
parser reads as ten times the work per call.
"""

from __future__ import annotations

import copy
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from hello_server.config import ServerConfig

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
#: The canary scenario has two server Deployments already (stable and canary); which of them a
#: slow pod should copy is a different question, so it has no uneven folder.
NOT_UNEVEN = {"canary"}
OVERLAYS = sorted(
    p.name for p in (K8S / "overlays").iterdir() if p.is_dir() and p.name not in NOT_UNEVEN
)
KUBERNETES_VERSIONS = ("1.34.0", "1.37.0")
FAULT_LABEL = "grpc-lb-lab/fault"
SLOWDOWN = 10


_RENDERED: dict[str, list[dict]] = {}


@pytest.fixture(params=OVERLAYS)
def scenario(request: pytest.FixtureRequest) -> str:
    """Each scenario with an uneven folder (the repository's ``scenario`` fixture, narrowed)."""
    return request.param


@pytest.fixture
def rendered(kustomize_dir) -> dict[str, list[dict]]:
    """The objects of every k8s/uneven/<scenario>, rendered once, side by side (each render is
    a kubectl process that mostly waits on its own start)."""
    if not _RENDERED:
        with ThreadPoolExecutor(max_workers=len(OVERLAYS)) as pool:
            texts = pool.map(lambda s: kustomize_dir(K8S / "uneven" / s), OVERLAYS)
            for scenario, text in zip(OVERLAYS, texts, strict=True):
                _RENDERED[scenario] = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    return _RENDERED


def literal_env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def test_one_uneven_folder_per_overlay():
    assert sorted(p.name for p in (K8S / "uneven").iterdir() if p.is_dir()) == OVERLAYS


def test_it_renders_only_the_slow_deployment_in_the_scenarios_namespace(
    scenario, rendered, docs_of, doc
):
    (slow,) = rendered[scenario]
    assert (slow["kind"], slow["metadata"]["name"]) == ("Deployment", "server-slow")
    server = doc(docs_of(scenario), "Deployment", "server")
    assert slow["metadata"]["namespace"] == server["metadata"]["namespace"]
    assert slow["spec"]["replicas"] == 1


def test_the_scenarios_service_selects_its_pods_and_the_server_deployment_does_not_own_them(
    scenario, rendered, docs_of, doc
):
    (slow,) = rendered[scenario]
    docs = docs_of(scenario)
    service = doc(docs, "Service", "server")
    server = doc(docs, "Deployment", "server")
    pod_labels = slow["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    # Its own selector takes none of the server Deployment's pods.
    own = slow["spec"]["selector"]["matchLabels"]
    assert own.items() <= pod_labels.items()
    assert FAULT_LABEL in own
    assert FAULT_LABEL not in server["spec"]["template"]["metadata"]["labels"]


def test_its_pods_are_the_scenarios_server_pods_but_for_the_fault(scenario, rendered, docs_of, doc):
    (slow,) = rendered[scenario]
    server = doc(docs_of(scenario), "Deployment", "server")
    template = copy.deepcopy(slow["spec"]["template"])
    template["metadata"]["labels"].pop(FAULT_LABEL)
    (container,) = [c for c in template["spec"]["containers"] if c["name"] == "server"]
    container["env"] = [e for e in container["env"] if e["name"] != "FAULT_LATENCY"]
    assert template == server["spec"]["template"]


def test_the_slow_server_takes_ten_times_as_long_per_call(scenario, rendered):
    (slow,) = rendered[scenario]
    (container,) = [
        c for c in slow["spec"]["template"]["spec"]["containers"] if c["name"] == "server"
    ]
    config = ServerConfig.from_env(literal_env(container))
    assert config.work_time > 0
    assert config.faults.latency == pytest.approx((SLOWDOWN - 1) * config.work_time)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_slow_deployment_validates_strictly(version, rendered, tool, tmp_path):
    path = tmp_path / "uneven.yaml"
    path.write_text(yaml.safe_dump_all([d for s in OVERLAYS for d in rendered[s]]))
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "-k", version, "--quiet", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
