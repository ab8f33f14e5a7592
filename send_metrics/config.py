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

# The operator config's every key: (type, default). Nested tables are dicts of the same.
_SCHEMA: dict[str, Any] = {
    "app": (str, DEFAULT_APP),
    "app_version": (str, ""),
    "consent": {
        "version": (int, 1),
        "privacy_url": (str, ""),
        "message": (str, ""),
    },
    "report": {
        "sink": (str, "local"),
        "endpoint": (str, ""),
        "write_key": (str, ""),
        "headers": (dict, {}),
        "deadline": (float, 2.0),
        "queue_max_events": (int, 1000),
        "queue_max_age_days": (float, 30.0),
    },
    "make": {
        "impl_prefix": (str, "impl-"),
    },
    "collect": {
        "allow_args": (list, []),
    },
}


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


def _validate(raw: dict[str, Any], schema: dict[str, Any], where: str, path: Path,
              out: dict[str, Any], problems: list[str]) -> None:
    for key, value in raw.items():
        dotted = f"{where}{key}"
        if key not in schema:
            problems.append(f"{path}: unknown key '{dotted}'{_nearest(key, list(schema))}; ignored")
            continue
        spec = schema[key]
        if isinstance(spec, dict):
            if not isinstance(value, dict):
                problems.append(f"{path}: '{dotted}' must be a table; ignored")
                continue
            _validate(value, spec, f"{dotted}.", path, out, problems)
            continue
        kind, _default = spec
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if ok and kind is list:
            ok = all(isinstance(item, str) for item in value)
        if ok and kind is dict:
            ok = all(isinstance(item, str) for item in value.values())
        if ok and dotted == "report.sink" and value not in SINKS:
            problems.append(f"{path}: 'report.sink' must be one of {', '.join(SINKS)}, "
                            f"not {value!r}; using 'local'")
            continue
        if ok and dotted == "report.deadline" and not 0 < value <= 60:
            problems.append(f"{path}: 'report.deadline' must be between 0 and 60 seconds; ignored")
            continue
        if not ok:
            problems.append(f"{path}: '{dotted}' must be {_expected(kind)}, "
                            f"not {type(value).__name__}; ignored")
            continue
        out[dotted] = value


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
        return Loaded(Settings(path=path), (f"{path}: cannot read operator config ({reason}); "
                                            "using defaults",))
    values: dict[str, Any] = {}
    problems: list[str] = []
    _validate(raw, _SCHEMA, "", path, values, problems)
    app = values.get("app", DEFAULT_APP)
    if not app or "/" in app or "\\" in app or app in (".", ".."):
        problems.append(f"{path}: 'app' must be a plain name; using '{DEFAULT_APP}'")
        app = DEFAULT_APP
    settings = Settings(
        app=app,
        app_version=values.get("app_version", ""),
        consent_version=values.get("consent.version", 1),
        privacy_url=values.get("consent.privacy_url", ""),
        consent_message=values.get("consent.message", ""),
        sink=values.get("report.sink", "local"),
        endpoint=values.get("report.endpoint", ""),
        write_key=values.get("report.write_key", ""),
        headers=dict(values.get("report.headers", {})),
        deadline=values.get("report.deadline", 2.0),
        queue_max_events=max(1, values.get("report.queue_max_events", 1000)),
        queue_max_age_days=values.get("report.queue_max_age_days", 30.0),
        impl_prefix=values.get("make.impl_prefix", "impl-"),
        allow_args=tuple(values.get("collect.allow_args", ())),
        path=path,
    )
    return Loaded(settings, tuple(problems))


def _home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


def config_dir(app: str) -> Path:
    """Where the developer's decision lives: XDG config on Linux, the platform's place elsewhere."""
    if sys.platform == "darwin":
        base = _home() / "Library" / "Application Support"
    elif sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or _home() / "AppData" / "Roaming")
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or _home() / ".config")
    return base / app


def data_dir(app: str) -> Path:
    """Where the local history and queue live: XDG data on Linux, the platform's place elsewhere."""
    if sys.platform == "darwin":
        base = _home() / "Library" / "Application Support"
        return base / app / "data"
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or _home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or _home() / ".local" / "share")
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
