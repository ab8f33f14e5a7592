"""The operator's config (`send_metrics.toml`): found, read and checked; the global off switches."""

from __future__ import annotations

import os

from send_metrics.errors import ConfigError
from send_metrics.fastpath import DEFAULT_IMPL_PREFIX, config_file
from send_metrics.fastpath import disabled_by as disabled_by
from send_metrics.fastpath import env_flag as env_flag  # the off switches are read before
from send_metrics.fastpath import metrics_disabled as metrics_disabled  # the child starts
from send_metrics.records import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from os import PathLike
    from typing import Any, Literal

    Sink = Literal["segment", "otlp", "http", "local"]

# Deferred imports: every wrapped run reads this config after its child starts; the TOML
# reader only when a file exists, difflib only to suggest a key for a typo.

DEFAULT_APP = "send_metrics"
SINKS: tuple[Sink, ...] = ("segment", "otlp", "http", "local")

# Every key of send_metrics.toml: its type, the Settings field it sets, and (optionally) a
# check of its value with the words that explain it. Defaults live in Settings alone.
_KEYS: dict[str, tuple[type, str, Any, str]] = {
    "app": (
        str,
        "app",
        lambda v: (
            v
            and v.isprintable()
            and len(v) <= 64
            and not set(v) & set("/\\")
            and v not in (".", "..")
        ),
        "a plain name (no slashes or control characters, at most 64 characters)",
    ),
    "app_version": (str, "app_version", None, ""),
    "consent.version": (int, "consent_version", lambda v: v >= 0, "0 or more"),
    "consent.privacy_url": (str, "privacy_url", None, ""),
    "consent.message": (str, "consent_message", None, ""),
    "consent.retention": (str, "retention", None, ""),
    "report.sink": (str, "sink", lambda v: v in SINKS, "one of " + ", ".join(SINKS)),
    "report.endpoint": (str, "endpoint", None, ""),
    "report.write_key": (str, "write_key", None, ""),
    "report.headers": (dict, "headers", None, ""),
    "report.ca_bundle": (str, "ca_bundle", None, ""),
    "report.client_cert": (str, "client_cert", None, ""),
    "report.client_key": (str, "client_key", None, ""),
    "report.deadline": (float, "deadline", lambda v: 0 < v <= 60, "between 0 and 60 seconds"),
    "report.queue_max_events": (int, "queue_max_events", lambda v: v >= 1, "1 or more"),
    "report.queue_max_age_days": (float, "queue_max_age_days", lambda v: v > 0, "above 0"),
    "make.impl_prefix": (
        str,
        "impl_prefix",
        lambda v: (
            0 < len(v) <= 64
            and not v.startswith("-")
            and all(c.isascii() and (c.isalnum() or c in "_.+-") for c in v)
        ),
        "letters, digits and _.+- (at least one, at most 64, not starting with -)",
    ),
    "collect.allow_args": (list, "allow_args", None, ""),
    "collect.git_remote_hash": (bool, "git_remote_hash", None, ""),
}
_TABLES = {key.partition(".")[0] for key in _KEYS if "." in key}
_FILES = ("ca_bundle", "client_cert", "client_key")  # paths, relative to the config file


# Data crossing modules is immutable NamedTuples (`records`) rather than frozen dataclasses:
# importing dataclasses costs ~5 ms (it imports inspect), typing ~5 ms more, paid by every
# wrapped run. Paths are plain strings for the same reason: `pathlib` loads `re`, `fnmatch` and
# `urllib.parse` (~9 ms).


class Settings(NamedTuple):
    """The operator's choices, validated, with defaults filled in."""

    app: str = DEFAULT_APP
    app_version: str = ""
    consent_version: int = 1
    privacy_url: str = ""
    consent_message: str = ""
    retention: str = ""
    sink: Sink = "local"
    endpoint: str = ""
    write_key: str = ""
    headers: dict[str, str] = {}  # noqa: RUF012 - a shared default, never mutated
    ca_bundle: str = ""  # certificates (a PEM file or a directory) trusted for the endpoint
    client_cert: str = ""  # our certificate (PEM) for an endpoint that asks for one (mutual TLS)
    client_key: str = ""  # its private key (PEM); empty when client_cert holds it
    deadline: float = 2.0
    queue_max_events: int = 1000
    queue_max_age_days: float = 30.0
    impl_prefix: str = DEFAULT_IMPL_PREFIX
    allow_args: tuple[str, ...] = ()
    git_remote_hash: bool = False  # off unless the operator opts in: guessable for public repos
    path: str | None = None  # the config file read, if any


class Loaded(NamedTuple):
    """Settings plus the one-line problems found while reading them (never fatal)."""

    settings: Settings
    problems: tuple[str, ...] = ()


_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def header_ok(name: str, value: str) -> bool:
    """A header that can be sent as it is: a token for a name (RFC 9110), and no CR, LF or NUL
    in the value (they would let a setting write headers of its own)."""
    return bool(name) and _TOKEN.issuperset(name) and not any(c in value for c in "\r\n\0")


def find_config(start: str | PathLike[str] | None = None) -> str | None:
    """The operator config: `SEND_METRICS_CONFIG`, else the nearest `send_metrics.toml` upward."""
    return config_file(str(start) if start is not None else None) or None


def _expected(kind: type) -> str:
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        dict: "a table",
        list: "a list of strings",
        bool: "true or false",
    }[kind]


def _nearest(key: str, choices: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(key, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _flatten(raw: dict[str, Any], path: str, problems: list[str]) -> dict[str, Any]:
    """The file's keys as dotted names; a table where a value belongs (or the reverse) is noted."""
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _TABLES:
            if not isinstance(value, dict):
                problems.append(f"{path}: '{key}' must be a table; ignored")  # a known name
                continue
            flat.update((f"{key}.{inner}", v) for inner, v in value.items())
        else:
            flat[key] = value
    return flat


def _check(dotted: str, value: Any, path: str) -> tuple[Any, str | None]:
    """The value as Settings wants it, or a one-line problem naming file, key and expectation."""
    if dotted not in _KEYS:
        shown = dotted.encode("unicode_escape").decode("ascii")  # one line, whatever the key
        return None, f"{path}: unknown key '{shown}'{_nearest(dotted, list(_KEYS))}; ignored"
    kind, _field, valid, words = _KEYS[dotted]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if ok and kind is list:
        ok = all(isinstance(item, str) for item in value)
        value = tuple(value)
    if ok and kind is dict:
        ok = all(isinstance(item, str) for item in value.values())
        value = dict(value)
        bad = next((k for k, v in value.items() if ok and not header_ok(k, v)), None)
        if bad is not None:
            shown = bad.encode("unicode_escape").decode("ascii")
            return None, (
                f"{path}: '{dotted}.{shown}' is not a valid HTTP header (a name of letters, "
                "digits and !#$%&'*+-.^_`|~; a value without line breaks); ignored"
            )
    if not ok:
        return None, (
            f"{path}: '{dotted}' must be {_expected(kind)}, not {type(value).__name__}; ignored"
        )
    if valid is not None and not valid(value):
        return None, f"{path}: '{dotted}' must be {words}, not {value!r}; ignored"
    return value, None


def load_settings(where: str | PathLike[str] | None = None) -> Loaded:
    """Read and validate the operator config; every problem is a line, never an exception."""
    path = find_config() if where is None else str(where)
    if path is None:
        return Loaded(Settings())
    from send_metrics import files, tomlread

    try:
        raw = tomlread.loads(files.read_small(path).decode("utf-8"))
    except (OSError, ConfigError, ValueError, RecursionError) as exc:  # ValueError: bad TOML
        message = str(exc)
        if isinstance(exc, ConfigError) and message.startswith(f"{path} is "):
            # Not a regular file (a FIFO, a directory, a device), or too large: said as it is.
            what = message.removesuffix("; refused").splitlines()[0]
            return Loaded(Settings(path=path), (f"operator config {what}; using defaults",))
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else message
        if isinstance(exc, ConfigError):
            reason = reason.removeprefix(f"{path} ").removeprefix(f"cannot read {path} ")
        if isinstance(exc, RecursionError):
            reason = "nested too deeply"
        reason = (reason.splitlines() or ["unreadable"])[0]
        return Loaded(
            Settings(path=path),
            (f"{path}: cannot read operator config ({reason}); using defaults",),
        )
    problems: list[str] = []
    fields: dict[str, Any] = {}
    for dotted, value in _flatten(raw, path, problems).items():
        checked, problem = _check(dotted, value, path)
        if problem:
            problems.append(problem)
        else:
            fields[_KEYS[dotted][1]] = checked
    for name in _FILES:  # the operator's certificate files: from the config's folder, not cwd
        if fields.get(name):
            fields[name] = os.path.join(os.path.dirname(path), os.path.expanduser(fields[name]))
    return Loaded(Settings(**fields, path=path), tuple(problems))
