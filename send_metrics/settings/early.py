"""The settings a run needs before its child starts, read without parsing anything: the off
switches, where the operator config is, its impl prefix and app when it cannot set them
otherwise, the developer's home and config directory, and bounded reads of small files.

This module is on the hot path: it follows the rule in `run.fastpath`'s docstring (built-in
modules only). `config` and `files` build on it after the child has started.
"""

from __future__ import annotations

import os
import stat  # loaded by `os` at start-up already
import sys

CONFIG_NAME = "send_metrics.toml"
DEFAULT_APP = "send_metrics"
DEFAULT_IMPL_PREFIX = "impl-"
MAKE_RUN_VAR = "SEND_METRICS_MAKE_RUN"  # the trace file of the traced make a recipe belongs to
MAX_SMALL_FILE = 1 << 20  # bytes: a config or decision file is a few hundred; refuse anything huge
_OFF_WORDS = ("", "0", "false", "no", "off")  # the only values that leave a switch of ours off


def env_flag(name: str, environ: dict[str, str] | os._Environ[str] | None = None) -> bool:
    """True when a variable is set to anything but empty, `0`, `false`, `no` or `off` in any case
    (DO_NOT_TRACK style): the one rule for every switch of ours. It fails closed: only those
    exact words (ASCII case folded, nothing around them) are "off", so `" "`, `"0 "` or
    `"OFF\\n"` switch on. `send_metrics.mk` checks the same words with make's functions."""
    value = (environ if environ is not None else os.environ).get(name, "")
    return not value.isascii() or value.lower() not in _OFF_WORDS


def metrics_disabled() -> bool:
    """The user's global opt-outs, which override everything else."""
    return env_flag("DO_NOT_TRACK") or env_flag("SEND_METRICS_DISABLED")


def disabled_by() -> str:
    """The off switches actually set, named as the user would type them ("" for none)."""
    return " and ".join(n for n in ("DO_NOT_TRACK", "SEND_METRICS_DISABLED") if env_flag(n))


def config_file(start: str | None = None) -> str | None:
    """The operator config: `SEND_METRICS_CONFIG`, else the nearest `send_metrics.toml` upward.
    The search stops at the first name that exists in any form (a FIFO, a directory, a link to
    a device or to nothing): the reader refuses it in one line, and a parent's config is never
    used in its place."""
    explicit = os.environ.get("SEND_METRICS_CONFIG")
    if explicit:
        return explicit
    try:
        here = os.path.abspath(start or os.getcwd())
    except OSError:
        return None  # the working directory was deleted: defaults apply
    while True:
        candidate = os.path.join(here, CONFIG_NAME)
        if os.path.lexists(candidate):
            return candidate
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def read_bounded(path: str, limit: int = MAX_SMALL_FILE) -> bytes | None:
    """A small regular file's bytes without blocking on a FIFO or device; None for anything
    missing, special, unreadable or larger than `limit` (callers that must explain why use
    `files.read_small`)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, ValueError):  # ValueError: a NUL in the path
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, limit + 1)
        return data if len(data) <= limit else None
    except OSError:
        return None
    finally:
        os.close(fd)


def impl_prefix(path: str | None) -> str | None:
    """The impl prefix of a config that cannot set one, without parsing it: the default, when
    the file never names the key (and has no escape that could spell it); None otherwise."""
    if path is None:
        return DEFAULT_IMPL_PREFIX
    data = read_bounded(path)
    if data is None or b"impl_prefix" in data or b"\\u" in data or b"\\U" in data:
        return None  # set, possibly set, or unreadable: the full reader decides and explains
    return DEFAULT_IMPL_PREFIX


def app_name(path: str | None) -> str | None:
    """The app a config names, without a TOML parser: the default when there is no config or
    it never names the key; the plain quoted value of a top-level `app = "..."`; None when
    unsure (the full reader decides after the child has started)."""
    if path is None:
        return DEFAULT_APP
    data = read_bounded(path)
    if data is None:
        return None
    if b"app" not in data:
        return DEFAULT_APP
    for raw in data.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if line.startswith("["):
            break
        key, eq, value = line.partition("=")
        if eq and key.strip().strip("\"'") == "app":
            value = value.strip()
            end = value.find(value[:1], 1) if value[:1] in ("'", '"') else -1
            name, rest = value[1:end], value[end + 1 :].strip()
            plain = end > 1 and all(c.isalnum() or c in "-_." for c in name)
            return name if plain and (not rest or rest.startswith("#")) else None
    return None if b"\\u" in data or b"\\U" in data else DEFAULT_APP


def home_dir() -> str | None:
    """The developer's home: HOME when it is an absolute path; an empty or relative HOME counts
    as unset (never `/`, never the working directory), so the passwd entry's home is used, as
    `os.path.expanduser` does without HOME; None when there is neither."""
    home = os.environ.get("HOME", "")
    if os.path.isabs(home):
        return home
    try:
        import pwd  # built in, like os
    except ImportError:  # no passwd (Windows): expanduser knows USERPROFILE
        found = os.path.expanduser("~")
    else:
        try:
            found = pwd.getpwuid(os.getuid()).pw_dir
        except KeyError:  # a uid without a passwd entry
            return None
    return found if os.path.isabs(found) else None


def config_home(app: str) -> str | None:
    """The developer's config directory for `app` (as `files.config_dir`), without pathlib;
    None without a home (an XDG directory or HOME)."""
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    if sys.platform != "darwin" and os.path.isabs(xdg):
        return os.path.join(xdg, app)
    home = home_dir()
    if home is None:
        return None
    if sys.platform == "darwin":
        return os.path.join(home, "Library", "Application Support", app)
    return os.path.join(home, ".config", app)
