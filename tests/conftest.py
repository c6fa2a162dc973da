"""Shared fixtures of the repository-level checks (k8s, Skaffold, Tilt, Envoy configs).

Tools come from the workspace virtualenv (the bin folder of ``sys.executable``), then PATH;
a test that needs a missing tool is skipped and says which one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hellolb_lab import overlay

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
SCENARIOS = ("clusterip", "headless", "maxage", "proxy", "sidecar", "linkerd", "xds")


def find_tool(name: str) -> str | None:
    """``name`` from the virtualenv's bin folder, else from PATH."""
    local = Path(sys.executable).parent / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


def require_tool(name: str) -> str:
    path = find_tool(name)
    if path is None:
        pytest.skip(f"{name} is not installed (expected in the workspace venv or on PATH)")
    return path


def kustomize(path: Path) -> str:
    """``kubectl kustomize path`` with the real kubectl, isolated from any kubeconfig."""
    kubectl = require_tool("kubectl")
    result = subprocess.run(
        [kubectl, "kustomize", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "KUBECONFIG": os.devnull},
    )
    assert result.returncode == 0, f"kubectl kustomize {path} failed:\n{result.stderr}"
    return result.stdout


_RENDERED: dict[str, str] = {}


def rendered_text(scenario: str) -> str:
    """The overlay of ``scenario`` rendered once per test session."""
    if scenario not in _RENDERED:
        _RENDERED[scenario] = kustomize(K8S / "overlays" / scenario)
    return _RENDERED[scenario]


def rendered_docs(scenario: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(rendered_text(scenario)) if isinstance(d, dict)]


def find_doc(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


# Test modules are imported with --import-mode=importlib and cannot import this file, so the
# helpers reach them as fixtures.


@pytest.fixture(params=SCENARIOS)
def scenario(request: pytest.FixtureRequest) -> str:
    """Each scenario in turn."""
    return request.param


@pytest.fixture
def tool() -> Callable[[str], str]:
    """Path of a tool; skips the test when it is missing."""
    return require_tool


@pytest.fixture
def render() -> Callable[[str], str]:
    """Rendered YAML text of a scenario's overlay."""
    return rendered_text


@pytest.fixture
def overlay_of() -> Callable[[str], overlay.Overlay]:
    """A scenario's overlay as the lab and the cluster check read it (rendered once)."""
    return lambda scenario: overlay.parse(rendered_text(scenario), scenario)


@pytest.fixture
def docs_of() -> Callable[[str], list[dict[str, Any]]]:
    """Rendered objects of a scenario's overlay."""
    return rendered_docs


@pytest.fixture
def doc() -> Callable[[list[dict[str, Any]], str, str], dict[str, Any]]:
    """The one object of a kind and name among rendered objects."""
    return find_doc


@pytest.fixture
def kustomize_dir() -> Callable[[Path], str]:
    """Render any kustomization folder with the real kubectl."""
    return kustomize
