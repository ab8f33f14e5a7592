"""Where our files live on each platform, and reading small files without hanging or following."""

from __future__ import annotations

import os
import sys

from send_metrics.errors import ConfigError
from send_metrics.settings.early import home_dir

# Deferred imports: `stat` only where a file is read (the wrapper reads one per run).
# Paths are plain strings (`os.path`): `pathlib` costs every wrapped run ~9 ms (see `config`).

TYPE_CHECKING = False
if TYPE_CHECKING:
    from os import PathLike

    AnyPath = str | PathLike[str]

STATE_NAME = "metrics.toml"
MAX_SMALL_FILE = 1 << 20  # bytes: a config or decision file is a few hundred; refuse anything huge


def _home() -> str:
    """HOME, else the passwd entry (`early.home_dir`: an empty or relative HOME is unset, never
    `/`); neither (a uid without an entry) is one line."""
    home = home_dir()
    if home is None:
        why = "is not set" if not os.environ.get("HOME") else "is not an absolute path"
        raise ConfigError(f"cannot find your home directory (HOME {why}, no passwd entry)")
    return home


def _xdg(name: str, fallback: str) -> str:
    """An XDG base directory; relative values are ignored, as the XDG spec says."""
    value = os.environ.get(name, "")
    return value if os.path.isabs(value) else os.path.join(_home(), fallback)


def config_dir(app: str) -> str:
    """Where the developer's decision lives: XDG config on Linux, the platform's place elsewhere."""
    if sys.platform == "darwin":
        base = os.path.join(_home(), "Library", "Application Support")
    elif sys.platform == "win32":
        base = os.environ.get("APPDATA") or os.path.join(_home(), "AppData", "Roaming")
    else:
        base = _xdg("XDG_CONFIG_HOME", ".config")
    return os.path.join(base, app)


def data_dir(app: str) -> str:
    """Where the local history and queue live: XDG data on Linux, the platform's place elsewhere."""
    if sys.platform == "darwin":
        return os.path.join(_home(), "Library", "Application Support", app, "data")
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.join(_home(), "AppData", "Local")
    else:
        base = _xdg("XDG_DATA_HOME", ".local/share")
    return os.path.join(base, app)


def state_path(app: str) -> str:
    """The developer's decision file for one app."""
    return os.path.join(config_dir(app), STATE_NAME)


def read_small(path: AnyPath, *, follow: bool = True, limit: int = MAX_SMALL_FILE) -> bytes:
    """A small regular file's bytes. Never blocks on a FIFO or device, never reads more than
    `limit`; with follow=False a symlink is refused. FileNotFoundError passes through."""
    import stat

    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if not follow and os.path.islink(path):
            raise ConfigError(f"{path} is a symbolic link; refused") from None
        raise ConfigError(f"cannot read {path} ({exc.strerror or exc})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{path} is not a regular file ({_kind(mode)}); refused")
        data = os.read(fd, limit + 1)
        chunks = [data]
        while data and sum(map(len, chunks)) <= limit:
            data = os.read(fd, limit + 1)
            chunks.append(data)
        content = b"".join(chunks)
        if len(content) > limit:
            raise ConfigError(f"{path} is larger than {limit // 1024} KiB; refused")
        return content
    except OSError as exc:
        raise ConfigError(f"cannot read {path} ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    """What a file that is not a regular one is, in a few words."""
    import stat

    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a socket" if stat.S_ISSOCK(mode) else "not a file"


def refuse_link(path: AnyPath, regular: bool = True) -> None:
    """Refuse a path that is a symlink, or (with `regular`) exists as anything but a regular
    file (a FIFO would block, a device would be written to): our files are never followed or
    written through. A file replaced by a rename only needs `regular=False`."""
    import stat

    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(f"cannot use {path} ({exc.strerror or exc})") from None
    if stat.S_ISLNK(mode):
        raise ConfigError(f"{path} is a symbolic link; refused (remove it to start anew)")
    if regular and not stat.S_ISREG(mode):
        raise ConfigError(f"{path} is not a regular file (a FIFO, device or directory?); refused")


def private_dir(path: AnyPath) -> None:
    """Create our directory with mode 0700, or make an existing one of ours 0700."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot write in {path} ({exc.strerror or exc})") from None
    try:
        if not os.path.islink(path) and os.stat(path).st_mode & 0o077:
            os.chmod(path, 0o700)
    except OSError:
        pass  # not ours to change (another owner, a read-only mount): used as it is
