"""Consent that means what it says: never given by type-ahead, bound to what was disclosed,
final at once on opt-out, no network before a yes, and our files kept ours (issue 10)."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.helpers import (
    SEND_METRICS,
    assert_no_traceback,
    data_db,
    delivered_ids,
    finish,
    history,
    opt_in,
    queued,
    sm,
    spawn,
    state_file,
)

PROMPT = r"\[y/N\] "
SHELL_PROMPT = "PROMPT$ "


def shell(home: Path) -> pexpect.spawn:
    """An interactive bash in a real pseudo-terminal, as a developer has it."""
    child = pexpect.spawn(
        "bash",
        ["--norc", "--noprofile", "-i"],
        env={**os.environ, "PS1": SHELL_PROMPT, "TERM": "dumb"},
        encoding="utf-8",
        timeout=20,
    )
    child.expect_exact(SHELL_PROMPT)
    return child


def status_of(label: str) -> str:
    """One line of `send_metrics status`, without its label."""
    out = sm("status").stdout
    [line] = [x for x in out.splitlines() if x.startswith(f"{label}:")]
    return line.partition(":")[2].strip()


def decision(home: Path, app: str = "send_metrics") -> dict:
    path = state_file(home, app)
    return tomllib.loads(path.read_text()) if path.exists() else {}


# ---- the question is answered only by a person who saw it ----


@pytest.mark.parametrize("typed", ["y\n", "Y\necho ahead-$((2*3))\n", "ech"])
def test_type_ahead_is_not_consent_and_reaches_the_shell(home: Path, typed: str) -> None:
    """Keys typed while the command runs: no question reads them, and the shell gets them all."""
    sh = shell(home)
    sh.sendline(f"{SEND_METRICS} run -- sh -c 'echo started; sleep 1'")
    sh.expect_exact("started")
    sh.send(typed)
    sh.expect_exact("keys typed during the command are left for your shell; the usage\r\nmetrics")
    if typed == "ech":
        sh.sendline("o whole-$((6*7))")  # the shell has "ech": the rest completes it
        sh.expect_exact("whole-42")
    elif "ahead" in typed:
        sh.expect_exact("Y: command not found")
        sh.expect_exact("ahead-6")
    else:
        sh.expect_exact("y: command not found")
    sh.sendline("exit")
    out = finish(sh)
    assert "[y/N]" not in out
    assert decision(home) == {} and history(home) == []
    # Without type-ahead the next run asks, and a typed answer counts.
    child = spawn("run", "--", "true")
    child.expect(PROMPT)
    child.sendline("y")
    finish(child)
    assert decision(home)["decision"] == "granted"


def test_the_pager_case_never_asks(home: Path) -> None:
    """`run -- seq 300 | less`: stdout is a pipe, so the question would land in the pager."""
    child = pexpect.spawn(
        "sh",
        ["-c", f"{SEND_METRICS} run -- seq 300 | less; echo status=$?"],
        env={**os.environ, "TERM": "xterm", "LESS": ""},
        encoding="utf-8",
        timeout=20,
    )
    child.expect("1")
    child.send("q")
    out = finish(child)
    assert "status=0" in out and "[y/N]" not in out and "usage metrics" not in out
    assert decision(home) == {}


def test_a_pending_question_does_not_block_other_commands(home: Path) -> None:
    """While one terminal waits for an answer, status, reset and opt-out elsewhere proceed; a
    lock held while asking would hang them until the answer (the timeout would fail them)."""
    waiting = spawn("run", "--", "true")
    waiting.expect(PROMPT)
    for verb in ("status", "reset", "opt-out"):
        result = sm(verb, timeout=10)
        assert result.returncode == 0, result.stderr
    # The opt-out recorded meanwhile wins over the late yes.
    waiting.sendline("y")
    out = finish(waiting)
    assert "recorded elsewhere meanwhile" in out
    assert decision(home)["decision"] == "declined"
    assert history(home) == []


def test_a_late_no_wins_over_a_yes_recorded_meanwhile(home: Path) -> None:
    waiting = spawn("run", "--", "true")
    waiting.expect(PROMPT)
    opt_in()
    sm("run", "--", "true")
    assert len(history(home)) == 1
    waiting.sendline("n")
    finish(waiting)
    assert decision(home)["decision"] == "declined"
    assert not data_db(home).exists()


# ---- a no, or an opt-out, is final at once ----


def test_opt_out_during_twenty_running_wrappers_stops_every_event(
    home: Path, collector, tmp_path: Path
) -> None:
    collector.write_config("http", deadline=10.0)  # 20 wrappers on 2 CPUs: no deadline hit
    opt_in()
    marks = tmp_path / "marks"
    marks.mkdir()
    procs = [
        subprocess.Popen(
            [SEND_METRICS, "run", "--", "sh", "-c", f"touch {marks}/{i}; sleep 3"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(20)
    ]
    while len(list(marks.iterdir())) < 20:  # every wrapper is running its command
        time.sleep(0.05)
    time.sleep(1)
    result = sm("opt-out")
    arrived = len(collector.requests)
    assert result.returncode == 0
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 20
    assert all(err == b"" for _out, err in outputs), outputs
    assert len(collector.requests) == arrived  # nothing left after opt-out returned
    assert not data_db(home).exists() and history(home) == [] and queued(home) == []
    assert decision(home)["decision"] == "declined" and "anonymous_id" not in decision(home)


def test_reset_then_no_deletes_the_earlier_data_and_a_later_yes_sends_only_new_events(
    home: Path, collector, dead_url: str
) -> None:
    Path("send_metrics.toml").write_text(
        f'[report]\nsink = "http"\nendpoint = "{dead_url}"\ndeadline = 0.5\n'
    )
    opt_in()
    first_id = decision(home)["anonymous_id"]
    sm("run", "--", "true")
    sm("run", "--", "true")
    assert len(queued(home)) == 2
    sm("reset")
    child = spawn("run", "--", "true")
    child.expect(PROMPT)
    child.sendline("n")
    out = finish(child)
    assert "earlier data deleted" in out
    assert not data_db(home).exists() and history(home) == [] and queued(home) == []
    collector.write_config("http")
    opt_in()
    assert decision(home)["anonymous_id"] != first_id
    sm("run", "--", "true")
    [event] = history(home)
    assert delivered_ids(collector.requests) == [event["message_id"]]
    assert {r.json["anonymous_id"] for r in collector.requests} == {event["anonymous_id"]}


def test_opt_out_is_not_held_off_by_a_flush_sending_batch_after_batch(
    home: Path, collector, dead_url: str
) -> None:
    """Senders hold the state lock shared, one request at a time; a flush takes it again for
    every request. `opt-out` must still get in after the request in flight, not the backlog."""
    Path("send_metrics.toml").write_text(
        f'[report]\nsink = "http"\nendpoint = "{dead_url}"\ndeadline = 0.5\n'
    )
    opt_in()
    for _ in range(20):
        sm("run", "--", "true")
    assert len(queued(home)) == 20

    def slowly(_request: object) -> int:
        time.sleep(0.3)
        return 0  # the usual answer, late

    collector.decide = slowly
    collector.write_config("http")
    flush = subprocess.Popen(
        [SEND_METRICS, "flush", "--timeout", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    while not collector.requests:
        time.sleep(0.02)
    result = sm("opt-out")
    arrived = len(collector.requests)
    out, err = flush.communicate(timeout=60)
    assert result.returncode == 0, result.stderr
    assert flush.returncode == 0 and b"Stopped: you declined" in out, (out, err)
    assert b"stay queued" not in err  # the rest was deleted, not left waiting
    assert arrived < 20  # opt-out did not wait for the whole backlog to leave
    assert len(collector.requests) == arrived  # and nothing left after it returned
    assert not data_db(home).exists() and decision(home)["decision"] == "declined"


def test_a_run_never_waits_for_a_flush_in_flight(home: Path, collector, dead_url: str) -> None:
    """Recording holds the state lock shared, as a sender does: a run ends (its event kept)
    while a flush's request is still waiting for a slow endpoint."""
    Path("send_metrics.toml").write_text(
        f'[report]\nsink = "http"\nendpoint = "{dead_url}"\ndeadline = 0.5\n'
    )
    opt_in()
    sm("run", "--", "true")
    answered: list[float] = []

    def slowly(_request: object) -> int:
        time.sleep(4)
        answered.append(time.monotonic())
        return 0

    collector.decide = slowly
    collector.write_config("http", deadline=0.5)
    flush = subprocess.Popen(
        [SEND_METRICS, "flush", "--timeout", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    while collector.connections == 0:
        time.sleep(0.02)
    time.sleep(0.3)  # the flush holds the lock, shared, while its request waits
    result = sm("run", "--", "sh", "-c", "exit 3")
    ended = time.monotonic()
    flush.communicate(timeout=60)
    assert result.returncode == 3
    assert answered and ended < answered[0]  # the run was done before the flush's answer
    assert [e["exit_code"] for e in history(home)] == [0, 3]


NONBLOCKING = (
    "import fcntl, os; fcntl.fcntl(0, fcntl.F_SETFL, fcntl.fcntl(0, fcntl.F_GETFL) | os.O_NONBLOCK)"
)


@pytest.mark.parametrize(
    "command",
    ["stty raw -echo", "stty -icanon min 0 time 0", f'{sys.executable} -c "{NONBLOCKING}"'],
    ids=["raw", "no canonical mode", "non-blocking"],
)
def test_the_question_waits_for_a_person_whatever_mode_the_command_left(
    home: Path, command: str
) -> None:
    """A crashed full-screen program leaves raw mode, a node tool leaves O_NONBLOCK: the
    question still waits for a line typed by a person, and Enter ends it."""
    child = shell(home)
    child.sendline(f"{SEND_METRICS} run -- {command}")
    child.expect(PROMPT)
    time.sleep(0.5)
    assert decision(home) == {}  # nobody answered: nothing recorded
    child.send("y\r")
    child.expect("thank you")
    child.expect_exact(SHELL_PROMPT)
    assert decision(home)["decision"] == "granted"
    child.sendline("exit")
    child.expect(pexpect.EOF)


def test_a_new_id_never_sends_events_recorded_under_an_older_one(
    home: Path, collector, dead_url: str
) -> None:
    Path("send_metrics.toml").write_text(
        f'[report]\nsink = "http"\nendpoint = "{dead_url}"\ndeadline = 0.5\n'
    )
    opt_in()
    sm("run", "--", "true")
    [old] = queued(home)
    sm("reset")
    opt_in()  # a new yes after reset: a new id
    assert queued(home) == []  # the old id's event left the queue at once, counted
    assert "1 from an earlier yes" in status_of("dropped events")
    collector.write_config("http")
    sm("run", "--", "true")
    assert sm("flush").returncode == 0
    new_ids = {e["message_id"] for e in history(home)} - {old}
    assert delivered_ids(collector.requests) == sorted(new_ids)
    assert queued(home) == []  # the old event left the queue without being sent


def test_opt_out_deletes_the_data_even_where_its_decision_cannot_be_written(home: Path) -> None:
    opt_in()
    sm("run", "--", "true")
    path = state_file(home)
    path.unlink()
    path.mkdir()  # a folder where the decision file belongs
    result = sm("opt-out")
    assert result.returncode == 3 and "Is a directory" in result.stderr
    assert not data_db(home).exists() and list(data_db(home).parent.iterdir()) == []


def test_reset_moves_a_folder_in_the_decisions_place_aside_and_never_deletes_files(
    home: Path,
) -> None:
    path = state_file(home)
    (path / "sub").mkdir(parents=True)
    (path / "notes.txt").write_text("precious\n")
    result = sm("reset")
    assert result.returncode == 0 and "moved aside" in result.stderr
    aside = path.with_name(path.name + ".moved-1")
    assert (aside / "notes.txt").read_text() == "precious\n" and not path.exists()
    path.mkdir()  # an empty one is simply removed
    assert sm("reset").returncode == 0 and not path.exists()


def test_opt_out_deletes_a_moved_aside_store_too(home: Path) -> None:
    opt_in()
    db = data_db(home)
    db.parent.mkdir(parents=True)
    db.write_bytes(b"not a database at all" * 100)
    result = sm("run", "--", "true")
    assert "moved aside" in result.stderr
    assert db.with_name(db.name + ".corrupt").exists()
    sm("opt-out")
    assert list(db.parent.iterdir()) == []


# ---- consent is bound to what was disclosed ----


def _config(**report: str) -> None:
    lines = [f'{k} = "{v}"' for k, v in report.items() if k != "allow_args"]
    text = "[report]\n" + "\n".join(lines) + "\n"
    if "allow_args" in report:
        text += f'[collect]\nallow_args = ["{report["allow_args"]}"]\n'
    Path("send_metrics.toml").write_text(text)


@pytest.mark.parametrize(
    ("before", "after", "why"),
    [
        (
            {"sink": "local"},
            {"sink": "http"},
            "events would go to an HTTP endpoint at 127.0.0.1 instead of only this machine",
        ),
        (
            {"sink": "http", "host": "localhost"},
            {"sink": "http"},
            "events would go to an HTTP endpoint at 127.0.0.1 instead of an HTTP endpoint at "
            "localhost",
        ),
        (
            {"sink": "http"},
            {"sink": "http", "allow_args": "echo"},
            "the arguments of more commands would be collected: echo",
        ),
    ],
    ids=["local-to-http", "another-host", "allow-listed-command"],
)
def test_a_wider_disclosure_collects_nothing_until_a_new_yes(
    home: Path, collector, before: dict[str, str], after: dict[str, str], why: str
) -> None:
    def configure(wanted: dict[str, str]) -> None:
        host = wanted.get("host", "127.0.0.1")
        url = collector.url.replace("127.0.0.1", host)
        extra = {k: v for k, v in wanted.items() if k != "host"}
        if wanted["sink"] == "local":
            _config(sink="local")
        else:
            _config(endpoint=url, **extra)

    configure(before)
    opt_in()
    sm("run", "--", "echo", "hi")
    earlier = len(history(home))
    sent = len(collector.requests)
    configure(after)
    for _ in range(2):  # non-interactive runs: nothing recorded, nothing sent
        result = sm("run", "--", "echo", "hi")
        assert result.returncode == 0 and result.stderr == ""
    assert len(history(home)) == earlier and len(collector.requests) == sent
    flushed = sm("flush")
    assert "Nothing is sent" in flushed.stdout and len(collector.requests) == sent
    assert status_of("still holds").startswith(f"no: {why}")
    child = spawn("run", "--", "echo", "hi")
    child.expect(PROMPT)
    assert "Asking again" in child.before and why in " ".join(child.before.split())
    child.sendline("y")
    finish(child)
    assert len(history(home)) == earlier + 1
    assert len(collector.requests) == sent + 1
    assert status_of("still holds") == "yes"


def test_narrowing_needs_no_new_question(home: Path, collector) -> None:
    Path("send_metrics.toml").write_text(
        f'[report]\nsink = "http"\nendpoint = "{collector.url}"\n[collect]\nallow_args = ["x"]\n'
    )
    opt_in()
    Path("send_metrics.toml").write_text('[report]\nsink = "local"\n')
    child = spawn("run", "--", "true")
    out = finish(child)
    assert "[y/N]" not in out
    assert len(history(home)) == 1 and collector.requests == []


def test_a_yes_from_an_older_release_is_asked_again(home: Path) -> None:
    path = state_file(home)
    path.parent.mkdir(parents=True)
    path.write_text(
        'decision = "granted"\nconsent_version = 1\ndecided_at = ""\n'
        'anonymous_id = "0b7e3f6a-8c2d-4e1f-9a3b-5c6d7e8f9a0b"\n'
    )
    assert sm("run", "--", "true").returncode == 0
    assert history(home) == []
    assert "an older send_metrics" in sm("status").stdout


def test_the_decision_file_records_what_the_yes_covered(home: Path, collector) -> None:
    collector.write_config("http")
    opt_in()
    covered = decision(home)["disclosure"]
    assert covered["sink"] == "http" and covered["host"] == "127.0.0.1"
    assert "git_remote_hash" not in covered["fields"] and "command" in covered["fields"]
    assert len(covered["fingerprint"]) == 16
    assert covered["fingerprint"] in status_of("your yes covers")
    assert "events to an HTTP endpoint at 127.0.0.1" in status_of("your yes covers")
    assert status_of("still holds") == "yes"


# ---- nothing touches the network before consent or against DO_NOT_TRACK ----


class CountingServer(http.server.ThreadingHTTPServer):
    """A loopback HTTP server that counts TCP connections, not only requests."""

    daemon_threads = True
    connections = 0

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        pair = super().get_request()
        self.connections += 1
        return pair


@pytest.fixture
def counting() -> Iterator[CountingServer]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = CountingServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_preview_dry_run_and_disabled_flush_open_no_connection(
    home: Path, counting: CountingServer, dead_url: str
) -> None:
    url = f"http://127.0.0.1:{counting.server_address[1]}"
    Path("send_metrics.toml").write_text(
        f'[report]\nsink = "segment"\nwrite_key = "k"\nendpoint = "{dead_url}"\ndeadline = 0.5\n'
    )
    opt_in()
    sm("run", "--", "true")  # queued: the endpoint refuses
    assert len(queued(home)) == 1
    Path("send_metrics.toml").write_text(
        f'[report]\nsink = "segment"\nwrite_key = "k"\nendpoint = "{url}"\n'
    )
    assert sm("preview", "--", "true").returncode == 0
    assert sm("run", "--dry-run", "--", "true").returncode == 0
    for value in ("1", "yes", "TRUE"):
        quiet = sm("flush", env={**os.environ, "DO_NOT_TRACK": value})
        # Events stay queued, so flush says why and exits 4, as whenever events remain.
        assert quiet.returncode == 4 and "nothing is sent" in quiet.stdout
    assert counting.connections == 0
    assert len(queued(home)) == 1
    assert sm("flush", env={**os.environ, "DO_NOT_TRACK": "off"}).returncode == 0
    assert counting.connections == 1 and queued(home) == []  # the counter does count


def test_preview_without_any_decision_opens_no_connection(
    home: Path, counting: CountingServer
) -> None:
    url = f"http://127.0.0.1:{counting.server_address[1]}"
    Path("send_metrics.toml").write_text(f'[report]\nsink = "http"\nendpoint = "{url}"\n')
    child = spawn("preview", "--", "true")
    out = finish(child)
    assert "[y/N]" not in out and '"anonymous_id"' in out
    assert counting.connections == 0 and decision(home) == {}


# ---- files stay ours ----


def test_a_fifo_as_config_or_state_file_is_refused_in_one_line(home: Path, tmp_path: Path) -> None:
    """Opening a FIFO for reading blocks until a writer comes: the timeout would fail this."""
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    result = sm(
        "run", "--", "true", env={**os.environ, "SEND_METRICS_CONFIG": str(fifo)}, timeout=10
    )
    assert result.returncode == 0
    [line] = result.stderr.splitlines()
    assert str(fifo) in line and "regular file" in line
    state = state_file(home)
    state.parent.mkdir(parents=True)
    os.mkfifo(state)
    result = sm("run", "--", "true", timeout=10)
    assert result.returncode == 0
    [line] = result.stderr.splitlines()
    assert str(state) in line and "reset" in line
    assert sm("status", timeout=10).returncode == 0
    assert sm("opt-in", "--yes", timeout=10).returncode == 0  # repairs it
    assert stat.S_ISREG(state.lstat().st_mode)


def test_a_symlinked_store_is_refused_and_its_target_untouched(home: Path, tmp_path: Path) -> None:
    opt_in()
    target = tmp_path / "elsewhere.sqlite3"
    target.write_bytes(b"precious")
    db = data_db(home)
    db.parent.mkdir(parents=True)
    db.symlink_to(target)
    result = sm("run", "--", "sh", "-c", "exit 5")
    assert result.returncode == 5
    [line] = result.stderr.splitlines()
    assert str(db) in line and "symbolic link" in line
    assert target.read_bytes() == b"precious" and db.is_symlink()
    sm("opt-out")  # removes the link itself, never its target
    assert target.read_bytes() == b"precious" and not os.path.lexists(db)


def test_a_symlinked_decision_file_is_never_written_through(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.toml"
    target.write_text("precious = true\n")
    path = state_file(home)
    path.parent.mkdir(parents=True)
    path.symlink_to(target)
    result = sm("opt-in", "--yes")
    assert result.returncode == 3
    [line] = result.stderr.splitlines()
    assert "symbolic link" in line and str(path) in line
    assert_no_traceback(result.stderr)
    assert target.read_text() == "precious = true\n"
    assert sm("reset").returncode == 0 and not os.path.lexists(path)
    assert target.read_text() == "precious = true\n"


def test_our_directories_are_0700_and_files_0600(home: Path) -> None:
    folder = state_file(home).parent
    folder.mkdir(parents=True, mode=0o755)
    folder.chmod(0o755)
    opt_in()
    sm("run", "--", "true")
    for path in (state_file(home), data_db(home), folder / ".lock", folder / ".gate"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for path in (folder, data_db(home).parent):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path


# ---- secrets in endpoints ----


def test_endpoints_are_shown_and_stored_as_scheme_host_and_port_only(
    home: Path, dead_url: str
) -> None:
    url = dead_url + "/ingest/T0KEN-in-path?key=S3CRET"
    Path("send_metrics.toml").write_text(
        f'[report]\nsink = "http"\nendpoint = "{url}"\ndeadline = 0.5\n'
    )
    opt_in()
    run = sm("run", "--", "true")
    flush = sm("flush")
    status = sm("status")
    for text in (run.stderr, flush.stdout + flush.stderr, status.stdout):
        assert "T0KEN" not in text and "S3CRET" not in text and "/ingest" not in text
    assert dead_url in run.stderr and dead_url in status.stdout
    with __import__("sqlite3").connect(data_db(home)) as db:
        [(last_error,)] = db.execute("SELECT value FROM meta WHERE key = 'last_error'")
    assert dead_url in last_error and "T0KEN" not in last_error


# ---- the README shows the disclosure as the code writes it ----

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
EXAMPLE = {
    "app": "devstack",
    "privacy_url": "https://example.org/devstack-metrics",
    "retention": "kept for one year",
}


def test_the_readme_shows_the_question_exactly() -> None:
    """The quickstart shows the question a fresh clone asks (the default app, the local sink)."""
    from send_metrics.consent import consent
    from send_metrics.settings.config import Settings

    settings = Settings()
    text = consent.summary(settings) + "\n" + consent.question(settings) + " [y/N]\n"
    assert f"```text\n{text}```" in README


@pytest.mark.parametrize(
    ("sink", "endpoint"),
    [
        ("segment", ""),
        ("otlp", "https://otel.example.org"),
        ("http", "https://metrics.example.org/hook"),
    ],
)
def test_the_readme_shows_what_changes_for_each_network_sink(sink: str, endpoint: str) -> None:
    from send_metrics.consent import consent
    from send_metrics.settings.config import Settings

    settings = Settings(**EXAMPLE, sink=sink, endpoint=endpoint, write_key="k")
    shown = " ".join(consent.summary(settings).split())
    flat = " ".join(README.split())
    where = consent.where(consent.scope(settings))
    assert f"send usage metrics of the commands you run to {where}, to learn" in shown
    assert f"send usage metrics of the commands you run to {where}, to learn" in flat
    assert f"Retention: {EXAMPLE['retention']}." in shown and "Retention: " in flat
    assert consent.question(settings) == "Share usage metrics?"


def test_an_endpoint_host_that_is_not_utf8_is_kept_readable(home: Path) -> None:
    """A host from the environment with bytes that are not UTF-8: the yes is recorded (the
    host shown with U+FFFD), never a traceback."""
    Path("send_metrics.toml").write_text('[report]\nsink = "http"\n')
    env = {**os.environ, "SEND_METRICS_ENDPOINT": os.fsdecode(b"http://\xff.example:9/")}
    result = subprocess.run(
        [SEND_METRICS, "opt-in", "--yes"], capture_output=True, text=True, env=env, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert_no_traceback(result.stderr)
    assert decision(home)["disclosure"]["host"] == "\ufffd.example"


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM])
def test_a_hangup_or_kill_at_the_question_records_nothing(home: Path, signum: int) -> None:
    """Closing the terminal, or a kill, is no answer: nothing recorded, asked again later."""
    child = pexpect.spawn(SEND_METRICS, ["run", "--", "true"], encoding="utf-8", timeout=20)
    child.expect(PROMPT)
    child.kill(signum)
    child.expect(pexpect.EOF)
    child.close()
    assert decision(home) == {}
    assert not data_db(home).exists()
