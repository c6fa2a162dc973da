"""k8s/linkerd/ensure-linkerd.sh against stand-in ``kubectl`` and ``linkerd`` commands that
record their arguments and answer from a small fake cluster state: it installs only what is
missing, in the documented order, and explains what it needs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "k8s" / "linkerd" / "ensure-linkerd.sh"

FAKE_KUBECTL = r"""#!/usr/bin/env bash
echo "kubectl $*" >> "$CALLS"
args=" $* "
case "$args" in
  *" apply "*) cat > /dev/null; exit 0 ;;
  *" wait "*) exit 0 ;;
  *" get crd httproutes.gateway.networking.k8s.io "*) [[ -e "$STATE/gateway" ]] || exit 1
     echo v1.4.0; exit 0 ;;
  *" get crd servers.policy.linkerd.io "*) [[ -e "$STATE/crds" ]]; exit ;;
  *" get namespace linkerd "*) [[ -e "$STATE/cp-in-linkerd" ]] || exit 1; echo true; exit 0 ;;
  *" get deployment linkerd-destination "*) [[ -e "$STATE/control-plane" ]]; exit ;;
esac
echo "unexpected kubectl call: $*" >&2
exit 99
"""

FAKE_LINKERD = r"""#!/usr/bin/env bash
echo "linkerd $*" >> "$CALLS"
case " $* " in
  *" version "*) echo "$LINKERD_VERSION" ;;
  *" install "*) echo "kind: Fake" ;;
  *" check "*) exit 0 ;;
  *) echo "unexpected linkerd call: $*" >&2; exit 99 ;;
esac
"""


def run(tmp_path: Path, *, state=(), linkerd=True, version="edge-25.10.1", env=None):
    bin_dir = tmp_path / "bin"
    state_dir = tmp_path / "state"
    bin_dir.mkdir(exist_ok=True)
    state_dir.mkdir(exist_ok=True)
    for flag in state:
        (state_dir / flag).touch()
    (bin_dir / "kubectl").write_text(FAKE_KUBECTL)
    (bin_dir / "kubectl").chmod(0o755)
    if linkerd:
        (bin_dir / "linkerd").write_text(FAKE_LINKERD)
        (bin_dir / "linkerd").chmod(0o755)
    calls = tmp_path / "calls"
    calls.touch()
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    system_path = os.pathsep.join(p for p in ("/usr/bin", "/bin") if Path(p).is_dir())
    result = subprocess.run(
        [bash, str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            "PATH": f"{bin_dir}{os.pathsep}{system_path}",
            "CALLS": str(calls),
            "STATE": str(state_dir),
            "LINKERD_VERSION": version,
            **(env or {}),
        },
    )
    return result, calls.read_text().splitlines()


def test_missing_linkerd_cli_is_explained(tmp_path):
    result, calls = run(tmp_path, linkerd=False)
    assert result.returncode == 1
    assert "linkerd CLI is not on PATH" in result.stderr
    assert calls == []


def test_fresh_cluster_gets_gateway_api_crds_control_plane_then_waits(tmp_path):
    result, calls = run(tmp_path)
    assert result.returncode == 0, result.stderr
    # `linkerd install ... | kubectl apply -f -` run side by side, so each tool's calls are
    # compared in their own order.
    linkerd_steps = [c for c in calls if c.startswith("linkerd") and "version" not in c]
    applies = [c for c in calls if " apply " in c]
    assert linkerd_steps == [
        "linkerd install --crds",
        "linkerd check --pre --linkerd-namespace linkerd-system",
        "linkerd install --linkerd-namespace linkerd-system",
        "linkerd check --linkerd-namespace linkerd-system --wait 5m",
    ]
    assert applies == [
        "kubectl apply --server-side -f https://github.com/kubernetes-sigs/gateway-api/"
        "releases/download/v1.4.0/standard-install.yaml",
        "kubectl apply -f -",
        "kubectl apply -f -",
    ]
    assert calls.index(applies[0]) < calls.index(linkerd_steps[0]), "Gateway API CRDs first"


def test_linkerd_2_18_gets_the_gateway_api_release_it_supports(tmp_path):
    result, calls = run(tmp_path, version="enterprise-2.18.3")
    assert result.returncode == 0, result.stderr
    assert any("download/v1.2.1/standard-install.yaml" in c for c in calls)


def test_linkerd_2_17_brings_its_own_gateway_api_crds(tmp_path):
    result, calls = run(tmp_path, version="stable-2.17.1")
    assert result.returncode == 0, result.stderr
    assert not any("gateway-api" in c for c in calls)


def test_nothing_is_installed_when_everything_is_present(tmp_path):
    result, calls = run(tmp_path, state=("gateway", "crds", "control-plane"))
    assert result.returncode == 0, result.stderr
    assert not [c for c in calls if " apply " in c or " install" in c]
    assert calls[-1] == "linkerd check --linkerd-namespace linkerd-system --wait 5m"


def test_a_control_plane_in_the_scenario_namespace_is_refused(tmp_path):
    result, calls = run(tmp_path, state=("cp-in-linkerd",))
    assert result.returncode == 1
    assert "namespace 'linkerd'" in result.stderr
    assert not [c for c in calls if " apply " in c or " install" in c]


def test_the_scenario_namespace_cannot_host_the_control_plane(tmp_path):
    result, _ = run(tmp_path, env={"LINKERD_NAMESPACE": "linkerd"})
    assert result.returncode == 1
    assert "must not be 'linkerd'" in result.stderr


def test_skaffolds_kube_context_is_used_for_every_call(tmp_path):
    result, calls = run(tmp_path, env={"SKAFFOLD_KUBE_CONTEXT": "kind-grpc-lb-lab"})
    assert result.returncode == 0, result.stderr
    cluster_calls = [c for c in calls if "version --client" not in c]
    assert cluster_calls
    assert all(" --context kind-grpc-lb-lab " in f"{c} " for c in cluster_calls)
