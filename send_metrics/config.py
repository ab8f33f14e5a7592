"""Operator config (`send_metrics.toml`), developer state (`metrics.toml`) and where files live."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, NamedTuple

from send_metrics.errors import ConfigError

CONFIG_NAME = "send_metrics.toml"
STATE_NAME = "metrics.toml"
DEFAULT_APP = "send_metrics"
SINKS = ("segment", "otlp", "http", "local")

# Every key of send_metrics.toml: its type, the Settings field it sets, and (optionally) a
# check of its value with the words that explain it. Defaults live in Settings alone.
_KEYS: dict[str, tuple[type, str, Any, str]] = {
    "app": (str, "app", lambda v: v and not set(v) & set("/\\") and v not in (".", ".."),
            "a plain name (no slashes)"),
    "app_version": (str, "app_version", None, ""),
    "consent.version": (int, "consent_version", lambda v: v >= 0, "0 or more"),
    "consent.privacy_url": (str, "privacy_url", None, ""),
    "consent.message": (str, "consent_message", None, ""),
    "report.sink": (str, "sink", lambda v: v in SINKS, "one of " + ", ".join(SINKS)),
    "report.endpoint": (str, "endpoint", None, ""),
    "report.write_key": (str, "write_key", None, ""),
    "report.headers": (dict, "headers", None, ""),
    "report.deadline": (float, "deadline", lambda v: 0 < v <= 60, "between 0 and 60 seconds"),
    "report.queue_max_events": (int, "queue_max_events", lambda v: v >= 1, "1 or more"),
    "report.queue_max_age_days": (float, "queue_max_age_days", lambda v: v > 0, "above 0"),
    "make.impl_prefix": (str, "impl_prefix", None, ""),
    "collect.allow_args": (list, "allow_args", None, ""),
}
_TABLES = {key.partition(".")[0] for key in _KEYS if "." in key}


# Data crossing modules is immutable NamedTuples rather than frozen dataclasses: importing
# dataclasses costs ~5 ms (it imports inspect), paid by every wrapped run before its child starts.
class Settings(NamedTuple):
    """The operator's choices, validated, with defaults filled in."""

    app: str = DEFAULT_APP
    app_version: str = ""
    consent_version: int = 1
    privacy_url: str = ""
    consent_message: str = ""
    sink: str = "local"
    endpoint: str = ""
    write_key: str = ""
    headers: dict[str, str] = {}  # noqa: RUF012 - a shared default, never mutated
    deadline: float = 2.0
    queue_max_events: int = 1000
    queue_max_age_days: float = 30.0
    impl_prefix: str = "impl-"
    allow_args: tuple[str, ...] = ()
    path: Path | None = None


class Loaded(NamedTuple):
    """Settings plus the one-line problems found while reading them (never fatal)."""

    settings: Settings
    problems: tuple[str, ...] = ()


def env_flag(name: str, environ: dict[str, str] | os._Environ[str] | None = None) -> bool:
    """True when a variable is set to anything but empty, `0` or `false` (DO_NOT_TRACK style)."""
    value = (environ if environ is not None else os.environ).get(name, "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def metrics_disabled() -> bool:
    """The user's global opt-outs, which override everything else."""
    return env_flag("DO_NOT_TRACK") or env_flag("SEND_METRICS_DISABLED")


def find_config(start: Path | None = None) -> Path | None:
    """The operator config: `SEND_METRICS_CONFIG`, else the nearest `send_metrics.toml` upward."""
    explicit = os.environ.get("SEND_METRICS_CONFIG")
    if explicit:
        return Path(explicit)
    try:
        here = start or Path.cwd()
    except OSError:
        return None  # the working directory was deleted: defaults apply
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    return None


def _expected(kind: type) -> str:
    return {str: "a string", int: "an integer", float: "a number", dict: "a table",
            list: "a list of strings"}[kind]


def _nearest(key: str, choices: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(key, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _flatten(raw: dict[str, Any], path: Path, problems: list[str]) -> dict[str, Any]:
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


def _check(dotted: str, value: Any, path: Path) -> tuple[Any, str | None]:
    """The value as Settings wants it, or a one-line problem naming file, key and expectation."""
    if dotted not in _KEYS:
        shown = dotted.encode("unicode_escape").decode("ascii")  # one line, whatever the key
        return None, f"{path}: unknown key '{shown}'{_nearest(dotted, list(_KEYS))}; ignored"
    kind, _field, valid, words = _KEYS[dotted]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if ok and kind is list:
        ok = all(isinstance(item, str) for item in value)
        value = tuple(value)
    if ok and kind is dict:
        ok = all(isinstance(item, str) for item in value.values())
        value = dict(value)
    if not ok:
        return None, (f"{path}: '{dotted}' must be {_expected(kind)}, not "
                      f"{type(value).__name__}; ignored")
    if valid is not None and not valid(value):
        return None, f"{path}: '{dotted}' must be {words}, not {value!r}; ignored"
    return value, None


def load_settings(path: Path | None = None) -> Loaded:
    """Read and validate the operator config; every problem is a line, never an exception."""
    if path is None:
        path = find_config()
    if path is None:
        return Loaded(Settings())
    import tomllib

    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        reason = (reason.splitlines() or ["unreadable"])[0]
        return Loaded(Settings(path=path), (f"{path}: cannot read operator config ({reason}); "
                                            "using defaults",))
    problems: list[str] = []
    fields: dict[str, Any] = {}
    for dotted, value in _flatten(raw, path, problems).items():
        checked, problem = _check(dotted, value, path)
        if problem:
            problems.append(problem)
        else:
            fields[_KEYS[dotted][1]] = checked
    return Loaded(Settings(**fields, path=path), tuple(problems))


def _home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


def _xdg(name: str, fallback: Path) -> Path:
    """An XDG base directory; relative values are ignored, as the XDG spec says."""
    value = os.environ.get(name, "")
    return Path(value) if os.path.isabs(value) else fallback


def config_dir(app: str) -> Path:
    """Where the developer's decision lives: XDG config on Linux, the platform's place elsewhere."""
    if sys.platform == "darwin":
        base = _home() / "Library" / "Application Support"
    elif sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or _home() / "AppData" / "Roaming")
    else:
        base = _xdg("XDG_CONFIG_HOME", _home() / ".config")
    return base / app


def data_dir(app: str) -> Path:
    """Where the local history and queue live: XDG data on Linux, the platform's place elsewhere."""
    if sys.platform == "darwin":
        base = _home() / "Library" / "Application Support"
        return base / app / "data"
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or _home() / "AppData" / "Local")
    else:
        base = _xdg("XDG_DATA_HOME", _home() / ".local" / "share")
    return base / app


def state_path(app: str) -> Path:
    """The developer state file for one app."""
    return config_dir(app) / STATE_NAME


class State(NamedTuple):
    """The developer's recorded decision; `decision` is None when nothing usable is recorded."""

    decision: str | None = None
    decided_at: str = ""
    consent_version: int = 0
    anonymous_id: str = ""

    @property
    def granted(self) -> bool:
        return self.decision == "granted" and bool(self.anonymous_id)


def read_state(path: Path) -> State:
    """Read the state file; a missing file is no decision, a bad one raises ConfigError."""
    import tomllib

    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        return State()
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, not a file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path} ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, ValueError):
        raise ConfigError(f"{path} is not valid TOML") from None
    decision = raw.get("decision")
    version = raw.get("consent_version", 0)
    anonymous_id = raw.get("anonymous_id", "")
    decided_at = raw.get("decided_at", "")
    if (decision not in ("granted", "declined") or not isinstance(version, int)
            or isinstance(version, bool) or not isinstance(anonymous_id, str)
            or not isinstance(decided_at, str)
            or (decision == "granted" and not _looks_like_uuid(anonymous_id))):
        raise ConfigError(f"{path} does not hold a valid decision")
    return State(decision, decided_at, version, anonymous_id if decision == "granted" else "")


def _looks_like_uuid(text: str) -> bool:
    parts = text.split("-")
    return [len(p) for p in parts] == [8, 4, 4, 4, 12] and all(
        c in "0123456789abcdef" for c in text.replace("-", ""))


def write_state(path: Path, state: State) -> None:
    """Write the state atomically (temp file, fsync, rename) with mode 0600; raise ConfigError."""
    import tempfile

    import tomli_w

    data: dict[str, Any] = {
        "decision": state.decision,
        "decided_at": state.decided_at,
        "consent_version": state.consent_version,
    }
    if state.anonymous_id:
        data["anonymous_id"] = state.anonymous_id
    text = ("# send_metrics: your decision about usage metrics. "
            "Change it with `send_metrics opt-in`, `opt-out` or `reset`.\n" + tomli_w.dumps(data))
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".metrics-", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise ConfigError(f"cannot write {path} ({exc.strerror or exc})") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def remove_state(path: Path) -> None:
    """Forget the decision; a directory squatting on the file's name is removed too."""
    import shutil

    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot remove {path} ({exc.strerror or exc})") from None
