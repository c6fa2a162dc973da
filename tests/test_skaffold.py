"""skaffold.yaml: valid against the v4beta14 schema, as written and with each profile applied;
one profile per overlay; live sync and the SIGHUP restart; Linkerd ensured before deploy."""

from __future__ import annotations

import copy
import json
import os
import posixpath
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonpatch
import jsonschema
import pytest
import yaml
from hellolb_lab import catalogue

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT.parent / "shared" / "schemas" / "skaffold-v4beta14.json"
OVERLAYS = sorted(p.name for p in (ROOT / "k8s" / "overlays").iterdir() if p.is_dir())
CONFIG = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
PROFILES = {p["name"]: p for p in CONFIG["profiles"]}
MESHED = {s.name for s in catalogue.SCENARIOS if s.meshed}


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


#: Fields of SkaffoldConfig v4beta14 that are Go pointers to structs
#: (pkg/skaffold/schema/latest/config.go: ``Generate.Kustomize *Kustomize``, ``Generate.Helm``,
#: the deployers of ``DeployType``): a profile that sets one replaces it whole.
REPLACED_WHOLE = {
    ("manifests", "kustomize"),
    ("manifests", "helm"),
    ("deploy", "docker"),
    ("deploy", "helm"),
    ("deploy", "kpt"),
    ("deploy", "kubectl"),
    ("deploy", "cloudrun"),
}
#: ``BuildType`` is a oneOf (``yamltags:"oneOf=build"``): the builder a profile sets replaces
#: whichever the config had (``overlayOneOfField``).
BUILDERS = {"local", "googleCloudBuild", "cluster"}
#: The Pipeline fields a profile overlays (``applyProfile`` walks ``profile.Pipeline``).
PIPELINE = {"build", "test", "manifests", "deploy", "portForward", "resourceSelector", "verify",
            "customActions"}  # fmt: skip


def overlay(base: Any, layer: Any, path: tuple[str, ...] = ()) -> Any:
    """Skaffold's profile overlay (``overlayProfileField``, pkg/skaffold/schema/profiles.go):
    a struct is overlaid field by field; a pointer the profile sets, a non-empty list, a
    non-zero number or non-empty string replaces the config's value; an unset pointer, an empty
    list, 0 and "" keep it."""
    if layer is None:
        return copy.deepcopy(base)
    if isinstance(layer, dict):
        if base is None or path in REPLACED_WHOLE or not isinstance(base, dict):
            return copy.deepcopy(layer)
        merged = copy.deepcopy(base)
        if path == ("build",) and BUILDERS & layer.keys():
            for builder in BUILDERS:
                merged.pop(builder, None)
        for key, value in layer.items():
            merged[key] = overlay(base.get(key), value, (*path, key))
        return merged
    if isinstance(layer, list):
        return copy.deepcopy(layer) if layer else copy.deepcopy(base)
    if layer == "" or (type(layer) is int and layer == 0):
        return copy.deepcopy(base)
    return copy.deepcopy(layer)


def activate(config: dict, name: str) -> dict:
    """The config as ``skaffold -p name`` sees it: profile fields laid over, then its patches
    (``applyProfile``, profiles.go)."""
    profile = next(p for p in config["profiles"] if p["name"] == name)
    result = {k: v for k, v in config.items() if k != "profiles"}
    for key in PIPELINE & profile.keys():
        result[key] = overlay(result.get(key), profile[key], (key,))
    if profile.get("patches"):
        result = jsonpatch.apply_patch(result, profile["patches"])
    return result


def regex_equal(expected: str, actual: str) -> bool:
    """``RegexEqual`` (pkg/skaffold/util/regex.go): a leading ``!`` negates; equal strings
    match; otherwise the expected text is a regexp searched in the actual one (an invalid
    regexp matches nothing)."""
    if expected.startswith("!"):
        return not regex_equal(expected[1:], actual)
    if expected == actual:
        return True
    try:
        return re.search(expected, actual) is not None
    except re.error:
        return False


def auto_activated(config: dict, command: str, env: dict[str, str], kube_context: str) -> list:
    """The profiles Skaffold turns on by itself (``activatedProfiles``, profiles.go): a profile
    with one ``activation`` condition whose command, env (``KEY=VALUE``, the value a regexp;
    ``KEY=`` means unset or empty) and kubeContext all match. No activation, no
    auto-activation."""
    on = []
    for profile in config["profiles"]:
        for cond in profile.get("activation", []):
            command_ok = not cond.get("command") or regex_equal(cond["command"], command)
            env_ok = True
            if cond.get("env"):
                key, _, value = cond["env"].partition("=")
                actual = env.get(key, "")
                env_ok = actual == "" if value == "" else regex_equal(value, actual)
            context = cond.get("kubeContext")
            context_ok = not context or regex_equal(context, kube_context)
            if command_ok and env_ok and context_ok:
                on.append(profile["name"])
                break
    return on


def doublestar_match(pattern: str, path: str) -> bool:
    """``doublestar.PathMatch``, as Skaffold's sync uses it: ``**`` spans any number of folders,
    ``*`` and ``?`` stay within one."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.fullmatch(out, path) is not None


def sync_destinations(rules: list[dict], rel_path: str, workdir: str = "/") -> list[str]:
    """``matchSyncRules`` (pkg/skaffold/sync/sync.go): every manual rule whose ``src`` matches
    the path (relative to the artifact's context) copies it to ``dest`` (relative to the
    container's working directory unless absolute) joined with the path minus ``strip``. A
    changed file that matches no rule makes the whole change a rebuild (``intersect``)."""
    out = []
    for rule in rules:
        if doublestar_match(rule["src"], rel_path):
            base = rule["dest"] if rule["dest"].startswith("/") else f"{workdir}/{rule['dest']}"
            sub = rel_path.removeprefix(rule.get("strip", ""))
            out.append(posixpath.normpath(posixpath.join(base, sub)))
    return out


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


@pytest.mark.parametrize("name", OVERLAYS)
def test_linkerd_is_ensured_before_deploying_exactly_where_the_catalogue_says_meshed(name):
    hooks = activate(CONFIG, name)["deploy"]["kubectl"].get("hooks")
    if name not in MESHED:
        assert hooks is None
        return
    (hook,) = hooks["before"]
    assert hook["host"]["command"] == ["bash", "k8s/linkerd/ensure-linkerd.sh"]
    assert (ROOT / "k8s" / "linkerd" / "ensure-linkerd.sh").is_file()


def test_profile_names_are_the_catalogues_scenarios():
    assert sorted(p["name"] for p in CONFIG["profiles"]) == sorted(catalogue.names())


@pytest.mark.parametrize("command", ["dev", "run", "deploy", "delete", "render", "build", "debug"])
def test_no_profile_turns_itself_on(command):
    # Each scenario is chosen with -p; one that activated itself would be laid over every run.
    env = {"SKAFFOLD_PROFILE": "", "KUBECONFIG": ""}
    assert auto_activated(CONFIG, command, env, "kind-grpc-lb-lab") == []


@pytest.mark.parametrize("name", OVERLAYS)
def test_a_profile_that_replaces_a_deployer_or_renderer_keeps_what_the_base_set(name):
    # Skaffold replaces a pointer field whole: a setting the base gives kubectl (or kustomize)
    # would silently vanish from a profile that sets kubectl (or kustomize) too.
    profile = PROFILES[name]
    for section, field in REPLACED_WHOLE:
        if field in profile.get(section, {}):
            base = CONFIG.get(section, {}).get(field) or {}
            assert set(base) <= set(profile[section][field]), f"{name}: {section}.{field}"


def test_the_overlay_follows_skaffolds_rules():
    base = {
        "build": {"local": {"push": False}, "artifacts": [{"image": "a"}]},
        "deploy": {"kubectl": {"flags": {"apply": ["--x"]}}, "statusCheckDeadlineSeconds": 180},
        "portForward": [{"port": 1}],
    }
    layer = {
        "build": {"cluster": {"namespace": "n"}},
        "deploy": {"kubectl": {"hooks": {}}, "statusCheckDeadlineSeconds": 0},
        "portForward": [],
    }
    config = {**base, "profiles": [{"name": "p", **layer}]}
    active = activate(config, "p")
    assert active["build"] == {"cluster": {"namespace": "n"}, "artifacts": [{"image": "a"}]}
    assert active["deploy"] == {"kubectl": {"hooks": {}}, "statusCheckDeadlineSeconds": 180}
    assert active["portForward"] == [{"port": 1}]


def test_activation_follows_skaffolds_rules():
    config = {
        "profiles": [
            {"name": "ci", "activation": [{"env": "CI=true"}]},
            {"name": "not-kind", "activation": [{"kubeContext": "!kind-.*"}]},
            {"name": "dev", "activation": [{"command": "dev"}, {"env": "X="}]},
        ]
    }
    assert auto_activated(config, "run", {"CI": "true", "X": "1"}, "kind-a") == ["ci"]
    assert auto_activated(config, "dev", {"X": "1"}, "gke") == ["not-kind", "dev"]
    assert auto_activated(config, "run", {}, "kind-a") == ["dev"]


@pytest.mark.parametrize("service", ["server", "client"])
def test_every_source_file_syncs_to_where_the_image_and_tilt_put_it(service):
    artifact = next(a for a in CONFIG["build"]["artifacts"] if a["image"] == f"hellolb-{service}")
    rules = artifact["sync"]["manual"]
    context = ROOT / artifact["context"]
    # Tilt's sync(local, remote) maps each file under `local` to the same place under `remote`.
    tilt = {f"services/{service}/src": f"/app/services/{service}/src",
            "libs/hellolb/src": "/app/libs/hellolb/src"}  # fmt: skip
    checked = 0
    for local, remote in tilt.items():
        for file in sorted((ROOT / local).rglob("*.py")):
            rel = file.relative_to(context).as_posix()
            expected = remote + "/" + file.relative_to(ROOT / local).as_posix()
            assert sync_destinations(rules, rel) == [expected], rel
            checked += 1
    assert checked > 5
    # Anything else makes the change a rebuild.
    for rel in ("uv.lock", f"services/{service}/pyproject.toml", f"services/{service}/Dockerfile",
                "protos/hellolb/v1/hello.proto", f"services/{service}/src/py.typed"):  # fmt: skip
        assert sync_destinations(rules, rel) == [], rel


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
