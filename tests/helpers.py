"""Test helpers: the installed CLI as a real process, the store read directly, a recording
HTTP collector's state, and the schema check every event goes through."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pexpect
import pytest

BIN = Path(sys.executable).parent
SEND_METRICS = str(BIN / "send_metrics")
CI_VARS = (
    "CI",
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "CIRCLECI",
    "TRAVIS",
    "JENKINS_URL",
    "BUILDKITE",
    "TF_BUILD",
    "TEAMCITY_VERSION",
    "BITBUCKET_BUILD_NUMBER",
    "CODEBUILD_BUILD_ID",
    "DRONE",
    "APPVEYOR",
    "SEMAPHORE",
    "BUILD_BUILDID",
    "WOODPECKER",
)
OUR_VARS = (
    "DO_NOT_TRACK",
    "SEND_METRICS_DISABLED",
    "SEND_METRICS_CONFIG",
    "SEND_METRICS_ENDPOINT",
    "SEND_METRICS_DEBUG",
    "SEND_METRICS_ACTIVE",
    "MAKEFLAGS",
    "MAKELEVEL",
    "MFLAGS",
    "MAKE",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
    "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
    "container",
    *(
        f"OTEL_EXPORTER_OTLP{scope}_{name}"
        for scope in ("", "_LOGS")
        for name in ("PROTOCOL", "COMPRESSION", "CERTIFICATE", "CLIENT_KEY", "CLIENT_CERTIFICATE")
    ),
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_SDK_DISABLED",
    *(
        v
        for name in ("http", "https", "all", "no")
        for v in (f"{name}_proxy", f"{name.upper()}_PROXY")
    ),
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
)


def sm(
    *args: str, input: str | None = None, timeout: float = 60, **kwargs
) -> subprocess.CompletedProcess[str]:
    """Run the installed console script as a real process."""
    return subprocess.run(
        [SEND_METRICS, *args],
        capture_output=True,
        text=True,
        input=input,
        timeout=timeout,
        **kwargs,
    )


def opt_in() -> None:
    result = sm("opt-in", "--yes")
    assert result.returncode == 0, result.stderr


def data_db(home: Path, app: str = "send_metrics") -> Path:
    return home / ".local/share" / app / "metrics.sqlite3"


def state_file(home: Path, app: str = "send_metrics") -> Path:
    return home / ".config" / app / "metrics.toml"


def history(home: Path, app: str = "send_metrics") -> list[dict]:
    """The events in the local history, oldest first, each validated against the schema."""
    path = data_db(home, app)
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT event FROM history ORDER BY start_time, rowid").fetchall()
    return [validate(json.loads(r[0])) for r in rows]


def queued(home: Path, app: str = "send_metrics") -> list[str]:
    path = data_db(home, app)
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        return [r[0] for r in db.execute("SELECT message_id FROM queue ORDER BY created")]


def assert_no_traceback(text: str) -> None:
    assert "Traceback" not in text, text


@contextmanager
def read_only(folder: Path):
    """Make a directory unwritable: by its mode, or for root by mounting a read-only tmpfs."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o500)
    probe = folder / ".probe"
    try:
        probe.write_text("x")
    except PermissionError:
        try:
            yield folder
        finally:
            folder.chmod(0o700)
        return
    probe.unlink()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        folder.chmod(0o700)
        pytest.skip("cannot make a directory read-only here (root without mount)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)
        folder.chmod(0o700)


# ---- the event schema: every event a test sees is validated against the shipped schema ----


def validate(event: dict) -> dict:
    """Fail unless the event matches the JSON Schema shipped in the package."""
    import jsonschema

    from send_metrics.event import schema

    jsonschema.Draft202012Validator(schema()).validate(event)
    return event


# ---- a real HTTP server on 127.0.0.1 that records what it receives ----


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self):
        return json.loads(self.body)


@dataclass
class Collector:
    """Loopback HTTP collector; `status`, `reply_headers` and `hang` shape its next answers."""

    url: str = ""
    status: int = 200
    reply: bytes = b'{"success":true}'
    reply_headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    garbage: bool = False
    huge: bool = False  # claims a 1 GB body and streams it until the client goes away
    fail_rate: float = 0.0  # this share of requests, at random, get a 500
    decide: Callable[[Received], int] | None = None  # a status chosen per request (0: default)
    connections: int = 0  # TCP connections accepted, whether or not a request came
    requests: list[Received] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)

    def ok(self) -> list[Received]:
        return [r for r in self.requests if 200 <= r.status < 300]

    def write_config(self, sink: str, folder: Path | None = None, **extra: object) -> Path:
        """A send_metrics.toml in the working directory pointing `sink` at this server."""
        lines = ["[report]", f'sink = "{sink}"', f'endpoint = "{self.url}"']
        lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
        path = (folder or Path.cwd()) / "send_metrics.toml"
        path.write_text("\n".join(lines) + "\n")
        return path


def delivered_ids(requests: list[Received]) -> list[str]:
    """Every message id in accepted requests, whatever the sink's format."""
    ids: list[str] = []
    for r in requests:
        doc = r.json
        if "batch" in doc:
            ids += [m["messageId"] for m in doc["batch"]]
        elif "messageId" in doc:
            ids.append(doc["messageId"])
        elif "resourceLogs" in doc:
            for rl in doc["resourceLogs"]:
                for sl in rl["scopeLogs"]:
                    for rec in sl["logRecords"]:
                        ids += [
                            a["value"]["stringValue"]
                            for a in rec["attributes"]
                            if a["key"] == "log.record.uid"
                        ]
        else:
            ids.append(doc["message_id"])
    return ids


def add_runs(home: Path, runs: list[tuple], app: str = "send_metrics") -> None:
    """Put runs straight into the history through the store's own schema, in one transaction:
    each (command, start_time, duration_ms, exit_code[, extra event fields])."""
    from send_metrics import store

    template = json.loads(sm("preview", "--", "true").stdout)
    path = data_db(home, app)
    store.Store(path).close()  # creates the file and its schema as a real run would
    rows = []
    for i, (command, start, duration, exit_code, *extra) in enumerate(runs):
        event = {
            **template,
            "message_id": f"{i:08x}-0000-4000-8000-{len(runs):012x}",
            "command": command,
            "start_time": start,
            "duration_ms": duration,
            "exit_code": exit_code,
            **(extra[0] if extra else {}),
        }
        rows.append(
            (event["message_id"], command, start, duration, int(exit_code != 0), json.dumps(event))
        )
    with sqlite3.connect(path) as db:
        db.executemany("INSERT INTO history VALUES (?, ?, ?, ?, ?, ?)", rows)


def spawn(*args: str, env: dict[str, str] | None = None) -> pexpect.spawn:
    """The wrapper in a real pseudo-terminal, as a developer runs it."""
    return pexpect.spawn(
        SEND_METRICS, list(args), timeout=20, env={**os.environ, **(env or {})}, encoding="utf-8"
    )


def finish(child: pexpect.spawn) -> str:
    """Everything the terminal showed until the wrapper ended."""
    child.expect(pexpect.EOF)
    child.close()
    return child.before


def job_shell(home: Path, cwd: Path | None = None) -> pexpect.spawn:
    """An interactive bash in a real pseudo-terminal, with job control and our install first
    on PATH; its prompt is `PROMPT> ` and it is waiting at it."""
    env = {
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(home),
        "XDG_CONFIG_HOME": os.environ["XDG_CONFIG_HOME"],
        "XDG_DATA_HOME": os.environ["XDG_DATA_HOME"],
        "PS1": "PROMPT> ",
        "TERM": "dumb",
    }
    shell = pexpect.spawn(
        "bash",
        ["--norc", "--noprofile", "-i"],
        env=env,
        timeout=20,
        encoding="utf-8",
        cwd=str(cwd) if cwd else None,
    )
    shell.expect("PROMPT> ")
    return shell


FRESH_UID = 54321  # a uid without a passwd entry, for running as nobody we know


def as_stranger(*limits: str) -> tuple[str, ...]:
    """The command prefix that runs as a fresh uid without a passwd entry, under `limits`
    (prlimit options); root only (see the `stranger_home` fixture)."""
    uid = str(FRESH_UID)
    return (
        "prlimit",
        *limits,
        "--",
        "setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--",
    )


def stranger_python() -> str:
    """A Python the fresh uid may run (ours may live under root's private home)."""
    for python in (sys.executable, "/usr/bin/python3"):
        probe = subprocess.run(
            [*as_stranger(), "sh", "-c", '"$0" -c pass', python], capture_output=True
        )
        if probe.returncode == 0:
            return python
    pytest.skip("no Python the fresh uid may run")
