"""Hostile inputs from the environment and the working directory: off switches with stray
whitespace, an empty or relative HOME, a config name taken by a FIFO, a directory or a device,
an impl prefix that makes make loop, and a background job under `stty tostop`."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pexpect
import pytest

from send_metrics.make.snippet import snippet_path
from tests.helpers import (
    SEND_METRICS,
    as_stranger,
    assert_no_traceback,
    history,
    job_shell,
    opt_in,
    sm,
)

EXAMPLE = Path(__file__).parent.parent / "Makefile.example"

# ---- 1. the off switches: only empty, 0, false, no, off (any case, nothing around) allow ----

ALLOWED = ["", "0", "false", "FALSE", "False", "no", "NO", "nO", "off", "OFF", "oFf"]
DISABLING = [
    "1",
    "yes",
    "true",
    " ",
    "  ",
    "\t",
    "\n",
    "0 ",
    " 0",
    "OFF ",
    " false",
    "no\n",
    "off\t",
    "0 0",
    "00",
    "nope",
    "offf",
    "$(shell touch shell-ran)",
    "0,",
    "(",
]
TABLE = [(value, False) for value in ALLOWED] + [(value, True) for value in DISABLING]
SWITCHES = ["DO_NOT_TRACK", "SEND_METRICS_DISABLED"]


@pytest.mark.parametrize("variable", SWITCHES)
def test_run_is_disabled_by_any_value_but_the_five_words(home: Path, variable: str) -> None:
    opt_in()
    expected = 0
    for value, disables in TABLE:
        result = sm("run", "--", "true", env={**os.environ, variable: value})
        assert result.returncode == 0 and result.stderr == "", (value, result.stderr)
        expected += 0 if disables else 1
        assert len(history(home)) == expected, f"{variable}={value!r}"


def _wait_for_watchers(home: Path) -> None:
    folder = home / ".cache" / "send_metrics-make"
    for _ in range(400):
        if not folder.exists() or not list(folder.glob("*.trace")):
            return
        time.sleep(0.05)


@pytest.mark.parametrize("variable", SWITCHES)
def test_the_included_snippet_agrees_with_the_run_path(
    home: Path, tmp_path: Path, variable: str
) -> None:
    """make decides with its own functions, before anything runs: the same table."""
    opt_in()
    work = tmp_path / "proj"
    work.mkdir()
    (work / "Makefile").write_text(f"a:\n\t@echo in a\n-include {snippet_path()}\n")
    expected = 0
    for value, disables in TABLE:
        done = subprocess.run(
            ["make", "a"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, variable: value},
        )
        assert done.returncode == 0 and done.stdout == "in a\n", (value, done.stderr)
        assert not (work / "shell-ran").exists()  # the value is never expanded by make
        _wait_for_watchers(home)
        expected += 0 if disables else 1
        assert len(history(home)) == expected, f"{variable}={value!r}"


def test_env_flag_reads_the_same_table() -> None:
    from send_metrics.settings.early import env_flag

    for value, disables in TABLE:
        assert env_flag("X", {"X": value}) is disables, repr(value)
    assert env_flag("X", {}) is False


# ---- 2. an empty or relative HOME is no home: the passwd entry, else one line ----


def _created_at_root() -> set[str]:
    return {name for name in (".config", ".local", ".cache") if os.path.lexists(f"/{name}")}


@pytest.mark.parametrize("value", ["", "relative/home", "."])
def test_an_empty_or_relative_home_writes_nothing_at_the_root(
    stranger_home: Path,
    value: str,
) -> None:
    """A uid without a passwd entry: with HOME empty or relative there is no home, so each
    command says so in one line; before, HOME="" meant `/`."""
    before = _created_at_root()
    env = {"PATH": os.environ["PATH"], "HOME": value}  # no XDG directories either

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*as_stranger(), SEND_METRICS, *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=stranger_home,
            env=env,
        )

    status = run("status")
    assert (status.returncode, status.stdout) == (3, ""), status.stdout
    [line] = status.stderr.splitlines()
    assert "home directory" in line
    agreed = run("opt-in", "--yes")
    assert agreed.returncode == 3, agreed.stderr
    [line] = agreed.stderr.splitlines()
    assert "home directory" in line
    ran = run("run", "--", "sh", "-c", "exit 7")
    assert ran.returncode == 7
    [line] = ran.stderr.splitlines()
    assert "home directory" in line
    assert_no_traceback(status.stderr + agreed.stderr + ran.stderr)
    assert _created_at_root() == before
    assert list(stranger_home.iterdir()) == []


def test_an_empty_home_falls_back_to_the_passwd_entry(tmp_path: Path) -> None:
    """As `nobody` (a passwd entry whose home, `/nonexistent`, is not there): with HOME empty
    and no XDG variables, `status` shows paths under the passwd entry's home, never `/`."""
    import pwd

    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run as nobody")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no nobody user here")
    if not os.path.isabs(nobody.pw_dir) or os.path.exists(nobody.pw_dir):
        pytest.skip(f"nobody's home {nobody.pw_dir} exists here: not ours to read")
    as_nobody = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}"]
    as_nobody += ["--clear-groups", "--"]
    probe = subprocess.run([*as_nobody, SEND_METRICS, "--version"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"nobody cannot run {SEND_METRICS}")
    tmp_path.chmod(0o755)
    result = subprocess.run(
        [*as_nobody, SEND_METRICS, "status"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "HOME": ""},
    )
    assert result.returncode == 0, result.stderr
    shown = dict(
        (label.strip(), value.strip())
        for label, _, value in (line.partition(":") for line in result.stdout.splitlines())
    )
    home = nobody.pw_dir
    assert shown["state file"] == os.path.join(home, ".config", "send_metrics", "metrics.toml")
    assert shown["history and queue"].startswith(os.path.join(home, ".local", "share") + "/")


def test_config_home_before_the_child_follows_the_same_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pwd

    from send_metrics.settings import early, files

    monkeypatch.delenv("XDG_CONFIG_HOME")
    passwd_home = pwd.getpwuid(os.getuid()).pw_dir
    for value in ("", "relative", "./x"):
        monkeypatch.setenv("HOME", value)
        assert early.config_home("app") == os.path.join(passwd_home, ".config", "app")
        assert files.config_dir("app") == early.config_home("app")
    monkeypatch.delenv("HOME")
    assert early.config_home("app") == os.path.join(passwd_home, ".config", "app")


# ---- 3. a config name taken by something that is not a file stops the search ----


def _below_a_parent_config(tmp_path: Path) -> tuple[Path, Path]:
    """A working folder whose parent has a config that would show if it were read, and the
    path where the working folder's own `send_metrics.toml` goes."""
    parent = tmp_path / "repo"
    work = parent / "sub"
    work.mkdir(parents=True)
    (parent / "send_metrics.toml").write_text("bogus_parent_key = 1\n")
    return work, work / "send_metrics.toml"


def _exit_7_in(work: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SEND_METRICS, "run", "--", "sh", "-c", "exit 7"],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=work,
    )


@pytest.mark.parametrize("kind", ["fifo", "directory", "link to /dev/zero"])
def test_a_config_name_that_is_not_a_file_is_refused_not_skipped(tmp_path: Path, kind: str) -> None:
    work, taken = _below_a_parent_config(tmp_path)
    if kind == "fifo":
        os.mkfifo(taken)
    elif kind == "directory":
        taken.mkdir()
    else:
        taken.symlink_to("/dev/zero")
    started = time.monotonic()
    result = _exit_7_in(work)
    took = time.monotonic() - started
    assert result.returncode == 7
    [line] = result.stderr.splitlines()
    assert str(taken) in line and "is not a regular file" in line and "using defaults" in line
    assert "bogus_parent_key" not in line
    assert_no_traceback(result.stderr)
    assert took < 1.5, took
    status = subprocess.run(
        [SEND_METRICS, "status"], capture_output=True, text=True, timeout=20, cwd=work
    )
    assert str(taken) in status.stdout and "bogus_parent_key" not in status.stdout


def test_a_dangling_config_link_is_refused_too(tmp_path: Path) -> None:
    work, taken = _below_a_parent_config(tmp_path)
    taken.symlink_to(tmp_path / "nowhere")
    result = _exit_7_in(work)
    assert result.returncode == 7
    [line] = result.stderr.splitlines()
    assert "sub/send_metrics.toml" in line and "using defaults" in line


# ---- 4. make.impl_prefix: checked, and a loop of wrapped targets ends ----


def _example(*args: str, cwd: Path, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["timeout", str(timeout), "make", "-f", str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        timeout=timeout + 10,
        cwd=cwd,
    )


BAD_PREFIXES = [
    "",
    "-",
    "--eval=x:",
    "-impl",
    "a b",
    "x/",
    "%",
    "$(x)",
    "a=",
    "a:",
    "tab\t",
    "é",
    "a" * 65,
]


@pytest.mark.parametrize("prefix", BAD_PREFIXES)
def test_a_bad_impl_prefix_is_one_line_and_the_default(
    home: Path, tmp_path: Path, prefix: str
) -> None:
    import json

    (tmp_path / "send_metrics.toml").write_text(f"[make]\nimpl_prefix = {json.dumps(prefix)}\n")
    started = time.monotonic()
    done = _example("dev.up.lms", cwd=tmp_path)
    assert time.monotonic() - started < 10
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "starting lms (pretend docker compose up -d lms)\n"
    [line] = done.stderr.splitlines()
    assert "'make.impl_prefix' must be" in line and "ignored" in line


def test_a_good_impl_prefix_up_to_64_characters_is_used(home: Path, tmp_path: Path) -> None:
    prefix = "x_1.+-" + "p" * 58
    (tmp_path / "send_metrics.toml").write_text(f'[make]\nimpl_prefix = "{prefix}"\n')
    (tmp_path / "Makefile").write_text(f"{prefix}t:\n\t@echo custom\n")
    done = sm("wrap", "t", cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "custom\n", "")


def test_an_impl_prefix_that_loops_ends_with_one_line(home: Path, tmp_path: Path) -> None:
    """`dev.` is a valid prefix, but with the example's `dev.%` rule every inner target is
    wrapped again: the nesting guard ends it."""
    opt_in()
    (tmp_path / "send_metrics.toml").write_text('[make]\nimpl_prefix = "dev."\n')
    started = time.monotonic()
    done = _example("dev.up.lms", cwd=tmp_path)
    assert time.monotonic() - started < 15
    assert done.returncode not in (0, 124), done.stderr[-2000:]
    guard = "wrapped make targets nest more than 30 deep; is make.impl_prefix making a loop?"
    assert done.stderr.count(guard) == 1, done.stderr[-2000:]
    assert_no_traceback(done.stderr)
    assert [e["command"] for e in history(home)] == ["dev.up.lms"]  # the outermost, failed
    assert history(home)[0]["exit_code"] == 2


@pytest.mark.parametrize("depth", ["30", "31", "1000", "99999999999999999999999"])
def test_the_nesting_guard_runs_nothing_beyond_30(tmp_path: Path, depth: str) -> None:
    (tmp_path / "Makefile").write_text("impl-t:\n\t@touch ran\n")
    done = sm("wrap", "t", cwd=tmp_path, env={**os.environ, "SEND_METRICS_ACTIVE": depth})
    if depth == "30":
        assert (done.returncode, done.stderr) == (0, "")
        assert (tmp_path / "ran").exists()
        return
    assert done.returncode == 2
    assert done.stderr == (
        "send_metrics: wrapped make targets nest more than 30 deep; "
        "is make.impl_prefix making a loop?\n"
    )
    assert not (tmp_path / "ran").exists()


# ---- 5. a background job under `stty tostop` is not stopped by our one line ----


def test_a_background_job_under_tostop_is_not_stopped_by_our_line(
    home: Path, tmp_path: Path
) -> None:
    opt_in()
    (tmp_path / "send_metrics.toml").write_text("bogus_key = 1\n")  # one warning line
    shell = job_shell(home, cwd=tmp_path)
    shell.sendline("stty tostop; sleep 0.5 & wait; echo bare:$?")
    shell.expect(r"bare:(\d+)")
    assert shell.match.group(1) == "0"
    shell.expect("PROMPT> ")
    shell.sendline("send_metrics run -- sleep 0.5 & wait; echo wrapped:$?; jobs")
    shell.expect(r"wrapped:(\d+)")
    code, seen = shell.match.group(1), shell.before
    shell.expect("PROMPT> ")
    seen += shell.before
    shell.sendline("stty -tostop; kill -CONT %1 2>/dev/null; exit")
    shell.expect(pexpect.EOF)
    assert code == "0" and "Stopped" not in seen, seen
    assert "unknown key 'bogus_key'" in seen  # our line was written, not held back
    assert [e["command"] for e in history(home)] == ["sleep"]
