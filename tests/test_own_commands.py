"""Our own commands at their edges: closed pipes, Ctrl-C, flush's timeout and exit code,
status and stats on broken files, a store from a newer version."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pexpect
import pytest

from send_metrics.errors import ExitCode
from tests.helpers import (
    SEND_METRICS,
    assert_no_traceback,
    data_db,
    history,
    opt_in,
    queued,
    sm,
    state_file,
)


@pytest.mark.parametrize(
    "args",
    [["status"], ["stats"], ["schema"], ["preview", "--", "true"], ["--help"], ["run", "--help"]],
    ids=" ".join,
)
def test_a_closed_pipe_ends_our_command_with_141_silently(args: list[str], home: Path) -> None:
    opt_in()
    assert sm("run", "--", "true").returncode == 0  # something for stats to print
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| true` that has already gone
    try:
        done = subprocess.run(
            [SEND_METRICS, *args], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (ExitCode.BROKEN_PIPE, "")


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["status", "--json"],
        ["stats"],
        ["stats", "--json"],
        ["stats", "--csv"],
        ["schema"],
        ["makefile"],
    ],
    ids=" ".join,
)
@pytest.mark.parametrize("stdout", ["/dev/full", "closed"])
def test_full_or_closed_output_is_one_line_and_exit_6(
    args: list[str], stdout: str, home: Path
) -> None:
    """`status >/dev/full` (a full disk) and `stats >&-`: one line, exit 6, no traceback."""
    opt_in()
    assert sm("run", "--", "true").returncode == 0
    redirect = ">/dev/full" if stdout == "/dev/full" else ">&-"
    done = subprocess.run(
        ["sh", "-c", f'"$@" {redirect}', "sh", SEND_METRICS, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_no_traceback(done.stderr)
    why = "No space left on device" if stdout == "/dev/full" else "standard output is closed"
    assert (done.returncode, done.stderr) == (
        ExitCode.NO_OUTPUT,
        f"send_metrics: cannot write the output: {why}\n",
    )


def test_ctrl_c_at_opt_ins_question_is_130_without_aborted(home: Path) -> None:
    child = pexpect.spawn(SEND_METRICS, ["opt-in"], timeout=20, encoding="utf-8")
    child.expect(r"\[y/N\]")
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == ExitCode.INTERRUPTED
    assert "Aborted" not in child.before and "Traceback" not in child.before
    assert not state_file(home).exists()  # nothing was decided


def _queue_events(home: Path, count: int) -> None:
    """Events in the queue as an earlier run against a dead endpoint would have left them."""
    from send_metrics.event import store
    from send_metrics.settings import files

    event = json.loads(sm("preview", "--", "true").stdout)
    db = store.Store(store.db_path(files.data_dir("send_metrics")))
    for i in range(count):
        db.record({**event, "message_id": f"{i:08d}-0000-4000-8000-000000000000"}, queue=True)
    db.close()
    assert len(queued(home)) == count


def test_ctrl_c_in_flush_is_130_and_the_events_stay(home: Path, collector) -> None:
    collector.hang = True  # accepts the request and never answers
    Path("send_metrics.toml").write_text(f'[report]\nsink = "http"\nendpoint = "{collector.url}"\n')
    opt_in()  # a yes that covers this sink
    _queue_events(home, 2)
    proc = subprocess.Popen(
        [SEND_METRICS, "flush", "--timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)  # well into the wait for an answer that never comes
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert "Aborted" not in err
    assert_no_traceback(err)
    assert len(queued(home)) == 2


@pytest.mark.parametrize("value", ["nan", "-inf", "-1", "0", "1e300", "abc", ""])
def test_flush_timeout_must_be_finite_and_positive(value: str) -> None:
    result = sm("flush", "--timeout", value)
    assert result.returncode == ExitCode.USAGE
    assert "Invalid value for '--timeout'" in result.stderr
    assert_no_traceback(result.stderr)


def test_flush_with_nothing_queued_is_0() -> None:
    result = sm("flush", "--timeout", "0.5")
    assert result.returncode == 0 and result.stderr == ""


def test_flush_exits_4_when_a_local_sink_leaves_events_queued(home: Path) -> None:
    opt_in()
    _queue_events(home, 3)  # queued under an earlier network sink; the operator went local
    result = sm("flush")
    assert result.returncode == ExitCode.UNDELIVERED
    assert result.stderr.splitlines() == [
        "send_metrics: 3 events stay queued: The sink is 'local': nothing is ever sent"
    ]
    assert len(queued(home)) == 3


def test_flush_exits_4_when_its_timeout_leaves_events_queued(home: Path, black_hole: str) -> None:
    Path("send_metrics.toml").write_text(f'[report]\nsink = "http"\nendpoint = "{black_hole}"\n')
    opt_in()  # a yes that covers this sink
    _queue_events(home, 2)
    result = sm("flush", "--timeout", "1")
    assert result.returncode == ExitCode.UNDELIVERED
    [line] = result.stderr.splitlines()
    assert line.startswith("send_metrics: 2 events stay queued: ")
    assert len(queued(home)) == 2


def test_status_prints_each_problem_once(home: Path) -> None:
    Path("send_metrics.toml").write_text('bogus = 1\n[report]\nsink = "nope"\n')
    state = state_file(home)
    state.parent.mkdir(parents=True)
    state.write_text("garbage = [\n")
    db = data_db(home)
    db.parent.mkdir(parents=True)
    db.write_text("not a database")
    result = sm("status")
    assert result.returncode == 0
    assert_no_traceback(result.stderr)
    text = result.stdout + result.stderr
    for problem in ("'bogus'", "'report.sink'", "not valid TOML", "not a usable database"):
        assert text.count(problem) == 1, (problem, text)
    lines = text.splitlines()
    assert len(lines) == len(set(lines))


@pytest.mark.parametrize("broken", ["a file", "unsearchable"])
@pytest.mark.parametrize("command", ["status", "stats"])
def test_status_and_stats_with_an_unusable_data_dir(home: Path, command: str, broken: str) -> None:
    opt_in()
    assert sm("run", "--", "true").returncode == 0
    folder = data_db(home).parent
    if broken == "a file":
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
        folder.write_text("a file where the folder was")
    else:
        if os.geteuid() == 0:
            pytest.skip("root searches any folder")
        folder.chmod(0)
    try:
        result = sm(command)
    finally:
        if folder.is_dir():
            folder.chmod(0o700)
    assert_no_traceback(result.stderr)
    assert result.returncode in (0, ExitCode.FILES)
    assert len(result.stderr.splitlines()) <= 1


@pytest.mark.parametrize("app", ["a" * 300, "a\\u0000b", "tab\\there"], ids=["300", "nul", "tab"])
@pytest.mark.parametrize("command", ["status", "stats"])
def test_an_impossible_app_name_is_one_problem(app: str, command: str) -> None:
    Path("send_metrics.toml").write_text(f'app = "{app}"\n')
    result = sm(command)
    assert result.returncode == 0
    assert_no_traceback(result.stderr)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if "'app'" in line]
    assert len(problems) == 1 and "a plain name" in problems[0]


def test_a_store_from_a_newer_version_is_never_written(home: Path) -> None:
    opt_in()
    assert sm("run", "--", "true").returncode == 0
    path = data_db(home)
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all of it in the main file, compared below
    db.close()
    before = path.read_bytes()
    run = sm("run", "--", "sh", "-c", "exit 5")
    assert run.returncode == 5
    [line] = run.stderr.splitlines()
    assert "newer send_metrics" in line and "store version 99" in line
    status = sm("status")
    assert status.returncode == 0 and status.stdout.count("newer send_metrics") == 1
    stats = sm("stats")
    assert stats.returncode == ExitCode.FILES and stats.stderr.count("newer send_metrics") == 1
    assert path.read_bytes() == before
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 99
    assert len(history(home)) == 1


# ---- status: one screen wide, only what applies, and for scripts ----


def _status_in_a_terminal(env: dict[str, str]) -> list[str]:
    child = pexpect.spawn(
        SEND_METRICS,
        ["status"],
        timeout=20,
        encoding="utf-8",
        dimensions=(24, 80),
        env={k: v for k, v in {**os.environ, **env}.items() if k != "COLUMNS"},
    )
    child.expect(pexpect.EOF)
    child.close()
    return child.before.replace("\r\n", "\n").splitlines()


def test_status_wraps_at_word_boundaries_in_an_80_column_terminal(home: Path) -> None:
    opt_in()
    env = {"SEND_METRICS_DISABLED": "1"}
    shown = _status_in_a_terminal(env)
    whole = sm("status", env={**os.environ, **env}).stdout  # a pipe: one line per value
    # Under 80 columns, except a single word longer than the room (a long path) on its line.
    too_wide = [line for line in shown if len(line) >= 80]
    assert all(len(line.split(": ", 1)[-1].split()) == 1 for line in too_wide), too_wide
    assert len(shown) > len(whole.splitlines())  # something did wrap
    # Wrapping only moved words: the same words, none cut in two.
    assert " ".join(shown).split() == whole.split()
    flat = " ".join(" ".join(shown).split())
    assert "disabled by SEND_METRICS_DISABLED" in flat and "DO_NOT_TRACK" not in flat


def test_status_shows_network_settings_only_for_a_network_sink(home: Path) -> None:
    certs = {"SSL_CERT_FILE": "/etc/ssl/certs/x.pem", "HTTPS_PROXY": "http://proxy:3128"}
    local = sm("status", env={**os.environ, **certs}).stdout
    assert "deadline:" not in local and "SSL_CERT_FILE" not in local and "proxy" not in local
    assert "dropped events" not in local
    Path("send_metrics.toml").write_text(
        '[report]\nsink = "http"\nendpoint = "https://metrics.example.org/hook"\n'
    )
    remote = sm("status", env={**os.environ, **certs}).stdout
    assert "deadline:" in remote and "SSL_CERT_FILE=/etc/ssl/certs/x.pem" in remote
    assert "HTTPS_PROXY=http://proxy:3128" in remote


def test_status_json_has_every_line_and_what_scripts_ask(home: Path) -> None:
    before = json.loads(sm("status", "--json").stdout)
    assert (before["format"], before["collecting"], before["disabled_by"]) == (1, False, [])
    opt_in()
    off = sm("status", "--json", env={**os.environ, "DO_NOT_TRACK": "yes"})
    doc = json.loads(off.stdout)
    assert (doc["collecting"], doc["disabled_by"]) == (False, ["DO_NOT_TRACK"])
    assert doc["sink"] == "local" and doc["still_holds"] == "yes"
    text = sm("status").stdout
    labels = [line.split(":")[0].replace(" ", "_") for line in text.splitlines()]
    assert set(labels) <= set(doc)
    assert json.loads(sm("status", "--json").stdout)["collecting"] is True


# ---- help, completion, and what users of other tools type ----


def test_every_command_has_one_usage_line_an_example_and_a_whole_description() -> None:
    from send_metrics.cli import cli

    env = {**os.environ, "COLUMNS": "80"}
    top = sm("--help", env=env).stdout
    assert "Example:" in top
    listed = top.split("Commands:", 1)[1].splitlines()
    assert [line for line in listed if line.strip()] and not [
        line for line in listed if line.rstrip().endswith("...")
    ], listed
    for name in cli.commands:
        shown = sm(name, "--help", env=env).stdout
        assert shown.count("Usage:") == 1, (name, shown)
        assert "Example" in shown, (name, shown)
        assert f"  {name} " in top


@pytest.mark.parametrize(
    ("typed", "named"),
    [
        ("disable", "send_metrics opt-out"),
        ("off", "send_metrics opt-out"),
        ("enable", "send_metrics opt-in"),
        ("on", "send_metrics opt-in"),
        ("telemetry", "send_metrics status"),
    ],
)
def test_other_tools_words_name_our_command_and_run_nothing(
    home: Path, typed: str, named: str
) -> None:
    opt_in()
    before = state_file(home).read_text()
    result = sm(typed)
    assert result.returncode == ExitCode.USAGE and named in result.stderr
    assert state_file(home).read_text() == before


@pytest.mark.parametrize("typed", ["disable", "telemetry", "off"])
def test_the_hints_wrap_at_word_boundaries_at_80_columns(home: Path, typed: str) -> None:
    result = sm(typed)
    lines = result.stderr.splitlines()
    assert max(len(line) for line in lines) < 80, result.stderr
    # never inside a `command`, never at a hyphen
    assert all(line.count("`") % 2 == 0 and not line.endswith("-") for line in lines), lines


@pytest.mark.parametrize("switch", ["DO_NOT_TRACK", "SEND_METRICS_DISABLED"])
def test_under_the_off_switch_opt_in_records_nothing_and_opt_out_writes_nothing(
    home: Path, switch: str
) -> None:
    """The off switch wins: `opt-in --yes` says so in one line and writes nothing;
    `opt-out` and `reset` with nothing stored create no file either."""
    env = {**os.environ, switch: "1"}
    for args in (["opt-in", "--yes"], ["opt-out"], ["reset"], ["opt-in"]):
        done = sm(*args, env=env, input="")
        assert done.returncode == 0, (args, done.stderr)
        assert_no_traceback(done.stderr)
    said = sm("opt-in", "--yes", env=env).stdout
    assert said == f"{switch} is set here, and wins: nothing recorded (unset it first).\n"
    assert [p for p in home.rglob("*") if p.is_file()] == []
    # With data stored, opt-out under the switch still deletes it.
    opt_in()
    assert sm("run", "--", "true").returncode == 0
    out = sm("opt-out", env=env)
    assert out.returncode == 0 and history(home) == [] and not data_db(home).exists()


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script_for_each_shell(shell: str) -> None:
    result = sm("completion", shell)
    assert result.returncode == 0 and "_SEND_METRICS_COMPLETE" in result.stdout


def test_bash_completion_completes_our_commands() -> None:
    """The script, evaluated by a real bash, completes `send_metrics op` to our two opt-s."""
    script = (
        'eval "$(send_metrics completion bash)"; COMP_WORDS=(send_metrics op); COMP_CWORD=1; '
        '_send_metrics_completion send_metrics; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    env = {**os.environ, "PATH": f"{Path(SEND_METRICS).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.stdout.split() == ["opt-in", "opt-out"], done.stderr


def test_reset_says_when_there_was_nothing_to_forget(home: Path) -> None:
    assert "no decision to forget" in sm("reset").stdout
    opt_in()
    assert "Decision forgotten" in sm("reset").stdout
    assert not state_file(home).exists()
