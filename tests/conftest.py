"""Shared fixtures: an isolated home for every test, the installed CLI, and helpers."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
SEND_METRICS = str(BIN / "send_metrics")
CI_VARS = ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "CIRCLECI", "TRAVIS", "JENKINS_URL", "BUILDKITE",
           "TF_BUILD", "TEAMCITY_VERSION", "BITBUCKET_BUILD_NUMBER", "CODEBUILD_BUILD_ID",
           "DRONE", "APPVEYOR", "SEMAPHORE", "BUILD_BUILDID", "WOODPECKER")
OUR_VARS = ("DO_NOT_TRACK", "SEND_METRICS_DISABLED", "SEND_METRICS_CONFIG",
            "SEND_METRICS_ENDPOINT", "SEND_METRICS_DEBUG", "SEND_METRICS_ACTIVE", "MAKEFLAGS",
            "MAKELEVEL", "MFLAGS", "MAKE", "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
            "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "container")


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own HOME and XDG dirs and a clean environment; never the real ones."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var, sub in (("XDG_CONFIG_HOME", ".config"), ("XDG_DATA_HOME", ".local/share"),
                     ("XDG_STATE_HOME", ".local/state"), ("XDG_CACHE_HOME", ".cache")):
        monkeypatch.setenv(var, str(home / sub))
    for var in (*CI_VARS, *OUR_VARS):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return home


def sm(*args: str, input: str | None = None, timeout: float = 60, **kwargs
       ) -> subprocess.CompletedProcess[str]:
    """Run the installed console script as a real process."""
    return subprocess.run([SEND_METRICS, *args], capture_output=True, text=True, input=input,
                          timeout=timeout, **kwargs)


def opt_in() -> None:
    result = sm("opt-in", "--yes")
    assert result.returncode == 0, result.stderr


def data_db(home: Path, app: str = "send_metrics") -> Path:
    return home / ".local/share" / app / "metrics.sqlite3"


def state_file(home: Path, app: str = "send_metrics") -> Path:
    return home / ".config" / app / "metrics.toml"


def history(home: Path, app: str = "send_metrics") -> list[dict]:
    """The events in the local history, oldest first."""
    path = data_db(home, app)
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT event FROM history ORDER BY start_time, rowid").fetchall()
    return [json.loads(r[0]) for r in rows]


def queued(home: Path, app: str = "send_metrics") -> list[str]:
    path = data_db(home, app)
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        return [r[0] for r in db.execute("SELECT message_id FROM queue ORDER BY created")]


def assert_no_traceback(text: str) -> None:
    assert "Traceback" not in text, text
