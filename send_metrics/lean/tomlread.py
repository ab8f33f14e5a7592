"""Reading TOML: the plain files every wrapped run reads, without `tomllib`'s import.

A wrapped run reads two small TOML files after its child starts: the operator's config and the
developer's decision. `tomllib` brings `re`, `datetime` and `typing` with it (~7 ms here, about
half of the interpreter's own start), so the plain subset those files use is read here:
`[table]` and `[dotted.table]` headers, bare keys, basic and literal strings, decimal integers
and floats, booleans, arrays of those (over several lines too) and one-line inline tables.
Anything else, and anything invalid, is handed to `tomllib`, which reads it or explains the
error: the result is always what `tomllib.loads` gives (a test compares them).

Replaces `tomllib.loads`. Saves `import tomllib`: 43 ms against 0.7 ms for this module
(`python -X importtime` on a loaded machine, docs/design.md "The stand-ins"). Held equal by
`tests/test_tomlread.py`, against `tomllib` on generated documents.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Deferred imports: tomllib only for a file outside the plain subset (that is the point).
_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_DIGITS = frozenset("0123456789")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


class _Unsupported(Exception):
    """Outside the subset read here (or invalid): tomllib decides."""


def _control(ch: str) -> bool:
    """A character TOML forbids in strings and comments (tab is allowed)."""
    return (ch < " " and ch != "\t") or ch == "\x7f"


class _Reader:
    def __init__(self, text: str):
        self.text = text
        self.i = 0

    def peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def spaces(self) -> None:
        while self.peek() in (" ", "\t") and self.peek():
            self.i += 1

    def comment(self) -> None:
        if self.peek() == "#":
            while self.peek() and self.peek() not in "\r\n":
                if _control(self.peek()):
                    raise _Unsupported
                self.i += 1

    def newline(self) -> bool:
        """Consume one newline (LF or CRLF); False at the end of the text."""
        if self.text.startswith("\r\n", self.i):
            self.i += 2
        elif self.peek() == "\n":
            self.i += 1
        elif self.peek():
            raise _Unsupported
        else:
            return False
        return True

    def blank(self) -> None:
        """Spaces, comments and newlines between values of a multi-line array."""
        while True:
            self.spaces()
            self.comment()
            if self.peek() not in ("\r", "\n") or not self.peek():
                return
            self.newline()

    def key(self) -> str:
        start = self.i
        while self.peek() in _BARE:
            self.i += 1
        if self.i == start:
            raise _Unsupported  # quoted keys and the like
        return self.text[start : self.i]

    def document(self) -> dict[str, Any]:
        root: dict[str, Any] = {}
        from_headers = {id(root)}  # tables made by [headers]: a header may pass through them
        table = root
        while True:
            self.blank()
            if not self.peek():
                return root
            if self.peek() == "[":
                self.i += 1
                self.spaces()
                names = [self.key()]
                self.spaces()
                while self.peek() == ".":
                    self.i += 1
                    self.spaces()
                    names.append(self.key())
                    self.spaces()
                if self.peek() != "]":
                    raise _Unsupported
                self.i += 1
                table = root
                for name in names[:-1]:
                    if name not in table:
                        table[name] = {}
                        from_headers.add(id(table[name]))
                    table = table[name]
                    if not isinstance(table, dict) or id(table) not in from_headers:
                        raise _Unsupported
                if names[-1] in table:
                    raise _Unsupported  # defined twice, or after an implicit table: tomllib
                table[names[-1]] = {}
                table = table[names[-1]]
                from_headers.add(id(table))
            else:
                name = self.key()
                self.spaces()
                if self.peek() != "=":
                    raise _Unsupported
                self.i += 1
                self.spaces()
                if name in table:
                    raise _Unsupported
                table[name] = self.value(nested=True)
            self.spaces()
            self.comment()
            if not self.newline():
                return root

    def value(self, nested: bool) -> Any:
        ch = self.peek()
        if ch == '"':
            return self.basic()
        if ch == "'":
            return self.literal()
        if ch == "[" and nested:
            return self.array()
        if ch == "{" and nested:
            return self.inline_table()
        for word, meaning in (("true", True), ("false", False)):
            if self.text.startswith(word, self.i):
                self.i += len(word)
                if self.peek() in _BARE:
                    raise _Unsupported
                return meaning
        return self.number()

    def basic(self) -> str:
        if self.text.startswith('"""', self.i):
            raise _Unsupported
        self.i += 1
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch or _control(ch):
                raise _Unsupported
            self.i += 1
            if ch == '"':
                return "".join(out)
            if ch != "\\":
                out.append(ch)
                continue
            code = self.peek()
            self.i += 1
            if code in _ESCAPES:
                out.append(_ESCAPES[code])
            elif code in ("u", "U"):
                size = 4 if code == "u" else 8
                digits = self.text[self.i : self.i + size]
                if len(digits) != size or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise _Unsupported
                point = int(digits, 16)
                if point > 0x10FFFF or 0xD800 <= point <= 0xDFFF:
                    raise _Unsupported
                out.append(chr(point))
                self.i += size
            else:
                raise _Unsupported

    def literal(self) -> str:
        if self.text.startswith("'''", self.i):
            raise _Unsupported
        start = self.i + 1
        end = self.text.find("'", start)
        if end < 0:
            raise _Unsupported
        text = self.text[start:end]
        if any(_control(ch) for ch in text):
            raise _Unsupported
        self.i = end + 1
        return text

    def number(self) -> int | float:
        start = self.i
        if self.peek() in ("+", "-"):
            self.i += 1
        whole = self.i
        while self.peek() in _DIGITS:
            self.i += 1
        digits = self.text[whole : self.i]
        if not digits or (len(digits) > 1 and digits[0] == "0"):
            raise _Unsupported
        if self.peek() != ".":
            if self.peek() in _BARE or self.peek() in (".", ":"):
                raise _Unsupported  # 1e5, 1_000, 0x1f, dates, ...
            return int(self.text[start : self.i])
        self.i += 1
        fraction = self.i
        while self.peek() in _DIGITS:
            self.i += 1
        if self.i == fraction or (self.peek() in _BARE) or self.peek() == ".":
            raise _Unsupported
        return float(self.text[start : self.i])

    def array(self) -> list[Any]:
        self.i += 1
        items: list[Any] = []
        while True:
            self.blank()
            if self.peek() == "]":
                self.i += 1
                return items
            items.append(self.value(nested=False))
            self.blank()
            if self.peek() == ",":
                self.i += 1
            elif self.peek() == "]":
                self.i += 1
                return items
            else:
                raise _Unsupported

    def inline_table(self) -> dict[str, Any]:
        self.i += 1
        table: dict[str, Any] = {}
        self.spaces()
        if self.peek() == "}":
            self.i += 1
            return table
        while True:
            self.spaces()
            name = self.key()
            self.spaces()
            if self.peek() != "=" or name in table:
                raise _Unsupported
            self.i += 1
            self.spaces()
            table[name] = self.value(nested=False)
            self.spaces()
            if self.peek() == ",":
                self.i += 1
            elif self.peek() == "}":
                self.i += 1
                return table
            else:
                raise _Unsupported


def loads(text: str) -> dict[str, Any]:
    """`tomllib.loads(text)`, without importing tomllib for the plain files we meet; raises
    `tomllib.TOMLDecodeError` for invalid TOML, exactly as tomllib does."""
    try:
        return _Reader(text).document()
    except (_Unsupported, RecursionError):
        import tomllib

        return tomllib.loads(text)
