"""The cluster log reader: kubectl logs lines in, the same view and verdict out."""

import io
import json
import subprocess
import sys
from datetime import UTC, datetime

from hellolb_lab import catalogue, chart, clientlog, reader, report
from hellolb_lab.view import LiveView

T0 = "2026-01-01T10:00:{:02d}.000000Z"


def summary(sec, window, client="client-abc"):
    return json.dumps(
        {
            "event": "client.summary",
            "timestamp": T0.format(sec),
            "client_id": client,
            "by_server_window": window,
            "errors_total_count": 0,
            "level": "info",
        }
    )


LOG = [
    'Defaulted container "client" out of: client, envoy',
    summary(5, {"server-a": 10, "server-b": 10, "server-c": 10}),
    summary(10, {"server-a": 10, "server-b": 10, "server-c": 11}),
    "[pod/client-abc/client] "
    + summary(15, {"server-a": 7, "server-b": 6, "server-c": 6, "server-d": 6, "server-e": 6}),
    "not json {",
]


def test_lines_are_parsed_with_or_without_a_prefix():
    assert clientlog.parse_line(LOG[0]) is None
    assert clientlog.parse_line(LOG[3])["client_id"] == "client-abc"
    assert clientlog.parse_line(LOG[4]) is None


def test_summaries_give_the_view_and_the_verdict():
    state = reader.Reader(catalogue.get("maxage"))
    out = io.StringIO()
    assert reader.read(LOG, state, LiveView(out, live=False)) == len(LOG)
    assert "server-d" in out.getvalue()
    result, checks = state.judge(scale_at=reader.parse_when("2026-01-01T10:00:11Z"))
    assert result.new_servers == ("server-d", "server-e")
    assert result.time_to_all_new == 4.0
    assert all(c.ok for c in checks)


def test_without_a_scale_time_the_first_new_server_marks_it():
    state = reader.Reader(catalogue.get("headless"))
    reader.read(LOG[:3], state, LiveView(io.StringIO(), live=False))
    result, checks = state.judge(expect_servers=5)
    assert state.scale_at_note == "none seen"
    assert len(result.new_servers) == 2
    assert all(c.ok for c in checks)  # nothing reached the two servers that never answered
    state = reader.Reader(catalogue.get("headless"))
    reader.read(LOG, state, LiveView(io.StringIO(), live=False))
    result, checks = state.judge()
    assert state.scale_at_note.startswith("inferred")
    assert not all(c.ok for c in checks)


def watch(lines, *options):
    """``hellolb-lab watch --scenario headless --assert --plain`` fed ``lines`` on stdin."""
    argv = [sys.executable, "-m", "hellolb_lab", "watch", "--scenario", "headless"]
    return subprocess.run(
        [*argv, *options, "--assert", "--plain"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_watch_command_reads_stdin_and_asserts():
    proc = watch(LOG[:3], "--expect-servers", "5")
    assert proc.returncode == 0, proc.stderr
    assert "[ok] no traffic to the new servers" in proc.stdout
    proc = watch(LOG)
    assert proc.returncode == 1
    assert "[FAIL] no traffic to the new servers" in proc.stdout


def test_parse_when_accepts_clock_times():
    assert reader.parse_when("1700000000") == 1700000000.0
    assert (
        reader.parse_when("2026-01-01T10:00:00Z") - reader.parse_when("2026-01-01T09:59:59+00:00")
        == 1.0
    )
    # A clock time is today's, in UTC; with no seconds, on the minute.
    today = datetime.now(UTC).date().isoformat()
    assert reader.parse_when("10:00:00") == reader.parse_when(f"{today}T10:00:00Z")
    assert reader.parse_when("23:59") == reader.parse_when(f"{today}T23:59:00Z")


def response(sec: float, server: str) -> str:
    stamp = f"2026-01-01T10:00:{sec:09.6f}Z"
    return json.dumps(
        {"event": "client.response", "timestamp": stamp, "client_id": "c", "server_id": server}
    )


def test_the_picture_and_the_verdict_count_the_same_answers():
    # The last line's answer is the picture's end: it was left out of the picture's total.
    lines = [response(1 + i * 0.25, f"server-{1 + i % 3}") for i in range(197)]
    state = reader.Reader(catalogue.get("headless"))
    out = io.StringIO()
    reader.read(lines, state, LiveView(out, live=False))
    result, _ = state.judge()
    assert result.answers_total == 197
    assert "answers 197," in out.getvalue()


def test_watch_without_a_scale_up_leaves_the_new_server_checks_unjudged():
    # No server joined: there is nothing to say about new servers, for or against.
    proc = watch(LOG[:3])
    assert proc.returncode == 0, proc.stdout
    assert "[not judged] no traffic to the new servers: no new servers" in proc.stdout
    assert "FAIL" not in proc.stdout


def ended(sec: float, event: str, code: str) -> str:
    stamp = f"2026-01-01T10:00:{sec:09.6f}Z"
    return json.dumps(
        {"event": event, "timestamp": stamp, "client_id": "c", "code": code, "latency_ms": 1.0}
    )


def test_limited_calls_are_shown_and_judged_apart_from_failed_ones():
    lines = [response(1 + i * 0.25, f"server-{1 + i % 3}") for i in range(40)]
    lines[10:10] = [ended(3.6, "client.limited", "RESOURCE_EXHAUSTED")] * 3
    lines[20:20] = [ended(6.1, "client.error", "UNAVAILABLE")]
    state = reader.Reader(catalogue.get("headless"))
    out = io.StringIO()
    reader.read(lines, state, LiveView(out, live=False, plain_interval=0))
    progress = [line for line in out.getvalue().splitlines() if line.startswith("[watch")]
    assert progress[-1].endswith("failed=1 limited=3")
    assert "failed RPCs 1, limited 3" in out.getvalue()
    result, _ = state.judge()
    assert (result.failed_rpcs, result.limited_calls) == (1, 3)
    assert "answers 40, failed RPCs 1, limited 3" in report.format_verdict(state.scenario, result)


def test_limited_calls_take_the_summaries_totals_per_client():
    events = [
        {"event": "client.summary", "client_id": "a", "limited_total": 2, "errors_total_count": 0},
        {"event": "client.summary", "client_id": "a", "limited_total": 5, "errors_total_count": 1},
        {"event": "client.summary", "client_id": "b", "limited_total": 1},
    ]
    assert (clientlog.limited_calls(events), clientlog.failed_rpcs(events)) == (6, 1)


def error(sec: float) -> str:
    stamp = f"2026-01-01T10:00:{sec:09.6f}Z"
    return json.dumps(
        {"event": "client.error", "timestamp": stamp, "client_id": "c", "code": "UNAVAILABLE"}
    )


def test_watch_saves_the_picture_and_charts_it(tmp_path):
    """A cluster's log drawn as a lab run is: answers per server per second, failed calls."""
    lines = [response(1 + i * 0.25, f"server-{1 + i % 3}") for i in range(40)]
    lines += [response(9 + i * 0.5, f"server-{1 + i % 4}") for i in range(8)]
    lines += [error(5.5), error(5.7), error(11.2)]
    lines.sort(key=lambda line: json.loads(line)["timestamp"])
    saved, drawn = tmp_path / "watch.json", tmp_path / "watch.svg"
    proc = watch(lines, "--json", str(saved), "--chart", str(drawn))
    assert f"chart written to {drawn}" in proc.stdout, proc.stderr
    results = chart.load(saved)
    picture = results["picture"]
    # the log's first line is the start: 10:00:01
    assert picture["answers"]["server-1"][:3] == [2, 1, 1]
    assert picture["answers"]["server-4"] == [0] * 9 + [1, 0, 1]
    assert picture["failed"][4:] == [2, 0, 0, 0, 0, 0, 1, 0]
    assert picture["failed_total"] == 3
    data = chart.chart_data(results)
    figure = chart.draw(data)
    lines_drawn = {ln.get_gid(): ln for ax in figure.axes for ln in ax.get_lines() if ln.get_gid()}
    assert sum(sum(y for y in ln.get_ydata() if y == y) for ln in lines_drawn.values()) == 48
    # server-4 first answered 9.5 s in: a new server, blank until then (its start is unknown)
    assert [y == y for y in lines_drawn["server-4"].get_ydata()] == [False] * 9 + [True] * 3
    assert data.groups["server-4"] == chart.NEW
    assert "3 failed calls" in data.title
    assert '<g id="server-4">' in drawn.read_text()
