"""The README stays true: every command, field, exit code and the two commands it promises."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from send_metrics.cli import cli
from send_metrics.errors import ExitCode
from send_metrics.event import schema
from tests.helpers import BIN, history, queued, sm

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
SH_BLOCKS = re.findall(r"```sh\n(.*?)```", README, re.S)


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_has_help_and_is_in_the_readme(name: str) -> None:
    assert cli.commands[name].help, name
    assert f"send_metrics {name}" in README, name


@pytest.mark.parametrize("field", list(schema()["properties"]))
def test_every_field_is_in_the_readme(field: str) -> None:
    assert f"| `{field}` |" in README, field


def test_the_readme_starts_with_exactly_two_blocks_install_then_tests() -> None:
    setup = SH_BLOCKS[0].strip().splitlines()
    assert len(setup) == 2, setup
    assert setup[0].startswith("pip install")
    assert setup[1].startswith("send_metrics run -- ")
    assert SH_BLOCKS[1].strip() == "python -m pytest"


def test_the_readme_starts_with_a_short_quickstart_then_its_contents() -> None:
    """A newcomer's first screenful: the quickstart (40 lines at most), then a table of
    contents whose links all lead to a heading of the README or a file of docs/."""
    quickstart = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    assert len(("## Quickstart" + quickstart).rstrip().splitlines()) <= 40
    assert README.index("## Quickstart") < README.index("```sh") < README.index("## Contents")
    contents = README.split("## Contents", 1)[1].split("\n## ", 1)[0]
    anchors = {
        re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.*)$", README, re.M)
    }
    for link in re.findall(r"\]\(([^)]+)\)", contents):
        if link.startswith("#"):
            assert link[1:] in anchors, link
        else:
            assert (ROOT / link.split("#")[0]).exists(), link


def test_ci_installs_from_scratch_and_runs_exactly_the_readme_test_command() -> None:
    ci = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line.strip()]
    commands = [line for line in ci if not line.lstrip().startswith("#")]
    assert 'python3 -m venv "$venv"' in commands
    assert "pip install -e '.[test]'" in commands
    tests = SH_BLOCKS[1].strip()
    assert commands.count(tests) == 1
    after = commands[commands.index(tests) + 1 :]
    # Only the habits follow the tests: each fails the run on its own (set -e).
    assert after == ["ruff check .", "ruff format --check .", "mypy"]
    assert "set -euo pipefail" in commands


def test_the_readme_first_block_runs_with_the_local_sink(home: Path, tmp_path: Path) -> None:
    """Run the README's main command as written, from a copy of the checkout's top level:
    the target runs, one event is recorded locally, nothing is queued to leave."""
    assert not (ROOT / "send_metrics.toml").exists()
    main = shlex.split(SH_BLOCKS[0].strip().splitlines()[1])
    assert sm("opt-in", "--yes").returncode == 0
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        main, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "hello from" in done.stdout
    [event] = history(home)
    goal = main[-1]  # `run -- make ... GOAL` is named by its goal, as the include names a run
    assert (event["command"], event["command_type"]) == (goal, "make")
    assert queued(home) == []
    status = sm("status", cwd=ROOT).stdout
    assert re.search(r"^sink:\s+local$", status, re.M), status


def test_every_documented_config_key_is_accepted(tmp_path: Path) -> None:
    from send_metrics import config

    match = re.search(r"```toml\n(.*?)```", README, re.S)
    assert match is not None
    path = tmp_path / "send_metrics.toml"
    path.write_text(match.group(1))
    loaded = config.load_settings(path)
    assert loaded.problems == ()


def _readme_exit_codes() -> set[int]:
    section = README.split("### Exit codes of our own", 1)[1].split("\n## ", 1)[0]
    codes: set[int] = set()
    for row in re.findall(r"^\| ([^|]+) \|", section, re.M):
        codes.update(int(n) for n in re.findall(r"\b\d+\b", row))
    return codes


def test_the_readme_exit_code_table_is_the_enum() -> None:
    assert _readme_exit_codes() == {c for c in ExitCode.codes().values() if c != ExitCode.OK}
