"""Our URL splitting, quoting and unquoting answer as urllib.parse does, on generated input."""

from __future__ import annotations

import urllib.parse

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from send_metrics.lean import urls

PIECES = st.sampled_from(
    [
        "http",
        "https",
        "HTTP",
        "ftp",
        "x+y",
        "1ab",
        ":",
        "//",
        "/",
        "?",
        "#",
        "@",
        "[",
        "]",
        "::1",
        "fe80::1%eth0",
        "v1.x",
        "127.0.0.1",
        "example.org",
        "Ex.ORG",
        "user",
        "p%40ss",
        "8080",
        "99999",
        "-1",
        "\uff1a",
        "\u2100",
        "é",
        " ",
        "\t",
        "\n",
        "%",
        "%zz",
        "%C3%A9",
        "%E2%82",
        "a",
        "0",
    ]
)
URLS = st.lists(PIECES, max_size=12).map("".join) | st.text(max_size=40)


def _answers(split: object) -> dict[str, object]:
    found: dict[str, object] = {}
    for name in (
        "scheme",
        "netloc",
        "path",
        "query",
        "fragment",
        "username",
        "password",
        "hostname",
        "port",
    ):
        try:
            found[name] = getattr(split, name)
        except ValueError as exc:
            found[name] = ("ValueError", type(exc).__name__)
    return found


@given(URLS)
@example("http://[::1]:8080/x?y#z")
@example("https://u:p@[v1.fe]:1/")
@example("http://[127.0.0.1]/")
@example("http://h\uff03x/")
def test_urlsplit_answers_as_urllib(url: str) -> None:
    try:
        theirs = urllib.parse.urlsplit(url)
    except ValueError:
        with pytest.raises(ValueError):
            urls.urlsplit(url)
        return
    assert _answers(urls.urlsplit(url)) == _answers(theirs)


@given(st.text(max_size=30), st.sampled_from(["/", "", "/%:@!$&'()*+,;=-._~"]))
def test_quote_as_urllib(text: str, safe: str) -> None:
    try:
        theirs = urllib.parse.quote(text, safe=safe)
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            urls.quote(text, safe=safe)
        return
    assert urls.quote(text, safe=safe) == theirs


@given(URLS)
@example("%E2%82x%C3%A9é%")
@example("%e2%82%ac%")
def test_unquote_as_urllib(text: str) -> None:
    assert urls.unquote(text) == urllib.parse.unquote(text)
