"""The README stays true: every command, every field and the test command are documented."""

from __future__ import annotations

import re
from pathlib import Path

from send_metrics.cli import cli
from send_metrics.event import schema

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def test_every_command_has_help_and_is_in_the_readme() -> None:
    for name, command in cli.commands.items():
        assert command.help, name
        assert f"send_metrics {name}" in README, name


def test_every_field_is_in_the_readme() -> None:
    for field in schema()["properties"]:
        assert f"| `{field}` |" in README, field


def test_ci_runs_exactly_the_readme_test_command() -> None:
    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    setup, tests = blocks[0].strip().splitlines(), blocks[1].strip()
    assert len(setup) <= 2
    ci = (ROOT / ".ci/run").read_text().strip().splitlines()
    assert ci[-1] == tests


def test_every_documented_config_key_is_accepted(tmp_path: Path) -> None:
    from send_metrics import config

    toml = re.search(r"```toml\n(.*?)```", README, re.S).group(1)
    path = tmp_path / "send_metrics.toml"
    path.write_text(toml)
    loaded = config.load_settings(path)
    assert loaded.problems == ()


def test_the_checkout_ships_the_embedded_default() -> None:
    """The README's first block must run with the local sink: no operator config at the top."""
    assert not (ROOT / "send_metrics.toml").exists()
