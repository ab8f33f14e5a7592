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

from send_metrics import __version__
from send_metrics.errors import DeliveryError
from send_metrics.lean.records import NamedTuple  # without `typing`, whose import costs ms
from send_metrics.lean.urls import Url, mask_url, quote, unquote, urlsplit
from send_metrics.settings.config import header_ok
from send_metrics.settings.destination import ClientCert, check_url

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    import ssl
    from collections.abc import Callable, Mapping

    from send_metrics.settings.destination import Environ

# Deferred imports: socket loads on the prefetch thread while the child runs (its connection is
# made there); ssl only for https endpoints, ipaddress only for an IP literal against a NO_PROXY
# network.

MAX_RESPONSE_BYTES = 65_536  # more than this of a reply is never read
MAX_IDLE_S = 10.0  # an older prepared connection may have died (a laptop slept): open anew
MAX_WAIT_S = 60.0  # no single wait on the network is longer, even for `flush --timeout inf`


class Response(NamedTuple):
    """What an endpoint answered: status, the headers we read, and the start of the body."""

    status: int
    retry_after: str | None
    content_type: str
    location: str
    body: bytes
    proxied: bool = False  # through a forward proxy (plain http): a 407 may be the proxy's


# ---- proxies: which one, if any, for a URL ----


def environ_proxies(environ: Environ) -> dict[str, str]:
    """Proxy URLs by scheme from `*_proxy` variables, as `urllib.request.getproxies` reads
    them: a lower-case name wins over upper case, and an empty lower-case one unsets the
    scheme (`http_proxy= cmd` goes direct). `HTTP_PROXY` in upper case is ignored under CGI
    (`REQUEST_METHOD` set), where a client's `Proxy:` header would arrive as that variable.
    """
    found: dict[str, str] = {}
    for name, value in environ.items():  # any case first
        if value and name.lower().endswith("_proxy"):
            found[name.lower()[: -len("_proxy")]] = value
    if "REQUEST_METHOD" in environ:
        found.pop("http", None)
    for name, value in environ.items():  # then lower case wins, and an empty one unsets
        if name.endswith("_proxy"):
            scheme = name.lower()[: -len("_proxy")]
            if value:
                found[scheme] = value
            else:
                found.pop(scheme, None)
    return found


def _host_matches(host: str, port: int, entry: str) -> bool:
    """One NO_PROXY entry: a host or domain (with or without a leading dot), optionally with a
    port, or an IP address or network in CIDR notation."""
    entry = entry.strip().lower()
    if not entry:
        return False
    want_port = None
    if entry.startswith("["):  # [::1] or [::1]:8080
        inner, _, rest = entry[1:].partition("]")
        entry, want_port = inner, rest.removeprefix(":") or None
    elif entry.count(":") == 1:
        entry, want_port = entry.split(":")
    if want_port is not None and want_port != str(port):
        return False
    entry = entry.lstrip("*").lstrip(".").rstrip(".")  # `example.com.` is the same name
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
    """True when NO_PROXY lists the host (comma or space separated), or is exactly `*` (every
    host; as in `requests`, a `*` among other entries, or with spaces, matches nothing)."""
    if no_proxy == "*":
        return True
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
    # As `requests` reads NO_PROXY: an empty `no_proxy` does not hide `NO_PROXY` (for the
    # proxies themselves an empty lower-case variable does unset the upper-case one).
    no_proxy = proxies.get("no") or env.get("no_proxy") or env.get("NO_PROXY") or ""
    if bypass_proxy(parts.hostname or "", port, no_proxy):
        return None
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy:
        return None
    return proxy if "://" in proxy else f"http://{proxy}"  # `host:3128` means http, as in requests


def _basic(user: str | None, secret: str | None) -> str:
    token = f"{unquote(user or '')}:{unquote(secret or '')}"
    return "Basic " + binascii.b2a_base64(token.encode(), newline=False).decode()


# ---- certificates ----


def _regular(path: str) -> None:
    """A FIFO or device would hold the send until the deadline: refused at once."""
    if os.path.exists(path) and not os.path.isfile(path):
        raise ValueError("not a regular file")


def _no_passphrase() -> bytes:
    raise ValueError("an encrypted key is not supported: give it without a passphrase")


def tls_context(
    bundles: tuple[tuple[str, str], ...], client: ClientCert | None = None
) -> ssl.SSLContext:
    """Certificates to trust: the named bundles (each a file or a directory) if any is set, as
    `requests` uses REQUESTS_CA_BUNDLE instead of its own store; else the system store, where
    OpenSSL honours SSL_CERT_FILE and SSL_CERT_DIR. `client`: our own certificate, for an
    endpoint that asks for one (mutual TLS)."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the host name
    if client is not None:
        try:
            for path in (client.cert, client.key):
                if path:
                    _regular(path)
            # Never OpenSSL's own prompt for a passphrase: it would read the terminal while
            # the wrapped command runs. An encrypted key is refused instead.
            context.load_cert_chain(client.cert, client.key or None, password=_no_passphrase)
        except (OSError, ValueError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or (
                str(exc) if isinstance(exc, ValueError) else "not a PEM certificate and its key"
            )
            raise DeliveryError(
                f"{client.setting}: cannot use {client.cert} as a client certificate ({reason})",
                kind="config",
            ) from None
    if not bundles:
        context.load_default_certs()
        return context
    for setting, path in bundles:
        try:
            if os.path.isdir(path):
                context.load_verify_locations(capath=path)
            else:
                _regular(path)
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
#
# HTTP/1.1 on a plain socket rather than `http.client`, whose import loads `email` and `ssl`
# (about 25 ms on every collected run, https or not). It does what the sinks need and no more:
# one POST at a time on a keep-alive connection, a reply read within fixed bounds.

_MAX_HEAD_BYTES = 65_536  # the status line and headers of a reply, interim (1xx) replies included
_MAX_HEADERS = 100  # header lines in a reply's head, and in a chunked body's trailer
_MAX_CHUNK_LINE = 4_096  # one chunk-size line, extensions included
_RECV_BYTES = 65_536  # the most one recv asks for
_HEX = frozenset("0123456789abcdefABCDEF")


class _BadResponse(Exception):
    """A reply that is not HTTP/1.x, or that breaks the bounds above."""


class _ProxyRefused(Exception):
    """The proxy answered CONNECT with other than 2xx (`status reason`)."""


class _Closed(Exception):
    """The stream ended before a status line: the server closed the connection."""


def _dial(address: tuple[str, int], timeout: float, tls: bool) -> socket.socket:
    """A TCP connection to the first address that accepts, as `socket.create_connection` makes
    one. Plain http uses `_socket`, the C module under `socket`, whose import (~3 ms, it loads
    `enum` and `selectors`) every collected run would pay; TLS needs `socket` (`ssl` loads it)."""
    if tls:
        import socket  # with ssl, which imports it anyway

        sock = socket.create_connection(address, timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    import _socket  # on the prefetch thread, as `prepare` runs there

    host, port = address
    error: OSError | None = None
    # An ASCII name as bytes: a str would be encoded with the `idna` codec, whose import
    # (`stringprep`, `unicodedata`, `re`) costs ~6 ms even for 127.0.0.1.
    name: str | bytes = host.encode("ascii") if host.isascii() else host
    for family, kind, proto, _name, where in _socket.getaddrinfo(
        name, port, 0, _socket.SOCK_STREAM
    ):
        raw = _socket.socket(family, kind, proto)
        try:
            raw.settimeout(timeout)
            raw.connect(where)
            raw.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            return raw  # type: ignore[return-value]  # the same calls as a socket.socket
        except OSError as exc:
            error = exc
            raw.close()
    raise error or OSError("getaddrinfo returned no address")


# What `ssl` raises when the server ended a TLS connection we had kept (without a clean close).
_TLS_CLOSED = ("SSLEOFError", "SSLZeroReturnError")


class _Way(NamedTuple):
    """How one origin is reached: its own address, or a forward proxy, or a CONNECT tunnel."""

    proxy: Url | None
    proxy_url: str  # as the environment gave it, for messages (masked)
    forward: bool  # plain http through a proxy: absolute URLs, Proxy-Authorization per request


class _Conn:
    """One origin's connection: the socket once open and the bytes read ahead on it. Every
    wait is bounded by `left()`, which raises DeliveryError once the deadline has passed."""

    __slots__ = ("buffer", "eof", "host", "left", "opened", "port", "sock", "tls", "way")

    def __init__(
        self, scheme: str, host: str, port: int, way: _Way, left: Callable[[], float]
    ) -> None:
        self.tls = scheme == "https"
        self.host = host
        self.port = port
        self.way = way
        self.left = left
        self.sock: socket.socket | None = None
        self.buffer = bytearray()
        self.eof = False  # the server closed its side: nothing more comes on this socket
        self.opened = 0.0

    def _socket(self) -> socket.socket:
        if self.sock is None:
            raise _Closed
        self.sock.settimeout(self.left())
        return self.sock

    def send(self, data: bytes) -> None:
        self._socket().sendall(data)

    def _fill(self, most: int) -> bool:
        """Read at most `most` more bytes into the buffer; False at the end of the stream."""
        if self.eof:
            return False
        data = self._socket().recv(most)
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def readline(self, limit: int, too_long: str = "reply head too long") -> bytes:
        """One line with its end, of at most `limit` bytes; what is left (maybe nothing, never
        a line end) when the stream ends first."""
        searched = 0
        while True:
            end = self.buffer.find(b"\n", searched)
            if 0 <= end < limit:
                line = bytes(self.buffer[: end + 1])
                del self.buffer[: end + 1]
                return line
            if len(self.buffer) >= limit:
                raise _BadResponse(too_long)
            searched = len(self.buffer)
            if not self._fill(_RECV_BYTES):
                line = bytes(self.buffer)
                self.buffer.clear()
                return line

    def read(self, size: int) -> bytes:
        """`size` bytes, or fewer when the stream ends first; never more is asked of the socket."""
        while len(self.buffer) < size and self._fill(min(size - len(self.buffer), _RECV_BYTES)):
            pass
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def close(self) -> None:
        sock, self.sock = self.sock, None
        self.buffer.clear()
        self.eof = False
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


def _ascii_host(host: str) -> str:
    """A host name as it goes on the wire: IDNA for a non-ASCII name, brackets for IPv6."""
    if not host.isascii():
        host = host.encode("idna").decode("ascii")
    return f"[{host}]" if ":" in host else host


def _head_bytes(method: str, target: str, headers: Mapping[str, str]) -> bytes:
    """A request head. CR, LF or NUL in a value, or a name that is not a token, would let a
    setting write headers of its own: refused (ValueError) rather than sent."""
    if not target.isascii() or any(ord(c) <= 0x20 or c == "\x7f" for c in target):
        raise ValueError("a request target must be printable ASCII")
    lines = [f"{method} {target} HTTP/1.1"]
    for name, value in headers.items():
        if not header_ok(name, value):
            raise ValueError("an invalid request header")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _status_line(line: bytes) -> tuple[str, int, str]:
    text = line.decode("latin-1").rstrip("\r\n")
    version, _, rest = text.partition(" ")
    code, _, reason = rest.partition(" ")
    if not (version.startswith("HTTP/") and len(code) == 3 and code.isascii() and code.isdigit()):
        raise _BadResponse("no status line")
    if int(code) < 100:
        raise _BadResponse("no status line")
    if not version.startswith("HTTP/1."):
        raise _BadResponse("not HTTP/1.x")
    # The reason is the server's text and may be printed: printable characters only, and short.
    return version, int(code), "".join(c for c in reason if c.isprintable())[:80].strip()


def _read_fields(conn: _Conn, budget: int) -> tuple[dict[str, str], int]:
    """Header lines up to the empty line: names in lower case, repeated ones joined with ", "
    (as `http.client` reads them); and what is left of the byte budget. The end of the stream
    ends them too, as it does for `http.client`."""
    fields: dict[str, str] = {}
    last = ""
    for _ in range(_MAX_HEADERS + 1):
        line = conn.readline(budget)
        budget -= len(line)
        if line in (b"\r\n", b"\n") or not line.endswith(b"\n"):
            return fields, budget
        text = line.decode("latin-1").rstrip("\r\n")
        if text[:1] in (" ", "\t") and last:  # an obsolete folded line continues the last one
            fields[last] = f"{fields[last]} {text.strip()}"
            continue
        name, colon, value = text.partition(":")
        if not colon:
            continue  # not a header line: skipped, as `http.client` does
        last = name.strip().lower()
        value = value.strip()
        fields[last] = f"{fields[last]}, {value}" if last in fields else value
    raise _BadResponse(f"more than {_MAX_HEADERS} header lines")


def _read_head(conn: _Conn) -> tuple[str, int, str, dict[str, str]]:
    """The final reply's version, status, reason and headers, past any interim 1xx replies."""
    budget = _MAX_HEAD_BYTES
    interim = False
    while True:
        line = conn.readline(budget)
        budget -= len(line)
        if not line and not interim:
            raise _Closed
        version, status, reason = _status_line(line)
        fields, budget = _read_fields(conn, budget)
        if 100 <= status < 200 and status != 101:  # 100 Continue, 103 Early Hints...
            interim = True
            continue
        return version, status, reason, fields


def _keep_alive(version: str, fields: Mapping[str, str]) -> bool:
    tokens = {t.strip().lower() for t in fields.get("connection", "").split(",")}
    if "close" in tokens:
        return False
    return version != "HTTP/1.0" or "keep-alive" in tokens


def _read_chunked(conn: _Conn) -> tuple[bytes, bool]:
    """A chunked body (RFC 9112, 7.1) up to MAX_RESPONSE_BYTES; True when all of it, its last
    chunk and trailer included, was read. Its framing has a byte budget of its own: a reply of
    endless tiny chunks is cut there, never followed."""
    data = bytearray()
    budget = _MAX_HEAD_BYTES
    while True:
        if budget <= 2:
            return bytes(data), False
        line = conn.readline(min(budget, _MAX_CHUNK_LINE), "chunk size line too long")
        budget -= len(line)
        if not line.endswith(b"\n"):
            return bytes(data), False  # cut short
        size_text = line.split(b";", 1)[0].strip().decode("latin-1")
        if not size_text or not _HEX.issuperset(size_text):
            raise _BadResponse("bad chunk size")
        size = int(size_text, 16)
        if size == 0:
            break
        want = min(size, MAX_RESPONSE_BYTES - len(data))
        got = conn.read(want)
        data += got
        if len(got) < size:
            return bytes(data), False  # more than we read, or cut short
        if budget < 2:
            return bytes(data), False
        end = conn.readline(2, "bad chunk end")
        budget -= len(end)
        if not end.endswith(b"\n"):
            return bytes(data), False
        if end not in (b"\r\n", b"\n"):
            raise _BadResponse("bad chunk end")
    for _ in range(_MAX_HEADERS + 1):  # the trailer: read past, never used
        if budget <= 0:
            return bytes(data), False
        line = conn.readline(budget)
        budget -= len(line)
        if line in (b"\r\n", b"\n"):
            return bytes(data), True
        if not line.endswith(b"\n"):
            return bytes(data), False
    return bytes(data), False


def _read_body(conn: _Conn, status: int, fields: Mapping[str, str]) -> tuple[bytes, bool]:
    """Up to MAX_RESPONSE_BYTES of the body; True when the whole body was read, so that the
    connection may carry another request."""
    if status == 101:  # switched to another protocol than HTTP: nothing more to read here
        return b"", False
    if status < 200 or status in (204, 304):
        return b"", True
    codings = [c.strip().lower() for c in fields.get("transfer-encoding", "").split(",")]
    codings = [c for c in codings if c]
    if codings and codings[-1] == "chunked":
        return _read_chunked(conn)
    # Like `http.client`: any other coding (`identity`, a lone `gzip`) is framed by the length
    # when there is one; a server that says so and keeps the connection open must not cost
    # the whole deadline.
    lengths = {v.strip() for v in fields.get("content-length", "").split(",")}
    length = lengths.pop() if len(lengths) == 1 else ""
    if not (length.isascii() and length.isdigit()):  # no length: the body ends with the stream
        return conn.read(MAX_RESPONSE_BYTES), False
    data = conn.read(min(int(length), MAX_RESPONSE_BYTES))
    return data, len(data) == int(length)


def _request(
    parts: Url, way: _Way, given: Mapping[str, str], body: bytes, method: str = "POST"
) -> bytes:
    """The bytes of a request (a POST unless said): its head, with the headers given over our
    defaults (any case), then the body. Credentials in the URL become Basic auth; a forward
    proxy gets the absolute URL and its own Proxy-Authorization."""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = _ascii_host(parts.hostname or "")
    # Quoted as `requests` does (`requote_uri`): what is already escaped stays, a space or a
    # non-ASCII character in the path or the query is escaped, so the request line is valid.
    safe = "!#$%&'()*+,/:;=?@[]~"
    path = quote(parts.path or "/", safe=safe) + (
        f"?{quote(parts.query, safe=safe)}" if parts.query else ""
    )
    names = {name.lower() for name in given}
    defaults = {
        "Host": host if port == (443 if parts.scheme == "https" else 80) else f"{host}:{port}",
        "Accept-Encoding": "identity",  # as `http.client` asks: a body we can read
        "Content-Type": "application/json",
        "User-Agent": f"send_metrics/{__version__}",
    }
    headers = {k: v for k, v in defaults.items() if k.lower() not in names}
    framing = ("content-length", "transfer-encoding")  # ours to say: a setting would break it
    headers.update((k, v) for k, v in given.items() if k.lower() not in framing)
    headers["Content-Length"] = str(len(body))
    if (parts.username or parts.password) and "authorization" not in names:
        headers["Authorization"] = _basic(parts.username, parts.password)
    if way.forward and way.proxy is not None:
        path = f"http://{host}:{port}{path}"
        if way.proxy.username or way.proxy.password:
            headers["Proxy-Authorization"] = _basic(way.proxy.username, way.proxy.password)
    return _head_bytes(method, path, headers) + body


class HttpClient:
    """Keep-alive HTTP connections, one per origin, with every wait bounded by a deadline."""

    def __init__(
        self,
        deadline: float,
        ca_bundles: tuple[tuple[str, str], ...] = (),
        environ: Environ | None = None,
        client_cert: ClientCert | None = None,
        limit: str = "",
    ):
        self.deadline = deadline
        self.ca_bundles = ca_bundles
        self.client_cert = client_cert
        self.environ = environ
        self.limit = limit  # what set the deadline, named when it runs out (empty: "deadline")
        self._conns: dict[tuple[str, str, int], _Conn] = {}
        self._tls: ssl.SSLContext | None = None

    def use(self, ca_bundles: tuple[tuple[str, str], ...], client_cert: ClientCert | None) -> None:
        """Trust these certificates and present this one: connections made with others (a
        connection prepared for other settings) are closed, never reused."""
        if (ca_bundles, client_cert) != (self.ca_bundles, self.client_cert):
            self.close()
            self._tls = None
            self.ca_bundles, self.client_cert = ca_bundles, client_cert

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeliveryError(
                f"{self.limit or 'deadline'} reached before the endpoint answered",
                kind="unreachable",
            )
        return min(left, MAX_WAIT_S)

    def _context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = tls_context(self.ca_bundles, self.client_cert)
        return self._tls

    def _get(self, url: str, parts: Url) -> _Conn:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname or ""
        key = (parts.scheme, host, port)
        found = self._conns.get(key)
        if found is not None:
            if found.sock is not None and time.monotonic() - found.opened > MAX_IDLE_S:
                found.close()
            return found
        proxy_url = proxy_for(url, self.environ)
        proxy = urlsplit(proxy_url) if proxy_url else None
        if proxy is not None and (proxy.scheme != "http" or not proxy.hostname):
            raise DeliveryError(
                f"proxy {mask_url(proxy_url or '')} is not supported (only http:// proxies)",
                kind="config",
            )
        way = _Way(proxy, proxy_url or "", proxy is not None and parts.scheme == "http")
        conn = _Conn(parts.scheme, host, port, way, self._left)
        self._conns[key] = conn
        return conn

    def _connect(self, conn: _Conn) -> None:
        """DNS, TCP, the proxy's CONNECT tunnel and TLS, as this origin needs them."""
        context = self._context() if conn.tls else None  # a bad CA bundle is said before any wait
        proxy = conn.way.proxy
        address = (proxy.hostname or "", proxy.port or 80) if proxy else (conn.host, conn.port)
        conn.close()
        sock = _dial(address, self._left(), tls=context is not None)
        conn.sock, conn.opened = sock, time.monotonic()
        try:
            if context is not None:
                if proxy is not None:
                    self._tunnel(conn, proxy)
                sock.settimeout(self._left())
                conn.sock = context.wrap_socket(sock, server_hostname=conn.host)
        except BaseException:
            conn.close()
            sock.close()
            raise

    def _tunnel(self, conn: _Conn, proxy: Url) -> None:
        """Ask an http:// proxy for a tunnel to the origin; TLS then runs through it."""
        authority = f"{_ascii_host(conn.host)}:{conn.port}"
        headers = {"Host": authority, "User-Agent": f"send_metrics/{__version__}"}
        if proxy.username or proxy.password:
            headers["Proxy-Authorization"] = _basic(proxy.username, proxy.password)
        conn.send(_head_bytes("CONNECT", authority, headers))
        _version, status, reason, _fields = _read_head(conn)
        if not 200 <= status < 300:
            raise _ProxyRefused(f"{status} {reason}".strip())
        if conn.buffer or conn.eof:  # the server speaks first in TLS only after our hello
            raise _BadResponse("the proxy's tunnel was not clean")

    def prepare(self, url: str) -> None:
        """Connect ahead of time (DNS, TCP, proxy, TLS) while the child runs; failures wait."""
        try:
            parts = urlsplit(url)
            if parts.scheme in ("http", "https") and parts.hostname:
                conn = self._get(url, parts)
                if conn.sock is None:
                    self._connect(conn)
        except (OSError, ValueError, DeliveryError, _BadResponse, _ProxyRefused, _Closed):
            self.close()

    def post(
        self, url: str, body: bytes, headers: dict[str, str], method: str = "POST"
    ) -> Response:
        """POST a body (or send another method); the answer whatever its status, or
        DeliveryError when there was none."""
        check_url(url, "the endpoint")
        parts = urlsplit(url)
        for attempt in (1, 2):
            conn = self._get(url, parts)
            reused = conn.sock is not None
            try:
                request = _request(parts, conn.way, headers, body, method)
                if not reused:
                    self._connect(conn)
                conn.send(request)
                version, status, _reason, fields = _read_head(conn)
                data, complete = _read_body(conn, status, fields)
                if not complete:
                    self.close()  # the rest of the body is never read: the connection is spent
                elif conn.eof or not _keep_alive(version, fields):
                    conn.close()
                break
            except DeliveryError:
                self.close()
                raise
            except (ConnectionResetError, BrokenPipeError, _Closed):
                self.close()
                if reused and attempt == 1:
                    continue  # the server closed an idle keep-alive connection: once more, fresh
                raise DeliveryError(
                    f"{mask_url(url)}: connection closed by the server", kind="unreachable"
                ) from None
            except (OSError, ValueError, _BadResponse, _ProxyRefused) as exc:
                self.close()
                if reused and attempt == 1 and type(exc).__name__ in _TLS_CLOSED:
                    continue  # the same for TLS: an idle connection the server cut (no notify)
                raise _failure(url, exc, conn.way) from None
        return Response(
            status,
            fields.get("retry-after"),
            fields.get("content-type", ""),
            fields.get("location", ""),
            data,
            conn.way.forward,
        )

    def close(self) -> None:
        """Close every connection; the next post opens anew."""
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()


def _failure(url: str, exc: BaseException, way: _Way) -> DeliveryError:
    """One line for a request that got no answer, and what it means for the queue."""
    import socket  # only to name a failure (loaded already by any connection)

    where = mask_url(url) + (f" via proxy {mask_url(way.proxy_url)}" if way.proxy else "")
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return DeliveryError(f"{where}: no answer in time", kind="unreachable")
    if isinstance(exc, ConnectionRefusedError):
        return DeliveryError(f"{where}: connection refused", kind="unreachable")
    if isinstance(exc, socket.gaierror):
        return DeliveryError(f"{where}: host name not found", kind="unreachable")
    if isinstance(exc, _ProxyRefused):
        return DeliveryError(f"{where}: proxy answered {exc}", kind="config")
    if isinstance(exc, _BadResponse):
        return DeliveryError(f"{where}: bad response ({exc})", kind="busy")
    text = str(exc)
    reason = getattr(exc, "reason", None) or getattr(exc, "verify_message", None)
    if type(exc).__name__.startswith("SSL"):
        hint = "; set report.ca_bundle or REQUESTS_CA_BUNDLE to trust its certificate"
        detail = f"TLS failed ({reason or exc.__class__.__name__})"
        if "CERTIFICATE_VERIFY_FAILED" in text:
            detail = f"certificate not trusted ({getattr(exc, 'verify_message', '') or reason})"
            return DeliveryError(f"{where}: {detail}{hint}", kind="config")
        if "CERTIFICATE_REQUIRED" in text or "BAD_CERTIFICATE" in text or "UNKNOWN_CA" in text:
            # The endpoint wants (another) client certificate: the operator's to give.
            hint = (
                "; set report.client_cert and report.client_key "
                "(or OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and _CLIENT_KEY)"
            )
            detail = f"the endpoint refused our client certificate or wants one ({reason})"
            return DeliveryError(f"{where}: {detail}{hint}", kind="config")
        if type(exc).__name__ == "SSLEOFError":  # how many servers end TLS without a client cert
            detail += (
                ": the endpoint closed the connection (if it asks for a client certificate, set "
                "report.client_cert or OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE)"
            )
        return DeliveryError(f"{where}: {detail}", kind="unreachable")
    if isinstance(exc, OSError) and exc.strerror:
        return DeliveryError(f"{where}: {exc.strerror.lower()}", kind="unreachable")
    return DeliveryError(f"{where}: bad response ({type(exc).__name__})", kind="busy")
