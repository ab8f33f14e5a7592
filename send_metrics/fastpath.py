"""The hot path: what `run`, `wrap` and `preview` need before their child starts.

Every wrapped make target pays for whatever is imported before its child starts, so that part
of the code keeps one rule, stated here once: before the child starts, import nothing that
costs. That is this module, `wrapper`, `runner` and `output`, which import only built-in or
already loaded modules (`os`, `sys`, `time`, `_signal`, and `ctypes` to tie the child to us);
types come from `typing` only under TYPE_CHECKING (`typing` costs ~8 ms here, `enum` ~3,
`pathlib` ~5, `re` ~5, `tomllib` ~7, click ~20). Everything else is imported inside the
function that needs it, after the child has started, preferably on the prefetch thread.
`tests/test_imports.py` holds the rule in a real process.

The common shapes are parsed here; anything else (help, a typo, an unusual form) returns None
and click takes over, so click stays the one place that explains usage.
"""

from __future__ import annotations

import os
import stat  # loaded by `os` at start-up already
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from send_metrics.wrapper import RunSpec

CONFIG_NAME = "send_metrics.toml"
DEFAULT_APP = "send_metrics"
DEFAULT_IMPL_PREFIX = "impl-"
MAKE_RUN_VAR = "SEND_METRICS_MAKE_RUN"  # the trace file of the traced make a recipe belongs to
_MAKEFILES = ("GNUmakefile", "makefile", "Makefile")  # what make reads without -f, in order
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


def trace_make(
    argv: list[str],
    env: dict[str, str],
    makefile: str | None,
    dry_run: bool,
    app: str | None,
    add: bool = True,
) -> str | None:
    """Before a wrapped make starts: under a recorded yes (a quick look here, the full check
    after) or for a dry run, have it read send_metrics.mk after its makefile (unless not `add`:
    `run -- make` is traced only by a Makefile's own include line) and trace each recipe line
    into a fresh private file. Edits argv and env; the file's path, or None."""
    if app is None or sys.platform == "win32":
        return None
    home = config_home(app)
    if home is None:
        return None
    if not dry_run:
        decision = read_bounded(os.path.join(home, "metrics.toml"))
        if decision is None or b'decision = "granted"' not in decision:
            return None
    extra = ["-f", os.path.join(os.path.dirname(os.path.abspath(__file__)), "send_metrics.mk")]
    if not add:
        extra = []
    elif makefile is None:
        found = next((name for name in _MAKEFILES if os.path.isfile(name)), None)
        if found is None:
            return None
        extra = ["-f", found, *extra]
    folder = os.path.join(home, "make-traces")
    path = os.path.join(folder, f"wrap-{os.getpid()}.trace")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.close(os.open(path, flags, 0o600))
    except OSError:
        return None
    if extra:
        at = argv.index("--no-print-directory") + 1 + (2 if makefile else 0)
        argv[at:at] = extra
    env[MAKE_RUN_VAR] = path
    return path


def _options(
    args: list[str], takes_value: dict[str, str], flags: dict[str, str]
) -> tuple[dict[str, object], list[str]] | None:
    """Leading options as {name: value}, and what follows; None for anything unexpected."""
    found: dict[str, object] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if arg == "--":
            return found, args[i:]
        if name in takes_value:
            if not eq:
                if i + 1 >= len(args):
                    return None
                i += 1
                value = args[i]
            if value.startswith("-"):
                return None  # `--name -- true`: click says the value is missing
            found[takes_value[name]] = value
        elif arg in flags:
            found[flags[arg]] = True
        elif arg.startswith("-"):
            return None
        else:
            return found, args[i:]
        i += 1
    return found, []


def parse(argv: list[str]) -> RunSpec | None:
    """The run to make for a plain `run`/`wrap`/`preview` call; None for anything else."""
    if not argv or argv[0] not in ("run", "wrap", "preview"):
        return None
    from send_metrics import wrapper

    verb, rest = argv[0], argv[1:]
    if verb in ("run", "preview"):
        flags = {"--dry-run": "dry_run"} if verb == "run" else {}
        parsed = _options(rest, {"--name": "name"} if verb == "run" else {}, flags)
        if parsed is None or not parsed[1] or parsed[1][0] != "--" or len(parsed[1]) < 2:
            return None
        opts, tail = parsed
        name = opts.get("name")
        return wrapper.command_spec(
            tail[1:], str(name) if name else None, verb == "preview" or bool(opts.get("dry_run"))
        )
    parsed = _options(
        rest,
        {"--make": "make", "--makefile": "makefile", "-f": "makefile"},
        {"--dry-run": "dry_run"},
    )
    if parsed is None or not parsed[1] or parsed[1][0] == "--":
        return None
    opts, (target, *variables) = parsed
    if not target or any("=" not in v or v.startswith(("=", "-")) for v in variables):
        return None
    make, makefile = opts.get("make"), opts.get("makefile")
    return wrapper.make_spec(
        target,
        variables,
        str(make) if make else None,
        str(makefile) if makefile else None,
        bool(opts.get("dry_run")),
    )


def try_fast(argv: list[str]) -> None:
    """Run a plain `run`/`wrap`/`preview` call now (never returns); return to hand it to click."""
    if argv[:1] == ["_make-watch"]:  # started by send_metrics.mk's first recipe line
        from send_metrics import maketrace

        maketrace.watch(argv[1:])
    spec = parse(argv)
    if spec is None:
        return
    from send_metrics import wrapper

    wrapper.execute(spec)
