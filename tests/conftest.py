"""Shared fixtures: an isolated home for every test, the installed CLI, and helpers."""

from __future__ import annotations

import http.server
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

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
)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own HOME and XDG dirs and a clean environment; never the real ones."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var, sub in (
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_STATE_HOME", ".local/state"),
        ("XDG_CACHE_HOME", ".cache"),
    ):
        monkeypatch.setenv(var, str(home / sub))
    for var in (*CI_VARS, *OUR_VARS):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return home


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


@pytest.fixture
def collector():
    state = Collector()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            if state.hang:
                state.requests.append(Received(self.path, dict(self.headers), body, 0))
                state.released.wait(30)
                self.close_connection = True
                return
            if state.garbage:
                state.requests.append(Received(self.path, dict(self.headers), body, 0))
                self.wfile.write(b"this is not HTTP at all\r\n\r\n")
                self.close_connection = True
                return
            if state.huge:
                state.requests.append(Received(self.path, dict(self.headers), body, 200))
                self.send_response(200)
                self.send_header("Content-Length", str(1 << 30))
                self.end_headers()
                chunk = b"x" * 65536
                try:
                    for _ in range(1 << 14):
                        self.wfile.write(chunk)
                except OSError:
                    pass
                self.close_connection = True
                return
            status = 500 if random.random() < state.fail_rate else state.status
            state.requests.append(Received(self.path, dict(self.headers), body, status))
            self.send_response(status)
            for key, value in state.reply_headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state.reply)))
            self.end_headers()
            self.wfile.write(state.reply)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    for _ in range(100):  # bounded readiness wait
        try:
            socket.create_connection(("127.0.0.1", server.server_address[1]), 1).close()
            break
        except OSError:
            time.sleep(0.02)
    yield state
    state.released.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def black_hole():
    """A port that accepts connections (the kernel completes them) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.fixture
def dead_url() -> str:
    """A loopback port with nothing listening: connections are refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"
