"""The way to an endpoint: proxies and certificates as the environment sets them, and the
bounded keep-alive HTTP client that every sink posts through.

Proxies are resolved here from the environment as `requests` and `urllib` resolve them
(`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, lower case first) without importing
`urllib.request` or `requests`: their import alone costs more than the whole wrapper's budget
for an instant command (README, "Proxies and certificates"). `ssl` is imported only for https.
"""

from __future__ import annotations

import binascii
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import SplitResult, quote, unquote, urlsplit

from send_metrics import __version__
from send_metrics.errors import DeliveryError

if TYPE_CHECKING:
    import ssl
    from http.client import HTTPConnection, HTTPResponse

# Deferred imports: http.client loads on the prefetch thread while the child runs; ssl only for
# https endpoints, ipaddress only for an IP literal against a NO_PROXY network, socket only to
# name a failure.

MAX_RESPONSE_BYTES = 65_536  # more than this of a reply is never read
MAX_IDLE_S = 10.0  # an older prepared connection may have died (a laptop slept): open anew
MAX_WAIT_S = 60.0  # no single wait on the network is longer, even for `flush --timeout inf`

Environ = Mapping[str, str]


class Response(NamedTuple):
    """What an endpoint answered: status, the headers we read, and the start of the body."""

    status: int
    retry_after: str | None
    content_type: str
    location: str
    body: bytes


def mask_url(url: str) -> str:
    """An endpoint as it may be printed or stored: scheme://host:port only. User names,
    passwords, paths and queries may all hold tokens."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
        return f"{parts.scheme}://{host}" + (f":{port}" if port else "")
    except ValueError:
        return "(unparseable URL)"


def mask_urls(text: str) -> str:
    """Every URL in a line of text masked as `mask_url` does (a safety net for stored errors)."""
    import re

    def one(match: re.Match[str]) -> str:
        url = match.group(0).rstrip(":,;.)")
        return mask_url(url) + match.group(0)[len(url) :]

    return re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+", one, text)


def check_url(url: str, setting: str) -> None:
    """An endpoint must be an http(s) URL with a host: anything else is the operator's mistake,
    kept apart from an endpoint's answer so that the queue is never dropped for it."""
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        ok = False
    if not ok:
        raise DeliveryError(
            f"{setting} {mask_url(url)!r} is not an http:// or https:// URL", kind="config"
        )


# ---- proxies: which one, if any, for a URL ----


def environ_proxies(environ: Environ) -> dict[str, str]:
    """Proxy URLs by scheme from `*_proxy` variables; a lower-case name wins over upper case.

    As urllib does, `HTTP_PROXY` in upper case is ignored under CGI (`REQUEST_METHOD` set),
    where a client's `Proxy:` header would arrive as that variable.
    """
    found: dict[str, str] = {}
    lower: dict[str, str] = {}
    for name, value in environ.items():
        if not value or not name.lower().endswith("_proxy"):
            continue
        scheme = name[: -len("_proxy")].lower()
        if name == name.lower():
            lower[scheme] = value
        elif not (scheme == "http" and "REQUEST_METHOD" in environ):
            found[scheme] = value
    found.update(lower)
    return found


def _host_matches(host: str, port: int, entry: str) -> bool:
    """One NO_PROXY entry: a host or domain (with or without a leading dot), optionally with a
    port, or an IP address or network in CIDR notation."""
    entry = entry.strip().lower()
    if not entry:
        return False
    if entry == "*":
        return True
    want_port = None
    if entry.startswith("["):  # [::1] or [::1]:8080
        inner, _, rest = entry[1:].partition("]")
        entry, want_port = inner, rest.removeprefix(":") or None
    elif entry.count(":") == 1:
        entry, want_port = entry.split(":")
    if want_port is not None and want_port != str(port):
        return False
    entry = entry.lstrip("*").lstrip(".")
    if not entry:
        return False
    if host == entry or host.endswith("." + entry):
        return True
    if (host[:1].isdigit() or ":" in host) and (entry[:1].isdigit() or ":" in entry):
        import ipaddress  # only for IP literals: a name never matches a network

        try:
            return ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return False
    return False


def bypass_proxy(host: str, port: int, no_proxy: str) -> bool:
    """True when NO_PROXY lists the host (comma or space separated, `*` for every host)."""
    host = host.lower().strip("[]").rstrip(".")
    return any(_host_matches(host, port, e) for e in no_proxy.replace(" ", ",").split(","))


def proxy_for(url: str, environ: Environ | None = None) -> str | None:
    """The proxy URL for `url` per the environment, or None to connect directly."""
    env = os.environ if environ is None else environ
    proxies = environ_proxies(env)
    if not proxies:
        return None
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if bypass_proxy(parts.hostname or "", port, proxies.get("no", "")):
        return None
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy:
        return None
    return proxy if "://" in proxy else f"http://{proxy}"  # `host:3128` means http, as in requests


def _basic(user: str | None, secret: str | None) -> str:
    token = f"{unquote(user or '')}:{unquote(secret or '')}"
    return "Basic " + binascii.b2a_base64(token.encode(), newline=False).decode()


# ---- certificates ----


def tls_context(bundles: tuple[tuple[str, str], ...]) -> ssl.SSLContext:
    """Certificates to trust: the named bundles (each a file or a directory) if any is set, as
    `requests` uses REQUESTS_CA_BUNDLE instead of its own store; else the system store, where
    OpenSSL honours SSL_CERT_FILE and SSL_CERT_DIR."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the host name
    if not bundles:
        context.load_default_certs()
        return context
    for setting, path in bundles:
        try:
            if os.path.isdir(path):
                context.load_verify_locations(capath=path)
            elif os.path.exists(path) and not os.path.isfile(path):
                # A FIFO or device would hold the send until the deadline: refuse it at once.
                raise ValueError("not a regular file")
            else:
                context.load_verify_locations(cafile=path)
        except (OSError, ValueError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or (
                str(exc) if isinstance(exc, ValueError) else "not a PEM certificate bundle"
            )
            raise DeliveryError(
                f"{setting}: cannot use {path} as certificates ({reason})", kind="config"
            ) from None
    return context


# ---- the client ----


class _Way(NamedTuple):
    """How one origin is reached: its own address, or a forward proxy, or a CONNECT tunnel."""

    proxy: SplitResult | None
    forward: bool  # plain http through a proxy: absolute URLs, Proxy-Authorization per request


class HttpClient:
    """Keep-alive HTTP connections, one per origin, with every wait bounded by a deadline."""

    def __init__(
        self,
        deadline: float,
        ca_bundles: tuple[tuple[str, str], ...] = (),
        environ: Environ | None = None,
    ):
        self.deadline = deadline
        self.ca_bundles = ca_bundles
        self.environ = environ
        self._conns: dict[tuple[str, str, int], tuple[HTTPConnection, _Way]] = {}
        self._opened: dict[tuple[str, str, int], float] = {}
        self._tls: ssl.SSLContext | None = None

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeliveryError("deadline reached before the endpoint answered", kind="unreachable")
        return min(left, MAX_WAIT_S)

    def _context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = tls_context(self.ca_bundles)
        return self._tls

    def _get(self, parts: SplitResult) -> tuple[HTTPConnection, _Way]:
        import http.client

        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname or ""
        key = (parts.scheme, host, port)
        found = self._conns.get(key)
        if found is not None and time.monotonic() - self._opened[key] > MAX_IDLE_S:
            found[0].close()
            found = None
        if found is not None:
            return found
        proxy_url = proxy_for(parts.geturl(), self.environ)
        proxy = urlsplit(proxy_url) if proxy_url else None
        if proxy is not None and (proxy.scheme != "http" or not proxy.hostname):
            raise DeliveryError(
                f"proxy {mask_url(proxy_url or '')} is not supported (only http:// proxies)",
                kind="config",
            )
        way = _Way(proxy, proxy is not None and parts.scheme == "http")
        to_host, to_port = (proxy.hostname or "", proxy.port or 80) if proxy else (host, port)
        conn: HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                to_host, to_port, timeout=self._left(), context=self._context()
            )
            if proxy is not None:
                tunnel_headers = {"User-Agent": f"send_metrics/{__version__}"}
                if proxy.username or proxy.password:
                    tunnel_headers["Proxy-Authorization"] = _basic(proxy.username, proxy.password)
                conn.set_tunnel(host, port, headers=tunnel_headers)
        else:
            conn = http.client.HTTPConnection(to_host, to_port, timeout=self._left())
        self._conns[key] = (conn, way)
        self._opened[key] = time.monotonic()
        return conn, way

    def prepare(self, url: str) -> None:
        """Connect ahead of time (DNS, TCP, proxy, TLS) while the child runs; failures wait."""
        try:
            parts = urlsplit(url)
            if parts.scheme in ("http", "https") and parts.hostname:
                self._get(parts)[0].connect()
        except (OSError, ValueError, DeliveryError):
            self.close()

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Response:
        """POST a body; the answer whatever its status, or DeliveryError when there was none."""
        import http.client

        check_url(url, "the endpoint")
        parts = urlsplit(url)
        all_headers = {
            "Content-Type": "application/json",
            "User-Agent": f"send_metrics/{__version__}",
            **headers,
        }
        if parts.username or parts.password:
            all_headers.setdefault("Authorization", _basic(parts.username, parts.password))
        path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~") + (
            f"?{parts.query}" if parts.query else ""
        )
        for attempt in (1, 2):
            conn, way = self._get(parts)
            target = path
            if way.forward and way.proxy is not None:
                netloc = parts.hostname or ""
                netloc = f"[{netloc}]" if ":" in netloc else netloc
                target = f"http://{netloc}:{parts.port or 80}{path}"
                if way.proxy.username or way.proxy.password:
                    all_headers["Proxy-Authorization"] = _basic(
                        way.proxy.username, way.proxy.password
                    )
            reused = conn.sock is not None
            try:
                if reused:
                    conn.sock.settimeout(self._left())
                else:
                    conn.timeout = self._left()
                conn.request("POST", target, body=body, headers=all_headers)
                if conn.sock is not None:
                    conn.sock.settimeout(self._left())
                response: HTTPResponse = conn.getresponse()
                data = response.read(MAX_RESPONSE_BYTES)
                if not response.isclosed():
                    self.close()
                break
            except DeliveryError:
                self.close()
                raise
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
                self.close()
                if reused and attempt == 1:
                    continue  # the server closed an idle keep-alive connection: once more, fresh
                raise DeliveryError(
                    f"{mask_url(url)}: connection closed by the server", kind="unreachable"
                ) from None
            except (OSError, http.client.HTTPException, ValueError) as exc:
                self.close()
                raise _failure(url, exc, way) from None
        return Response(
            response.status,
            response.getheader("Retry-After"),
            response.getheader("Content-Type", "") or "",
            response.getheader("Location", "") or "",
            data,
        )

    def close(self) -> None:
        """Close every connection; the next post opens anew."""
        for conn, _way in self._conns.values():
            try:
                conn.close()
            except OSError:
                pass
        self._conns.clear()
        self._opened.clear()


def _failure(url: str, exc: BaseException, way: _Way) -> DeliveryError:
    """One line for a request that got no answer, and what it means for the queue."""
    import socket

    where = mask_url(url) + (f" via proxy {mask_url(way.proxy.geturl())}" if way.proxy else "")
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return DeliveryError(f"{where}: no answer in time", kind="unreachable")
    if isinstance(exc, ConnectionRefusedError):
        return DeliveryError(f"{where}: connection refused", kind="unreachable")
    if isinstance(exc, socket.gaierror):
        return DeliveryError(f"{where}: host name not found", kind="unreachable")
    text = str(exc)
    if text.startswith("Tunnel connection failed"):  # the proxy refused the CONNECT
        return DeliveryError(f"{where}: proxy answered {text.partition(': ')[2]}", kind="config")
    reason = getattr(exc, "reason", None) or getattr(exc, "verify_message", None)
    if type(exc).__name__.startswith("SSL"):
        hint = "; set report.ca_bundle or REQUESTS_CA_BUNDLE to trust its certificate"
        detail = f"TLS failed ({reason or exc.__class__.__name__})"
        if "CERTIFICATE_VERIFY_FAILED" in text:
            detail = f"certificate not trusted ({getattr(exc, 'verify_message', '') or reason})"
            return DeliveryError(f"{where}: {detail}{hint}", kind="config")
        return DeliveryError(f"{where}: {detail}", kind="unreachable")
    if isinstance(exc, OSError) and exc.strerror:
        return DeliveryError(f"{where}: {exc.strerror.lower()}", kind="unreachable")
    return DeliveryError(f"{where}: bad response ({type(exc).__name__})", kind="busy")
