"""Real network parts for the delivery tests: a loopback proxy (forward for http://, CONNECT
tunnel for https://) that records every use, and a test certificate authority made with the
`openssl` command."""

from __future__ import annotations

import select
import socket
import socketserver
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class Used:
    """One request the proxy received: CONNECT host:port, or POST http://host:port/path."""

    method: str
    target: str
    proxy_authorization: str | None


@dataclass
class Proxy:
    url: str = ""
    require: str | None = None  # a Proxy-Authorization value to insist on (407 otherwise)
    used: list[Used] = field(default_factory=list)

    def url_with(self, user: str, password: str) -> str:
        return self.url.replace("http://", f"http://{user}:{password}@")


def _head(stream) -> tuple[str, dict[str, str]]:
    line = stream.readline(65536).decode("latin-1").strip()
    headers: dict[str, str] = {}
    while True:
        raw = stream.readline(65536).decode("latin-1")
        if raw in ("\r\n", "\n", ""):
            break
        key, _, value = raw.partition(":")
        headers[key.strip().lower()] = value.strip()
    return line, headers


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    sockets = [a, b]
    while True:
        ready, _, _ = select.select(sockets, [], [], 10)
        if not ready:
            return
        for s in ready:
            data = s.recv(65536)
            if not data:
                return
            (b if s is a else a).sendall(data)


def serve_proxy(state: Proxy) -> socketserver.ThreadingTCPServer:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            line, headers = _head(self.rfile)
            if not line:
                return
            method, target, _version = line.split(" ", 2)
            auth = headers.get("proxy-authorization")
            state.used.append(Used(method, target, auth))
            if state.require is not None and auth != state.require:
                self.wfile.write(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n'
                    b"Connection: close\r\n\r\n"
                )
                return
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                upstream = socket.create_connection((host, int(port)), 5)
                self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self.wfile.flush()
                _pipe(self.connection, upstream)
                upstream.close()
                return
            parts = urlsplit(target)  # a forward proxy gets the absolute URL
            body = self.rfile.read(int(headers.get("content-length", "0")))
            upstream = socket.create_connection((parts.hostname, parts.port or 80), 5)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            kept = {k: v for k, v in headers.items() if not k.startswith("proxy-")}
            kept["connection"] = "close"
            head = f"{method} {path} HTTP/1.1\r\n" + "".join(
                f"{k}: {v}\r\n" for k, v in kept.items()
            )
            upstream.sendall(head.encode("latin-1") + b"\r\n" + body)
            while chunk := upstream.recv(65536):
                self.wfile.write(chunk)
            upstream.close()

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    return server


def free_port() -> int:
    """A loopback port nothing listens on (for a server we start as another process)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_listening(port: int, seconds: float = 10.0) -> None:
    """Until a server we started accepts connections on the port (bounded)."""
    import time

    for _ in range(int(seconds / 0.05)):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return
        except OSError:
            time.sleep(0.05)


@dataclass
class RealProxy:
    """A running tinyproxy (Debian's package) on loopback, and what it logged so far."""

    url: str
    log: Path

    def requests(self) -> list[str]:
        """The request lines it handled (`GET http://...`, `CONNECT host:port`), in order."""
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return [line.split("): ", 1)[1] for line in lines if "Request (file descriptor" in line]


def start_tinyproxy(folder: Path) -> tuple[RealProxy, subprocess.Popen]:
    """tinyproxy in the foreground on a free loopback port, logging to a file in `folder`."""
    import shutil

    binary = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
    port = free_port()
    conf = folder / "tinyproxy.conf"
    conf.write_text(
        f"Port {port}\nListen 127.0.0.1\nTimeout 30\nAllow 127.0.0.1\nLogLevel Info\n"
        "MaxClients 20\n"
    )
    log = folder / "tinyproxy.log"
    with log.open("w") as out:
        process = subprocess.Popen([binary, "-d", "-c", str(conf)], stdout=out, stderr=out)
    wait_listening(port)
    return RealProxy(f"http://127.0.0.1:{port}", log), process


@dataclass
class CertAuthority:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    ca_dir: Path  # a hashed directory, as SSL_CERT_DIR wants it
    client_cert: Path  # a client certificate the CA signed, for mutual TLS
    client_key: Path
    client_combined: Path  # the certificate and its key in one PEM file


def make_cert_authority(folder: Path) -> CertAuthority:
    """A CA and a certificate for 127.0.0.1 it signed, made with the openssl command."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=send_metrics test CA", "-keyout", "ca.key", "-out", "ca.pem",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr",
    )  # fmt: skip
    (folder / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
    )
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem",
    )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=send_metrics test client",
        "-keyout", "client.key", "-out", "client.csr",
    )  # fmt: skip
    (folder / "client.cnf").write_text("extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")
    openssl(
        "x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "client.cnf", "-out", "client.pem",
    )  # fmt: skip
    combined = folder / "client-combined.pem"
    combined.write_bytes(
        (folder / "client.pem").read_bytes() + (folder / "client.key").read_bytes()
    )
    hashed = folder / "certs"
    hashed.mkdir()
    subject_hash = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", "ca.pem"],
        cwd=folder,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (hashed / f"{subject_hash}.0").write_bytes((folder / "ca.pem").read_bytes())
    return CertAuthority(
        folder / "ca.pem",
        folder / "server.pem",
        folder / "server.key",
        hashed,
        folder / "client.pem",
        folder / "client.key",
        combined,
    )
