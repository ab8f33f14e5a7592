"""`run` and `wrap` behave like the command they wrap: status, signals, stdio, terminals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pexpect
import psutil
import pytest

from tests.helpers import SEND_METRICS, assert_no_traceback, history, opt_in, sm


@pytest.mark.parametrize("code", [0, 1, 2, 7, 127, 130, 143])
def test_exit_status_is_the_childs(code: int) -> None:
    result = sm("run", "--", "sh", "-c", f"exit {code}")
    assert result.returncode == code
    assert result.stderr == ""


def test_exit_seven_and_sigterm_are_recorded_and_shown_by_stats(home: Path) -> None:
    opt_in()
    seven = sm("run", "--", "sh", "-c", "exit 7")
    killed = sm("run", "--", "sh", "-c", "kill -TERM $$")
    assert seven.returncode == 7
    assert killed.returncode == -signal.SIGTERM
    events = history(home)
    assert [(e["exit_code"], e["signal"], e["interrupted"]) for e in events] == [
        (7, None, False),
        (None, "SIGTERM", True),
    ]
    start = datetime.fromisoformat(events[0]["start_time"])
    assert start.utcoffset().total_seconds() == 0
    assert events[0]["duration_ms"] >= 0
    stats = sm("stats")
    assert stats.returncode == 0
    line = next(x for x in stats.stdout.splitlines() if x.startswith("sh "))
    assert line.split()[1:3] == ["2", "2"]


def test_unknown_program_gives_the_shells_answer() -> None:
    result = sm("run", "--", "no-such-program-xyz")
    assert result.returncode == 127
    assert result.stderr.strip() == "send_metrics: no-such-program-xyz: command not found"


def test_not_executable_is_126(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("echo hi\n")
    result = sm("run", "--", str(script))
    assert result.returncode == 126
    assert len(result.stderr.strip().splitlines()) == 1
    assert_no_traceback(result.stderr)


def test_binary_stdout_passes_byte_for_byte() -> None:
    payload = bytes(range(256)) * 4096
    code = "import sys; sys.stdout.buffer.write(bytes(range(256)) * 4096)"
    result = subprocess.run(
        [SEND_METRICS, "run", "--", sys.executable, "-c", code], capture_output=True, timeout=30
    )
    assert result.returncode == 0
    assert result.stdout == payload


def test_stdin_is_passed_through() -> None:
    result = sm("run", "--", "sh", "-c", "read line; echo got:$line", input="hello there\n")
    assert result.stdout == "got:hello there\n"


def test_child_sees_a_terminal() -> None:
    code = "import sys; print('tty', sys.stdin.isatty(), sys.stdout.isatty(), sys.stderr.isatty())"
    child = pexpect.spawn(SEND_METRICS, ["run", "--", sys.executable, "-c", code], timeout=20)
    child.expect(r"tty (\w+) (\w+) (\w+)")
    assert child.match.groups() == (b"True", b"True", b"True")
    child.expect(r"\[y/N\] ")  # a terminal and no decision yet: the wrapper asks, once
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def _start_sleeper(tmp_path: Path, script: str) -> tuple[subprocess.Popen, int]:
    """Start the wrapper around a shell script; return it and the child's pid once ready."""
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [
            SEND_METRICS,
            "run",
            "--",
            "sh",
            "-c",
            f"echo $$ > {ready}.tmp; mv {ready}.tmp {ready}; {script}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for _ in range(500):
        if ready.exists():
            return proc, int(ready.read_text())
        time.sleep(0.01)
    proc.kill()
    raise AssertionError("child never started")


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT], ids=lambda s: s.name
)
def test_signal_to_wrapper_reaches_child_and_wrapper_dies_the_same(
    tmp_path: Path, home: Path, sig: signal.Signals
) -> None:
    opt_in()
    proc, child_pid = _start_sleeper(tmp_path, "exec sleep 30")
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == -sig
    assert not psutil.pid_exists(child_pid) or psutil.Process(child_pid).status() == "zombie"
    assert_no_traceback(err)
    [event] = history(home)
    assert event["signal"] == sig.name
    assert event["interrupted"] is True


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_signal_to_child_ends_wrapper_by_same_signal(tmp_path: Path, sig: signal.Signals) -> None:
    proc, child_pid = _start_sleeper(tmp_path, "exec sleep 30")
    os.kill(child_pid, sig)
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == -sig
    assert_no_traceback(err)


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_killing_the_wrapper_with_sigkill_does_not_orphan_the_child(tmp_path: Path) -> None:
    proc, child_pid = _start_sleeper(tmp_path, "exec sleep 30")
    child = psutil.Process(child_pid)
    proc.kill()
    proc.communicate(timeout=10)
    gone, _alive = psutil.wait_procs([child], timeout=10)
    assert gone, "the child outlived its killed wrapper"


def test_wrapper_outlives_a_child_that_handles_the_signal(tmp_path: Path, home: Path) -> None:
    opt_in()
    proc, _pid = _start_sleeper(
        tmp_path, "trap 'echo cleaning up; exit 5' TERM; while :; do sleep 0.05; done"
    )
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 5
    assert "cleaning up" in out
    assert_no_traceback(err)
    [event] = history(home)
    assert (event["exit_code"], event["signal"], event["interrupted"]) == (5, None, True)


def test_ctrl_c_in_a_terminal_reaches_the_child_once(tmp_path: Path, home: Path) -> None:
    """The terminal signals the whole group; forwarding again would count two Ctrl-Cs."""
    opt_in()
    script = "n=0; trap 'n=$((n+1))' INT; echo ready; sleep 1; sleep 1; echo interrupts:$n; exit 3"
    child = pexpect.spawn(SEND_METRICS, ["run", "--", "sh", "-c", script], timeout=20)
    child.expect("ready")
    time.sleep(0.3)
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert b"interrupts:1" in child.before
    assert b"Traceback" not in child.before
    assert child.exitstatus == 3
    [event] = history(home)
    assert event["interrupted"] is True


MAKEFILE = """\
THIS := $(firstword $(MAKEFILE_LIST))
WRAP = @send_metrics wrap --make='$(MAKE)' -f '$(THIS)'
dev.%: ; +$(WRAP) $@

impl-dev.hello: ; @echo "hello FOO=$(FOO)"
impl-dev.fail: ; @echo failing >&2; exit 1
impl-dev.read: ; @read line; echo "read:$$line"
impl-dev.outer: ; @$(MAKE) --no-print-directory -f '$(THIS)' dev.inner; echo outer done
impl-dev.inner: ; @echo inner ran
impl-dev.a: ; @$(MAKE) --no-print-directory -f '$(THIS)' leaf.a1 leaf.a2 && $(BARRIER) a b
impl-dev.b: ; @$(BARRIER) b a
leaf.%: ; @echo leaf $*
BARRIER = sh -c 'touch "$(MARKS)/$$1"; i=0; while [ ! -e "$(MARKS)/$$2" ]; do \
  i=$$((i+1)); [ $$i -gt 200 ] && echo "no $$2 while $$1 ran" && exit 9; sleep 0.05; done' x
"""


@pytest.fixture
def makefile(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    path = folder / "Makefile"
    path.write_text(MAKEFILE)
    return path


def make(makefile: Path, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-f", str(makefile), *args], capture_output=True, text=True, timeout=60, **kwargs
    )


def test_wrap_with_makefile_elsewhere_and_variables(makefile: Path, home: Path) -> None:
    opt_in()
    result = make(makefile, "dev.hello", "FOO=bar")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello FOO=bar\n"
    assert "Entering directory" not in result.stdout + result.stderr
    [event] = history(home)
    assert (event["command"], event["command_type"], event["exit_code"]) == ("dev.hello", "make", 0)


def test_wrap_passes_its_own_variables(makefile: Path) -> None:
    result = sm("wrap", "-f", str(makefile), "dev.hello", "FOO=from-wrap")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello FOO=from-wrap\n"


def test_wrap_failing_recipe(makefile: Path, home: Path) -> None:
    opt_in()
    result = make(makefile, "dev.fail")
    assert result.returncode == 2
    assert "failing" in result.stderr
    assert_no_traceback(result.stderr)
    [event] = history(home)
    assert (event["command"], event["exit_code"]) == ("dev.fail", 2)


def test_wrap_stdin_reaches_the_recipe(makefile: Path) -> None:
    result = make(makefile, "dev.read", input="typed line\n")
    assert result.stdout == "read:typed line\n"


@pytest.mark.parametrize(
    ("makeflags", "letters"),
    [
        ("n", {"n"}),
        ("ks -I/tmp", {"k", "s"}),
        (" -I/tmp/include -j2 --jobserver-auth=3,4", set()),
        ("n -Otarget", {"n"}),
        ("", set()),
        (" -- FOO=bar", set()),
    ],
)
def test_make_flags(makeflags: str, letters: set[str]) -> None:
    from send_metrics.run.wrapper import make_flags

    assert make_flags(makeflags) == letters


def test_make_options_with_arguments_are_not_mistaken_for_dry_run(
    makefile: Path, home: Path
) -> None:
    opt_in()
    result = make(makefile, "-I", "/tmp/include", "-O", "dev.hello")
    assert result.returncode == 0
    assert [e["command"] for e in history(home)] == ["dev.hello"]


def test_make_dry_run_shows_the_real_recipe_and_records_nothing(makefile: Path, home: Path) -> None:
    opt_in()
    result = make(makefile, "-n", "dev.hello")
    assert result.returncode == 0
    assert 'echo "hello FOO="' in result.stdout
    assert history(home) == []


def test_nested_wrapped_target_is_counted_once(makefile: Path, home: Path) -> None:
    opt_in()
    result = make(makefile, "dev.outer")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "inner ran\nouter done\n"
    assert [e["command"] for e in history(home)] == ["dev.outer"]


def test_parallel_wrapped_targets_share_the_jobserver(
    makefile: Path, tmp_path: Path, home: Path
) -> None:
    """dev.a and dev.b wait for each other: this passes only if make runs them at once."""
    opt_in()
    marks = tmp_path / "marks"
    marks.mkdir()
    result = make(makefile, "-j4", "dev.a", "dev.b", f"MARKS={marks}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "jobserver unavailable" not in result.stderr
    assert "leaf a1" in result.stdout and "leaf a2" in result.stdout
    assert sorted(e["command"] for e in history(home)) == ["dev.a", "dev.b"]


def test_wrap_rejects_non_variable_arguments() -> None:
    result = sm("wrap", "dev.hello", "not-a-variable")
    assert result.returncode == 2
    assert "VAR=value" in result.stderr
    assert_no_traceback(result.stderr)


def test_python_dash_m_works() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "send_metrics", "run", "--", "sh", "-c", "exit 4"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 4
    version = subprocess.run(
        [sys.executable, "-m", "send_metrics", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert version.returncode == 0 and "send_metrics" in version.stdout


def test_portable_signal_path_without_sigtimedwait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where sigtimedwait is missing (macOS), handlers forward the signal instead."""
    import threading

    from send_metrics.run import runner

    saved = {sig: signal.getsignal(sig) for sig in runner.FORWARDED}
    monkeypatch.delattr(runner.signal, "sigtimedwait")  # the signal module runner uses
    try:
        child = runner.Child(["sh", "-c", "exec sleep 30"])
        assert not child._use_sigwait
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
        result = child.wait()
        child.release()
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    assert result.signal == signal.SIGTERM and result.interrupted
    assert result.exit_code is None and result.status == 128 + signal.SIGTERM


@pytest.mark.parametrize(
    ("config", "ran"),
    [
        ('[make]\nimpl_prefix = "do-"\n', "custom"),
        ('[make]\n"impl_\\u0070refix" = "do-"\n', "custom"),  # a key spelt with an escape
        ("[consent]\nversion = 1\n# no prefix here\n", "default"),
        (None, "default"),
    ],
    ids=["set", "escaped", "not set", "no config"],
)
def test_wrap_uses_the_operators_impl_prefix(home: Path, config: str | None, ran: str) -> None:
    """The prefix is read before the child starts, skipping the parse only when the file
    cannot set it."""
    if config is not None:
        Path("send_metrics.toml").write_text(config)
    Path("Makefile").write_text("do-t: ; @echo custom\nimpl-t: ; @echo default\n")
    result = sm("wrap", "t")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ran


# ---- `run -- make GOALS`: named by its goals, with the breakdown the include line makes ----

INCLUDED = """\
all: first second
\t@echo all done
first:
\t@sleep 0.1; echo first
second: first
\t@sleep 0.2; echo second
-include send_metrics.mk
"""


def test_run_make_records_the_goals_and_keeps_the_include_lines_breakdown(
    home: Path, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "Makefile").write_text(INCLUDED)
    (project / "send_metrics.mk").write_text(sm("makefile").stdout)
    argv = ["make", "-j2", "--no-print-directory", "-C", str(project), "all", "TOKEN=s3cret"]
    # Before a yes the include line changes nothing: this is the bare run.
    bare = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    opt_in()
    before = len(history(home))
    wrapped = sm("run", "--", *argv)
    assert (wrapped.returncode, wrapped.stdout, wrapped.stderr) == (
        bare.returncode,
        bare.stdout,
        bare.stderr,
    )
    events = history(home)
    assert len(events) == before + 1  # counted once: the include stands aside under `run`
    event = events[-1]
    assert (event["command"], event["command_type"]) == ("all", "make")
    assert event["command_args"] is None and "s3cret" not in str(event)
    names = [t["name"] for t in event["make_targets"] or []]
    assert sorted(names) == ["all", "first", "second"], event["make_targets"]
    assert [t["name"] for t in event["make_targets"] if t["critical"]] == [
        "first",
        "second",
        "all",
    ]
    traced = sm("trace", "all")
    assert "critical path: first -> second -> all" in traced.stdout, traced.stdout


@pytest.mark.parametrize(
    ("args", "command"),
    [
        ((), "make"),
        (("-s", "V=1", "hello"), "hello"),
        (("-f", "Makefile", "-j", "2", "hello", "bye"), "hello bye"),
        (("--jobs", "2", "hello"), "hello"),  # make takes the number as --jobs's value
        (("--load-average", "2.5", "--max-load", "3", "bye"), "bye"),
        (("Makefile",), "(file)"),  # a goal that names a file is never sent by name
    ],
)
def test_run_make_is_named_by_its_goals_never_options_or_assignments(
    home: Path, tmp_path: Path, args: tuple[str, ...], command: str
) -> None:
    opt_in()
    (tmp_path / "Makefile").write_text("hello bye:\n\t@:\nMakefile: ;\n.DEFAULT_GOAL := hello\n")
    result = sm("run", "--", "make", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [event] = history(home)
    assert (event["command"], event["command_type"]) == (command, "make")
    assert event["command_args"] is None


def test_make_goals_skip_every_option_value() -> None:
    from send_metrics.run.spec import make_goals

    assert make_goals(["-C", "a", "-Cb", "-j4", "-j", "8", "-l", "2.5", "-kO", "x", "Y=1"]) == (
        ["x"],
        "a/b",
    )
    assert make_goals(
        ["-fMk", "--file", "F", "--eval", "A=1", "--directory=c", "-W", "w", "t"]
    ) == (
        ["t"],
        "c",
    )
    assert make_goals(["--", "g", "V=2"]) == (["g"], "")
