"""URLs split, quoted and unquoted as `urllib.parse` does it, without importing it.

`urllib.parse` costs a collected run about 7 ms (it loads `re`, `ipaddress` and their
dependencies) for the few things `transport`, `sinks` and `consent` ask of an endpoint or proxy
URL: scheme, host, port, credentials, path and query. `tests/test_urls.py` checks every answer
here against `urllib.parse` itself on generated URLs. An endpoint is masked for printing
here too (`mask_url`: scheme, host and port only).

Replaces `urllib.parse.urlsplit`, `quote` and `unquote`. Saves `import urllib.parse`: 16.4 ms
against 1.1 ms for this module (`python -X importtime`, docs/design.md "The stand-ins"). Held
equal by `tests/test_urls.py`, against `urllib.parse` on generated URLs.
"""

from __future__ import annotations

from send_metrics.lean.records import NamedTuple

_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.")
_UNSAFE = ("\t", "\r", "\n")  # removed anywhere, as urllib does (WHATWG)
_LEADING = "".join(chr(c) for c in range(0x21))  # C0 controls and space, stripped in front
_ALWAYS_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
_HEX = frozenset("0123456789abcdefABCDEF")


class Url(NamedTuple):
    """`urllib.parse.SplitResult`'s fields and the properties we read."""

    scheme: str
    netloc: str
    path: str
    query: str
    fragment: str

    @property
    def username(self) -> str | None:
        userinfo, have, _ = self.netloc.rpartition("@")
        return userinfo.partition(":")[0] if have else None

    @property
    def password(self) -> str | None:
        userinfo, have, _ = self.netloc.rpartition("@")
        _user, colon, secret = userinfo.partition(":")
        return secret if have and colon else None

    def _host_port(self) -> tuple[str, str]:
        hostinfo = self.netloc.rpartition("@")[2]
        _, bracket, inside = hostinfo.partition("[")
        if bracket:
            host, _, rest = inside.partition("]")
            return host, rest.partition(":")[2]
        host, _, port = hostinfo.partition(":")
        return host, port

    @property
    def hostname(self) -> str | None:
        host = self._host_port()[0]
        if not host:
            return None
        return host.partition("%")[0].lower() + host[len(host.partition("%")[0]) :]

    @property
    def port(self) -> int | None:
        """The port, None when absent; ValueError when it is not a number in 0..65535."""
        text = self._host_port()[1]
        if not text:
            return None
        if not (text.isascii() and text.isdigit()):
            raise ValueError(f"Port could not be cast to integer value as {text!r}")
        port = int(text)
        if not 0 <= port <= 65535:
            raise ValueError("Port out of range 0-65535")
        return port


def urlsplit(url: str) -> Url:
    """As `urllib.parse.urlsplit(url)`; ValueError for unbalanced IPv6 brackets."""
    url = url.lstrip(_LEADING)
    for char in _UNSAFE:
        url = url.replace(char, "")
    scheme = netloc = query = fragment = ""
    colon = url.find(":")
    if (
        colon > 0
        and url[0].isascii()
        and url[0].isalpha()
        and all(c in _SCHEME_CHARS for c in url[:colon])
    ):
        scheme, url = url[:colon].lower(), url[colon + 1 :]
    if url[:2] == "//":
        end = len(url)
        for delimiter in "/?#":
            found = url.find(delimiter, 2)
            if found >= 0:
                end = min(end, found)
        netloc, url = url[2:end], url[end:]
        if ("[" in netloc) != ("]" in netloc):
            raise ValueError("Invalid IPv6 URL")
        if "[" in netloc:
            _check_bracketed(netloc.partition("[")[2].partition("]")[0])
    if "#" in url:
        url, fragment = url.split("#", 1)
    if "?" in url:
        url, query = url.split("?", 1)
    _check_netloc(netloc)
    return Url(scheme, netloc, url, query, fragment)


# Deferred imports: `ipaddress` and `unicodedata` only for the rare URLs that need them.


def _check_bracketed(host: str) -> None:
    """What urllib accepts in brackets: an IPv6 address, or an IPvFuture `vHEX.anything`."""
    if host.startswith("v"):
        version, dot, rest = host[1:].partition(".")
        if not (version and all(c in _HEX for c in version) and dot and rest):
            raise ValueError("IPvFuture address is invalid")
        if "\n" in rest:
            raise ValueError("IPvFuture address is invalid")
        return
    import ipaddress

    if isinstance(ipaddress.ip_address(host), ipaddress.IPv4Address):
        raise ValueError("An IPv4 address cannot be in brackets")


def _check_netloc(netloc: str) -> None:
    """A host whose Unicode normalises into URL delimiters is refused, as urllib refuses it."""
    if not netloc or netloc.isascii():
        return
    import unicodedata

    plain = netloc.replace("@", "").replace(":", "").replace("#", "").replace("?", "")
    normal = unicodedata.normalize("NFKC", plain)
    if plain != normal and any(c in normal for c in "/?#@:"):
        raise ValueError(f"netloc {netloc!r} contains invalid characters under NFKC normalization")


def quote(text: str, safe: str = "/") -> str:
    """As `urllib.parse.quote(text, safe)`: UTF-8 bytes outside the safe set as %XX."""
    allowed = _ALWAYS_SAFE | frozenset(safe.encode("ascii", "ignore"))
    raw = text.encode("utf-8", "strict")
    return "".join(chr(b) if b in allowed else f"%{b:02X}" for b in raw)


def unquote(text: str) -> str:
    """As `urllib.parse.unquote(text)`: each run of %XX decoded as UTF-8 (bad bytes become
    U+FFFD); everything else kept as it is."""
    if "%" not in text:
        return text
    out: list[str] = []
    run = bytearray()
    i = 0
    while i < len(text):
        pair = text[i + 1 : i + 3]
        if text[i] == "%" and len(pair) == 2 and pair[0] in _HEX and pair[1] in _HEX:
            run.append(int(pair, 16))
            i += 3
            continue
        if run:
            out.append(run.decode("utf-8", "replace"))
            run.clear()
        out.append(text[i])
        i += 1
    if run:
        out.append(run.decode("utf-8", "replace"))
    return "".join(out)


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
    import re  # only here: masking a stored error is rare, and `re` costs milliseconds

    def one(match: re.Match[str]) -> str:
        url = match.group(0).rstrip(":,;.)")
        return mask_url(url) + match.group(0)[len(url) :]

    return re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+", one, text)
