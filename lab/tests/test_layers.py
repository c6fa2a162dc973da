"""The lab's modules form layers: each imports only from its own layer or those below, and no
import leads back to where it started. The layers, bottom to top, are declared here and drawn
in docs/development.md; a new module must be given its layer.

Imports are read with ``ast`` from the source, every one of them: an import made only for the
type checker (under ``if TYPE_CHECKING:``) is a dependency too, and may close no circle. So the
plan, below the stage the phases' steps run on, does not import the phases: it is handed their
registry and asks it what each phase needs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "hellolb_lab"

#: Bottom to top. A module imports from its own layer or a lower one.
LAYERS: tuple[tuple[str, ...], ...] = (
    # The building blocks: errors, processes and their launchers, the client's log lines, the
    # records, the overlays, Envoy's and the lab DNS's configs, the xDS control plane stand-in.
    (
        "errors",
        "polling",
        "procs",
        "launchers",
        "clientlog",
        "options",
        "cli",
        "record",
        "catalogue",
        "deployment",
        "kubelet",
        "dns",
        "envoy",
        "overlay",
        "front",
        "cluster",
        "balancers",
        "xds",
        "xds.policies",
        "xds.resources",
        "xds.stream",
        "xds.watch",
        "xds.server",
        "xds.bootstrap",
        "xds.launch",
        "xds.__main__",
    ),
    # Measuring helpers: counting answers, balance, a phase's window, the finding type.
    ("measure",),
    # Measurements: the verdict of the scale-up, a disruption, the canary's split, the
    # streams, the bounds; and the picture the view draws.
    ("verdict", "disruption", "canary", "streamverdict", "bounds", "view"),
    # The expected behaviours of the scale-up.
    ("checks",),
    # A run planned: in the lab, and on a cluster.
    ("controlplane", "plan", "clusterrun"),
    # A lab run's processes.
    ("stage",),
    # The phases, one module each, and their registry (every module of the package).
    ("phases",),
    # The one judging pipeline.
    ("judging",),
    # Runs: the lab's, the cluster check's, the log reader's, the benchmarks'.
    ("outcome", "timeline", "e2e", "reader", "uneven", "xdsbench", "clientbench", "hopbench"),
    # The report: verdict text, table rows, a run's chart, the commands.
    ("report", "rows", "chart", "bench", "unevencmd", "__main__"),
)
LAYER = {module: i for i, names in enumerate(LAYERS) for module in names}
#: A package whose every module sits in its layer: a new phase needs no line here.
PACKAGE_LAYERS = {"phases": LAYER["phases"]}


def layer_of(module: str) -> int | None:
    package = module.split(".")[0]
    return LAYER.get(module, PACKAGE_LAYERS.get(package) if "." in module else None)


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = path.relative_to(SRC / PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imported(node: ast.AST, known: set[str]) -> set[str]:
    """The lab's modules one import statement names (a package's name where it imports a
    name the package defines)."""
    out: set[str] = set()
    if isinstance(node, ast.Import):
        out |= {a.name for a in node.names if a.name.startswith(PACKAGE)}
    elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE):
        base = node.module or PACKAGE
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            out.add(sub if sub.removeprefix(f"{PACKAGE}.") in known else base)
    return {m.removeprefix(PACKAGE).lstrip(".") for m in out if m != PACKAGE}


def imports(path: Path, known: set[str]) -> set[str]:
    """The lab's modules ``path`` imports, for the interpreter or for the type checker."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        found |= _imported(node, known)
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(path, set(found)) - {name} for name, path in found.items()}


def test_every_module_has_a_layer():
    assert sorted(m for m in modules() if m and layer_of(m) is None) == []


def test_no_module_imports_from_a_layer_above_its_own():
    upward = [
        f"{module} (layer {layer_of(module)}) imports {dep} (layer {layer_of(dep)})"
        for module, deps in graph().items()
        for dep in sorted(deps)
        if (layer_of(dep) or 0) > (layer_of(module) or 0)
    ]
    assert upward == []


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle, each once, as the path that closes it (depth-first search)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == 1:
                found.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_circle():
    assert cycles(graph()) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from hellolb_lab import verdict", {"verdict"}),
        ("from hellolb_lab.phases import PHASES", {"phases"}),
        ("from hellolb_lab.phases import rollout", {"phases.rollout"}),
        ("if TYPE_CHECKING:\n    from hellolb_lab import stage\n", {"stage"}),
        ("def f():\n    from hellolb_lab.xds import launch\n", {"xds.launch"}),
    ],
)
def test_the_walk_reads_imports_as_they_run(tmp_path, source, expected):
    path = tmp_path / "m.py"
    path.write_text(source)
    assert imports(path, set(modules())) == expected


def test_the_search_finds_every_circle_once():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b", "a"]]
