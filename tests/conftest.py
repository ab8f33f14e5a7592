"""Shared fixtures: an isolated home for every test and real loopback servers."""

from __future__ import annotations

import http.server
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import Browser, chromium
from tests.helpers import (
    BIN,
    CI_VARS,
    FRESH_UID,
    OUR_VARS,
    SEND_METRICS,
    Collector,
    Received,
    as_stranger,
)
from tests.network import (
    CertAuthority,
    Proxy,
    RealProxy,
    make_cert_authority,
    serve_proxy,
    start_tinyproxy,
)

IN_CI = bool(os.environ.get("CI"))  # read before the autouse fixture clears CI variables


@pytest.fixture(autouse=True)
def _signal_mask() -> Iterator[None]:
    """Each test leaves the test process's signal mask as it found it: chDB's engine (the
    ClickHouse tests) blocks SIGPIPE in the thread that loads it, and every child a later test
    starts would inherit that (a `kill -PIPE` test would then see its shell survive)."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    yield
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)


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


@pytest.fixture
def collector():
    state = Collector()
    server = _serve(state)
    yield state
    state.released.set()
    server.shutdown()
    server.server_close()


def _https_collector(authority: CertAuthority, client_certs: bool) -> Iterator[Collector]:
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(authority.server_cert, authority.server_key)
    if client_certs:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(authority.ca_cert)
    state = Collector()
    server = _serve(state, context)
    yield state
    state.released.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def tls_collector(cert_authority: CertAuthority) -> Iterator[Collector]:
    """The collector over https, with a certificate for 127.0.0.1 signed by the test CA."""
    yield from _https_collector(cert_authority, client_certs=False)


@pytest.fixture
def mtls_collector(cert_authority: CertAuthority) -> Iterator[Collector]:
    """The collector over https, asking every client for a certificate the test CA signed."""
    yield from _https_collector(cert_authority, client_certs=True)


@pytest.fixture(scope="session")
def cert_authority(tmp_path_factory: pytest.TempPathFactory) -> CertAuthority:
    """A certificate authority made here with openssl, and a server certificate it signed."""
    return make_cert_authority(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def proxy():
    """A loopback forward proxy (http://) and CONNECT tunnel (https://) recording each use."""
    state = Proxy()
    server = serve_proxy(state)
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def tinyproxy(tmp_path: Path) -> Iterator[RealProxy]:
    """A real proxy: Debian's tinyproxy (installed by .ci/run), on loopback."""
    if not shutil.which("tinyproxy"):
        pytest.skip("tinyproxy is not installed (apt-get install tinyproxy; .ci/run does)")
    state, process = start_tinyproxy(tmp_path)
    yield state
    process.terminate()
    process.wait(10)


def _serve(state: Collector, tls=None) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            state.connections += 1
            super().setup()

        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            if len(body) < length:  # the client went away mid-request: nothing was accepted
                state.requests.append(Received(self.path, dict(self.headers), body, 0))
                self.close_connection = True
                return
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
            if state.decide is not None:
                status = state.decide(Received(self.path, dict(self.headers), body, 0)) or status
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
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if tls is not None else "http"
    state.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    return server  # listening since it was made: a client's connect waits in the backlog


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


@pytest.fixture
def stranger_home() -> Iterator[Path]:
    """A folder a fresh uid without a passwd entry owns; root only (setpriv changes the uid)."""
    if os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("prlimit"):
        pytest.skip("needs root, setpriv and prlimit to run as a fresh uid")
    known = subprocess.run(["getent", "passwd", str(FRESH_UID)], capture_output=True)
    if known.returncode == 0:
        pytest.skip(f"uid {FRESH_UID} has a passwd entry here")
    ours = subprocess.run([*as_stranger(), SEND_METRICS, "--version"], capture_output=True)
    if ours.returncode != 0:  # .ci/run makes its install readable; a private venv is not
        pytest.skip(f"the fresh uid cannot run {SEND_METRICS}: {ours.stderr.decode()[-200:]}")
    folder = Path(tempfile.mkdtemp(prefix="send-metrics-stranger-"))
    folder.chmod(0o755)
    os.chown(folder, FRESH_UID, FRESH_UID)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    """A real headless Chromium (Debian's); skipped where it is missing, except in CI."""
    binary = chromium()
    if binary is None:
        if IN_CI:
            pytest.fail("chromium is missing: .ci/run installs it")
        pytest.skip("chromium is not installed here (apt-get install chromium)")
    opened = Browser(binary, tmp_path / "profile")
    try:
        yield opened
    finally:
        opened.close()
