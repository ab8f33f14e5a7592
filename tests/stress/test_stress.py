"""Many wrappers at once, kill -9, full and read-only disks, hostile input, the queue's bound."""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import tomllib
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from send_metrics.consent.decision import read_decision
from send_metrics.errors import ConfigError
from send_metrics.event import store
from send_metrics.settings import config
from tests.helpers import (
    SEND_METRICS,
    assert_no_traceback,
    data_db,
    delivered_ids,
    history,
    opt_in,
    queued,
    read_only,
    sm,
    state_file,
)

pytestmark = pytest.mark.stress

WRAPPED_MAKEFILE = """\
dev.%: ; +@send_metrics wrap --make='$(MAKE)' -f '$(firstword $(MAKEFILE_LIST))' $@
impl-dev.%: ; @exit $$(( $(subst t,,$*) % 5 == 0 ))
"""


def integrity(home: Path) -> str:
    with sqlite3.connect(data_db(home)) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def _segment(url: str, deadline: float = 5.0) -> None:
    Path("send_metrics.toml").write_text(
        f'[report]\nsink = "segment"\nendpoint = "{url}"\nwrite_key = "k"\n'
        f"deadline = {deadline}\nqueue_max_events = 100000\n"
    )


def test_make_j16_500_runs_with_a_flaky_server_and_concurrent_flush(home: Path, collector) -> None:
    collector.fail_rate = 0.3
    _segment(collector.url)
    Path("Makefile").write_text(WRAPPED_MAKEFILE)
    opt_in()
    stop = threading.Event()
    side: list[subprocess.CompletedProcess] = []

    def alongside() -> None:
        while not stop.is_set():
            side.append(sm("flush", "--timeout", "5"))
            side.append(sm("stats"))

    helper = threading.Thread(target=alongside)
    helper.start()
    targets = [f"dev.t{i}" for i in range(500)]
    try:
        for start in range(0, 500, 16):
            batch = targets[start : start + 16]
            done = subprocess.run(
                ["make", "-k", "-j16", *batch], capture_output=True, text=True, timeout=300
            )
            failing = sum(1 for t in batch if int(t[5:]) % 5 == 0)
            assert (done.returncode != 0) == (failing > 0), done.stderr
            assert_no_traceback(done.stderr)
    finally:
        stop.set()
        helper.join(120)
    for result in side:
        assert_no_traceback(result.stderr)
        assert result.returncode in (0, 4), result.stderr
    events = history(home)
    assert len(events) == 500
    assert sorted(e["command"] for e in events) == sorted(targets)
    assert [e["exit_code"] != 0 for e in events].count(True) == 100
    collector.fail_rate = 0.0
    sm("flush")
    delivered = Counter(delivered_ids(collector.ok()))
    assert all(n == 1 for n in delivered.values()), "an event was delivered twice"
    assert set(delivered) | set(queued(home)) == {e["message_id"] for e in events}
    assert queued(home) == []
    assert integrity(home) == "ok"


def test_kill_minus_nine_at_random_moments(home: Path, collector) -> None:
    _segment(collector.url, deadline=2.0)
    opt_in()
    argv = [SEND_METRICS, "run", "--", "sleep", "0.05"]
    lengths = []
    for _ in range(3):  # how long a whole run takes on this machine, now
        started = time.monotonic()
        subprocess.run(argv, capture_output=True, check=False)
        lengths.append(time.monotonic() - started)
    span = 1.4 * sorted(lengths)[1]
    rng = random.Random(7)
    killed = 0
    for _ in range(40):
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # From before the child starts to after the wrapper ends, whatever this machine's speed.
        time.sleep(rng.uniform(0.0, span))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.communicate(timeout=30)
    assert 5 < killed < 40
    assert integrity(home) == "ok"
    time.sleep(4.5)  # leases of wrappers killed while sending run out (deadline + 2 s)
    after = sm("run", "--", "sh", "-c", "exit 3")
    assert after.returncode == 3 and after.stderr == ""
    assert sm("flush").returncode == 0
    assert queued(home) == []
    events = history(home)
    delivered = Counter(delivered_ids(collector.ok()))
    assert set(delivered) == {e["message_id"] for e in events}
    # At least once: only a wrapper killed after the server answered, before it noted the
    # success, can cause a second delivery; receivers drop it by message id.
    assert sum(n - 1 for n in delivered.values()) <= killed
    assert integrity(home) == "ok"


def test_kill_minus_nine_during_the_send(home: Path, collector) -> None:
    """Killed while the server holds the request: sent again later, and accepted only once."""
    collector.hang = True
    _segment(collector.url, deadline=2.0)
    opt_in()
    proc = subprocess.Popen([SEND_METRICS, "run", "--", "true"], stderr=subprocess.PIPE)
    for _ in range(500):
        if collector.requests:
            break
        time.sleep(0.01)
    assert collector.requests, "the wrapper never sent"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    collector.hang = False
    collector.released.set()
    assert integrity(home) == "ok"
    [event] = history(home)
    assert queued(home) == [event["message_id"]]
    time.sleep(4.5)  # the killed wrapper's lease (deadline + 2 s) runs out
    assert sm("flush").returncode == 0
    assert delivered_ids(collector.ok()) == [event["message_id"]]
    assert queued(home) == []


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))


def test_full_disk_keeps_the_status_and_explains_in_one_line(home: Path) -> None:
    opt_in()
    for i in range(3):
        result = subprocess.run(
            [SEND_METRICS, "run", "--", "sh", "-c", f"exit {i}"],
            capture_output=True,
            text=True,
            preexec_fn=_limit_file_size,
        )
        assert result.returncode == i
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "metrics.sqlite3" in lines[0], result.stderr
    result = sm("run", "--", "true")
    assert result.returncode == 0 and result.stderr == ""
    assert len(history(home)) >= 1


def test_read_only_data_dir(home: Path) -> None:
    opt_in()
    with read_only(data_db(home).parent):
        result = sm("run", "--", "sh", "-c", "exit 5")
        assert result.returncode == 5
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "cannot" in lines[0], result.stderr
        assert sm("status").returncode == 0
    assert sm("run", "--", "true").stderr == ""


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.one_of(
        st.binary(max_size=300),
        st.dictionaries(
            st.sampled_from(
                ["app", "consent", "report", "make", "collect", "decision", "anonymous_id", "x"]
            ),
            st.one_of(
                st.integers(),
                st.text(max_size=20),
                st.booleans(),
                st.lists(st.integers(), max_size=3),
                st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
            ),
            max_size=5,
        ).map(lambda d: _to_toml(d).encode()),
    )
)
def test_fuzzed_config_and_state_never_raise_unexpectedly(tmp_path_factory, raw: bytes) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "send_metrics.toml"
    path.write_bytes(raw)
    loaded = config.load_settings(path)
    assert all("\n" not in p and str(path) in p for p in loaded.problems)
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        # Unreadable: the defaults, and exactly one line saying so.
        assert loaded.settings == config.Settings(path=str(path))
        assert len(loaded.problems) == 1 and "cannot read operator config" in loaded.problems[0]
    else:
        leaves = sum(max(1, len(v)) if isinstance(v, dict) else 1 for v in doc.values())
        assert len(loaded.problems) <= leaves  # at most one line per key
        if not loaded.problems:  # every key was used: only those keys left their default
            changed = {
                f
                for f, v in loaded.settings._asdict().items()
                if v != getattr(config.Settings(), f) and f != "path"
            }
            assert len(changed) <= leaves
    state = folder / "metrics.toml"
    state.write_bytes(raw)
    try:
        read_decision(state)
    except ConfigError as exc:
        assert str(state) in str(exc)


def _to_toml(data: dict) -> str:
    import tomli_w

    try:
        return tomli_w.dumps(data)
    except (TypeError, ValueError):
        return json.dumps(data, default=str)


@pytest.mark.parametrize("seed", range(8))
def test_fuzzed_files_on_a_real_run(home: Path, seed: int) -> None:
    rng = random.Random(seed)
    Path("send_metrics.toml").write_bytes(rng.randbytes(rng.randint(0, 200)))
    state_file(home).parent.mkdir(parents=True)
    state_file(home).write_bytes(rng.randbytes(rng.randint(0, 200)))
    result = sm("run", "--", "sh", "-c", "exit 4")
    assert result.returncode == 4
    assert_no_traceback(result.stderr)
    assert len(result.stderr.strip().splitlines()) <= 2


def test_huge_names_and_non_utf8_bytes(home: Path, tmp_path: Path) -> None:
    opt_in()
    big = "n" * 100_000
    result = sm("run", "--name", big, "--", "true")
    assert result.returncode == 0 and result.stderr == ""
    raw = subprocess.run(
        [os.fsencode(SEND_METRICS), b"run", b"--", b"sh", b"-c", b"exit 0", b"\xff\xfe-arg"],
        capture_output=True,
    )
    assert raw.returncode == 0 and raw.stderr == b""
    script = tmp_path / "t\udcff-tool"  # a program whose name is not valid UTF-8
    os.symlink("/bin/true", os.fsencode(script))
    weird = subprocess.run(
        [os.fsencode(SEND_METRICS), b"run", b"--", os.fsencode(script)], capture_output=True
    )
    assert weird.returncode == 0 and weird.stderr == b""
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "\udcff",
        "GIT_AUTHOR_EMAIL": "a@b",
        "GIT_COMMITTER_NAME": "c",
        "GIT_COMMITTER_EMAIL": "c@d",
    }
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run([b"git", b"checkout", b"-q", b"-b", b"br\xff\xfe"], cwd=repo, check=True)
    subprocess.run(
        ["git", "commit", "-q", "--allow-empty", "-m", "x"], cwd=repo, env=env, check=True
    )
    in_repo = subprocess.run([SEND_METRICS, "run", "--", "true"], cwd=repo, capture_output=True)
    assert in_repo.returncode == 0 and in_repo.stderr == b""
    events = history(home)
    assert len(events[0]["command"]) == 200
    assert events[2]["command"] == "t\ufffd-tool"
    assert events[3]["git_on_default_branch"] is False and events[3]["git_work_tree"] is True


def test_endpoint_with_credentials_is_never_printed(home: Path, dead_url: str) -> None:
    secret_url = dead_url.replace("http://", "http://user:pa55-CANARY@") + "/hook?token=CANARY2"
    Path("send_metrics.toml").write_text(
        f'[report]\nsink = "http"\nendpoint = "{secret_url}"\ndeadline = 1.0\n'
    )
    opt_in()
    outputs = [
        sm("run", "--", "true"),
        sm("status"),
        sm("flush", "--timeout", "1"),
        sm("run", "--", "true", env={**os.environ, "SEND_METRICS_ENDPOINT": secret_url}),
    ]
    for result in outputs:
        assert "CANARY" not in result.stdout + result.stderr
        assert_no_traceback(result.stderr)
    assert dead_url in outputs[1].stdout  # shown as scheme://host:port only


@pytest.mark.parametrize("mode", ["huge-body", "redirect-loop"])
def test_hostile_servers_cost_at_most_the_deadline(home: Path, collector, mode: str) -> None:
    if mode == "huge-body":
        collector.huge = True
    else:
        collector.status = 302
        collector.reply_headers["Location"] = collector.url + "/v1/track"
    _segment(collector.url, deadline=1.0)
    opt_in()
    started = time.monotonic()
    result = sm("run", "--", "sh", "-c", "exit 2")
    took = time.monotonic() - started
    assert result.returncode == 2
    assert took < 1.0 + 1.5, f"{mode}: {took:.2f} s"
    assert_no_traceback(result.stderr)
    assert len(collector.requests) == 1  # no redirect followed, no retry storm
    if mode == "redirect-loop":
        assert len(queued(home)) == 1


def test_ten_thousand_undeliverable_events_stay_within_the_bound(home: Path, dead_url: str) -> None:
    Path("send_metrics.toml").write_text(
        f'[report]\nsink = "segment"\nendpoint = "{dead_url}"\nqueue_max_events = 500\n'
    )
    opt_in()
    db = store.Store(data_db(home))
    template = history_event()
    for i in range(10_000):
        db.record(
            {**template, "message_id": f"{i:08d}-0000-4000-8000-000000000000"},
            queue=True,
            max_events=500,
        )
    db.close()
    result = sm("run", "--", "true")
    assert result.returncode == 0
    assert len(queued(home)) == 500
    status = sm("status").stdout
    assert "9501 over the queue bound" in status
    with sqlite3.connect(data_db(home)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM history").fetchone()[0] <= store.HISTORY_MAX
    assert integrity(home) == "ok"


def history_event() -> dict:
    result = sm("preview", "--", "true")
    return json.loads(result.stdout)


def test_a_corrupt_store_is_moved_aside_once(home: Path) -> None:
    opt_in()
    db = data_db(home)
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    result = sm("run", "--", "sh", "-c", "exit 3")
    assert result.returncode == 3
    [line] = result.stderr.strip().splitlines()
    assert "moved aside" in line and str(db) in line
    assert (db.parent / "metrics.sqlite3.corrupt").read_bytes().startswith(b"this is not")
    assert len(history(home)) == 1
    again = sm("run", "--", "true")
    assert again.stderr == "" and len(history(home)) == 2


def _hogs() -> list[subprocess.Popen[bytes]]:
    """One busy loop per core, at the same priority as everything else."""
    return [
        subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(os.cpu_count() or 2)
    ]


def test_every_run_is_recorded_with_every_core_busy(home: Path, tmp_path: Path) -> None:
    """CPU hogs on every core and make -j8 over wrapped targets, the wrappers at a lower
    priority than the hogs (nice 15): every run is in the history, every round; none gives up
    on the store (which would say so on stderr)."""
    Path("Makefile").write_text(WRAPPED_MAKEFILE)
    opt_in()
    targets = [f"dev.t{i}" for i in range(1, 25) if i % 5]  # each exits 0
    hogs = _hogs()
    try:
        for round_ in range(1, 4):
            result = subprocess.run(
                ["nice", "-n", "15", "make", "-j8", *targets],
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert result.returncode == 0, result.stderr
            assert result.stderr == ""
            assert len(history(home)) == round_ * len(targets)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert Counter(e["command"] for e in history(home)) == {t: 3 for t in targets}


HOLDER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN IMMEDIATE")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""  # and exits holding it: the kernel drops its locks, SQLite's close rolls back


def _hold_the_store(home: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process's long write transaction, as a stuck or starved wrapper would hold it."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(data_db(home)), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


def test_runs_wait_for_a_store_held_past_their_deadline(home: Path) -> None:
    """The store held for 6 s (three times the deadline): the runs that end meanwhile wait
    and are recorded, none lost."""
    opt_in()
    assert sm("run", "--", "true").returncode == 0
    holder = _hold_the_store(home, 6.0)
    runs = [
        subprocess.Popen(
            [SEND_METRICS, "run", "--name", f"r{i}", "--", "true"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    errors = [run.communicate(timeout=120)[1] for run in runs]
    holder.communicate(timeout=60)
    assert errors == [""] * 4
    assert sorted(e["command"] for e in history(home)) == ["r0", "r1", "r2", "r3", "true"]


def test_a_run_that_waits_past_the_bound_is_counted_in_status(home: Path) -> None:
    """Held longer than RECORD_WAIT_S (a stopped process): the run gives up after it, in one
    line, and `status` counts it; `opt-out` deletes the count with the data."""
    from send_metrics.event.store import RECORD_WAIT_S

    opt_in()
    assert sm("run", "--", "true").returncode == 0
    holder = _hold_the_store(home, RECORD_WAIT_S + 4)
    started = time.monotonic()
    result = sm("run", "--", "sh", "-c", "exit 3", timeout=RECORD_WAIT_S + 60)
    waited = time.monotonic() - started
    holder.communicate(timeout=60)
    assert result.returncode == 3
    assert waited >= RECORD_WAIT_S
    assert result.stderr.count("\n") == 1 and "not recorded" in result.stderr, result.stderr
    assert_no_traceback(result.stderr)
    assert [e["command"] for e in history(home)] == ["true"]
    status = sm("status")
    assert "runs not recorded" in status.stdout
    assert f"1 (the store stayed busy for {RECORD_WAIT_S:g} s)" in status.stdout
    assert sm("opt-out").returncode == 0
    assert not (data_db(home).parent / store.UNRECORDED).exists()


PARALLEL_FIRST_LINES = (
    "all: a b c d e f g h\n\t@:\n"
    + "".join(f"{t}:\n\t@:\n" for t in "abcdefgh")
    + "-include send_metrics.mk\n"
)


def test_parallel_first_lines_never_lose_a_target(home: Path, tmp_path: Path) -> None:
    """Under make -j8 eight first lines start at once: the one that creates the trace file
    writes the header, the others their start records. A header written at offset 0 used to
    overwrite a start record that came first (seen once in 30-100 runs on a busy machine): the
    target was missing from the breakdown. Every run of 120, with every core busy, has all 9."""
    from tests.test_maketrace import events_after_make

    opt_in()
    (tmp_path / "send_metrics.mk").write_text(sm("makefile").stdout)
    (tmp_path / "Makefile").write_text(PARALLEL_FIRST_LINES)
    hogs = _hogs()
    try:
        for _ in range(120):
            done = subprocess.run(["make", "-s", "-j8", "-C", str(tmp_path)], timeout=120)
            assert done.returncode == 0
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    events = events_after_make(home, 120)
    short = [
        sorted(t["name"] for t in e["make_targets"]) for e in events if len(e["make_targets"]) != 9
    ]
    assert short == []
