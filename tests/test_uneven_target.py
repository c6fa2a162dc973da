"""`make uneven-up` against a stand-in ``kubectl`` that hands the offline subcommands
(``kustomize``, ``set image --local``) to the real kubectl and records the rest: it applies the
slow pod on the image the scenario's servers run, and, where the running client cannot see a new
pod (the catalogue says it never reaches new servers), says so and gives the restart command.
The uneven page says the same."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from hellolb_lab import catalogue

ROOT = Path(__file__).resolve().parent.parent
RUNNING_IMAGE = "hellolb-server:skaffold-abc123"
#: A running client of these scenarios never reaches a server added after it started.
UNREACHED = (catalogue.Reach.NEVER, catalogue.Reach.NEW_CONNECTION)
UNEVEN = sorted(p.name for p in (ROOT / "k8s" / "uneven").iterdir() if p.is_dir())

STAND_IN = r"""#!/usr/bin/env bash
echo "kubectl $*" >> "$CALLS"
case "$1" in
  kustomize|set) exec "$REAL_KUBECTL" "$@" ;;
  get) echo "$RUNNING_IMAGE" ;;
  apply) cat > "$APPLIED" ;;
  *) echo "unexpected kubectl call: $*" >&2; exit 99 ;;
esac
"""


def needs_restart() -> set[str]:
    return {s.name for s in catalogue.SCENARIOS if s.reach in UNREACHED and s.name in UNEVEN}


def uneven_up(tmp_path: Path, kubectl: str, scenario: str) -> subprocess.CompletedProcess[str]:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(STAND_IN)
    (bin_dir / "kubectl").chmod(0o755)
    system_path = os.pathsep.join(p for p in ("/usr/bin", "/bin") if Path(p).is_dir())
    return subprocess.run(
        [make, "--no-print-directory", "-C", str(ROOT), "uneven-up", f"SCENARIO={scenario}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            "PATH": f"{bin_dir}{os.pathsep}{system_path}",
            "HOME": str(tmp_path),
            "KUBECONFIG": os.devnull,
            "CALLS": str(tmp_path / "calls"),
            "APPLIED": str(tmp_path / "applied.yaml"),
            "REAL_KUBECTL": kubectl,
            "RUNNING_IMAGE": RUNNING_IMAGE,
        },
    )


def test_the_makefile_names_the_scenarios_whose_client_cannot_see_a_new_pod():
    (line,) = re.findall(r"^UNEVEN_NEEDS_RESTART := (.*)$", (ROOT / "Makefile").read_text(), re.M)
    assert set(line.split()) == needs_restart()
    assert needs_restart(), "headless and clusterip never reach a new server"


@pytest.mark.parametrize("scenario", ["headless", "clusterip", "proxy"])
def test_uneven_up_applies_the_slow_pod_and_says_when_the_client_must_restart(
    tmp_path, tool, scenario
):
    result = uneven_up(tmp_path, tool("kubectl"), scenario)
    assert result.returncode == 0, result.stdout + result.stderr
    (deployment,) = [d for d in yaml.safe_load_all((tmp_path / "applied.yaml").read_text()) if d]
    assert deployment["metadata"]["name"] == "server-slow"
    assert deployment["metadata"]["namespace"] == catalogue.namespace(scenario)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == RUNNING_IMAGE
    restart = f"kubectl rollout restart deploy/client -n {catalogue.namespace(scenario)}"
    assert (restart in result.stdout) is (scenario in needs_restart()), result.stdout


def test_the_uneven_page_says_which_clients_must_restart():
    text = (ROOT / "docs" / "uneven.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| [^|]+ \| ([^|]+) \|$", text, re.M))
    for scenario in needs_restart():
        assert rows[scenario].startswith("nothing until the client restarts"), scenario
    for scenario in set(rows) - needs_restart():
        assert "restarts" not in rows[scenario], scenario
    assert "kubectl rollout restart deploy/client -n grpc-lb-headless" in text
