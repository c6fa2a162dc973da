"""What the Dockerfiles promise: pinned versions that match the lock, non-root, exec form."""

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = {"server": "hello_server", "client": "hello_client"}
#: Every Dockerfile whose image the project builds (containers/images.sh).
DOCKERFILES = {
    "server": "services/server/Dockerfile",
    "client": "services/client/Dockerfile",
    "lab": "lab/Dockerfile",
}


def dockerfile(service):
    return (ROOT / DOCKERFILES[service]).read_text()


def locked_version(name):
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    (version,) = {p["version"] for p in lock["package"] if p["name"] == name}
    return version


@pytest.mark.parametrize("service", DOCKERFILES)
def test_base_image_is_a_slim_python_pinned_by_full_version(service):
    (image,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile(service), re.MULTILINE)
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", image)


@pytest.mark.parametrize("service", DOCKERFILES)
def test_code_generator_matches_the_locked_grpc_version(service):
    (version,) = re.findall(r"grpcio-tools==(\S+)", dockerfile(service))
    assert version == locked_version("grpcio-tools") == locked_version("grpcio")


@pytest.mark.parametrize("service", DOCKERFILES)
def test_uv_in_the_image_is_the_version_the_makefile_bootstraps(service):
    (in_image,) = re.findall(r"uv==(\S+)", dockerfile(service))
    (in_makefile,) = re.findall(r'"uv==([^"]+)"', (ROOT / "Makefile").read_text())
    assert in_image == in_makefile


@pytest.mark.parametrize("service", SERVICES)
def test_installs_exactly_the_lock_and_only_its_own_package(service):
    text = dockerfile(service)
    syncs = re.findall(r"uv sync (.+)", text)
    assert len(syncs) == 2
    for sync in syncs:
        assert "--frozen" in sync
        assert "--no-dev" in sync
        assert f"--package hello-{service}" in sync


@pytest.mark.parametrize("service", SERVICES)
def test_runs_as_a_numeric_non_root_user_with_an_exec_form_entrypoint(service):
    text = dockerfile(service)
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert users, "USER is set"
    uid = users[-1].split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0
    last_stage = text.rsplit("\nFROM ", 1)[1]
    assert f'ENTRYPOINT ["python", "-m", "{SERVICES[service]}"]' in last_stage
    assert "CMD " not in last_stage


def test_dockerignore_keeps_local_environments_and_generated_code_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"**/.venv", ".git", "libs/hellolb/src/hellolb/v1/*_pb2*.py"} <= set(ignored)


def test_the_lab_image_installs_exactly_the_lock_and_runs_the_lab_as_a_numeric_user():
    text = dockerfile("lab")
    syncs = re.findall(r"uv sync (.+)", text)
    assert len(syncs) == 2
    for sync in syncs:
        assert {"--frozen", "--no-dev", "--package", "hellolb-lab"} <= set(sync.split())
    (user,) = re.findall(r"^USER (\d+):\d+$", text, re.MULTILINE)
    assert int(user) != 0
    assert 'ENTRYPOINT ["hellolb-lab"]' in text.rsplit("\nFROM ", 1)[1]


def test_the_lab_image_has_its_own_context_rules_that_keep_the_overlays():
    """The root .dockerignore leaves k8s/ out; lab/Dockerfile.dockerignore (the engines'
    per-Dockerfile ignore file) replaces it for the lab image."""
    root = (ROOT / ".dockerignore").read_text().split()
    own = (ROOT / "lab" / "Dockerfile.dockerignore").read_text().split()
    assert "k8s" in root
    assert "k8s" not in own
    assert "COPY --chown=10001:10001 k8s/ /lab/k8s/" in dockerfile("lab")
    assert {"**/.venv", ".git", ".cache", "libs/hellolb/src/hellolb/v1/*_pb2*.py"} <= set(own)
