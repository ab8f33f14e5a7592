"""Usage errors are usage errors, and the hot path reads arguments exactly as click does."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from send_metrics.cli import cli
from send_metrics.run import fastpath, wrapper
from send_metrics.run.spec import RunSpec
from tests.helpers import assert_no_traceback, sm


def click_reading(argv: list[str]) -> tuple[int, list[RunSpec]]:
    """What click makes of the arguments: its exit code and the runs it would start."""
    seen: list[RunSpec] = []
    with mock.patch.object(wrapper, "execute", seen.append):
        result = CliRunner().invoke(cli, argv)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, seen


def assert_agree(argv: list[str]) -> tuple[RunSpec | None, int, list[RunSpec]]:
    """The fast path either hands the call to click (None) or means exactly what click means."""
    fast = fastpath.parse(argv)
    code, seen = click_reading(argv)
    if fast is not None:
        assert (code, seen) == (0, [fast]), argv
    return fast, code, seen


RUNS = [
    ["run", "--", "sh", "-c", "exit 1"],
    ["run", "--name", "deploy", "--", "make", "x"],
    ["run", "--name=deploy", "--dry-run", "--", "true"],
    ["run", "--dry-run", "--name", "n", "--", "true", "--name", "--"],
    ["run", "--", "--", "true"],
    ["run", "--", "-x"],
    ["run", "--name=", "--", "true"],
    ["preview", "--", "ls", "-l"],
    ["preview", "--", "--help"],
    ["wrap", "dev.up"],
    ["wrap", "--make=/usr/bin/make", "-f", "other.mk", "dev.up", "A=1", "B=two words"],
    ["wrap", "--makefile", "x.mk", "--dry-run", "t"],
    ["wrap", "t", "A="],
]
TO_CLICK = [  # unusual but valid: the fast path leaves them to click
    ["run", "sh"],
    ["run", "ls", "-l", "--", "x"],
    ["preview", "ls", "--bogus"],
    ["wrap", "--", "t"],
]
USAGE = [  # click refuses, with its usage message; the fast path must not run them either
    ["run", "--bogus", "--", "true"],
    ["run", "--name", "--", "true"],
    ["run", "--name=-x", "--", "true"],
    ["run", "--name"],
    ["run", "--"],
    ["run"],
    ["preview", "--bogus"],
    ["preview"],
    ["wrap", "--bogus", "hello"],
    ["wrap", "t", "junk"],
    ["wrap", "t", "=x"],
    ["wrap", "--make", "--", "t"],
    ["wrap", "-f"],
    ["wrap"],
]


@pytest.mark.parametrize("argv", RUNS, ids=" ".join)
def test_plain_forms_take_the_fast_path_and_mean_what_click_means(argv: list[str]) -> None:
    fast, _code, _seen = assert_agree(argv)
    assert fast is not None


@pytest.mark.parametrize("argv", TO_CLICK, ids=" ".join)
def test_unusual_forms_go_to_click_which_runs_them(argv: list[str]) -> None:
    fast, code, seen = assert_agree(argv)
    assert fast is None and code == 0 and len(seen) == 1


@pytest.mark.parametrize("argv", USAGE, ids=lambda a: " ".join(a) or "nothing")
def test_usage_errors_run_nothing(argv: list[str]) -> None:
    fast, code, seen = assert_agree(argv)
    assert (fast, code, seen) == (None, 2, [])


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--bogus", "--", "touch", "ran"],
        ["preview", "--bogus", "touch", "ran"],
        ["wrap", "--bogus", "hello"],
        ["run", "--name", "--", "touch", "ran"],
    ],
    ids=" ".join,
)
def test_usage_errors_exit_2_with_clicks_message(argv: list[str], tmp_path: Path) -> None:
    result = sm(*argv, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("Usage: send_metrics ")
    assert "Error: " in result.stderr
    assert_no_traceback(result.stderr)
    assert not (tmp_path / "ran").exists()


WORDS = st.sampled_from(
    [
        "--",
        "--name",
        "--name=n",
        "--dry-run",
        "--make",
        "--make=m",
        "-f",
        "--makefile",
        "--makefile=x.mk",
        "--bogus",
        "-x",
        "-",
        "x",
        "A=1",
        "=b",
        "",
        "true",
        "--help",
        "-h",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    verb=st.sampled_from(["run", "wrap", "preview"]),
    rest=st.lists(st.one_of(WORDS, st.text(max_size=4)), max_size=6),
)
def test_random_arguments_fast_path_and_click_agree(verb: str, rest: list[str]) -> None:
    assert_agree([verb, *rest])
