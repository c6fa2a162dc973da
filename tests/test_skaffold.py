"""skaffold.yaml: valid against the v4beta14 schema, as written and with each profile applied;
one profile per overlay; live sync and the SIGHUP restart; Linkerd ensured before deploy."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import jsonpatch
import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT.parent / "shared" / "schemas" / "skaffold-v4beta14.json"
OVERLAYS = sorted(p.name for p in (ROOT / "k8s" / "overlays").iterdir() if p.is_dir())
CONFIG = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
PROFILES = {p["name"]: p for p in CONFIG["profiles"]}


def validator() -> jsonschema.Draft7Validator:
    if not SCHEMA.is_file():
        pytest.skip(f"Skaffold schema not found at {SCHEMA} (see ../shared/schemas/README.md)")
    schema = json.loads(SCHEMA.read_text())
    return jsonschema.Draft7Validator(
        {"$ref": "#/definitions/SkaffoldConfig", "definitions": schema["definitions"]}
    )


def deepest_error(errors: list[jsonschema.ValidationError]) -> str:
    """One readable message: the deepest error, even inside anyOf branches."""
    best = max(errors, key=lambda e: len(e.absolute_path))
    while best.context:
        best = max(best.context, key=lambda e: len(e.absolute_path))
    return f"{'/'.join(map(str, best.absolute_path))}: {best.message}"


def overlay(base: Any, layer: Any) -> Any:
    """Skaffold's profile semantics: mappings merge field by field, anything else is replaced."""
    if isinstance(base, dict) and isinstance(layer, dict):
        merged = dict(base)
        for key, value in layer.items():
            merged[key] = overlay(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    return copy.deepcopy(layer)


def activate(config: dict, name: str) -> dict:
    """The config as ``skaffold -p name`` sees it: profile fields laid over, then its patches."""
    profile = next(p for p in config["profiles"] if p["name"] == name)
    fields = {k: v for k, v in profile.items() if k not in {"name", "activation", "patches"}}
    result = overlay({k: v for k, v in config.items() if k != "profiles"}, fields)
    if profile.get("patches"):
        result = jsonpatch.apply_patch(result, profile["patches"])
    return result


def assert_valid(config: dict) -> None:
    errors = list(validator().iter_errors(config))
    assert not errors, deepest_error(errors)


def test_api_version_and_kind():
    assert CONFIG["apiVersion"] == "skaffold/v4beta14"
    assert CONFIG["kind"] == "Config"


def test_config_is_valid_against_the_schema():
    assert_valid(CONFIG)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_config_with_profile_applied_is_valid(name):
    assert_valid(activate(CONFIG, name))


def test_schema_check_catches_a_misspelt_hook_field():
    broken = copy.deepcopy(CONFIG)
    broken["build"]["artifacts"][0]["sync"]["hooks"]["after"][0]["containr"] = {"command": ["x"]}
    assert list(validator().iter_errors(broken))


def test_profile_names_equal_overlay_names():
    assert sorted(PROFILES) == OVERLAYS


@pytest.mark.parametrize("name", OVERLAYS)
def test_profile_deploys_its_own_overlay_without_positional_patches(name):
    assert "patches" not in PROFILES[name]
    active = activate(CONFIG, name)
    assert active["manifests"]["kustomize"]["paths"] == [f"k8s/overlays/{name}"]
    assert "kubectl" in active["deploy"]


def test_without_a_profile_the_headless_scenario_is_deployed():
    assert CONFIG["manifests"]["kustomize"]["paths"] == ["k8s/overlays/headless"]


def rendered_namespace(docs: list[dict[str, Any]]) -> str:
    (namespace,) = [d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"]
    return namespace


@pytest.mark.parametrize("name", OVERLAYS)
def test_port_forwards_point_into_the_namespace_the_overlay_renders(name, docs_of):
    forwards = activate(CONFIG, name)["portForward"]
    assert forwards
    assert {f["namespace"] for f in forwards} == {rendered_namespace(docs_of(name))}
    assert {"service", "server", 50051} <= {
        v for f in forwards for v in (f["resourceType"], f["resourceName"], f["port"])
    }


def test_without_a_profile_port_forwards_point_into_the_headless_namespace(docs_of):
    assert {f["namespace"] for f in CONFIG["portForward"]} == {
        rendered_namespace(docs_of("headless"))
    }


def test_envoy_admin_is_forwarded_where_envoy_runs(docs_of):
    proxy = activate(CONFIG, "proxy")["portForward"]
    sidecar = activate(CONFIG, "sidecar")["portForward"]
    proxy_ns = rendered_namespace(docs_of("proxy"))
    sidecar_ns = rendered_namespace(docs_of("sidecar"))
    assert {"resourceType": "deployment", "resourceName": "proxy", "namespace": proxy_ns,
            "port": 9901, "localPort": 9901} in proxy  # fmt: skip
    assert {"resourceType": "deployment", "resourceName": "client", "namespace": sidecar_ns,
            "port": 9901, "localPort": 9901} in sidecar  # fmt: skip


@pytest.mark.parametrize("service", ["server", "client"])
def test_artifact_builds_from_the_repo_root_with_the_service_dockerfile(service):
    artifact = next(a for a in CONFIG["build"]["artifacts"] if a["image"] == f"hellolb-{service}")
    assert artifact["context"] == "."
    dockerfile = artifact["docker"]["dockerfile"]
    assert dockerfile == f"services/{service}/Dockerfile"


@pytest.mark.parametrize("service", ["server", "client"])
def test_python_edits_are_synced_then_the_process_is_restarted(service):
    artifact = next(a for a in CONFIG["build"]["artifacts"] if a["image"] == f"hellolb-{service}")
    sync = artifact["sync"]
    assert sync["manual"] == [
        {"src": f"services/{service}/src/**/*.py", "dest": "/app"},
        {"src": "libs/hellolb/src/**/*.py", "dest": "/app"},
    ]
    assert sync["hooks"]["after"] == [{"container": {"command": ["sh", "-c", "kill -HUP 1"]}}]
    # Only .py files sync; protos, uv.lock, pyproject.toml and the Dockerfile rebuild.
    for rule in sync["manual"]:
        assert rule["src"].endswith(".py")


@pytest.mark.parametrize("service", ["server", "client"])
def test_synced_paths_exist_in_the_checkout(service):
    assert (ROOT / "services" / service / "src").is_dir()
    assert (ROOT / "libs" / "hellolb" / "src").is_dir()


@pytest.mark.parametrize("meshed", ["linkerd", "canary"])
def test_linkerd_profile_ensures_linkerd_before_deploying(meshed):
    hooks = activate(CONFIG, meshed)["deploy"]["kubectl"]["hooks"]
    (hook,) = hooks["before"]
    assert hook["host"]["command"] == ["bash", "k8s/linkerd/ensure-linkerd.sh"]
    assert (ROOT / "k8s" / "linkerd" / "ensure-linkerd.sh").is_file()
    for name in OVERLAYS:
        if name not in ("linkerd", "canary"):
            assert "hooks" not in activate(CONFIG, name)["deploy"]["kubectl"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_real_skaffold_accepts_the_profile(name, tool):
    skaffold = tool("skaffold")
    result = subprocess.run(
        [skaffold, "diagnose", "--yaml-only", "-p", name],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env={**os.environ, "SKAFFOLD_UPDATE_CHECK": "false"},
    )
    assert result.returncode == 0, result.stderr


def test_linkerd_hook_runs_from_the_config_directory_wherever_skaffold_starts():
    # Skaffold resolves the hook's `dir` (a `filepath` field) against the directory of
    # skaffold.yaml; without it the command runs in the caller's directory and the relative
    # script path breaks for `skaffold -f path/to/skaffold.yaml` started elsewhere.
    (hook,) = activate(CONFIG, "linkerd")["deploy"]["kubectl"]["hooks"]["before"]
    directory = hook["host"].get("dir")
    assert directory is not None, "the hook needs `dir`"
    workdir = (ROOT / directory).resolve()
    assert workdir == ROOT
    script = hook["host"]["command"][-1]
    assert (workdir / script).is_file()


def test_the_xds_control_planes_debug_page_is_forwarded(docs_of):
    docs = docs_of("xds")
    (control_plane,) = [
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "xds"
    ]
    (debug,) = [
        p
        for c in control_plane["spec"]["template"]["spec"]["containers"]
        for p in c.get("ports", [])
        if p["name"] == "debug"
    ]
    port = debug["containerPort"]
    forward = {"resourceType": "deployment", "resourceName": "xds",
               "namespace": rendered_namespace(docs), "port": port, "localPort": port}  # fmt: skip
    assert forward in activate(CONFIG, "xds")["portForward"]
