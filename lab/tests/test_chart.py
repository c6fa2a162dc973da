"""A run's chart shows the run: its lines, bars and marks are the saved counts and events.

The saved results in ``data/`` come from two real lab runs (``log_dir`` rewritten to the
default's form), kept so that these tests need no run:

- ``headless-floor``: ``hellolb-lab run headless --phases rollout --warmup 3 --steady 2
  --settle 3 --client-env DNS_MIN_TIME_BETWEEN_RESOLUTIONS=3600s``: the client may not look the
  name up again, so the new servers never answer and calls fail once the old servers are gone;
- ``maxage``: ``hellolb-lab run maxage --phases crash --warmup 3 --steady 2 --settle 3``.

Every scenario's real run is charted and compared with its client's log in
``test_scenarios.py``; the command line's ``--chart`` on a real run in ``test_cli.py``.
"""

import json
import math
import tomllib
from pathlib import Path

import pytest
from hellolb_lab import __main__ as main
from hellolb_lab import chart
from hellolb_lab.errors import LabError

DATA = Path(__file__).parent / "data"


def saved(name):
    return chart.load(DATA / f"{name}.results.json")


def lines_of(figure):
    """Each server's drawn line, by its gid: (x, y)."""
    return {
        line.get_gid(): (list(line.get_xdata()), list(line.get_ydata()))
        for ax in figure.axes
        for line in ax.get_lines()
        if line.get_gid() not in (None, "pushes")
    }


def bars_of(figure):
    """The failed calls' bars (the last row): (centre, height)."""
    return [(p.get_x() + p.get_width() / 2, p.get_height()) for p in figure.axes[-1].patches]


def marks_of(figure):
    """The marks' letters, by gid, and where they stand on the x axis."""
    return {
        t.get_gid(): t.xy[0] for t in figure.axes[0].texts if str(t.get_gid()).startswith("mark-")
    }


def same(drawn, counts):
    """Drawn values equal the counts where the server existed (``nan`` elsewhere)."""
    return all(math.isnan(d) or d == c for d, c in zip(drawn, counts, strict=True))


@pytest.mark.parametrize("name", ["headless-floor", "maxage"])
def test_each_servers_line_is_its_saved_answers_per_second(name):
    results = saved(name)
    picture = results["picture"]
    figure = chart.draw(chart.chart_data(results))
    lines = lines_of(figure)
    assert list(lines) == list(picture["answers"])
    step = picture["step_s"]
    blanks = 0
    for server, counts in picture["answers"].items():
        x, y = lines[server]
        assert x == pytest.approx([(i + 0.5) * step for i in range(len(counts))])
        assert same(y, counts), server
        # every answer is drawn: nothing is lost where the server is blank
        assert sum(v for v in y if not math.isnan(v)) == sum(counts)
        # blank only before the server started or after it left (a rollout's old servers)
        started = picture["started"][server]
        gone = picture["gone"].get(server, math.inf)
        blank = [i for i, v in enumerate(y) if math.isnan(v)]
        assert all((i + 1) * step <= started or i * step >= gone for i in blank), server
        blanks += len(blank)
    assert blanks > 0  # the rollout's servers came and went within the run


def test_failed_calls_are_bars_in_their_seconds_and_add_up_to_the_phases_count():
    results = saved("headless-floor")
    picture = results["picture"]
    bars = bars_of(chart.draw(chart.chart_data(results)))
    step = picture["step_s"]
    assert bars == [((i + 0.5) * step, n) for i, n in enumerate(picture["failed"]) if n]
    # every failure came in the rollout, and the rollout's own count is the verdict's
    assert sum(n for _, n in bars) == picture["failed_total"] > 0
    assert picture["failed_total"] == results["verdict"]["findings"]["rollout"]["failed"]
    marks = {m["label"]: m["t"] for m in picture["marks"]}
    rollout = marks["rollout restart of 5 servers"]
    assert all(x > rollout for x, _ in bars)


@pytest.mark.parametrize("name", ["headless-floor", "maxage"])
def test_marks_stand_at_the_events_times_lettered_in_order(name):
    results = saved(name)
    data = chart.chart_data(results)
    drawn = marks_of(chart.draw(data))
    events = results["picture"]["marks"]
    assert drawn == {f"mark-{chr(ord('A') + i)}": m["t"] for i, m in enumerate(events)}
    assert [label for _, _, label in data.marks] == [m["label"] for m in events]
    scale_up = results["verdict"]["scale_at"] - results["picture"]["start"]
    assert drawn["mark-A"] == pytest.approx(scale_up, abs=0.002)


def test_the_title_and_colours_tell_headless_from_maxage():
    headless, maxage = saved("headless-floor"), saved("maxage")
    h, m = chart.chart_data(headless), chart.chart_data(maxage)
    assert "new servers never all reached (0 of 2)" in h.title
    assert "70 failed calls" in h.title
    assert "2 checks failed" in h.title  # the rollout's, with no lookup allowed
    reached = maxage["verdict"]["time_to_all_new"]
    assert f"all 2 new servers within {reached:.1f} s" in m.title
    assert "every check passed" in m.title
    for data in (h, m):
        assert [s for s, g in data.groups.items() if g == chart.NEW] == ["server-4", "server-5"]

    def new_answers(data):
        return sum(v for s in ("server-4", "server-5") for v in data.answers[s] if v == v)

    assert new_answers(h) == 0
    assert new_answers(m) == sum(maxage["picture"]["answers"]["server-4"]) + sum(
        maxage["picture"]["answers"]["server-5"]
    )
    assert new_answers(m) > 0


@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_chart_redraws_a_saved_run_without_running_it(tmp_path, suffix, capsys):
    out = tmp_path / f"run{suffix}"
    assert main.main(["chart", str(DATA / "headless-floor.results.json"), "--out", str(out)]) == 0
    assert f"chart written to {out}" in capsys.readouterr().out
    body = out.read_bytes()
    if suffix == ".png":
        assert body.startswith(b"\x89PNG\r\n\x1a\n")
        return
    text = body.decode()
    assert len(body) < 60_000  # small: text as text, one path per line
    for server in saved("headless-floor")["picture"]["answers"]:
        assert f'<g id="{server}">' in text
    assert "<text" in text
    assert "headless: new servers never all reached" in text
    assert 'style="fill: #ffffff"' in text  # a white page, readable on dark themes too
    again = tmp_path / "again.svg"
    main.main(["chart", str(DATA / "headless-floor.results.json"), "--out", str(again)])
    assert again.read_bytes() == body


def test_bad_input_is_refused_clearly(tmp_path, capsys):
    tour = tmp_path / "tour.json"
    tour.write_text(json.dumps([saved("maxage"), saved("maxage")]))
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"scenario": "maxage", "verdict": {}}))
    with pytest.raises(LabError, match="holds 2 runs"):
        chart.load(tour)
    with pytest.raises(LabError, match="is not JSON"):
        chart.load(broken)
    with pytest.raises(LabError, match="holds no run's picture"):
        chart.load(old)
    with pytest.raises(LabError, match="cannot read"):
        chart.load(tmp_path / "missing.json")
    assert main.main(["chart", str(broken), "--out", str(tmp_path / "x.svg")]) == 2
    assert "is not JSON" in capsys.readouterr().err
    assert not (tmp_path / "x.svg").exists()
    # an unknown format is refused before a run starts
    with pytest.raises(SystemExit) as exc:
        main.parser().parse_args(["run", "headless", "--chart", "run.pdf"])
    assert exc.value.code == 2
    assert "a chart is .svg or .png, not 'run.pdf'" in capsys.readouterr().err


def test_the_plotting_library_is_the_labs_alone():
    """The service images install their package's dependencies from uv.lock: matplotlib must
    not be among them."""
    lock = tomllib.loads((Path(__file__).resolve().parents[2] / "uv.lock").read_text())
    needs = {p["name"]: [d["name"] for d in p.get("dependencies", ())] for p in lock["package"]}

    def reachable(name):
        seen, todo = set(), [name]
        while todo:
            for dep in needs.get(todo.pop(), ()):
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen

    assert "matplotlib" in reachable("hellolb-lab")
    for service in ("hello-server", "hello-client", "hellolb"):
        assert "matplotlib" not in reachable(service), service
