"""A wrapped command ends, is signalled, stops and starts exactly as the bare command does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest

from tests.helpers import SEND_METRICS, assert_no_traceback, history, job_shell, opt_in, sm

# Each line of the calling shell's view: "<code> <bare status> <wrapped status>".
STATUS_TABLE = """
for code in $(seq 0 255); do
    sh -c "exit $code"; bare=$?
    send_metrics run -- sh -c "exit $code"; wrapped=$?
    echo "$code $bare $wrapped"
done
"""
DEATHS = ["INT", "TERM", "HUP", "QUIT", "USR1", "USR2", "ALRM", "PIPE", "SEGV", "ABRT", "KILL"]


def test_every_exit_code_reaches_the_calling_shell_unchanged() -> None:
    table = subprocess.run(["sh", "-c", STATUS_TABLE], capture_output=True, text=True, timeout=300)
    assert table.returncode == 0 and table.stderr == ""
    rows = [line.split() for line in table.stdout.splitlines()]
    assert len(rows) == 256
    assert [row for row in rows if row[1] != row[2]] == []
    assert [int(row[2]) for row in rows] == list(range(256))


@pytest.mark.parametrize("name", DEATHS)
def test_death_by_signal_looks_the_same_to_the_calling_shell(name: str, tmp_path: Path) -> None:
    caller = (
        f"ulimit -c 0; sh -c 'kill -{name} $$'; bare=$?; "
        f"send_metrics run -- sh -c 'kill -{name} $$'; echo $bare $?"
    )
    seen = subprocess.run(
        ["sh", "-c", caller], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    bare, wrapped = seen.stdout.split()
    assert wrapped == bare == str(128 + signal.Signals[f"SIG{name}"])
    assert_no_traceback(seen.stderr)
    direct = subprocess.run(
        [SEND_METRICS, "run", "--", "sh", "-c", f"ulimit -c 0; kill -{name} $$"],
        capture_output=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert direct.returncode == -signal.Signals[f"SIG{name}"]  # the same signal, not an exit


COUNTER = """
n=0
trap 'n=$((n+1))' {sig}
echo $$ > "{ready}.tmp"; mv "{ready}.tmp" "{ready}"
i=0; while [ $i -lt 20 ] && [ $n -eq 0 ]; do sleep 0.05; i=$((i+1)); done
sleep 0.3
echo "seen:$n"
"""


def _counting_child(tmp_path: Path, sig: str) -> subprocess.Popen[str]:
    """The wrapper, leading its own process group, around a shell counting `sig`."""
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [SEND_METRICS, "run", "--", "sh", "-c", COUNTER.format(sig=sig, ready=ready)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        process_group=0,
    )
    for _ in range(500):
        if ready.exists():
            return proc
        time.sleep(0.01)
    proc.kill()
    raise AssertionError("child never started")


@pytest.mark.parametrize("how", ["wrapper", "group"])
@pytest.mark.parametrize("sig", ["USR1", "USR2", "ALRM", "WINCH", "CONT", "PIPE", "TERM", "HUP"])
def test_a_handled_signal_reaches_the_child_exactly_once(
    tmp_path: Path, sig: str, how: str
) -> None:
    """`kill -USR1 <wrapper>` and `kill -USR1 -<group>` both reach the child once: a signal to
    the whole group has reached it already and is not sent again."""
    proc = _counting_child(tmp_path, sig)
    signum = signal.Signals[f"SIG{sig}"]
    try:
        if how == "wrapper":
            os.kill(proc.pid, signum)
        else:
            os.killpg(proc.pid, signum)
    finally:
        out, err = proc.communicate(timeout=30)
    assert out.strip() == "seen:1"
    assert proc.returncode == 0
    assert_no_traceback(err)


def test_timeout_signals_the_child_no_more_than_the_bare_command(tmp_path: Path) -> None:
    """`timeout` signals its command and then its whole group: a bare command sees that once
    or twice (two close signals may merge); forwarding the group's signal again would make it
    three."""
    script = COUNTER.format(sig="USR1", ready=tmp_path / "ready")
    for argv in (["sh", "-c", script], [SEND_METRICS, "run", "--", "sh", "-c", script]):
        (tmp_path / "ready").unlink(missing_ok=True)
        result = subprocess.run(
            ["timeout", "-s", "USR1", "0.5", *argv], capture_output=True, text=True, timeout=30
        )
        assert result.stdout in ("seen:1\n", "seen:2\n"), argv
        assert result.returncode == 124


def test_a_child_that_stops_itself_gives_the_prompt_back_and_fg_resumes_it(home: Path) -> None:
    opt_in()
    shell = job_shell(home)
    shell.sendline("send_metrics run -- bash -c 'kill -TSTP $$; echo resumed'")
    shell.expect("PROMPT> ")
    assert "Stopped" in shell.before and "\nresumed" not in shell.before
    shell.sendline("fg")
    shell.expect("PROMPT> ")
    assert "\nresumed\r\n" in shell.before
    shell.sendline("echo status:$?")
    shell.expect(r"status:(\d+)")
    assert shell.match.group(1) == "0"
    shell.sendline("exit")
    shell.expect(pexpect.EOF)
    assert [(e["command"], e["exit_code"]) for e in history(home)] == [("bash", 0)]


def test_ctrl_z_stops_the_wrapped_command_and_fg_continues_it(home: Path) -> None:
    opt_in()
    shell = job_shell(home)
    shell.sendline("send_metrics run -- sh -c 'echo started; sleep 3; echo finished; exit 3'")
    shell.expect("\r\nstarted\r\n")  # the child's line, not the command line's echo
    shell.sendcontrol("z")
    shell.expect("PROMPT> ")
    assert "Stopped" in shell.before and "\nfinished" not in shell.before
    shell.sendline("fg")
    shell.expect("\r\nfinished\r\n")
    shell.expect("PROMPT> ")
    shell.sendline("echo status:$?")
    shell.expect(r"status:(\d+)")
    assert shell.match.group(1) == "3"
    shell.sendline("exit")
    shell.expect(pexpect.EOF)
    assert_no_traceback(shell.before or "")


def test_a_background_read_stops_on_sigttin_and_fg_gives_it_the_terminal(home: Path) -> None:
    opt_in()
    shell = job_shell(home)
    shell.sendline("send_metrics run -- sh -c 'read line; echo got:$line' &")
    shell.expect("PROMPT> ")
    # A bounded wait, in the shell, for the job (the wrapper) to be reported stopped.
    shell.sendline("for i in $(seq 100); do jobs | grep -q Stopped && break; sleep 0.1; done; jobs")
    shell.expect(r"\[1\]\+ +Stopped")
    shell.expect("PROMPT> ")
    shell.sendline("fg")
    shell.expect("read line")  # bash names the job it continues
    shell.sendline("hello")
    shell.expect("got:hello")
    shell.expect("PROMPT> ")
    shell.sendline("echo status:$?")
    shell.expect(r"status:(\d+)")
    assert shell.match.group(1) == "0"
    shell.sendline("exit")
    shell.expect(pexpect.EOF)


def test_a_script_without_shebang_runs_with_sh_as_in_a_shell(tmp_path: Path) -> None:
    script = tmp_path / "plain-script"
    script.write_text('echo "args:$*"\nexit 6\n')
    script.chmod(0o755)
    bare = subprocess.run(
        ["sh", "-c", f"{script} one two"], capture_output=True, text=True, timeout=30
    )
    wrapped = sm("run", "--", str(script), "one", "two")
    assert (
        (wrapped.stdout, wrapped.returncode)
        == (bare.stdout, bare.returncode)
        == ("args:one two\n", 6)
    )
    assert wrapped.stderr == ""
    on_path = sm(
        "run", "--", "plain-script", "x", env={**os.environ, "PATH": f"{tmp_path}:/usr/bin:/bin"}
    )
    assert (on_path.stdout, on_path.returncode) == ("args:x\n", 6)


def test_an_empty_program_name_is_one_line_127_and_nothing_recorded(home: Path) -> None:
    opt_in()
    result = sm("run", "--", "")
    assert result.returncode == 127
    assert len(result.stderr.splitlines()) == 1 and "empty" in result.stderr
    assert history(home) == []


def test_signals_keep_reaching_the_child_while_our_thread_runs(home: Path, tmp_path: Path) -> None:
    """Once consent is given a prefetch thread runs beside the wait: USR1 must still go to the
    child, never kill the wrapper through that thread."""
    opt_in()
    proc = _counting_child(tmp_path, "USR1")
    os.kill(proc.pid, signal.SIGUSR1)
    out, _err = proc.communicate(timeout=30)
    assert (out.strip(), proc.returncode) == ("seen:1", 0)
    assert history(home)[0]["exit_code"] == 0


@pytest.mark.skipif(sys.platform != "linux", reason="the group witness is Linux's")
def test_the_group_witness_is_gone_after_the_run(tmp_path: Path) -> None:
    import psutil

    proc = _counting_child(tmp_path, "USR1")
    try:
        helpers = psutil.Process(proc.pid).children()
        assert len(helpers) == 2  # the witness of group signals (started first) and the command
    finally:
        os.kill(proc.pid, signal.SIGUSR1)
        proc.communicate(timeout=30)
    _gone, alive = psutil.wait_procs(helpers, timeout=10)
    assert alive == []
