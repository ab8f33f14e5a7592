"""The way to an endpoint: proxies from the environment (a real forward proxy and CONNECT
tunnel on 127.0.0.1), NO_PROXY, and certificates from a test CA made with openssl."""

from __future__ import annotations

import base64
import os
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from send_metrics import transport
from send_metrics.errors import DeliveryError
from tests.helpers import assert_no_traceback, delivered_ids, history, opt_in, queued, sm
from tests.network import free_port, wait_listening

WRITE_KEY = "wk-proxy-test"


def _configure(sink: str, url: str, **extra: str) -> None:
    lines = ["[report]", f'sink = "{sink}"', f'endpoint = "{url}"', "deadline = 5.0"]
    if sink == "segment":
        lines.append(f'write_key = "{WRITE_KEY}"')
    lines += [f"{k} = {v}" for k, v in extra.items()]
    Path("send_metrics.toml").write_text("\n".join(lines) + "\n")


def _run(env: dict[str, str]):
    result = sm("run", "--", "sh", "-c", "exit 3", env={**os.environ, **env})
    assert result.returncode == 3
    assert_no_traceback(result.stderr)
    return result


@pytest.mark.parametrize("sink", ["segment", "otlp", "http"])
def test_http_endpoint_goes_through_the_forward_proxy(home: Path, collector, proxy, sink) -> None:
    _configure(sink, collector.url)
    opt_in()
    result = _run({"HTTP_PROXY": proxy.url_with("me", "p%40ss")})
    assert result.stderr == ""
    [used] = proxy.used
    assert used.method == "POST" and used.target.startswith(f"{collector.url}/")
    expected = base64.b64encode(b"me:p@ss").decode()
    assert used.proxy_authorization == f"Basic {expected}"
    [request] = collector.requests
    assert "Proxy-Authorization" not in request.headers  # never passed on to the endpoint
    assert delivered_ids(collector.ok()) == [history(home)[0]["message_id"]]


@pytest.mark.parametrize("sink", ["segment", "otlp", "http"])
def test_https_endpoint_goes_through_a_connect_tunnel(
    home: Path, tls_collector, proxy, cert_authority, sink
) -> None:
    _configure(sink, tls_collector.url)
    opt_in()
    env = {"https_proxy": proxy.url, "SSL_CERT_FILE": str(cert_authority.ca_cert)}
    result = _run(env)
    assert result.stderr == ""
    port = tls_collector.url.rsplit(":", 1)[1]
    assert [(u.method, u.target) for u in proxy.used] == [("CONNECT", f"127.0.0.1:{port}")]
    assert delivered_ids(tls_collector.ok()) == [history(home)[0]["message_id"]]


def test_all_proxy_is_used_when_no_scheme_proxy_is_set(home: Path, collector, proxy) -> None:
    _configure("http", collector.url)
    opt_in()
    _run({"ALL_PROXY": proxy.url})
    assert [u.method for u in proxy.used] == ["POST"]
    assert len(collector.ok()) == 1


@pytest.mark.parametrize(
    "no_proxy",
    ["127.0.0.1", "localhost,127.0.0.1", "*", "127.0.0.0/8", " .0.0.1", "127.0.0.1:{port}"],
)
def test_no_proxy_sends_directly(home: Path, collector, proxy, no_proxy: str) -> None:
    _configure("segment", collector.url)
    opt_in()
    port = collector.url.rsplit(":", 1)[1]
    _run({"HTTP_PROXY": proxy.url, "NO_PROXY": no_proxy.format(port=port)})
    assert proxy.used == []
    assert len(collector.ok()) == 1


def test_no_proxy_for_another_host_or_port_still_proxies(home: Path, collector, proxy) -> None:
    _configure("segment", collector.url)
    opt_in()
    _run({"http_proxy": proxy.url, "no_proxy": "example.org,127.0.0.1:1,10.0.0.0/8"})
    assert [u.method for u in proxy.used] == ["POST"]
    assert len(collector.ok()) == 1


def test_a_proxy_refusing_our_credentials_keeps_the_event(
    home: Path, tls_collector, proxy, cert_authority
) -> None:
    proxy.require = "Basic nobody-has-this"
    _configure("segment", tls_collector.url)
    opt_in()
    env = {
        "HTTPS_PROXY": proxy.url_with("me", "wrong"),
        "SSL_CERT_FILE": str(cert_authority.ca_cert),
    }
    result = _run(env)
    [line] = result.stderr.splitlines()
    assert "407" in line and "queued" in line and "wrong" not in line
    assert tls_collector.requests == []
    assert len(queued(home)) == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("proxy.example:3128", ("http://proxy.example:3128")),
        ("http://proxy.example", "http://proxy.example"),
    ],
)
def test_a_proxy_without_scheme_means_http(name: str, value: str) -> None:
    assert transport.proxy_for("https://api.example/v1", {"HTTPS_PROXY": name}) == value


def test_lower_case_wins_and_cgi_ignores_upper_case_http_proxy() -> None:
    env = {"HTTP_PROXY": "http://upper:1", "http_proxy": "http://lower:1"}
    assert transport.proxy_for("http://x/", env) == "http://lower:1"
    cgi = {"HTTP_PROXY": "http://client-controlled:1", "REQUEST_METHOD": "GET"}
    assert transport.proxy_for("http://x/", cgi) is None


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "bypass"),
    [
        ("api.example.com", 443, "example.com", True),
        ("api.example.com", 443, ".example.com", True),
        ("example.com", 443, ".example.com", True),
        ("badexample.com", 443, "example.com", False),
        ("api.example.com", 443, "example.com:8443", False),
        ("api.example.com", 8443, "example.com:8443", True),
        ("10.1.2.3", 80, "10.0.0.0/8", True),
        ("11.1.2.3", 80, "10.0.0.0/8", False),
        ("::1", 80, "::1", True),
        ("API.Example.COM", 443, "example.com", True),
        ("anything", 1, "*", True),
        ("x.org", 1, "", False),
    ],
)
def test_no_proxy_matching(host: str, port: int, no_proxy: str, bypass: bool) -> None:
    assert transport.bypass_proxy(host, port, no_proxy) is bypass


# ---- certificates ----


@pytest.mark.parametrize(
    "how",
    [
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "report.ca_bundle",
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
    ],
)
def test_https_with_a_test_ca(home: Path, tls_collector, cert_authority, how: str) -> None:
    sink = "otlp" if how.startswith("OTEL") else "segment"
    extra = {"ca_bundle": f'"{cert_authority.ca_cert}"'} if how == "report.ca_bundle" else {}
    _configure(sink, tls_collector.url, **extra)
    opt_in()
    env = {how: str(cert_authority.ca_dir if how == "SSL_CERT_DIR" else cert_authority.ca_cert)}
    env = {} if how == "report.ca_bundle" else env
    result = _run(env)
    assert result.stderr == ""
    assert delivered_ids(tls_collector.ok()) == [history(home)[0]["message_id"]]


def test_an_untrusted_certificate_keeps_the_event_and_names_the_setting(
    home: Path, tls_collector
) -> None:
    _configure("segment", tls_collector.url)
    opt_in()
    result = _run({})
    [line] = result.stderr.splitlines()
    assert "certificate not trusted" in line and "report.ca_bundle" in line
    assert tls_collector.requests == []
    assert len(queued(home)) == 1
    assert "back-off" in sm("status").stdout


def test_a_missing_ca_bundle_is_one_line_naming_the_setting(home: Path, tls_collector) -> None:
    _configure("segment", tls_collector.url, ca_bundle='"/nonexistent/ca.pem"')
    opt_in()
    result = _run({})
    [line] = result.stderr.splitlines()
    assert line.startswith("send_metrics: report.ca_bundle: cannot use /nonexistent/ca.pem")
    assert len(queued(home)) == 1


def test_a_socks_proxy_is_one_line_and_the_event_stays(home: Path, collector) -> None:
    _configure("segment", collector.url)
    opt_in()
    result = _run({"HTTP_PROXY": "socks5://user:secret@127.0.0.1:1080"})
    [line] = result.stderr.splitlines()
    assert "only http:// proxies" in line and "secret" not in line and "queued" in line
    assert collector.requests == [] and len(queued(home)) == 1


# ---- the HTTP/1.1 client itself, against scripted loopback servers ----


@dataclass
class Scripted:
    """A loopback server that reads each request whole and answers it with `reply` (bytes, or
    a function writing to the socket); the connection stays open for more while `keep`."""

    reply: bytes | Callable[[socket.socket], None]
    keep: bool = True
    url: str = ""
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)


def _read_request(sock: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next((int(x.split(b":")[1]) for x in lines if x.startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        body += chunk
    return head + b"\r\n\r\n" + body


@contextmanager
def scripted(state: Scripted) -> Iterator[Scripted]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    state.url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    done = threading.Event()

    def serve(sock: socket.socket) -> None:
        sock.settimeout(10)
        with sock:
            try:
                while (request := _read_request(sock)) is not None:
                    state.requests.append(request)
                    if callable(state.reply):
                        state.reply(sock)
                    else:
                        sock.sendall(state.reply)
                    if not state.keep:
                        return
            except OSError:
                pass

    def accept() -> None:
        while not done.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            state.connections += 1
            threading.Thread(target=serve, args=(sock,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        done.set()
        thread.join(5)
        listener.close()


def _post_twice(state: Scripted) -> list[transport.Response]:
    client = transport.HttpClient(time.monotonic() + 10)
    try:
        return [client.post(state.url, b'{"n": %d}' % i, {}) for i in range(2)]
    finally:
        client.close()


def test_keep_alive_carries_two_posts_on_one_connection(collector) -> None:
    client = transport.HttpClient(time.monotonic() + 10)
    first = client.post(f"{collector.url}/a", b"{}", {})
    second = client.post(f"{collector.url}/b", b"{}", {"X-Extra": "1"})
    client.close()
    assert (first.status, second.status) == (200, 200)
    assert second.body == b'{"success":true}' and second.content_type == "application/json"
    assert [r.path for r in collector.requests] == ["/a", "/b"]
    assert collector.requests[1].headers["X-Extra"] == "1"
    assert collector.connections == 1


def test_a_chunked_reply_is_read_whole_and_the_connection_kept() -> None:
    reply = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n"
        b'\r\n4\r\n{"ok\r\na;note=x\r\n": true,  \r\n1\r\n}\r\n0\r\nX-Trailer: t\r\n\r\n'
    )
    with scripted(Scripted(reply)) as server:
        responses = _post_twice(server)
    assert [r.body for r in responses] == [b'{"ok": true,  }'] * 2
    assert responses[0].content_type == "application/json"
    assert server.connections == 1  # the trailer was read past: the connection stayed usable


def test_a_chunked_reply_longer_than_the_bound_is_cut_and_the_connection_closed() -> None:
    size = transport.MAX_RESPONSE_BYTES + 10
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % size
    reply += b"x" * size + b"\r\n0\r\n\r\n"
    with scripted(Scripted(reply)) as server:
        responses = _post_twice(server)
    assert [len(r.body) for r in responses] == [transport.MAX_RESPONSE_BYTES] * 2
    assert server.connections == 2


def test_interim_100_continue_replies_are_skipped() -> None:
    reply = (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nLocation: /events/1\r\nRetry-After: 7\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    )
    with scripted(Scripted(reply)) as server:
        responses = _post_twice(server)
    assert [(r.status, r.location, r.retry_after, r.body) for r in responses] == [
        (201, "/events/1", "7", b"{}")
    ] * 2
    assert server.connections == 1


def test_a_reply_without_length_is_read_until_the_server_closes() -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it"
    with scripted(Scripted(reply, keep=False)) as server:
        responses = _post_twice(server)
    assert [r.body for r in responses] == [b"all of it"] * 2
    assert server.connections == 2  # read until the close: never reused


@pytest.mark.parametrize("reply", ["Connection: close", "HTTP/1.0"])
def test_a_reply_that_ends_the_connection_is_not_reused(reply: str) -> None:
    head = "HTTP/1.0 200 OK\r\n" if reply == "HTTP/1.0" else f"HTTP/1.1 200 OK\r\n{reply}\r\n"
    state = Scripted((head + "Content-Length: 2\r\n\r\n{}").encode(), keep=False)
    with scripted(state) as server:
        responses = _post_twice(server)
    assert [r.status for r in responses] == [200, 200]
    assert server.connections == 2


def _endless(line: bytes) -> Callable[[socket.socket], None]:
    """A status line, then `line` again and again (64 MiB at most) until the client leaves."""

    def reply(sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\n")
        for _ in range((64 << 20) // len(line)):
            sock.sendall(line)

    return reply


@pytest.mark.parametrize(
    "line", [b"X-Filler: 0123456789\r\n", b"X" * 4096], ids=["many-headers", "endless-line"]
)
def test_endless_headers_are_one_bounded_failure(line: bytes) -> None:
    with scripted(Scripted(_endless(line))) as server:
        client = transport.HttpClient(time.monotonic() + 20)
        started = time.monotonic()
        with pytest.raises(DeliveryError) as failure:
            client.post(server.url, b"{}", {})
        client.close()
    assert time.monotonic() - started < 5
    assert failure.value.kind == "busy" and "bad response" in str(failure.value)
    assert len(server.requests) == 1  # no retry


def test_garbage_instead_of_a_status_line_is_a_bad_response() -> None:
    with scripted(Scripted(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", keep=False)) as server:
        client = transport.HttpClient(time.monotonic() + 5)
        with pytest.raises(DeliveryError) as failure:
            client.post(server.url, b"{}", {})
    assert failure.value.kind == "busy" and "bad response" in str(failure.value)


def test_the_request_says_host_length_and_credentials(home: Path) -> None:
    reply = b"HTTP/1.1 204 No Content\r\n\r\n"
    with scripted(Scripted(reply)) as server:
        url = server.url.replace("http://", "http://me:p%40ss@") + "/a b?x=1"
        client = transport.HttpClient(time.monotonic() + 5)
        response = client.post(url, b"[1]", {"Content-Type": "text/plain"})
        client.close()
    assert response.status == 204 and response.body == b""
    [request] = server.requests
    head, _, body = request.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /hook/a%20b?x=1 HTTP/1.1"
    fields = {k.lower(): v for k, _, v in (x.partition(": ") for x in lines[1:])}
    assert fields["host"] == server.url.split("/")[2]
    assert fields["content-length"] == "3" and body == b"[1]"
    assert fields["content-type"] == "text/plain"
    assert fields["authorization"] == "Basic " + base64.b64encode(b"me:p@ss").decode()
    assert fields["user-agent"].startswith("send_metrics/")


def test_a_header_value_with_a_line_break_is_never_sent() -> None:
    with scripted(Scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")) as server:
        client = transport.HttpClient(time.monotonic() + 5)
        with pytest.raises(DeliveryError):
            client.post(server.url, b"{}", {"X-Token": "a\r\nX-Injected: 1"})
    assert server.requests == []


def test_https_through_a_tunnel_keeps_one_connection_for_two_posts(
    tls_collector, proxy, cert_authority
) -> None:
    client = transport.HttpClient(
        time.monotonic() + 10,
        (("report.ca_bundle", str(cert_authority.ca_cert)),),
        {"https_proxy": proxy.url_with("me", "p%40ss")},
    )
    client.prepare(tls_collector.url)
    answers = [client.post(f"{tls_collector.url}/v1/{n}", b"{}", {}) for n in (1, 2)]
    client.close()
    assert [a.status for a in answers] == [200, 200]
    port = tls_collector.url.rsplit(":", 1)[1]
    expected = "Basic " + base64.b64encode(b"me:p@ss").decode()
    assert [(u.method, u.target, u.proxy_authorization) for u in proxy.used] == [
        ("CONNECT", f"127.0.0.1:{port}", expected)
    ]
    assert [r.path for r in tls_collector.requests] == ["/v1/1", "/v1/2"]
    assert tls_collector.connections == 1


def test_a_refused_connect_is_a_config_failure_naming_the_answer(tls_collector, proxy) -> None:
    proxy.require = "Basic nobody-has-this"
    client = transport.HttpClient(time.monotonic() + 10, (), {"HTTPS_PROXY": proxy.url})
    with pytest.raises(DeliveryError) as failure:
        client.post(f"{tls_collector.url}/v1", b"{}", {})
    assert failure.value.kind == "config"
    assert str(failure.value).endswith("proxy answered 407 Proxy Authentication Required")
    assert tls_collector.requests == []


def test_a_prepared_connection_past_its_idle_time_is_opened_anew(
    collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = transport.HttpClient(time.monotonic() + 10)
    client.prepare(collector.url)
    monkeypatch.setattr(transport, "MAX_IDLE_S", 0.0)
    time.sleep(0.01)
    assert client.post(f"{collector.url}/x", b"{}", {}).status == 200
    client.close()
    assert collector.connections == 2 and len(collector.requests) == 1


def test_a_past_deadline_is_unreachable_without_connecting(collector) -> None:
    client = transport.HttpClient(time.monotonic() - 1)
    with pytest.raises(DeliveryError) as failure:
        client.post(f"{collector.url}/x", b"{}", {})
    assert failure.value.kind == "unreachable" and "deadline reached" in str(failure.value)
    assert collector.connections == 0


def test_a_server_trickling_its_head_is_cut_at_the_deadline() -> None:
    def trickle(sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\n")
        for _ in range(100):  # 10 s at most, a header byte at a time
            sock.sendall(b"X")
            time.sleep(0.1)

    with scripted(Scripted(trickle)) as server:
        client = transport.HttpClient(time.monotonic() + 1.0)
        started = time.monotonic()
        with pytest.raises(DeliveryError) as failure:
            client.post(server.url, b"{}", {})
    assert time.monotonic() - started < 2.0
    assert failure.value.kind == "unreachable"


@pytest.mark.parametrize(
    "environ",
    [
        {"HTTP_PROXY": "http://upper:1", "http_proxy": ""},
        {"HTTP_PROXY": "http://upper:1", "http_proxy": "http://lower:2"},
        {"HTTPS_PROXY": "", "https_proxy": "http://lower:2"},
        {"ALL_PROXY": "http://all:3", "all_proxy": ""},
        {"HTTP_PROXY": "http://upper:1", "REQUEST_METHOD": "GET"},
        {"http_proxy": "http://lower:2", "REQUEST_METHOD": "GET"},
        {"Http_Proxy": "http://mixed:4"},
        {"HTTP_proxy": "", "HTTP_PROXY": "http://upper:1"},
    ],
)
def test_proxy_variables_read_as_urllib_reads_them(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import urllib.request

    monkeypatch.setattr(os, "environ", dict(environ))
    assert transport.environ_proxies(environ) == urllib.request.getproxies_environment()


@pytest.mark.parametrize(
    ("endpoint", "target"),
    [
        ("/a b?q=a b", "/a%20b?q=a%20b"),
        ("/\u00e9?q=\u00e9", "/%C3%A9?q=%C3%A9"),
        ("/x%20y?q=%2F&r=1", "/x%20y?q=%2F&r=1"),
    ],
)
def test_paths_and_queries_are_escaped_as_requests_escapes_them(
    collector, endpoint: str, target: str
) -> None:
    client = transport.HttpClient(time.monotonic() + 5)
    response = client.post(collector.url + endpoint, b"{}", {})
    client.close()
    assert response.status == 200 and collector.requests[-1].path == target


def test_a_length_frames_a_body_whatever_the_other_transfer_coding(home: Path) -> None:
    """`Transfer-Encoding: identity` with a length, on a connection kept open: read by the
    length (as http.client does), not until a close that never comes."""
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Length: 2\r\n\r\n{}"
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def answer() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(reply)
        time.sleep(3)  # the connection stays open
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    client = transport.HttpClient(time.monotonic() + 2)
    response = client.post(f"http://127.0.0.1:{server.getsockname()[1]}/", b"{}", {})
    client.close()
    server.close()
    assert (response.status, response.body) == (200, b"{}")  # before the deadline, not at it


def test_a_kept_tls_connection_the_server_cut_is_opened_again_once(cert_authority) -> None:
    """A server that drops an idle TLS connection without a close notice: the next post on it
    fails with SSLEOFError, and is sent again on a fresh connection, as for plain http."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_authority.server_cert, cert_authority.server_key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    served: list[int] = []

    def serve() -> None:
        for number in (1, 2):
            raw, _ = listener.accept()
            conn = context.wrap_socket(raw, server_side=True)
            conn.recv(65536)
            conn.sendall(reply)
            served.append(number)
            time.sleep(0.2)
            cut = socket.socket(fileno=conn.detach())  # no close_notify, and a reset (RST)
            cut.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            cut.close()

    threading.Thread(target=serve, daemon=True).start()
    client = transport.HttpClient(
        time.monotonic() + 10, (("SSL_CERT_FILE", str(cert_authority.ca_cert)),)
    )
    url = f"https://127.0.0.1:{listener.getsockname()[1]}/"
    assert client.post(url, b"{}", {}).status == 200
    time.sleep(0.5)  # the server has cut the connection we keep
    assert client.post(url, b"{}", {}).status == 200
    client.close()
    listener.close()
    assert served == [1, 2]


# ---- mutual TLS: a collector that asks for a client certificate ----


def _reference_export(env: dict[str, str]) -> bool:
    """One log record through the OpenTelemetry SDK's own OTLP/HTTP exporter, configured by
    the same variables as ours: True when the collector accepted it."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import (
        InMemoryLogRecordExporter,
        LogRecordExportResult,
        SimpleLogRecordProcessor,
    )

    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    provider.get_logger("oracle").emit(body="reference", severity_text="INFO")
    records = memory.get_finished_logs()
    assert records
    saved = dict(os.environ)
    # The Python SDK reads this timeout in seconds (the specification says milliseconds): its
    # retries stop after 3 s, whatever failed.
    os.environ.update({**env, "OTEL_EXPORTER_OTLP_TIMEOUT": "3"})
    try:
        exporter = OTLPLogExporter()
        try:
            return exporter.export(records) == LogRecordExportResult.SUCCESS
        finally:
            exporter.shutdown()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        provider.shutdown()


@pytest.mark.parametrize("scope", ["", "LOGS_"])
def test_mutual_tls_with_the_otel_variables_as_the_reference_exporter(
    home: Path, mtls_collector, cert_authority, scope: str
) -> None:
    _configure("otlp", mtls_collector.url)
    opt_in()
    trust = {"OTEL_EXPORTER_OTLP_CERTIFICATE": str(cert_authority.ca_cert)}
    client = {
        f"OTEL_EXPORTER_OTLP_{scope}CLIENT_CERTIFICATE": str(cert_authority.client_cert),
        f"OTEL_EXPORTER_OTLP_{scope}CLIENT_KEY": str(cert_authority.client_key),
    }
    env = {**trust, **client, "OTEL_EXPORTER_OTLP_ENDPOINT": mtls_collector.url}
    # Without a client certificate both are refused, and nothing reaches the collector.
    assert _reference_export({k: v for k, v in env.items() if "CLIENT" not in k}) is False
    without = _run(trust)
    [line] = without.stderr.splitlines()
    assert "client certificate" in line and "queued" in line, line
    assert mtls_collector.requests == [] and len(queued(home)) == 1
    # With one, both are accepted by the same server; ours delivers the queue too.
    assert _reference_export(env) is True
    [reference] = mtls_collector.ok()
    result = _run({**trust, **client})
    assert result.stderr == ""
    ours = [r for r in mtls_collector.ok() if r is not reference]
    assert sorted(delivered_ids(ours)) == sorted(e["message_id"] for e in history(home))
    assert queued(home) == []


def test_logs_specific_client_certificate_wins(home: Path, mtls_collector, cert_authority) -> None:
    """OTEL_EXPORTER_OTLP_LOGS_CLIENT_* over OTEL_EXPORTER_OTLP_CLIENT_*, as the spec says."""
    _configure("otlp", mtls_collector.url)
    opt_in()
    env = {
        "OTEL_EXPORTER_OTLP_CERTIFICATE": str(cert_authority.ca_cert),
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": str(cert_authority.server_cert),  # not a client's
        "OTEL_EXPORTER_OTLP_CLIENT_KEY": str(cert_authority.server_key),
        "OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE": str(cert_authority.client_cert),
        "OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY": str(cert_authority.client_key),
    }
    assert _run(env).stderr == ""
    assert delivered_ids(mtls_collector.ok()) == [history(home)[0]["message_id"]]


@pytest.mark.parametrize("sink", ["segment", "http", "otlp"])
@pytest.mark.parametrize("combined", [False, True], ids=["cert-and-key", "one-pem"])
def test_mutual_tls_with_report_client_cert(
    home: Path, mtls_collector, cert_authority, sink: str, combined: bool
) -> None:
    files = {"ca_bundle": f'"{cert_authority.ca_cert}"'}
    if combined:
        files["client_cert"] = f'"{cert_authority.client_combined}"'
    else:
        files["client_cert"] = f'"{cert_authority.client_cert}"'
        files["client_key"] = f'"{cert_authority.client_key}"'
    _configure(sink, mtls_collector.url, **files)
    opt_in()
    result = _run({})
    assert result.stderr == ""
    assert delivered_ids(mtls_collector.ok()) == [history(home)[0]["message_id"]]


def test_an_unusable_client_certificate_is_one_line_naming_the_setting(
    home: Path, mtls_collector, cert_authority
) -> None:
    _configure(
        "http",
        mtls_collector.url,
        ca_bundle=f'"{cert_authority.ca_cert}"',
        client_cert=f'"{cert_authority.ca_cert}"',  # a certificate without its key
    )
    opt_in()
    result = _run({})
    [line] = result.stderr.splitlines()
    assert line.startswith("send_metrics: report.client_cert: cannot use"), line
    assert "queued" in line and mtls_collector.requests == [] and len(queued(home)) == 1


# ---- proxy decisions: `requests` as the oracle, and a real proxy (tinyproxy) ----


def _requests_proxy(url: str, environ: dict[str, str]) -> str | None:
    """The proxy `requests` would use for `url` under `environ` (scheme added as it adds it)."""
    from requests.utils import get_environ_proxies, select_proxy

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(environ)
    try:
        proxy = select_proxy(url, get_environ_proxies(url, no_proxy=None))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return proxy if not proxy or "://" in proxy else f"http://{proxy}"


@pytest.mark.parametrize(
    ("url", "environ"),
    [
        ("http://127.0.0.1:8080/x", {"no_proxy": "", "NO_PROXY": "127.0.0.0/8"}),
        ("http://example.com./x", {"NO_PROXY": "example.com."}),
        ("http://api.example.com./x", {"no_proxy": "example.com."}),
        ("http://example.com/x", {"NO_PROXY": "example.com", "no_proxy": "other.org"}),
        ("http://badexample.com/x", {"NO_PROXY": "example.com"}),
        ("http://10.1.2.3/x", {"NO_PROXY": "10.0.0.0/8"}),
        ("http://localhost/x", {"NO_PROXY": "localhost,*"}),  # `*` only alone
        ("http://localhost/x", {"NO_PROXY": " * "}),  # `*` with spaces is a name
        ("http://localhost/x", {"NO_PROXY": "*"}),
        ("https://api.example.com/x", {"http_proxy": "", "HTTP_PROXY": "http://upper:1"}),
    ],
)
def test_proxy_decisions_match_requests(url: str, environ: dict[str, str]) -> None:
    environ = {"HTTP_PROXY": "http://p:1", "HTTPS_PROXY": "p2:2", **environ}
    assert transport.proxy_for(url, environ) == _requests_proxy(url, environ)


def _as_documented(url: str, environ: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The README's differences from `requests` ("Pointing it at an endpoint"), applied to the
    input: with them, `requests` decides as we do. Host names compare without case and without
    a trailing dot; `*.example.com` is `.example.com`; `host:port` holds for an IP address too;
    `NO_PROXY=*` holds even when an empty `no_proxy` is set."""
    from urllib.parse import urlsplit as split

    parts = split(url)
    host = (parts.hostname or "").rstrip(".")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    netloc = f"[{host}]" if ":" in host else host
    url = f"{parts.scheme}://{netloc}:{port}{parts.path}"
    env = dict(environ)
    if env.get("no_proxy") == "" and env.get("NO_PROXY", "").strip() == "*":
        del env["no_proxy"]
    for name in ("no_proxy", "NO_PROXY"):
        if name not in env or env[name].strip() == "*":
            continue
        entries = []
        for entry in env[name].replace(" ", ",").split(","):
            entry = entry.strip().lower()
            if entry.startswith("*."):
                entry = entry[1:]
            bare, colon, want = entry.rpartition(":")
            if colon and bare.replace(".", "").isdigit():  # an IPv4 address with a port
                if want != str(port):
                    continue
                entry = bare
            entries.append(entry.rstrip("."))
        env[name] = ",".join(entries)
    return url, env


HOSTS = ["example.com", "api.example.com", "badexample.com", "example.com.", "EXAMPLE.com"]
HOSTS += ["127.0.0.1", "10.1.2.3", "[::1]", "localhost"]
ENTRIES = ["example.com", ".example.com", "example.com.", "*.example.com", "Example.COM"]
ENTRIES += ["127.0.0.1", "127.0.0.0/8", "10.0.0.0/8", "localhost", "*", "::1", ""]
ENTRIES += ["example.com:8080", "127.0.0.1:8080", "localhost:443"]


def test_ten_thousand_proxy_decisions_agree_with_requests_but_as_documented() -> None:
    """Random environments and URLs: where we differ from `requests`, the difference is one
    the README lists (requests, given the input as the README reads it, agrees with us)."""
    import random

    rng = random.Random(21)
    differ = 0
    for _ in range(10_000):
        environ = {rng.choice(["HTTP_PROXY", "http_proxy"]): "http://p:1"}
        if rng.random() < 0.3:
            environ["https_proxy"] = "p2:2"
        if rng.random() < 0.2:
            environ["ALL_PROXY"] = "http://all:3"
        entries = ",".join(rng.sample(ENTRIES, rng.randint(1, 3)))
        how = rng.choice(["no_proxy", "NO_PROXY", "both", "empty-lower"])
        if how == "both":
            environ["no_proxy"], environ["NO_PROXY"] = entries, rng.choice(ENTRIES)
        elif how == "empty-lower":
            environ["no_proxy"], environ["NO_PROXY"] = "", entries
        else:
            environ[how] = entries
        port = rng.choice(["", ":8080", ":443"])
        url = f"{rng.choice(['http', 'https'])}://{rng.choice(HOSTS)}{port}/x"
        ours = transport.proxy_for(url, environ)
        if ours != _requests_proxy(url, environ):
            differ += 1
            assert ours == _requests_proxy(*_as_documented(url, environ)), (url, environ)
    assert 0 < differ < 2_000  # the differences are real, and rare


def test_through_a_real_proxy_and_past_it_as_no_proxy_says(home: Path, collector, tinyproxy):
    """tinyproxy forwards the event (its log and its Via header say so); with `no_proxy=''`
    and `NO_PROXY=127.0.0.0/8` set, as `requests` reads them, the event goes direct."""
    _configure("http", collector.url)
    opt_in()
    _run({"HTTP_PROXY": tinyproxy.url})
    [through] = collector.ok()
    assert "tinyproxy" in through.headers.get("Via", "")
    assert len(tinyproxy.requests()) == 1 and tinyproxy.requests()[0].startswith("POST http://")
    _run({"HTTP_PROXY": tinyproxy.url, "no_proxy": "", "NO_PROXY": "127.0.0.0/8"})
    direct = collector.ok()[1]
    assert "Via" not in direct.headers and len(tinyproxy.requests()) == 1
    assert (
        _requests_proxy(
            collector.url, {"HTTP_PROXY": "x", "no_proxy": "", "NO_PROXY": "127.0.0.0/8"}
        )
        is None
    )
    assert len(history(home)) == 2 and queued(home) == []


def test_https_through_a_real_proxy_tunnel(home: Path, tls_collector, cert_authority, tinyproxy):
    _configure("otlp", tls_collector.url)
    opt_in()
    result = _run({"HTTPS_PROXY": tinyproxy.url, "SSL_CERT_FILE": str(cert_authority.ca_cert)})
    assert result.stderr == ""
    port = tls_collector.url.rsplit(":", 1)[1]
    assert [r.split(" HTTP/")[0] for r in tinyproxy.requests()] == [f"CONNECT 127.0.0.1:{port}"]
    assert delivered_ids(tls_collector.ok()) == [history(home)[0]["message_id"]]


def test_flush_against_a_trickling_server_blames_the_flush_timeout(home: Path, dead_url) -> None:
    def trickle(sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\n")
        for _ in range(100):
            sock.sendall(b"X")
            time.sleep(0.1)

    _configure("http", dead_url)
    opt_in()
    _run({})
    with scripted(Scripted(trickle)) as server:
        _configure("http", server.url)
        result = sm("flush", "--timeout", "2")
    assert result.returncode == 4 and "1 left" in result.stdout
    [line] = result.stderr.splitlines()
    assert "flush timeout (--timeout 2)" in line and "report.deadline" not in line, line


def test_a_server_asking_for_a_client_certificate_is_named(home: Path, cert_authority) -> None:
    """`openssl s_server -Verify 1` refuses a client without a certificate with TLS's own
    alert (certificate required): the line names the settings that give one."""
    port = free_port()
    server = subprocess.Popen(
        [
            "openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-quiet", "-www",
            "-cert", str(cert_authority.server_cert), "-key", str(cert_authority.server_key),
            "-CAfile", str(cert_authority.ca_cert), "-Verify", "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_listening(port)
        _configure("http", f"https://127.0.0.1:{port}/", ca_bundle=f'"{cert_authority.ca_cert}"')
        opt_in()
        [line] = _run({}).stderr.splitlines()
    finally:
        server.terminate()
        server.wait(10)
    assert "CERTIFICATE_REQUIRED" in line and "report.client_cert" in line, line
    assert len(queued(home)) == 1


def test_an_encrypted_client_key_is_refused_without_a_prompt(
    home: Path, mtls_collector, cert_authority, tmp_path: Path
) -> None:
    """OpenSSL would ask for the passphrase on the terminal, in the middle of the command's
    output: one line instead, and the event stays queued."""
    locked = tmp_path / "locked.key"
    subprocess.run(
        ["openssl", "pkey", "-in", str(cert_authority.client_key), "-aes256",
         "-passout", "pass:secret", "-out", str(locked)],
        check=True,
    )  # fmt: skip
    _configure(
        "http",
        mtls_collector.url,
        ca_bundle=f'"{cert_authority.ca_cert}"',
        client_cert=f'"{cert_authority.client_cert}"',
        client_key=f'"{locked}"',
    )
    opt_in()
    result = _run({})
    [line] = result.stderr.splitlines()
    assert "report.client_cert / report.client_key" in line and "encrypted key" in line, line
    assert mtls_collector.requests == [] and len(queued(home)) == 1


def test_relative_certificate_paths_are_from_the_config_files_folder(
    home: Path, mtls_collector, cert_authority
) -> None:
    """The operator's send_metrics.toml at the top of the repository names `certs/...`; a
    developer runs from a subdirectory."""
    import shutil

    certs = Path("certs")
    certs.mkdir()
    for source in (cert_authority.ca_cert, cert_authority.client_cert, cert_authority.client_key):
        shutil.copy(source, certs / source.name)
    _configure(
        "segment",
        mtls_collector.url,
        ca_bundle='"certs/ca.pem"',
        client_cert='"certs/client.pem"',
        client_key='"certs/client.key"',
    )
    opt_in()
    deeper = Path("src/deeper")
    deeper.mkdir(parents=True)
    result = sm("run", "--", "true", cwd=deeper)
    assert result.returncode == 0 and result.stderr == ""
    assert delivered_ids(mtls_collector.ok()) == [history(home)[0]["message_id"]]
