"""The picture: one row per server, idle and not-yet-started told apart, events lettered."""

import io

from hellolb_lab.clientlog import Answer
from hellolb_lab.view import LiveView, Picture, render, series, table


def picture():
    p = Picture(title="headless", start=100.0)
    p.servers = {"server-1": 100.0, "server-2": 100.0, "server-4": 103.0}
    p.answers = [Answer(100.0 + t, s) for t in range(6) for s in ("server-1", "server-2")]
    p.marks = [(103.2, "servers 3 -> 5 in DNS")]
    p.lookups = [100.1, 104.5]
    return p


def test_render_rows_marks_and_idle_servers():
    text = render(picture(), now=106.0)
    lines = text.splitlines()
    row4 = next(line for line in lines if line.startswith("server-4"))
    assert row4.split()[1] == "···"  # started at 3 s, never answered
    assert row4.rstrip().endswith(" 0")
    row1 = next(line for line in lines if line.startswith("server-1"))
    assert "█" in row1
    assert lines[1].strip() == "A"
    assert "A servers 3 -> 5 in DNS at 3.2s" in text
    dns_row = next(line for line in lines if line.startswith("dns"))
    assert dns_row.split("(")[0].rstrip().endswith("*   *")


def test_plain_output_is_progress_lines_then_the_picture():
    out = io.StringIO()
    view = LiveView(out, live=False)
    view.update(picture(), force=True, now=106.0)
    view.finish(picture(), 106.0)
    text = out.getvalue()
    assert text.startswith("[headless")
    assert "\x1b[" not in text
    assert "server-4" in text


def test_live_output_redraws_in_place():
    out = io.StringIO()
    view = LiveView(out, live=True)
    view.update(picture(), force=True, now=105.0)
    view.update(picture(), force=True, now=106.0)
    assert "\x1b[" in out.getvalue()


def test_table():
    text = table([{"a": 1, "b": "x"}], ["a", "b"])
    assert text.splitlines()[0] == "| a | b |"


def test_a_server_that_left_is_blank_from_then_on_and_rows_sort_by_number():
    p = picture()
    p.servers["server-10"] = 101.0
    p.gone["server-4"] = 105.0
    lines = render(p, now=106.0).splitlines()
    rows = [line.split()[0] for line in lines if line.startswith("server-")]
    assert rows == ["server-1", "server-2", "server-4", "server-10"]
    row4 = next(line for line in lines if line.startswith("server-4"))
    assert row4.split()[1] == "··"  # there from 3 s, gone at 5 s
    row10 = next(line for line in lines if line.startswith("server-10"))
    assert row10.split()[1] == "·····"  # there, idle, from 1 s on


def test_progress_lines_sort_servers_by_number():
    p = Picture(title="t", start=100.0)
    p.answers = [Answer(101.0, s) for s in ("server-10", "server-2", "server-1")]
    line = render_progress(p)
    assert line.split("]")[1].split() == [
        "server-1=1",
        "server-2=1",
        "server-10=1",
        "failed=0",
        "limited=0",
    ]


def render_progress(p: Picture) -> str:
    out = io.StringIO()
    LiveView(out, live=False).update(p, force=True, now=102.0)
    return out.getvalue().strip()


def test_series_counts_every_answer_per_second_and_places_the_events():
    p = picture()
    p.answers.append(Answer(106.4, "server-1", 3))  # in the last, partial second
    p.gone = {"server-2": 104.5}
    p.failed = [102.2, 102.9, 105.0]
    p.errors = 3
    data = series(p, end=106.5)
    assert data["answers"]["server-1"] == [1, 1, 1, 1, 1, 1, 3]
    assert data["answers"]["server-2"] == [1, 1, 1, 1, 1, 1, 0]
    assert data["answers"]["server-4"] == [0] * 7
    assert data["started"] == {"server-1": 0.0, "server-2": 0.0, "server-4": 3.0}
    assert data["gone"] == {"server-2": 4.5}
    assert data["failed"] == [0, 0, 2, 0, 0, 1, 0]
    assert data["failed_total"] == 3
    assert data["marks"] == [{"t": 3.2, "label": "servers 3 -> 5 in DNS"}]
    assert data["lookups"] == [0.1, 4.5]
