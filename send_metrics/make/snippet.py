"""The snippet `send_metrics.mk`, shipped in this package: its path, its text to vendor, and
how a wrapped make is made to read it and trace each recipe line (`trace_make`).

`trace_make` runs before a wrapped make starts: this module follows the rule in
`run.fastpath`'s docstring (built-in modules only).
"""

from __future__ import annotations

import os
import sys

from send_metrics.settings.early import MAKE_RUN_VAR, config_home, read_bounded

SNIPPET = "send_metrics.mk"
_MAKEFILES = ("GNUmakefile", "makefile", "Makefile")  # what make reads without -f, in order


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
    extra = ["-f", snippet_path()]
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


def snippet_path() -> str:
    """The snippet shipped in the package (also the shell shim it runs)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), SNIPPET)


def snippet_text(app: str) -> str:
    """The snippet, with the operator's app name as its default, ready to vendor."""
    with open(snippet_path(), encoding="utf-8") as handle:
        text = handle.read()
    return text.replace("_sm.app := send_metrics", f"_sm.app := {app}", 1)
