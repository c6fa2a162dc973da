"""Facts the pages and the manifests' comments state about the catalogue and about upstream
projects, checked against their one source (the lab's catalogue, the rendered overlays, and
``tests/upstream_facts.py``), so that adding a scenario or moving to a new Linkerd release cannot
leave a sentence behind."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

from hellolb_lab import catalogue

ROOT = Path(__file__).resolve().parent.parent
_FACTS = ROOT / "tests" / "upstream_facts.py"
_spec = importlib.util.spec_from_file_location("upstream_facts", _FACTS)
assert _spec is not None
assert _spec.loader is not None
facts = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = facts
_spec.loader.exec_module(facts)

NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}
NUMBERS |= {"nine": 9, "ten": 10, "eleven": 11, "twelve": 12}
COUNTED = re.compile(
    r"\b(?:all|the) (" + "|".join(NUMBERS) + r") scenarios\b([^.]*)", re.IGNORECASE
)
#: "Linkerd 2.19 (1.29 to 1.35)" or "2.19 (Kubernetes 1.29 to 1.35)"
LINKERD_RANGE = re.compile(r"\b(2\.\d+) \((?:Kubernetes )?(1\.\d+) to (1\.\d+)")


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def manifests() -> list[Path]:
    return sorted(p for p in (ROOT / "k8s").rglob("*") if p.suffix in {".yaml", ".yml", ".sh"})


def section(page: Path, title: str) -> str:
    text = page.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_the_walkthrough_list_links_every_scenario_page_in_catalogue_order():
    listed = re.findall(
        r"\[(\w+)\]\(scenarios/(\w+)\.md\)", section(ROOT / "docs" / "cluster.md", "Walkthroughs")
    )
    assert [name for name, _ in listed] == list(catalogue.names())
    assert all(name == page for name, page in listed)


def test_the_namespaces_said_to_be_privileged_are_the_ones_that_are(docs_of):
    privileged = set()
    for name in catalogue.names():
        for doc in docs_of(name):
            labels = doc["metadata"].get("labels", {})
            if doc["kind"] == "Namespace":
                enforce = labels.get("pod-security.kubernetes.io/enforce")
                assert enforce in {"restricted", "privileged"}, (name, enforce)
                if enforce == "privileged":
                    privileged.add(doc["metadata"]["name"])
    text = (ROOT / "docs" / "scenarios" / "linkerd.md").read_text()
    (sentence,) = [
        s
        for s in re.split(r"(?<=\.)\s", " ".join(text.split()))
        if "every other scenario namespace enforces" in s
    ]
    assert set(re.findall(r"`(grpc-lb-[a-z]+)`", sentence)) == privileged
    assert privileged, "the meshed scenarios need privileged namespaces for Linkerd's init"


def test_a_count_of_scenarios_in_the_pages_is_the_catalogues():
    for page in pages():
        for match in COUNTED.finditer(page.read_text()):
            said = NUMBERS[match.group(1).lower()]
            lab = "lab" in match.group(2)
            expected = len(catalogue.lab_names() if lab else catalogue.names())
            where = f"{page.relative_to(ROOT)}: {match.group(0)!r}"
            assert said == expected, where


def test_no_manifest_comment_counts_the_scenarios():
    # A count in a comment goes stale with the next scenario; name the rule instead.
    counts = re.compile(r"\ball (" + "|".join(NUMBERS) + r")\b", re.IGNORECASE)
    for path in manifests():
        for line in path.read_text().splitlines():
            assert not counts.search(line), f"{path.relative_to(ROOT)}: {line.strip()}"


def test_no_namespace_is_named_by_its_bare_scenario_name():
    # Every scenario lives in grpc-lb-<name>: `-n proxy` in a comment or a page is a command
    # that finds nothing.
    names = "|".join(catalogue.names())
    bare = re.compile(rf"(?:-n|--namespace)[ =]({names})\b(?!-)")
    for path in [*pages(), *manifests(), ROOT / "Makefile", ROOT / "skaffold.yaml"]:
        for line in path.read_text().splitlines():
            assert not bare.search(line), f"{path.relative_to(ROOT)}: {line.strip()}"


def test_every_linkerd_kubernetes_range_stated_is_linkerds():
    seen = set()
    for path in [*pages(), *manifests()]:
        for release, oldest, newest in LINKERD_RANGE.findall(path.read_text()):
            where = f"{path.relative_to(ROOT)}: Linkerd {release} ({oldest} to {newest})"
            assert release in facts.LINKERD_KUBERNETES, where
            low, high = facts.LINKERD_KUBERNETES[release]
            assert (oldest, newest) == (facts.version_text(low), facts.version_text(high)), where
            seen.add(release)
    # The prerequisites table names every release the project supports.
    assert seen == set(facts.LINKERD_KUBERNETES)
