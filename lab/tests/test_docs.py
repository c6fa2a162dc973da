"""The docs agree with the catalogue: one page per scenario stating its record, the front page's
table, the bound rules; and every relative link in the docs leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hellolb_lab import catalogue, judging
from hellolb_lab.catalogue import Scenario

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
PAGES = sorted([REPO / "README.md", *DOCS.rglob("*.md")])
LINK = re.compile(r"\]\(([^)\s]+)\)")


def table_rows(text: str) -> list[list[str]]:
    """The cells of the first Markdown table in ``text``, header and ruler left out."""
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("|"):
            lines.append(line)
        elif lines:
            break
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return [row for row in rows[2:] if row]


def record_rows(s: Scenario) -> dict[str, str]:
    """What a scenario page's first table must say, from the record."""
    phases = [f"`{p.name}`" + ("" if p.on_cluster else " (lab only)") for p in s.all_phases]
    return {
        "how calls are balanced": s.balancing,
        "what you see": s.shows,
        "runs": "in the lab and on a cluster" if s.in_lab else "on a cluster only",
        "hops": str(s.hops),
        "new servers": s.reach.value,
        "bound": s.bound.value,
        "in a rollout": s.rollout,
        "in a crash": s.crash,
        "checks": "; ".join(judging.check_names(s)),
        "phases after the scale-up": ", ".join(phases) or "none",
        "cluster watch": f"{s.watch.warmup_s:g} s before the scale-up, "
        f"{s.watch.observe_s:g} s after",
    }


def test_one_page_per_scenario():
    pages = sorted(p.stem for p in (DOCS / "scenarios").glob("*.md"))
    assert pages == sorted(catalogue.names())


@pytest.mark.parametrize("scenario", catalogue.SCENARIOS, ids=lambda s: s.name)
def test_each_page_states_its_record(scenario):
    text = (DOCS / "scenarios" / f"{scenario.name}.md").read_text()
    assert text.startswith(f"# {scenario.name}: ")
    assert dict(table_rows(text)) == record_rows(scenario)


def test_the_front_page_table_is_the_catalogues():
    rows = table_rows((REPO / "README.md").read_text())
    expected = [
        [f"[`{s.name}`](docs/scenarios/{s.name}.md)", s.balancing, s.shows]
        for s in catalogue.SCENARIOS
    ]
    assert rows == expected


def test_the_lab_page_lists_every_bound_rule():
    text = (DOCS / "lab.md").read_text()
    for rule in catalogue.Bound:
        assert rule.value in text, rule


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_lead_to_files_and_headings(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{target} in {page.name}"
        if anchor and resolved.is_file():
            assert anchor in anchors(resolved), f"{target} in {page.name}"


def test_the_streams_page_states_each_scenarios_stream_expectation():
    rows = table_rows((DOCS / "streams.md").read_text())
    expected = [
        [f"`{s.name}`", e.start.value, e.moves.value, e.crash_code or "not run", e.advice]
        for s in catalogue.SCENARIOS
        for e in [s.streams]
    ]
    assert rows == expected
