"""make's own flags under the README's one-line pattern, with real make."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers import history, opt_in

README = Path(__file__).parent.parent / "README.md"
RECIPES = """
impl-dev.up.%: ; @echo "up $*" && touch "$(MARKS)/up.$*"
impl-dev.fail: ; @echo failing >&2; exit 3
"""


def readme_pattern() -> str:
    """The pattern exactly as the README shows it, before its example recipe."""
    text = README.read_text()
    section = text[text.index("## The Makefile pattern") :]
    block = re.search(r"```make\n(.*?)```", section, re.S)
    assert block is not None
    pattern = block.group(1).split("\nimpl-")[0]
    assert "dev.%:" in pattern
    return pattern


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "Makefile").write_text(readme_pattern() + RECIPES)
    (tmp_path / "marks").mkdir()
    return folder


def make(project: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    marks = project.parent / "marks"
    return subprocess.run(
        ["make", f"MARKS={marks}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd or project,
    )


def ran(project: Path) -> list[str]:
    return sorted(p.name for p in (project.parent / "marks").iterdir())


def test_touch_creates_no_file_and_the_target_keeps_working(project: Path, home: Path) -> None:
    opt_in()
    touched = make(project, "-t", "dev.up.lms")
    assert touched.returncode == 0, touched.stderr
    assert sorted(p.name for p in project.iterdir()) == ["Makefile"]
    assert ran(project) == [] and history(home) == []
    again = make(project, "dev.up.lms")
    assert again.returncode == 0 and again.stdout == "up lms\n"
    assert [e["command"] for e in history(home)] == ["dev.up.lms"]


def test_question_says_not_up_to_date_and_runs_nothing(project: Path, home: Path) -> None:
    opt_in()
    asked = make(project, "-q", "dev.up.lms")
    assert (asked.returncode, asked.stdout, asked.stderr) == (1, "", "")
    assert ran(project) == [] and history(home) == []
    assert sorted(p.name for p in project.iterdir()) == ["Makefile"]


def test_dry_run_shows_the_real_recipe_runs_and_records_nothing(project: Path, home: Path) -> None:
    opt_in()
    shown = make(project, "-n", "dev.up.lms")
    assert shown.returncode == 0
    assert 'echo "up lms" && touch' in shown.stdout
    assert ran(project) == [] and history(home) == []


def test_keep_going_runs_the_next_target_after_a_failure(project: Path, home: Path) -> None:
    opt_in()
    result = make(project, "-k", "dev.fail", "dev.up.lms")
    assert result.returncode == 2
    assert "failing" in result.stderr and result.stdout == "up lms\n"
    assert [(e["command"], e["exit_code"]) for e in history(home)] == [
        ("dev.fail", 2),
        ("dev.up.lms", 0),
    ]


def test_without_keep_going_make_stops_at_the_failure(project: Path, home: Path) -> None:
    opt_in()
    result = make(project, "dev.fail", "dev.up.lms")
    assert result.returncode == 2 and ran(project) == []


def test_ignore_errors_records_what_make_returned(project: Path, home: Path) -> None:
    opt_in()
    result = make(project, "-i", "dev.fail")
    assert result.returncode == 0 and "failing" in result.stderr
    assert [(e["command"], e["exit_code"]) for e in history(home)] == [("dev.fail", 0)]


def test_silent_prints_only_the_recipes_output(project: Path) -> None:
    result = make(project, "-s", "dev.up.lms")
    assert (result.returncode, result.stdout, result.stderr) == (0, "up lms\n", "")


@pytest.mark.parametrize("quiet", [False, True], ids=["print-directory", "no-print-directory"])
def test_change_directory_finds_the_same_makefile(project: Path, home: Path, quiet: bool) -> None:
    opt_in()
    flags = ["--no-print-directory"] if quiet else []
    result = make(project, *flags, "-C", "project", "dev.up.lms", cwd=project.parent)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "up lms" in lines
    entering = [line for line in lines if "Entering directory" in line]
    assert len(entering) == (0 if quiet else 1)  # make's own line, none from the inner make
    assert [e["command"] for e in history(home)] == ["dev.up.lms"]


def test_file_flag_from_another_directory(project: Path, home: Path) -> None:
    opt_in()
    result = make(project, "-f", "project/Makefile", "dev.up.lms", cwd=project.parent)
    assert result.returncode == 0 and result.stdout == "up lms\n", result.stderr
    assert [e["command"] for e in history(home)] == ["dev.up.lms"]
