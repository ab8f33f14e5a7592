"""The TOML reader of the hot path gives exactly what tomllib gives, or lets tomllib decide."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from send_metrics.lean import tomlread

KEYS = st.text(alphabet="abcXYZ019_-", min_size=1, max_size=6)
SCALARS = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, width=32),
    st.booleans(),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=5))
TABLES = st.dictionaries(KEYS, VALUES, max_size=5)
DOCUMENTS = st.dictionaries(
    KEYS, st.one_of(VALUES, TABLES, st.dictionaries(KEYS, TABLES, max_size=2)), max_size=6
)


def same_as_tomllib(text: str) -> None:
    try:
        expected: Any = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        with pytest.raises(tomllib.TOMLDecodeError) as raised:
            tomlread.loads(text)
        assert str(raised.value) == str(exc)
        return
    assert tomlread.loads(text) == expected


@settings(max_examples=300, deadline=None)
@given(DOCUMENTS)
def test_what_tomli_w_writes_reads_back_as_tomllib_reads_it(document: dict[str, Any]) -> None:
    same_as_tomllib(tomli_w.dumps(document))


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=" \t\n\r#[]{}=,.\"'\\abu0123456789+-.eE_:", max_size=40))
def test_any_text_reads_as_tomllib_reads_it_or_fails_as_it_fails(text: str) -> None:
    same_as_tomllib(text)


@pytest.mark.parametrize(
    "text",
    [
        '[report]\nsink = "segment"  # where\nendpoint = "https://x"\nheaders = {}\n',
        "[a.b]\nc = 1\n[a]\nd = 2\n",
        "[a]\nb = 1\n[a]\nc = 2\n",
        "a = \"\\u00e9\\U0001F600\\t\"\nb = 'C:\\path'\n",
        "a = [\n  1, # one\n  2,\n]\n",
        "a = { x = 1, y = 'z' }\n",
        "a = 1e5\nb = 1_000\nc = 0x1f\nd = inf\ne = 1979-05-27\n",
        'a = """multi\nline"""\n',
        "a = 01\n",
        "a = 1.\n",
        'a = "\\ud800"\n',
        "a.b = 1\n",
        "a = 1\r\nb = 2\r\n",
        "a = 1\rb = 2\n",
        "\ufeffa = 1\n",
        "a = true\nb = falsey\n",
        "a = 1 b = 2\n",
        "a = [[1], [2]]\n",
        "",
        "# only a comment",
    ],
)
def test_edges_read_as_tomllib_reads_them(text: str) -> None:
    same_as_tomllib(text)


def test_the_files_of_a_run_never_need_tomllib() -> None:
    """The README's operator config and a decision file are read by the plain reader."""
    config = (
        'app = "devstack"\napp_version = "2026.11"\n[consent]\nversion = 1\n'
        'privacy_url = "https://example.org/p"\n[report]\nsink = "segment"\n'
        'endpoint = "https://api.segment.io"\nwrite_key = "k"\nheaders = {}\ndeadline = 2.0\n'
        '[make]\nimpl_prefix = "impl-"\n[collect]\nallow_args = []\ngit_remote_hash = false\n'
    )
    decision = tomli_w.dumps(
        {
            "decision": "granted",
            "decided_at": "2026-11-25T04:00:00+00:00",
            "consent_version": 1,
            "anonymous_id": "0f1e2d3c-4b5a-4968-8776-655443322110",
            "disclosure": {"fields": ["app", "command"], "allow_args": [], "host": "x"},
        }
    )
    for text in (config, decision):
        assert tomlread._Reader(text).document() == tomllib.loads(text)
