"""The Tiltfile, run by starlark-go (the interpreter Tilt embeds) against recording stand-ins
for the Tilt builtins it uses, then assembled into resources by ``tests/tilt_assembly.py``, which
follows Tilt's own rules (each names its source in tilt-dev/tilt). The stand-ins have the
parameters of Tilt's API reference (``internal/tiltfile/api/__init__.py``), so a misspelt or
unknown argument fails here as it would in Tilt; ``kustomize()`` runs the real
``kubectl kustomize``. A load that Tilt stops (``tilt up`` and ``tilt down`` alike) stops here with
Tilt's message."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from hellolb_lab import catalogue

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


def load(name: str, path: Path) -> ModuleType:
    """A helper module by path (tests run with --import-mode=importlib)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


tilt_assembly = load("tilt_assembly", ROOT / "tests" / "tilt_assembly.py")
scenario_file = load("scenario_file", ROOT / "tests" / "scenario_file.py")
MESHED = {s.name for s in catalogue.SCENARIOS if s.meshed}


class TiltfileError(Exception):
    """Tilt stops the load: the Tiltfile called fail(), a builtin refused its arguments, or
    the assembly refused what the Tiltfile asked for."""


class Tilt:
    """Recording stand-ins for the Tilt builtins, with the documented signatures."""

    def __init__(self, args: dict[str, str], kustomize_dir) -> None:
        self.args = args
        self.calls: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._kustomize_dir = kustomize_dir
        self.entities: list[dict[str, Any]] = []
        self.registered: set[tuple[str, str, str, str]] = set()
        self.options: dict[str, Any] = {}
        self.assembly: Any = None
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
            "read_json": self.read_json,
        }

    def _record(self, name: str, values: dict[str, Any]) -> None:
        self.calls[name].append({k: v for k, v in values.items() if k != "self"})

    def config_define_string(self, name, args=False, usage=""):
        self._record("config.define_string", locals())

    def config_parse(self):
        # internal/tiltfile/config/config.go: an argument after `--` that no define_*() call
        # names stops the load.
        defined = {c["name"] for c in self.calls["config.define_string"]}
        unknown = set(self.args) - defined
        if unknown:
            raise TiltfileError(f"unknown Tiltfile args: {sorted(unknown)}")
        return dict(self.args)

    def fail(self, msg):
        raise TiltfileError(msg)

    def read_json(self, path, default=None):
        """Relative to the Tiltfile; a missing file is an error unless ``default`` is given
        (``read_json`` docstring, api/__init__.py)."""
        self._record("read_json", locals())
        file = ROOT / path
        if not file.is_file():
            if default is not None:
                return default
            raise TiltfileError(f"read_json: {path}: no such file")
        return json.loads(file.read_text())

    def kustomize(self, pathToDir, kustomize_bin=None, flags=()):  # noqa: N803 (Tilt's name)
        self._record("kustomize", locals())
        if pathToDir not in RENDERED:
            RENDERED[pathToDir] = self._kustomize_dir(ROOT / pathToDir)
        return RENDERED[pathToDir]

    def k8s_yaml(self, yaml, allow_duplicates=False):
        # A Blob of YAML (what kustomize() returns), or a path to a file of it.
        self._record("k8s_yaml", locals())
        text = yaml if "\n" in yaml else (ROOT / yaml).read_text()
        entities = [d for d in _yaml.safe_load_all(text) if isinstance(d, dict)]
        if not entities:
            # k8sYaml (internal/tiltfile/k8s.go)
            raise TiltfileError("Empty or Invalid YAML Resource Detected")
        for e in entities:
            # State.Append (internal/tiltfile/k8s/state.go): one object (apiVersion, kind,
            # namespace as written, name) registered twice stops the load.
            meta = e["metadata"]
            ref = (e["apiVersion"], e["kind"], meta.get("namespace", ""), meta["name"])
            if ref in self.registered and not allow_duplicates:
                where = f" (Namespace: {ref[2]})" if ref[2] else ""
                raise TiltfileError(f"Duplicate YAML: {ref[1]} {ref[3]}{where}")
            self.registered.add(ref)
        self.entities += entities

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
        options = tilt_assembly.ResourceOptions(
            workload=workload,
            new_name=new_name,
            objects=list(objects),
            resource_deps=list(resource_deps),
            port_forwards=list(port_forwards),
            labels=[labels] if isinstance(labels, str) else list(labels),
        )
        try:
            tilt_assembly.check_call(options, self.options)
        except tilt_assembly.LoadError as error:
            raise TiltfileError(str(error)) from error
        self.options[options.key] = options

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

    def assemble(self) -> None:
        """Tilt's assembly, once for the calls in the order the Tiltfile made them and once in
        reverse: Tilt keeps the options in a Go map (``k8sResourceOptions``) and walks it in
        no set order, so a load must not depend on the order of the calls."""
        local = [
            tilt_assembly.LocalResource(
                c["name"], tuple(c["resource_deps"]), bool(c["allow_parallel"])
            )
            for c in self.calls["local_resource"]
        ]
        calls = list(self.options.values())
        try:
            for order in (calls, calls[::-1]):
                self.assembly = tilt_assembly.assemble(self.entities, order, local)
        except tilt_assembly.LoadError as error:
            raise TiltfileError(str(error)) from error


_yaml = yaml


def evaluate(kustomize_dir, args: dict[str, str], source: str = TILTFILE) -> Tilt:
    """Load a Tiltfile as `tilt up` and `tilt down` both do: run it, then assemble."""
    tilt = Tilt(args, kustomize_dir)
    interpreter = starlark_go.Starlark(globals=tilt.builtins)
    try:
        interpreter.exec(MODULE_CALL.sub(r"\1_\2", source), filename="Tiltfile")
    except starlark_go.EvalError as error:
        raise TiltfileError(str(error)) from error
    tilt.assemble()
    return tilt


@pytest.fixture
def tilt_up(kustomize_dir):
    return lambda **args: evaluate(kustomize_dir, args)


def resources(tilt: Tilt) -> dict[str, dict[str, Any]]:
    """The Tiltfile's own resource calls, by the resource they configure."""
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


#: What Tilt's grouping makes of each scenario's objects: each Deployment's resource holds the
#: Services that select its pods; everything else is "uncategorized".
GROUPED_SERVICES = {
    "server": {"server"},
    "proxy": {"proxy"},
    "xds": {"xds"},
    "client": set(),
    # The canary's "server" Service selects both server sets; the first Deployment in the YAML
    # (kustomize sorts by kind, then name: server) takes it.
    "server-canary": {"server-canary"},
}


def held(tilt: Tilt) -> dict[str, set[tuple[str, str]]]:
    """(kind, name) of the objects each resource of the load deploys."""
    out: dict[str, set[tuple[str, str]]] = {
        r.name: {(e["kind"], e["metadata"]["name"]) for e in r.entities}
        for r in tilt.assembly.resources
    }
    out[tilt_assembly.UNCATEGORIZED] = {
        (e["kind"], e["metadata"]["name"]) for e in tilt.assembly.uncategorized
    }
    return out


@pytest.mark.parametrize("scenario", OVERLAYS)
def test_each_deployment_is_a_resource_with_the_services_that_select_its_pods(
    tilt_up, docs_of, scenario
):
    tilt = tilt_up(scenario=scenario)
    groups = held(tilt)
    deployments = {d["metadata"]["name"] for d in docs_of(scenario) if d["kind"] == "Deployment"}
    assert set(tilt.assembly.by_name) == deployments
    for deployment in deployments:
        services = {n for k, n in groups[deployment] if k == "Service"}
        expected = set(GROUPED_SERVICES[deployment])
        if scenario == "canary" and deployment == "server":
            expected |= {"server-stable"}
        assert services == expected, deployment
        assert {k for k, _ in groups[deployment]} <= {"Deployment", "Service"}
    rest = {k for k, _ in groups[tilt_assembly.UNCATEGORIZED]}
    assert "Namespace" in rest
    assert not rest & {"Deployment", "Service"}


@pytest.mark.parametrize("scenario", OVERLAYS)
def test_every_rendered_object_is_deployed_by_exactly_one_resource(tilt_up, docs_of, scenario):
    tilt = tilt_up(scenario=scenario)
    rendered = sorted((d["kind"], d["metadata"]["name"]) for d in docs_of(scenario))
    deployed = sorted(obj for objs in held(tilt).values() for obj in objs)
    assert deployed == rendered


@pytest.mark.parametrize("scenario", OVERLAYS)
def test_resources_are_labelled_and_started_in_order(tilt_up, scenario):
    tilt = tilt_up(scenario=scenario)
    res = resources(tilt)
    for name, call in res.items():
        assert call["labels"], f"{name} has no label"
    assembly = tilt.assembly
    assert assembly.deploys_before("server", "client")
    if scenario == "proxy":
        assert res["proxy"]["resource_deps"] == ["server"]
        assert assembly.deploys_before("proxy", "client")
    else:
        assert "proxy" not in res
    if scenario == "canary":
        assert assembly.deploys_before("server-canary", "client")


@pytest.mark.parametrize("scenario", OVERLAYS)
def test_linkerd_is_ensured_first_only_where_the_catalogue_says_meshed(tilt_up, scenario):
    tilt = tilt_up(scenario=scenario)
    res = resources(tilt)
    if scenario not in MESHED:
        assert "linkerd" not in res
        return
    assert res["linkerd"]["cmd"] == "bash k8s/linkerd/ensure-linkerd.sh"
    # Before every cluster resource: the pods must meet Linkerd's injector, and the canary's
    # GRPCRoute (uncategorized) needs the Gateway API CRDs the script installs.
    for other in tilt.assembly.names():
        if other != "linkerd":
            assert tilt.assembly.deploys_before("linkerd", other), other
    for workload in tilt.assembly.by_name:
        assert "linkerd" in tilt.assembly.waits_for(workload), workload


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
def test_the_namespace_and_what_pods_mount_exist_before_the_pods(tilt_up, docs_of, scenario):
    tilt = tilt_up(scenario=scenario)
    assembly = tilt.assembly
    docs = docs_of(scenario)
    (ns,) = [d for d in docs if d["kind"] == "Namespace"]
    assert ns["metadata"]["name"] == catalogue.namespace(scenario)
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    for deployment in [d for d in docs if d["kind"] == "Deployment"]:
        workload = assembly.holder(deployment)
        spec = deployment["spec"]["template"]["spec"]
        needs = [ns, by_name[("ServiceAccount", spec["serviceAccountName"])]]
        needs += [
            by_name[("ConfigMap", v["configMap"]["name"])]
            for v in spec.get("volumes", [])
            if "configMap" in v
        ]
        for obj in needs:
            holder = assembly.holder(obj)
            assert holder == workload or assembly.deploys_before(holder, workload), (
                f"{obj['kind']}/{obj['metadata']['name']} may come after {workload}"
            )


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
    tilt = tilt_up(scenario=scenario)
    res = resources(tilt)
    if scenario != "xds":
        assert "xds" not in res
        return
    assert tilt.assembly.deploys_before("xds", "client")
    # Its ClusterRole and binding are cluster-wide (their name carries the namespace): Tilt
    # leaves them uncategorized, applied before the control plane starts.
    assert held(tilt)[tilt_assembly.UNCATEGORIZED] >= {
        ("ClusterRole", "grpc-lb-xds-control-plane"),
        ("ClusterRoleBinding", "grpc-lb-xds-control-plane"),
    }
    assert tilt.assembly.deploys_before(tilt_assembly.UNCATEGORIZED, "xds")


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


# -- the scenario list and the meshed set come from the catalogue


def test_the_scenario_file_is_what_the_catalogue_writes():
    assert scenario_file.PATH.read_text() == scenario_file.render(), (
        f"{scenario_file.PATH.name} is stale: run `{scenario_file.COMMAND}`"
    )


def test_the_tiltfile_takes_its_scenarios_from_the_scenario_file(tilt_up):
    tilt = tilt_up()
    assert [c["path"] for c in tilt.calls["read_json"]] == ["k8s/scenarios.json"]
    assert "SCENARIOS = [" not in TILTFILE
    assert '"linkerd", "canary"' not in TILTFILE
    listed = json.loads(scenario_file.PATH.read_text())
    assert listed["names"] == list(catalogue.names())
    assert set(listed["meshed"]) == MESHED
    for scenario in listed["names"]:
        tilt_up(scenario=scenario)


# -- the stand-in refuses what Tilt refuses

OLD_TILTFILE = (ROOT / "tests" / "tiltfiles" / "objects-name-grouped-services.Tiltfile").read_text()
GROUPED = re.compile(
    r'No object identified by the fragment "[a-z-]+:service" could be found in remaining YAML'
)


@pytest.mark.parametrize("scenario", OVERLAYS)
def test_a_tiltfile_that_names_a_service_tilt_grouped_does_not_load(kustomize_dir, scenario):
    # The Tiltfile this project had: `tilt up` and `tilt down` stopped on its first
    # `objects=["...:service"]`, for every scenario (tilt-dev/tilt, the objects loop of
    # assembleK8sV2 and TestK8sResourceObjectsCantIncludeSameObjectTwice).
    with pytest.raises(TiltfileError, match=GROUPED):
        evaluate(kustomize_dir, {"scenario": scenario}, OLD_TILTFILE)


def minimal(*lines: str) -> str:
    return "\n".join(['k8s_yaml(kustomize("k8s/overlays/headless"))', *lines]) + "\n"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (minimal('k8s_resource("server", objects = ["server:service"])'), GROUPED.pattern),
        # The same Service through a resource of its own: Tilt grouped it already.
        (
            minimal('k8s_resource(new_name = "svc", objects = ["server:service"])'),
            GROUPED.pattern,
        ),
        # Two resources cannot take one object.
        (
            minimal(
                'k8s_resource("server", objects = ["server:serviceaccount"])',
                'k8s_resource("client", objects = ["server:serviceaccount"])',
            ),
            "could be found in remaining YAML",
        ),
        (minimal('k8s_resource("server", objects = ["server"])'), "is not a unique fragment"),
        (minimal('k8s_resource("nope")'), 'specified unknown resource "nope"'),
        (
            minimal('k8s_resource(objects = ["client:serviceaccount"])'),
            "doesn't provide a new_name",
        ),
        (minimal('k8s_resource(new_name = "x")'), "doesn't specify a workload or any objects"),
        (minimal('k8s_resource("server")', 'k8s_resource("server")'), "already called for server"),
        (minimal('k8s_resource("client", new_name = "server")'), "already exists a resource"),
        (
            minimal('k8s_resource("client", resource_deps = ["namespace"])'),
            "dependency on unknown resource namespace",
        ),
        (
            minimal(
                'k8s_resource("client", resource_deps = ["server"])',
                'k8s_resource("server", resource_deps = ["client"])',
            ),
            "cycle detected",
        ),
        (minimal('k8s_resource("server", labels = ["-servers"])'), "not a valid label"),
        (minimal('k8s_yaml(kustomize("k8s/overlays/headless"))'), "Duplicate YAML: Namespace"),
    ],
)
def test_the_stand_in_stops_the_load_where_tilt_does(kustomize_dir, source, message):
    with pytest.raises(TiltfileError, match=message):
        evaluate(kustomize_dir, {}, source)


def test_a_fragment_names_an_object_tilt_left_uncategorized(kustomize_dir):
    tilt = evaluate(
        kustomize_dir,
        {},
        minimal(
            'k8s_resource(new_name = "setup", objects = ["grpc-lb-headless:namespace"])',
            'k8s_resource("client", objects = ["CLIENT:ServiceAccount"],',
            '             resource_deps = ["setup"])',
        ),
    )
    groups = held(tilt)
    assert groups["setup"] == {("Namespace", "grpc-lb-headless")}
    assert ("ServiceAccount", "client") in groups["client"]
    # Fragments are matched whole and without case; the setup resource has no pods.
    assert tilt.assembly.by_name["setup"].manually_grouped


def write_yaml(tmp_path: Path, *docs: dict[str, Any]) -> str:
    path = tmp_path / "objects.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return str(path)


def deployment(name: str, labels: dict[str, str], image: str = "hellolb-server") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": name, "image": image}]},
            },
        },
    }


def service(name: str, selector: dict[str, str] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": [{"port": 80}]}
    if selector is not None:
        spec["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "ns"},
            "spec": spec}  # fmt: skip


def test_grouping_takes_services_by_selector_first_workload_first(kustomize_dir, tmp_path):
    path = write_yaml(
        tmp_path,
        deployment("a", {"app": "a", "tier": "x"}),
        deployment("b", {"app": "b", "tier": "x"}, image="envoyproxy/envoy:v1.40.0"),
        service("tier", {"tier": "x"}),  # selects both: the first workload takes it
        service("b", {"app": "b"}),
        service("nobody", {"app": "c"}),  # selects no pod: uncategorized
        service("external", None),  # no selector selects every pod (label.go)
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns"}},
    )
    tilt = evaluate(kustomize_dir, {}, f'k8s_yaml("{path}")\n')
    groups = held(tilt)
    assert groups["a"] == {("Deployment", "a"), ("Service", "tier"), ("Service", "external")}
    # A pulled image makes a workload too.
    assert groups["b"] == {("Deployment", "b"), ("Service", "b")}
    assert groups[tilt_assembly.UNCATEGORIZED] == {("Service", "nobody"), ("ConfigMap", "a")}


def test_workloads_of_one_name_are_told_apart_by_kind_then_namespace(kustomize_dir, tmp_path):
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "a", "namespace": "ns"},
           "spec": {"template": deployment("a", {"app": "j"})["spec"]["template"]}}  # fmt: skip
    other = deployment("a", {"app": "o"})
    other["metadata"]["namespace"] = "other"
    path = write_yaml(tmp_path, deployment("a", {"app": "a"}), job, other)
    tilt = evaluate(kustomize_dir, {}, f'k8s_yaml("{path}")\n')
    assert [r.name for r in tilt.assembly.resources] == [
        "a:deployment:ns",
        "a:job",
        "a:deployment:other",
    ]


# -- tilt down


@pytest.mark.parametrize("scenario", OVERLAYS)
@pytest.mark.parametrize("delete_namespaces", [True, False])
def test_tilt_down_loads_the_same_way_and_deletes_what_up_deployed(
    tilt_up, docs_of, scenario, delete_namespaces
):
    # `tilt down -- --scenario=x` runs the same load (so it stops wherever `tilt up` stops),
    # then deletes every object of every resource; the namespace only when asked.
    deleted = tilt_assembly.down(tilt_up(scenario=scenario).assembly,
                                 delete_namespaces=delete_namespaces)  # fmt: skip
    expected = {(d["kind"], d["metadata"]["name"]) for d in docs_of(scenario)}
    if not delete_namespaces:
        expected -= {("Namespace", catalogue.namespace(scenario))}
    assert {(d["kind"], d["metadata"]["name"]) for d in deleted} == expected
