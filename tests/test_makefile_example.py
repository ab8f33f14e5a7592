"""Makefile.example, as shipped: instrumented targets work with and without send_metrics."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.helpers import history, opt_in

EXAMPLE = Path(__file__).parent.parent / "Makefile.example"


def make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-f", str(EXAMPLE), *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_example_targets_are_recorded_once_each(home: Path) -> None:
    opt_in()
    assert make("dev.up.lms").returncode == 0
    provision = make("dev.provision")
    assert provision.returncode == 0
    assert provision.stdout.splitlines() == [
        "pulling image for lms",
        "pulling image for cms",
        "provisioning lms cms",
    ]
    failing = make("dev.fail")
    assert failing.returncode == 2 and "fails on purpose" in failing.stderr
    assert [(e["command"], e["exit_code"]) for e in history(home)] == [
        ("dev.up.lms", 0),
        ("dev.provision", 0),
        ("dev.fail", 2),
    ]
    assert "granted" in make("metrics-status").stdout


def _bare_env(tmp_path: Path) -> dict[str, str]:
    """A PATH with make and a few tools, and no send_metrics."""
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("make", "sh", "sleep", "grep", "sed"):
        os.symlink(shutil.which(tool), bare / tool)
    return {"PATH": str(bare), "HOME": os.environ["HOME"]}


def test_example_runs_where_send_metrics_is_not_installed(tmp_path: Path) -> None:
    env = _bare_env(tmp_path)
    result = make("dev.up.lms", "dev.provision", env=env)
    assert result.returncode == 0, result.stderr
    assert "starting lms" in result.stdout and "provisioning lms cms" in result.stdout
    skipped = make("metrics-opt-in", env=env)
    assert skipped.returncode == 0 and "not installed" in skipped.stdout


def test_example_touch_creates_no_file_with_or_without_send_metrics(
    tmp_path: Path, home: Path
) -> None:
    opt_in()
    for env in (None, _bare_env(tmp_path)):
        touched = make("-t", "dev.up.lms", "dev.provision", env=env)
        assert touched.returncode == 0, touched.stderr
        assert sorted(os.listdir()) == []  # the working directory (the fixture's empty one)
        assert (
            make("dev.up.lms", env=env).stdout
            == "starting lms (pretend docker compose up -d lms)\n"
        )
    assert [e["command"] for e in history(home)] == ["dev.up.lms"]


def test_help_lists_public_targets_only_and_never_says_share(tmp_path: Path) -> None:
    """`make help` is what a newcomer reads: no internal impl- target, and metrics kept on
    this machine are not "shared"."""
    shown = make("help", env=_bare_env(tmp_path))
    assert shown.returncode == 0
    names = [line.split("\t")[0] for line in shown.stdout.splitlines()]
    assert "metrics-opt-in" in names and "dev.%" in names
    assert not [n for n in names if n.startswith("impl-")]
    assert "share" not in shown.stdout.lower()


def test_example_works_from_paths_with_a_space_or_a_quote(tmp_path: Path, home: Path) -> None:
    """send_metrics installed where the path has a space (a venv in "My Tools"), and the
    makefile given by a path with a single quote: both reach the shell quoted, with and
    without send_metrics installed."""
    from tests.helpers import SEND_METRICS

    tools = tmp_path / "My Tools" / "bin"
    tools.mkdir(parents=True)
    os.symlink(SEND_METRICS, tools / "send_metrics")
    quoted = tmp_path / "it's"  # (make's MAKEFILE_LIST cannot hold a space)
    quoted.mkdir()
    shutil.copy(EXAMPLE, quoted / "Makefile.example")
    opt_in()
    installed = {**os.environ, "PATH": f"{tools}{os.pathsep}{_bare_env(tmp_path)['PATH']}"}
    (tmp_path / "bare").mkdir()
    bare = _bare_env(tmp_path / "bare")
    for makefile, env in (
        (EXAMPLE, installed),
        (quoted / "Makefile.example", installed),
        (quoted / "Makefile.example", bare),
    ):
        result = subprocess.run(
            ["make", "-f", str(makefile), "dev.up.lms", "dev.provision"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert result.returncode == 0, (makefile, result.stderr)
        assert result.stdout.splitlines() == [
            "starting lms (pretend docker compose up -d lms)",
            "pulling image for lms",
            "pulling image for cms",
            "provisioning lms cms",
        ], result.stderr
        assert result.stderr == ""
    assert [e["command"] for e in history(home)] == ["dev.up.lms", "dev.provision"] * 2
