"""JSON text for events, the queue and request bodies, without importing `json`.

`import json` costs a collected run about 7 ms (its decoder and encoder load `re`, and `re`
loads `enum` and `functools`), half the interpreter's own start. The work itself is done by
`_json`, the C module inside `json` (its string escaper and its scanner), so the text is the
same as `json.dumps` writes with the same options (`tests/test_jsontext.py` compares them),
and parsing is as strict as `json.loads`. Where `_json` is missing, `json` does it all.

Replaces `json.dumps` and `json.loads`. Saves `import json`: 12.4 ms against 0.9 ms for this
module (`python -X importtime`, docs/design.md "The stand-ins"). Held equal by
`tests/test_jsontext.py`, against `json` on generated documents.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

try:
    import _json
except ImportError:  # another Python: the standard module, at its cost
    _json = None  # type: ignore[assignment]

_WHITESPACE = " \t\n\r"  # what json skips around a document

# Deferred imports: `json` only on a Python without `_json`.


def dumps(value: Any, separators: tuple[str, str] = (", ", ": "), sort_keys: bool = False) -> str:
    """As `json.dumps(value, separators=..., sort_keys=...)`, ASCII only; NaN and infinities
    are refused (no receiver of ours accepts them)."""
    if _json is None:
        import json

        return json.dumps(value, separators=separators, sort_keys=sort_keys, allow_nan=False)
    parts: list[str] = []
    _write(value, parts, separators, sort_keys)
    return "".join(parts)


def _key(key: object) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        return _scalar(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _scalar(value: object) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("Out of range float values are not JSON compliant")
        return float.__repr__(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _write(value: Any, out: list[str], separators: tuple[str, str], sort_keys: bool) -> None:
    assert _json is not None
    item, colon = separators
    if isinstance(value, str):
        out.append(_json.encode_basestring_ascii(value))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        pairs = [(_key(k), v) for k, v in value.items()]
        if sort_keys:
            pairs.sort(key=lambda pair: pair[0])
        out.append("{")
        for index, (key, inner) in enumerate(pairs):
            if index:
                out.append(item)
            out.append(_json.encode_basestring_ascii(key))
            out.append(colon)
            _write(inner, out, separators, sort_keys)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        out.append("[")
        for index, inner in enumerate(value):
            if index:
                out.append(item)
            _write(inner, out, separators, sort_keys)
        out.append("]")
    else:
        out.append(_scalar(value))


class _Context:
    """What `_json`'s scanner reads from a decoder: json.loads' defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}  # noqa: RUF012 - the scanner's own cache of keys

    @staticmethod
    def parse_constant(name: str) -> float:
        return float({"-Infinity": "-inf", "Infinity": "inf"}.get(name, "nan"))


_scan = _json.make_scanner(_Context()) if _json is not None else None  # type: ignore[arg-type]


def loads(text: str | bytes) -> Any:
    """As `json.loads(text)`; ValueError for anything that is not one JSON document."""
    if _scan is None:
        import json

        return json.loads(text)
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8")
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration:
        raise ValueError("Expecting value") from None
    finally:
        _Context.memo.clear()
    if text[end:].strip(_WHITESPACE):
        raise ValueError("Extra data")
    return value
