"""The container checks: the images built by a real engine and run as a cluster runs them.

They take minutes (image builds, container starts), so they run only through
``make containers`` (which sets ``CONTAINER_TESTS=1``), not in ``make test``; there they are
skipped with the reason. Where no engine is installed they are skipped and say which to
install.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


podrun = _load("podrun", HERE / "podrun.py")
liveupdate = _load("liveupdate", HERE / "liveupdate.py")
_checks = _load("repository_checks", ROOT / "tests" / "conftest.py")

ENABLED = os.environ.get("CONTAINER_TESTS") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # An image build inside a fixture takes minutes when the cache is cold.
    mark = (
        pytest.mark.timeout(1800)
        if ENABLED
        else pytest.mark.skip(reason="container checks run with `make containers` (minutes)")
    )
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(mark)


@pytest.fixture(scope="session")
def engine() -> Any:
    name = podrun.find_engine()
    if name is None:
        pytest.skip("no container engine: install podman (apt-get install podman runc) or docker")
    return podrun.Engine(name)


@pytest.fixture(scope="session")
def pod_engine(engine: Any) -> Any:
    """The engine, where it has pods (a network namespace shared by a pod's containers, which
    the translated pod specs need): podman."""
    if engine.name != "podman":
        pytest.skip(f"pods need podman; {engine.name} has none")
    return engine


def build(engine: Any, *images: str) -> None:
    """containers/images.sh, the same build as `make images`: cached layers make it quick
    when nothing changed, and it rebuilds what did."""
    result = subprocess.run(
        [str(ROOT / "containers" / "images.sh"), *images],
        env={**podrun.engine_env(), "ENGINE": engine.name},
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]


@pytest.fixture(scope="session")
def service_images(engine: Any) -> dict[str, str]:
    build(engine, "server", "client")
    return {"server": "hellolb-server:latest", "client": "hellolb-client:latest"}


@pytest.fixture(scope="session")
def lab_image(engine: Any) -> str:
    build(engine, "lab")
    return "hellolb-lab:latest"


@pytest.fixture(scope="session")
def rendered() -> Callable[[str, str, str], dict[str, Any]]:
    """``rendered(scenario, kind, name)``: one object of the overlay as ``kubectl kustomize``
    renders it (the helpers of tests/conftest.py, rendered once per session)."""
    return lambda scenario, kind, name: _checks.find_doc(
        _checks.rendered_docs(scenario), kind, name
    )


@pytest.fixture(scope="session")
def tiltfile() -> Callable[..., Any]:
    """``tiltfile(**args)``: the Tiltfile evaluated by starlark-go with the recording
    stand-ins of tests/test_tiltfile.py (loaded from there, not copied)."""
    standins = _load("tiltfile_standins", ROOT / "tests" / "test_tiltfile.py")
    return lambda **args: standins.evaluate(_checks.kustomize, args)
