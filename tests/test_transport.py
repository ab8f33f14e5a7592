"""The way to an endpoint: proxies from the environment (a real forward proxy and CONNECT
tunnel on 127.0.0.1), NO_PROXY, and certificates from a test CA made with openssl."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from send_metrics import transport
from tests.helpers import assert_no_traceback, delivered_ids, history, opt_in, queued, sm

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
