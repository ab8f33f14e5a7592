"""Faults in our own work after the child has started never touch the child or its status."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import (
    SEND_METRICS,
    as_stranger,
    assert_no_traceback,
    history,
    opt_in,
    state_file,
    stranger_python,
)

# A child that notes any signal it receives, outlives our early failures, and ends with 7.
CHILD = """
import signal, sys, time
def noted(signum, _frame):
    open("signalled", "a").write(f"{signum}\\n")
for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM"):
    signal.signal(getattr(signal, name), noted)
time.sleep(0.5)
sys.exit(7)
"""
NESTED = "x = " + "[" * 5000 + "]" * 5000 + "\n"


def _run_child(
    cwd: Path,
    env: dict[str, str] | None = None,
    prefix: tuple[str, ...] = (),
    python: str = sys.executable,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, SEND_METRICS, "run", "--", python, "-c", CHILD],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )


def _assert_untouched(result: subprocess.CompletedProcess[str], cwd: Path) -> None:
    """Status kept, child never signalled, at most one line of ours, no traceback."""
    assert result.returncode == 7, result.stderr
    assert not (cwd / "signalled").exists()
    assert_no_traceback(result.stderr)
    assert len(result.stderr.splitlines()) <= 1, result.stderr


def test_operator_config_nested_5000_deep(tmp_path: Path) -> None:
    (tmp_path / "send_metrics.toml").write_text(NESTED)
    result = _run_child(tmp_path)
    _assert_untouched(result, tmp_path)
    assert "send_metrics.toml" in result.stderr and "nested too deeply" in result.stderr


def test_operator_config_is_a_fifo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    monkeypatch.setenv("SEND_METRICS_CONFIG", str(fifo))
    result = _run_child(tmp_path)
    _assert_untouched(result, tmp_path)
    assert "not a regular file" in result.stderr


@pytest.mark.parametrize("fault", ["nested 5000 deep", "a fifo"])
def test_decision_file_fault(tmp_path: Path, home: Path, fault: str) -> None:
    path = state_file(home)
    path.parent.mkdir(parents=True)
    if fault == "a fifo":
        os.mkfifo(path)
    else:
        path.write_text(NESTED)
    result = _run_child(tmp_path)
    _assert_untouched(result, tmp_path)
    assert str(path) in result.stderr


def test_home_unset_for_a_uid_without_passwd_entry(stranger_home: Path) -> None:
    env = {"PATH": os.environ["PATH"]}  # no HOME, no XDG directories
    result = _run_child(stranger_home, env, as_stranger(), stranger_python())
    _assert_untouched(result, stranger_home)
    assert "home directory" in result.stderr


def test_no_process_or_thread_left_ulimit_u(stranger_home: Path) -> None:
    """RLIMIT_NPROC 2: the child is the last process the uid may have; our prefetch thread and
    the witness of group signals cannot start. Root ignores the limit, hence the fresh uid."""
    env = {"PATH": os.environ["PATH"], "HOME": str(stranger_home)}
    agreed = subprocess.run(
        [*as_stranger(), SEND_METRICS, "opt-in", "--yes"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=stranger_home,
    )
    assert agreed.returncode == 0, agreed.stderr
    python = stranger_python()
    result = _run_child(stranger_home, env, as_stranger("--nproc=2:2"), python)
    _assert_untouched(result, stranger_home)
    [event] = history(stranger_home)
    # Recorded all the same, without the git facts the thread that could not start would add.
    assert (event["exit_code"], event["git_work_tree"]) == (7, None)


def test_the_limit_really_stops_threads(stranger_home: Path) -> None:
    """The fault above is real: under the same limit a thread cannot start."""
    code = "import threading; threading.Thread(target=print).start()"
    probe = subprocess.run(
        [*as_stranger("--nproc=1:1"), stranger_python(), "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=stranger_home,
    )
    assert "can't start new thread" in probe.stderr


def test_a_failure_while_reporting_keeps_status_and_child(tmp_path: Path, home: Path) -> None:
    """The store's folder is a file: recording fails after the child has ended."""
    opt_in()
    data = home / ".local/share/send_metrics"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text("not a folder")
    result = _run_child(tmp_path)
    _assert_untouched(result, tmp_path)
    assert result.stderr.startswith("send_metrics: ")
