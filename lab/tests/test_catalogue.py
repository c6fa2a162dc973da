"""The catalogue is the one list of scenarios: the overlay folders, the Skaffold profiles, the
Tilt ``--scenario`` choices and the CLI's choices are its names, and everything its records name
(checks, phases) exists."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hellolb_lab import __main__ as cli
from hellolb_lab import catalogue, judging
from hellolb_lab.errors import LabError
from hellolb_lab.phases import PHASES

starlark_go = pytest.importorskip("starlark_go", reason="starlark-go is not installed")
starlark_go.configure_starlark(allow_global_reassign=True)

REPO = Path(__file__).resolve().parents[2]
NAMES = catalogue.names()
#: Tilt's modules (config, os, os.path) as flat names: starlark-go has no modules.
MODULE_CALL = re.compile(r"\b(config|os\.path|os)\.([a-z_]+)\b")


class TiltfileError(Exception):
    """The Tiltfile called fail(), or Tilt would refuse its arguments."""


class Tilt:
    """Stand-ins for the Tilt builtins a Tiltfile uses to choose and deploy its overlay.

    Paths are relative to the Tiltfile's folder, as in Tilt. Builtins that only build images or
    group resources record nothing: this harness answers one question, which overlay is
    deployed for a ``--scenario`` value.
    """

    def __init__(self, args: dict[str, str]) -> None:
        self.args = args
        self.defined: set[str] = set()
        self.kustomized: list[str] = []
        self.rendered: list[str] = []
        self.deployed: list[str] = []
        # starlark-go holds weak references: the callables live as long as this object.
        ignore = self._ignore
        self.builtins: dict[str, Any] = {
            "config_define_string": self._define,
            "config_parse": self._parse,
            "fail": self._fail,
            "kustomize": self._kustomize,
            "k8s_yaml": self._k8s_yaml,
            "listdir": self._listdir,
            # Tilt's read_json (api/__init__.py): the file relative to the Tiltfile, parsed.
            "read_json": lambda path, default=None: json.loads((REPO / path).read_text()),
            "os_path_basename": lambda path: Path(path).name,
            "os_path_dirname": lambda path: str(Path(path).parent),
            "os_path_join": lambda path, *paths: str(Path(path, *paths)),
            "os_path_exists": lambda path: (REPO / path).exists(),
            "os_getcwd": lambda: str(REPO),
            "os_name": "posix",
            "os_environ": {},
            **dict.fromkeys(
                ("docker_build", "k8s_resource", "local_resource", "watch_file"), ignore
            ),
            **dict.fromkeys(("fall_back_on", "sync", "run", "port_forward"), ignore),
        }

    @staticmethod
    def _ignore(*args: Any, **kwargs: Any) -> None:
        return None

    def _define(self, name: str, args: bool = False, usage: str = "") -> None:
        self.defined.add(name)

    def _parse(self) -> dict[str, str]:
        unknown = set(self.args) - self.defined
        if unknown:
            raise TiltfileError(f"unknown Tiltfile args: {sorted(unknown)}")
        return dict(self.args)

    def _fail(self, msg: str) -> None:
        raise TiltfileError(msg)

    def _kustomize(self, pathToDir: str, kustomize_bin: Any = None, flags: Any = ()) -> str:  # noqa: N803
        self.kustomized.append(str((REPO / pathToDir).resolve().relative_to(REPO)))
        self.rendered.append(f"objects of {pathToDir}")
        return self.rendered[-1]

    def _k8s_yaml(self, yaml: Any, allow_duplicates: bool = False) -> None:
        self.deployed.append(yaml)

    def _listdir(self, directory: str, recursive: bool = False) -> list[str]:
        """Tilt's listdir: the files (not folders) in ``directory``, as absolute paths."""
        root = REPO / directory
        found = root.rglob("*") if recursive else root.iterdir()
        return sorted(str(p) for p in found if p.is_file())


def tilt_up(**args: str) -> Tilt:
    tilt = Tilt(args)
    source = MODULE_CALL.sub(
        lambda m: m[1].replace(".", "_") + "_" + m[2], (REPO / "Tiltfile").read_text()
    )
    try:
        starlark_go.Starlark(globals=tilt.builtins).exec(source, filename="Tiltfile")
    except starlark_go.EvalError as error:
        raise TiltfileError(str(error)) from error
    return tilt


def test_names_are_the_overlay_folders():
    folders = sorted(p.name for p in (REPO / "k8s" / "overlays").iterdir() if p.is_dir())
    assert sorted(NAMES) == folders


def test_names_are_the_skaffold_profiles_and_each_deploys_its_overlay():
    config = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    profiles = {p["name"]: p for p in config["profiles"]}
    assert sorted(profiles) == sorted(NAMES)
    for name, profile in profiles.items():
        assert profile["manifests"]["kustomize"]["paths"] == [f"k8s/overlays/{name}"], name


@pytest.mark.parametrize("name", NAMES)
def test_tilt_accepts_each_name_and_deploys_its_overlay(name):
    tilt = tilt_up(scenario=name)
    assert tilt.kustomized == [f"k8s/overlays/{name}"]
    assert tilt.deployed == tilt.rendered


def test_tilt_refuses_a_name_outside_the_catalogue():
    with pytest.raises(TiltfileError, match="not-a-scenario"):
        tilt_up(scenario="not-a-scenario")


def test_the_cli_offers_the_catalogue():
    parser = cli.parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    choices = {
        name: next(a.choices for a in p._actions if a.dest == "scenario")
        for name, p in sub.choices.items()
        # uneven compares balancers on one fault, not scenarios; chart reads a saved run
        if name not in ("tour", "bench", "uneven", "chart")
    }
    assert choices == {"run": NAMES, "watch": NAMES, "e2e": NAMES}
    bench = next(a for a in sub.choices["bench"]._actions if a.dest == "scenarios")
    assert bench.choices == catalogue.lab_names()


@pytest.mark.parametrize("name", NAMES)
def test_each_overlay_deploys_into_its_records_namespace_which_no_tool_owns(overlay_of, name):
    # The cluster check and the log reader look for the scenario's pods in the record's
    # namespace: the rendered overlay must put them there.
    owned = {"default", "kube-system", "kube-public", "linkerd", "linkerd-system", "linkerd-viz"}
    scenario = catalogue.get(name)
    assert overlay_of(name).namespace == scenario.namespace
    assert scenario.namespace not in owned


def test_everything_a_record_names_exists():
    every_check = judging.functions()
    for scenario in catalogue.SCENARIOS:
        assert set(judging.check_names(scenario)) <= set(every_check), scenario.name
        for phase in scenario.all_phases:
            # A scenario that needs a cluster never runs in the lab: its own phases may be
            # the cluster check's only.
            if scenario.in_lab:
                assert PHASES[phase.name].lab is not None, (scenario.name, phase.name)
            if phase.on_cluster:
                assert PHASES[phase.name].cluster is not None, (scenario.name, phase.name)


def test_a_scenario_that_needs_a_cluster_says_why():
    for scenario in catalogue.SCENARIOS:
        if not scenario.in_lab:
            assert scenario.name not in catalogue.lab_names()
            assert "cluster" in (scenario.needs_cluster or "")
    assert catalogue.BASELINE in catalogue.lab_names()


def test_an_unknown_name_is_refused_with_the_known_ones():
    with pytest.raises(LabError, match="known: clusterip, headless"):
        catalogue.get("nope")


def test_every_scenario_says_what_it_does_to_streams():
    for name in catalogue.names():
        wanted = judging.stream_check_names(catalogue.get(name))
        assert set(wanted) <= set(judging.functions()), name
        # every scenario either keeps its streams where they started, or moves them at age
        stay = catalogue.STREAMS_STAY in wanted
        assert stay != (catalogue.STREAMS_MOVE_AT_AGE in wanted), name
