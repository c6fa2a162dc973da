"""The Tiltfile, run by starlark-go (the interpreter Tilt embeds) against recording stand-ins
for the Tilt builtins it uses. The stand-ins have the parameters of Tilt's API reference, so a
misspelt or unknown argument fails here as it would in Tilt. ``kustomize()`` runs the real
``kubectl kustomize``."""

from __future__ import annotations

import re
import shlex
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

starlark_go = pytest.importorskip("starlark_go", reason="starlark-go is not installed")

ROOT = Path(__file__).resolve().parent.parent
TILTFILE = (ROOT / "Tiltfile").read_text()
OVERLAYS = sorted(p.name for p in (ROOT / "k8s" / "overlays").iterdir() if p.is_dir())
#: Tilt's module-style builtins; starlark-go has no modules, so `config.x` becomes `config_x`.
MODULE_CALL = re.compile(r"\b(config)\.([a-z_]+)\b")
#: kustomize() output per folder, rendered once per session.
RENDERED: dict[str, str] = {}
#: Tiltfiles may use if/for at top level.
starlark_go.configure_starlark(allow_global_reassign=True)


class TiltfileError(Exception):
    """A Tiltfile called fail()."""


class Tilt:
    """Recording stand-ins for the Tilt builtins, with the documented signatures."""

    def __init__(self, args: dict[str, str], kustomize_dir) -> None:
        self.args = args
        self.calls: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._kustomize_dir = kustomize_dir
        # starlark-go keeps only weak references: these must live as long as the interpreter.
        self.builtins = {
            "config_define_string": self.config_define_string,
            "config_parse": self.config_parse,
            "fail": self.fail,
            "kustomize": self.kustomize,
            "k8s_yaml": self.k8s_yaml,
            "docker_build": self.docker_build,
            "fall_back_on": self.fall_back_on,
            "sync": self.sync,
            "run": self.run,
            "k8s_resource": self.k8s_resource,
            "local_resource": self.local_resource,
            "port_forward": self.port_forward,
        }

    def _record(self, name: str, values: dict[str, Any]) -> None:
        self.calls[name].append({k: v for k, v in values.items() if k != "self"})

    def config_define_string(self, name, args=False, usage=""):
        self._record("config.define_string", locals())

    def config_parse(self):
        defined = {c["name"] for c in self.calls["config.define_string"]}
        unknown = set(self.args) - defined
        if unknown:
            raise TiltfileError(f"unknown Tiltfile args: {sorted(unknown)}")
        return dict(self.args)

    def fail(self, msg):
        raise TiltfileError(msg)

    def kustomize(self, pathToDir, kustomize_bin=None, flags=()):  # noqa: N803 (Tilt's name)
        self._record("kustomize", locals())
        if pathToDir not in RENDERED:
            RENDERED[pathToDir] = self._kustomize_dir(ROOT / pathToDir)
        return RENDERED[pathToDir]

    def k8s_yaml(self, yaml, allow_duplicates=False):
        self._record("k8s_yaml", locals())

    def docker_build(
        self,
        ref,
        context,
        build_args=None,
        dockerfile="Dockerfile",
        dockerfile_contents="",
        live_update=(),
        match_in_env_vars=False,
        ignore=(),
        only=(),
        entrypoint=(),
        target="",
        ssh="",
        network="",
        secret="",
        extra_tag="",
        container_args=None,
        cache_from=(),
        pull=False,
        platform="",
    ):
        self._record("docker_build", locals())

    def fall_back_on(self, files):
        return {"step": "fall_back_on", "files": [files] if isinstance(files, str) else files}

    def sync(self, local_path, remote_path):
        return {"step": "sync", "local_path": local_path, "remote_path": remote_path}

    def run(self, cmd, trigger=()):
        return {"step": "run", "cmd": cmd, "trigger": list(trigger)}

    def k8s_resource(
        self,
        workload="",
        new_name="",
        port_forwards=(),
        extra_pod_selectors=(),
        trigger_mode=None,
        resource_deps=(),
        objects=(),
        auto_init=True,
        pod_readiness="",
        links=(),
        labels=(),
        discovery_strategy="",
    ):
        self._record("k8s_resource", locals())

    def local_resource(
        self,
        name,
        cmd,
        deps=None,
        trigger_mode=None,
        resource_deps=(),
        ignore=(),
        auto_init=True,
        serve_cmd="",
        cmd_bat="",
        serve_cmd_bat="",
        allow_parallel=False,
        links=(),
        tags=(),
        env=None,
        serve_env=None,
        readiness_probe=None,
        dir="",
        serve_dir="",
        labels=(),
    ):
        self._record("local_resource", locals())

    def port_forward(self, local_port, container_port=None, name=None, link_path=None, host=None):
        return {"local_port": local_port, "container_port": container_port, "name": name}


def evaluate(kustomize_dir, args: dict[str, str]) -> Tilt:
    tilt = Tilt(args, kustomize_dir)
    interpreter = starlark_go.Starlark(globals=tilt.builtins)
    source = MODULE_CALL.sub(r"\1_\2", TILTFILE)
    try:
        interpreter.exec(source, filename="Tiltfile")
    except starlark_go.EvalError as error:
        raise TiltfileError(str(error)) from error
    return tilt


@pytest.fixture
def tilt_up(kustomize_dir):
    return lambda **args: evaluate(kustomize_dir, args)


def resources(tilt: Tilt) -> dict[str, dict[str, Any]]:
    out = {}
    for call in tilt.calls["k8s_resource"]:
        out[call["new_name"] or call["workload"]] = call
    for call in tilt.calls["local_resource"]:
        out[call["name"]] = call
    return out


def test_tiltfile_uses_only_module_builtins_the_stand_ins_know():
    used = {f"{m}.{f}" for m, f in MODULE_CALL.findall(TILTFILE)}
    assert used == {"config.define_string", "config.parse"}


def test_scenario_is_a_string_setting(tilt_up):
    (defined,) = tilt_up().calls["config.define_string"]
    assert defined["name"] == "scenario"
    assert defined["args"] is False


def test_default_scenario_is_headless(tilt_up):
    tilt = tilt_up()
    assert [c["pathToDir"] for c in tilt.calls["kustomize"]] == ["k8s/overlays/headless"]


@pytest.mark.parametrize("scenario", OVERLAYS)
def test_each_scenario_deploys_its_overlay(tilt_up, kustomize_dir, scenario):
    tilt = tilt_up(scenario=scenario)
    assert [c["pathToDir"] for c in tilt.calls["kustomize"]] == [f"k8s/overlays/{scenario}"]
    (deployed,) = tilt.calls["k8s_yaml"]
    assert deployed["yaml"] == kustomize_dir(ROOT / "k8s" / "overlays" / scenario)


def test_an_unknown_scenario_stops_tilt(tilt_up):
    with pytest.raises(TiltfileError, match='unknown scenario "nope"'):
        tilt_up(scenario="nope")


@pytest.mark.parametrize("service", ["server", "client"])
def test_images_build_from_the_repo_root_with_live_update(tilt_up, service):
    builds = {c["ref"]: c for c in tilt_up().calls["docker_build"]}
    build = builds[f"hellolb-{service}"]
    assert build["context"] == "."
    assert build["dockerfile"] == f"services/{service}/Dockerfile"
    steps = build["live_update"]
    assert [s["step"] for s in steps] == ["fall_back_on", "sync", "sync", "run"]
    rebuild_on = set(steps[0]["files"])
    assert {"protos", "uv.lock", "pyproject.toml", f"services/{service}/Dockerfile"} <= rebuild_on
    assert f"services/{service}/pyproject.toml" in rebuild_on
    for path in rebuild_on:
        assert (ROOT / path).exists(), path
    syncs = {s["local_path"]: s["remote_path"] for s in steps if s["step"] == "sync"}
    assert syncs == {
        f"services/{service}/src": f"/app/services/{service}/src",
        "libs/hellolb/src": "/app/libs/hellolb/src",
    }
    assert steps[-1]["cmd"] == "kill -HUP 1"


def test_image_build_ignores_never_hide_what_the_build_needs(tilt_up):
    for build in tilt_up().calls["docker_build"]:
        for pattern in build["ignore"]:
            assert not any(
                Path(p).match(pattern) for p in ("protos", "uv.lock", "services", "libs")
            )


@pytest.mark.parametrize("scenario", OVERLAYS)
def test_resources_are_grouped_and_ordered(tilt_up, scenario):
    res = resources(tilt_up(scenario=scenario))
    for name, call in res.items():
        assert call["labels"], f"{name} has no label"
    assert "namespace" in res["server"]["resource_deps"]
    assert "server" in res["client"]["resource_deps"]
    if scenario == "proxy":
        assert res["proxy"]["resource_deps"] == ["server"]
        assert "proxy" in res["client"]["resource_deps"]
    else:
        assert "proxy" not in res


@pytest.mark.parametrize("scenario", OVERLAYS)
def test_linkerd_is_ensured_first_only_in_its_scenario(tilt_up, scenario):
    res = resources(tilt_up(scenario=scenario))
    if scenario in ("linkerd", "canary"):
        assert res["linkerd"]["cmd"] == "bash k8s/linkerd/ensure-linkerd.sh"
        assert "linkerd" in res["server"]["resource_deps"]
    else:
        assert "linkerd" not in res


@pytest.mark.parametrize("scenario", OVERLAYS)
def test_resources_name_objects_that_the_overlay_renders(tilt_up, docs_of, scenario):
    docs = docs_of(scenario)
    present = {(d["metadata"]["name"], d["kind"].lower()) for d in docs}
    workloads = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
    for call in tilt_up(scenario=scenario).calls["k8s_resource"]:
        if call["workload"]:
            assert call["workload"] in workloads
        for selector in call["objects"]:
            name, kind = selector.split(":")[:2]
            assert (name, kind) in present, selector
    attached = {s for c in tilt_up(scenario=scenario).calls["k8s_resource"] for s in c["objects"]}
    loose = {
        f"{d['metadata']['name']}:{d['kind'].lower()}" for d in docs if d["kind"] != "Deployment"
    }
    assert loose <= attached, "every non-workload object belongs to a resource"


def test_image_names_match_skaffold_and_the_manifests(tilt_up, docs_of):
    tilt_images = {c["ref"] for c in tilt_up().calls["docker_build"]}
    skaffold = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    skaffold_images = {a["image"] for a in skaffold["build"]["artifacts"]}
    manifest_images = set()
    for scenario in OVERLAYS:
        for d in docs_of(scenario):
            if d["kind"] == "Deployment":
                spec = d["spec"]["template"]["spec"]
                for c in [*spec.get("initContainers", []), *spec["containers"]]:
                    # Images built here go by a bare name that the tools replace; Envoy's
                    # and the xDS control plane's are pulled, pinned by a tag.
                    if ":" not in c["image"]:
                        manifest_images.add(c["image"])
    assert tilt_images == skaffold_images == manifest_images == {"hellolb-server", "hellolb-client"}


# -- namespace rule, image contexts, and `tilt down`


@pytest.mark.parametrize("scenario", OVERLAYS)
def test_the_namespace_resource_is_grpc_lb_plus_the_scenario(tilt_up, docs_of, scenario):
    res = resources(tilt_up(scenario=scenario))
    rendered = {d["metadata"]["name"] for d in docs_of(scenario) if d["kind"] == "Namespace"}
    assert rendered == {f"grpc-lb-{scenario}"}
    assert res["namespace"]["objects"] == [f"grpc-lb-{scenario}:namespace"]


def dockerfile_sources(dockerfile: Path) -> list[str]:
    """Paths a Dockerfile copies from its build context (COPY and ADD without --from)."""
    sources = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if not words or words[0] not in ("COPY", "ADD"):
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        if any(w.startswith("--from") for w in words[1:]):
            continue
        sources += [a.rstrip("/") for a in args[:-1]]
    return sources


def in_context(path: str, only: list[str]) -> bool:
    return any(path == entry or path.startswith(entry.rstrip("/") + "/") for entry in only)


def builds(tilt: Tilt) -> dict[str, dict[str, Any]]:
    return {c["ref"].removeprefix("hellolb-"): c for c in tilt.calls["docker_build"]}


@pytest.mark.parametrize("service", ["server", "client"])
def test_each_image_context_is_what_its_dockerfile_copies(tilt_up, service):
    build = builds(tilt_up())[service]
    only = list(build["only"])
    assert only, "docker_build(only=...) limits the context and the watched files"
    sources = dockerfile_sources(ROOT / build["dockerfile"])
    assert sources
    for source in sources:
        assert in_context(source, only), f"{source} is copied but not sent"
    for entry in only:
        # Tilt's `only` takes real paths, not globs.
        assert (ROOT / entry).exists(), entry
        needed = any(in_context(s, [entry]) for s in sources) or entry == ".dockerignore"
        assert needed, f"{entry} is sent but never copied"
    assert in_context(build["dockerfile"], only)


@pytest.mark.parametrize("service", ["server", "client"])
def test_live_update_paths_are_inside_the_image_context(tilt_up, service):
    build = builds(tilt_up())[service]
    only = list(build["only"])
    for step in build["live_update"]:
        paths = step.get("files", []) + ([step["local_path"]] if "local_path" in step else [])
        for path in paths:
            assert in_context(path, only), f"{path}: Tilt never sees it change"


#: Edits that must rebuild no image, and edits that rebuild only their own service's.
UNRELATED = [
    "lab/src/hellolb_lab/catalogue.py",
    "conftest.py",
    "tests/test_tiltfile.py",
    "k8s/base/server.yaml",
    "skaffold.yaml",
    "Tiltfile",
    "README.md",
]
OWN = {
    "server": "services/server/src/hello_server/servicer.py",
    "client": "services/client/src/hello_client/app.py",
}


@pytest.mark.parametrize("service", ["server", "client"])
def test_an_edit_rebuilds_only_the_image_that_uses_the_file(tilt_up, service):
    build = builds(tilt_up())[service]
    only = list(build["only"])
    other = "client" if service == "server" else "server"
    for path in [*UNRELATED, OWN[other]]:
        assert (ROOT / path).exists(), path
        assert not in_context(path, only), f"editing {path} would rebuild hellolb-{service}"
    assert in_context(OWN[service], only)
    assert in_context("libs/hellolb/src/hellolb/config.py", only)


def tiltfile_args(argv: list[str]) -> dict[str, str]:
    """The Tiltfile arguments of a `tilt` command line: everything after `--`."""
    args: dict[str, str] = {}
    rest = argv[argv.index("--") + 1 :] if "--" in argv else []
    while rest:
        flag = rest.pop(0)
        assert flag.startswith("--"), flag
        name, _, value = flag[2:].partition("=")
        args[name] = value if value else rest.pop(0)
    return args


@pytest.mark.parametrize("target", ["tilt-up", "tilt-down"])
def test_make_targets_give_tilt_the_scenario_both_ways(tilt_up, tool, target):
    # `tilt down` reads the Tiltfile again with only the arguments after `--`: without the
    # scenario it would remove headless, and without --delete-namespaces keep the namespace.
    make = tool("make")
    result = subprocess.run(
        [make, "-n", "--no-print-directory", target, "SCENARIO=maxage"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    )
    (line,) = [ln for ln in result.stdout.splitlines() if ln.startswith("tilt ")]
    argv = shlex.split(line)
    assert argv[:2] == ["tilt", target.removeprefix("tilt-")]
    tilt = tilt_up(**tiltfile_args(argv))
    assert [c["pathToDir"] for c in tilt.calls["kustomize"]] == ["k8s/overlays/maxage"]
    if target == "tilt-down":
        assert "--delete-namespaces" in argv[: argv.index("--")]


@pytest.mark.parametrize("scenario", OVERLAYS)
def test_the_xds_control_plane_starts_before_the_client_only_in_its_scenario(tilt_up, scenario):
    res = resources(tilt_up(scenario=scenario))
    if scenario != "xds":
        assert "xds" not in res
        return
    assert res["xds"]["resource_deps"] == ["namespace"]
    assert "xds" in res["client"]["resource_deps"]
    assert "xds-bootstrap:configmap" in res["client"]["objects"]


def test_the_xds_debug_page_is_forwarded_from_the_port_the_control_plane_serves_it_on(
    tilt_up, docs_of
):
    (control_plane,) = [
        d for d in docs_of("xds") if d["kind"] == "Deployment" and d["metadata"]["name"] == "xds"
    ]
    ports = {
        p["name"]: p["containerPort"]
        for c in control_plane["spec"]["template"]["spec"]["containers"]
        for p in c.get("ports", [])
    }
    forwards = resources(tilt_up(scenario="xds"))["xds"]["port_forwards"]
    assert [(f["local_port"], f["container_port"]) for f in forwards] == [(ports["debug"],) * 2]
