"""The wrapped command starts exactly as the bare one: the same environment byte for byte (plus
only SEND_METRICS_ACTIVE), the same ignored signals and signal mask, the same descriptors, and
the shells' answers to a PATH lookup. Each check runs the bare command and the wrapped one from
the same caller and compares what the kernel says about them (/proc/PID/status, environ, fd)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import SEND_METRICS, assert_no_traceback, history, opt_in, sm, state_file

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")

# The probe: programs that change no signal disposition, copying what the kernel says of them.
PROBES = (
    'cp /proc/self/status /proc/self/environ "$OUT/x/"',
    "find /proc/self/fd/ -mindepth 1 -maxdepth 1 -fprintf \"$OUT/x/fds\" '%f %l\\n'",
)
MAKEFILE = "impl-probe:\n" + "".join(f"\t+@{p.replace('$', '$$')}\n" for p in PROBES)
# The caller: a Python that sets the dispositions and mask it is told, then becomes `sh`, which
# keeps them and runs the bare probes and the wrapped ones.
LAUNCH = """
import os, signal, sys
ignored, blocked, script = sys.argv[1:4]
for name in ("SIGPIPE", "SIGXFSZ"):
    signal.signal(getattr(signal, name), signal.SIG_DFL)
for name in ignored.split():
    signal.signal(getattr(signal, name), signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_SETMASK, {getattr(signal, n) for n in blocked.split()})
# As given, without the LC_CTYPE this Python may have set for itself (PEP 538).
with open("/proc/self/environ", "rb") as fh:
    given = dict(e.partition(b"=")[::2] for e in fh.read().split(b"\\0") if e)
os.execve("/bin/sh", ["sh", "-c", script], given)
"""

CALLERS = {
    "plain": ("", ""),
    "trap-PIPE": ("SIGPIPE", ""),  # trap '' PIPE
    "nohup-like": ("SIGHUP SIGPIPE SIGXFSZ", ""),
    "background-job": ("SIGINT SIGQUIT", ""),  # `cmd &` in a non-interactive shell
    "blocking": ("", "SIGUSR1 SIGTERM SIGINT SIGCHLD"),
}
PATHS = {
    # name: (wrapped command, extra caller environment, needs a yes, decision file)
    "collected": ("run --", {}, "yes"),
    "declined": ("run --", {}, "no"),
    "no-decision": ("run --", {}, ""),
    "do-not-track": ("run --", {"DO_NOT_TRACK": "1"}, "yes"),
    "nested": ("run --", {"SEND_METRICS_ACTIVE": "1"}, "yes"),
    "traced-recipe": (
        "run --",
        {"SEND_METRICS_ACTIVE": "1", "SEND_METRICS_MAKE_RUN": "/nonexistent/trace"},
        "yes",
    ),
    "preview": ("preview --", {}, ""),
    "wrap": ("wrap", {}, "yes"),
    "wrap-off": ("wrap", {"SEND_METRICS_DISABLED": "yes"}, "yes"),
    "make-n": ("wrap", {"MAKEFLAGS": "n"}, "yes"),
}
LOCALES = {
    "unset": {},
    "LANG=C": {"LANG": "C"},
    "LANG=POSIX": {"LANG": "POSIX"},
    "LC_ALL=C": {"LC_ALL": "C"},
    "C.UTF-8": {"LANG": "C.UTF-8"},
    "de_DE.ISO-8859-1": {"LANG": "de_DE.ISO-8859-1", "LC_CTYPE": "de_DE.ISO-8859-1"},
    "PYTHONCOERCECLOCALE=0": {"LANG": "C", "PYTHONCOERCECLOCALE": "0"},
    "PYTHONCOERCECLOCALE=warn": {"LC_CTYPE": "POSIX", "PYTHONCOERCECLOCALE": "warn"},
    "PYTHONUTF8=1": {"LANG": "C", "PYTHONUTF8": "1"},
    "PYTHONUTF8=0": {"PYTHONUTF8": "0"},
}
LOCALE_VARS = ("LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "PYTHONUTF8")


def _state(folder: Path) -> dict[str, object]:
    """What the kernel said of one probe run."""
    status = dict(
        line.split(":", 1) for line in (folder / "status").read_text().splitlines() if ":" in line
    )
    fds = sorted(
        re.sub(r"\d+", "N", line) if "pipe:" in line or "/proc/" in line else line
        for line in (folder / "fds").read_text().splitlines()
    )
    return {
        "ignored": status["SigIgn"].strip(),
        "blocked": status["SigBlk"].strip(),
        "caught": status["SigCgt"].strip(),
        "environ": (folder / "environ").read_bytes().split(b"\0"),
        "fds": fds,
    }


def _compare(
    tmp_path: Path, path: str, ignored: str, blocked: str, environ: dict[str, str]
) -> tuple[dict[str, object], dict[str, object], str]:
    """Run the bare probe and the wrapped one from the same caller; both states, and stderr."""
    command, extra, decision = PATHS[path]
    if decision == "yes":
        opt_in()
    elif decision == "no":
        assert sm("opt-out").returncode == 0
    work = tmp_path / "probe"
    work.mkdir()
    (work / "Makefile").write_text(MAKEFILE)
    if command == "wrap":
        bare = "make --no-print-directory impl-probe"
        wrapped = f"{SEND_METRICS} wrap probe"
    else:
        bare = "; ".join(PROBES)
        wrapped = "; ".join(f"{SEND_METRICS} {command} {p}" for p in PROBES)
    out = tmp_path / "out"
    script = (
        f"set -e; cd {work}; mkdir -p $OUT/x; {bare}; mv $OUT/x $OUT/bare; mkdir $OUT/x; "
        f"{wrapped}; mv $OUT/x $OUT/wrapped"
    )
    env = {k: v for k, v in os.environ.items() if k not in LOCALE_VARS}
    # A value that is not UTF-8, an empty one, and one with a newline: passed byte for byte.
    odd = {"SM_BYTES": os.fsdecode(b"\xff\xfe caf\xc3\xa9"), "SM_EMPTY": "", "SM_NL": "a\nb"}
    env.update({"OUT": str(out), **odd, **extra, **environ})
    seen = subprocess.run(
        [sys.executable, "-c", LAUNCH, ignored, blocked, script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert seen.returncode == 0, seen.stderr
    return _state(out / "bare"), _state(out / "wrapped"), seen.stderr


def _ours(path: str) -> set[bytes]:
    """The variables a wrapped run may add or change: SEND_METRICS_ACTIVE, and the trace file
    a traced make's recipes need (PRODUCT.md, make integration)."""
    added = {b"SEND_METRICS_ACTIVE"}
    if path == "wrap":
        added.add(b"SEND_METRICS_MAKE_RUN")
    return added


def _without(environ: object, names: set[bytes]) -> list[bytes]:
    assert isinstance(environ, list)
    return [e for e in environ if e.partition(b"=")[0] not in names]


def _assert_same_start(path: str, bare: dict[str, object], wrapped: dict[str, object]) -> None:
    ours = _ours(path)
    assert _without(wrapped["environ"], ours) == _without(bare["environ"], ours)
    for key in ("ignored", "blocked", "caught", "fds"):
        assert wrapped[key] == bare[key], key


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize("path", list(PATHS))
def test_the_child_gets_the_callers_signals_environment_and_descriptors(
    tmp_path: Path, home: Path, path: str, caller: str
) -> None:
    ignored, blocked = CALLERS[caller]
    bare, wrapped, stderr = _compare(tmp_path, path, ignored, blocked, {"LANG": "C"})
    _assert_same_start(path, bare, wrapped)
    assert stderr == ""
    if caller == "trap-PIPE":  # the probe's view, not only equal: the caller's own
        assert int(str(bare["ignored"]), 16) >> (signal.SIGPIPE - 1) & 1
    if path in ("collected", "wrap"):
        assert len(history(home)) == 2 if path == "collected" else 1


@pytest.mark.parametrize("locale", list(LOCALES))
@pytest.mark.parametrize("path", ["collected", "do-not-track", "wrap"])
def test_no_variable_the_interpreter_sets_for_itself_reaches_the_child(
    tmp_path: Path, path: str, locale: str
) -> None:
    """PEP 538: under a C or POSIX locale Python sets LC_CTYPE=C.UTF-8 in its own environment;
    the command must not see it (grep would then call a non-UTF-8 file binary)."""
    bare, wrapped, stderr = _compare(tmp_path, path, "", "", LOCALES[locale])
    _assert_same_start(path, bare, wrapped)
    assert not [e for e in _without(wrapped["environ"], set()) if e.startswith(b"LC_CTYPE=C.")]
    assert_no_traceback(stderr)


def test_grep_reads_a_latin1_file_as_the_bare_grep_does(tmp_path: Path) -> None:
    data = tmp_path / "f"
    data.write_bytes(b"\xff abc\n")
    env = {k: v for k, v in os.environ.items() if k not in LOCALE_VARS} | {"LANG": "C"}
    bare = subprocess.run(["grep", "abc", str(data)], env=env, capture_output=True)
    wrapped = subprocess.run(
        [SEND_METRICS, "run", "--", "grep", "abc", str(data)], env=env, capture_output=True
    )
    assert (wrapped.stdout, wrapped.stderr) == (bare.stdout, bare.stderr) == (b"\xff abc\n", b"")


@pytest.mark.parametrize("switch", ["", "DO_NOT_TRACK=1"])
def test_a_closed_pipe_ends_the_command_as_it_ends_the_bare_one(switch: str, home: Path) -> None:
    """`yes | head -1`: yes dies of SIGPIPE, silently, 141; under `trap '' PIPE` it gets EPIPE
    and says so, 1. The same wrapped, on the exec-only path (an off switch) and the other."""
    if not switch:
        opt_in()
    for trap in ("", "trap '' PIPE; "):
        script = (
            f"{trap}yes | head -1; echo ${{PIPESTATUS[0]}}; "
            f"{switch} send_metrics run -- yes | head -1; echo ${{PIPESTATUS[0]}}"
        )
        seen = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
        lines = seen.stdout.split()
        assert lines[:2] == lines[2:] == (["y", "1"] if trap else ["y", "141"]), seen
        assert seen.stderr == ("yes: standard output: Broken pipe\n" * 2 if trap else "")


def test_a_nested_wrapped_target_ends_on_a_closed_pipe_as_the_bare_one(
    tmp_path: Path, home: Path
) -> None:
    (tmp_path / "Makefile").write_text(
        "dev.%: ; @send_metrics wrap $*\nimpl-outer: ; @$(MAKE) -s dev.inner\n"
        "impl-inner: ; @yes | head -n1\n"
    )
    opt_in()
    bare = subprocess.run(
        ["make", "-s", "impl-inner"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    wrapped = subprocess.run(
        ["make", "-s", "dev.outer"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert (wrapped.stdout, wrapped.stderr) == (bare.stdout, bare.stderr) == ("y\n", "")
    assert [e["command"] for e in history(home)] == ["outer"]


# ---- PATH lookup: the shells' answers ----


def _program_folders(tmp_path: Path) -> dict[str, Path]:
    folders = {
        name: tmp_path / name
        for name in ("dir", "plain", "runs", "elf", "nul", "script", "nul-later")
    }
    for folder in folders.values():
        folder.mkdir()
    (folders["dir"] / "prog").mkdir()  # a directory named like the program
    (folders["plain"] / "prog").write_text("echo not executable\n")
    contents = {
        "runs": b"#!/bin/sh\necho ran\n",
        "elf": b"\x7fELF\x02\x01\x01garbage\n",  # a binary for another machine (ENOEXEC)
        "nul": b"abc\0def\necho ran\n",  # a NUL in the first line: binary
        "script": b"echo ran\n",  # no #! line: run by /bin/sh
        "nul-later": b"echo ran\n\0\n",  # a NUL after the first line: still a script
    }
    for name, content in contents.items():
        (folders[name] / "prog").write_bytes(content)
        (folders[name] / "prog").chmod(0o755)
    return folders


PATH_CASES = {
    # PATH (folder names in order): bash's and dash's answer where they agree
    "directory only": (["dir"], ("", 127), True),
    "directory before the program": (["dir", "runs"], ("ran\n", 0), True),
    "not executable before the program": (["plain", "runs"], ("ran\n", 0), True),
    "not executable only": (["plain"], ("", 126), False),  # dash says 127 here
    "directory before a file that is not executable": (["dir", "plain"], ("", 127), True),
    "binary in a format the kernel cannot run": (["elf"], ("", 126), True),
    "NUL byte in the first line": (["nul"], ("", 126), True),
    "no #! line": (["script"], ("ran\n", 0), True),
    "NUL byte after the first line": (["nul-later"], ("ran\n", 0), True),
}


@pytest.mark.parametrize("switch", ["", "DO_NOT_TRACK=1"])
@pytest.mark.parametrize("case", list(PATH_CASES))
def test_path_lookup_answers_as_the_shells(
    tmp_path: Path, home: Path, case: str, switch: str
) -> None:
    folders = _program_folders(tmp_path)
    names, expected, dash_agrees = PATH_CASES[case]
    path = ":".join(str(folders[n]) for n in names) + ":/usr/bin:/bin"
    shells = ["bash", "dash"] if dash_agrees else ["bash"]
    for shell in shells:
        bare = subprocess.run(
            [shell, "-c", f"PATH={path}; prog"], capture_output=True, text=True, timeout=30
        )
        assert (bare.stdout, bare.returncode) == expected, (shell, bare)
    if not switch:
        opt_in()
    wrapped = subprocess.run(
        ["sh", "-c", f"{switch} PATH={path} {SEND_METRICS} run -- prog"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (wrapped.stdout, wrapped.returncode) == expected, wrapped
    if expected[1] == 127:
        assert wrapped.stderr == "send_metrics: prog: command not found\n"
    elif expected[1] == 126:
        why = "Permission denied" if names == ["plain"] else "Exec format error"
        assert wrapped.stderr == f"send_metrics: prog: {why}\n"
    else:
        assert wrapped.stderr == ""


@pytest.mark.parametrize("switch", ["", "DO_NOT_TRACK=1"])
def test_a_path_to_a_directory_is_126_as_in_bash(tmp_path: Path, home: Path, switch: str) -> None:
    if not switch:
        opt_in()
    bare = subprocess.run(["bash", "-c", str(tmp_path)], capture_output=True, text=True)
    wrapped = subprocess.run(
        ["sh", "-c", f"{switch} {SEND_METRICS} run -- {tmp_path}"], capture_output=True, text=True
    )
    assert wrapped.returncode == bare.returncode == 126
    assert wrapped.stderr == f"send_metrics: {tmp_path}: Is a directory\n"
    assert bare.stderr.endswith(f"{tmp_path}: Is a directory\n")


# ---- opt-out and a symlinked decision file ----


def test_opt_out_removes_a_symlinked_decision_file_and_never_follows_it(
    tmp_path: Path, home: Path
) -> None:
    opt_in()
    state = state_file(home)
    kept = tmp_path / "dotfiles" / "metrics.toml"
    kept.parent.mkdir()
    state.rename(kept)
    state.symlink_to(kept)
    before = kept.read_bytes()
    result = sm("opt-out")
    assert result.returncode == 0, result.stderr
    assert not state.is_symlink()
    assert 'decision = "declined"' in state.read_text()
    assert kept.read_bytes() == before  # the link's target is never written
    assert sm("run", "--", "true").returncode == 0
    assert history(home) == []


# A caller that is not a shell: a program that sets its signals and execs the command itself.
DIRECT = """
import os, signal, sys
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
for name in sys.argv[1].split():
    signal.signal(getattr(signal, name), signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_SETMASK, {signal.SIGUSR2})
os.execvp(sys.argv[2], sys.argv[2:])
"""


@pytest.mark.parametrize("path", ["collected", "do-not-track", "preview"])
@pytest.mark.parametrize("ignored", ["SIGCHLD", "SIGINT SIGQUIT SIGCHLD", "SIGHUP"])
def test_a_caller_that_is_not_a_shell_passes_its_signals_through_us(
    tmp_path: Path, path: str, ignored: str
) -> None:
    """An ignored SIGCHLD (children reaped by the kernel) is the command's as well, while the
    wrapper still waits for it and records it."""
    command, extra, decision = PATHS[path]
    if decision == "yes":
        opt_in()
    env = {**os.environ, **extra}
    states = []
    for wrap in ([], [SEND_METRICS, *command.split()]):
        folder = tmp_path / ("wrapped" if wrap else "bare")
        folder.mkdir()
        probe = ["cp", "/proc/self/status", "/proc/self/environ", f"{folder}/"]
        seen = subprocess.run(
            [sys.executable, "-c", DIRECT, ignored, *wrap, *probe],
            env=env,
            capture_output=True,
            timeout=60,
        )
        assert seen.returncode == 0, seen.stderr
        assert_no_traceback(seen.stderr.decode())
        (folder / "fds").write_text("")
        states.append(_state(folder))
    bare, wrapped = states
    _assert_same_start(path, bare, wrapped)
    if path == "collected":
        assert len(history(Path(os.environ["HOME"]))) == 1
