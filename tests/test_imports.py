"""The hot path's import rule (see `fastpath`'s docstring), held in real processes, and the
habit that a module outside the hot path defers an import only for a reason it writes down."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import SEND_METRICS, opt_in

PACKAGE = Path(__file__).parent.parent / "send_metrics"
# The modules that load before a wrapped child starts (the rule in `run.fastpath`'s docstring).
HOT_PATH = {
    *("__main__", "output", "child", "run.fastpath", "run.spec", "run.wrapper", "run.runner"),
    *("settings.early", "make.snippet"),
}
MARK = "--the-child-started--"
# The console script's launcher (`from send_metrics.__main__ import main`), plus an audit hook
# that writes MARK when the first process is forked or spawned (the group witness just before
# the child, or the child itself): a mark the child printed could come late, after imports
# that ran, on the other core, while the child was still starting.
LAUNCHER = f"""
import sys
def _mark(event, args):
    if event in ("os.fork", "os.posix_spawn"):
        sys.stderr.write("{MARK}\\n")
        sys.stderr.flush()
sys.addaudithook(_mark)
from send_metrics.__main__ import main
sys.exit(main())
"""
# Modules that cost milliseconds each; none may load before a wrapped child starts.
COSTLY = (
    "click",
    "ctypes",  # the child is tied to us with `_ctypes` alone (runner._prctl)
    "typing",
    "enum",
    "re",
    "signal",
    "pathlib",
    "tomllib",
    "threading",
    "collections",
    "json",
    "subprocess",
    "socket",
    "sqlite3",
    "datetime",
    "dataclasses",
    "contextlib",
    "urllib.parse",
    "ipaddress",
    "http.client",
    "send_metrics.settings.config",
    "send_metrics.errors",
    "send_metrics.event.event",
)


def imported(stderr: str) -> list[str]:
    """The modules named by -X importtime lines, in the order their imports finished."""
    return [
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and "cumulative" not in line
    ]


def at_start() -> set[str]:
    """What the interpreter imports on its own (site, encodings, .pth files): not ours."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "pass"], capture_output=True, text=True
    )
    return set(imported(done.stderr))


def run_marked(*args: str, **kwargs: object) -> tuple[list[str], list[str]]:
    """Run `send_metrics ARGS -- true` under -X importtime, as the console script's launcher
    does: what was imported before the child started, and after."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *args, "--", "true"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        **kwargs,  # type: ignore[arg-type]
    )
    assert done.returncode == 0, done.stderr
    before, found, after = done.stderr.partition(MARK)
    assert found, done.stderr
    return imported(before), imported(after)


@pytest.mark.parametrize("decision", ["consented", "no decision"])
def test_nothing_costly_is_imported_before_the_child_starts(home: Path, decision: str) -> None:
    Path("send_metrics.toml").write_text(
        '[report]\nsink = "http"\nendpoint = "http://127.0.0.1:9/"\n'
    )
    if decision == "consented":
        opt_in()
    own = at_start()
    before, after = run_marked("run")
    costly = [name for name in before if name in COSTLY and name not in own]
    assert costly == [], before
    assert "send_metrics.run.wrapper" in before and "send_metrics.settings.config" in after


def test_nothing_costly_before_a_wrapped_make_target_starts(home: Path) -> None:
    """`wrap` needs the impl prefix first: a config that does not set it is not parsed."""
    Path("send_metrics.toml").write_text("[consent]\nversion = 2\n")
    Path("Makefile").write_text("impl-t:\n\t@true\n")
    opt_in()
    own = at_start()
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, "wrap", "t"],
        env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    before = imported(done.stderr.partition(MARK)[0])
    assert [name for name in before if name in COSTLY and name not in own] == [], before


@pytest.mark.parametrize("args", [("run", "--", "true"), ("wrap", "t")], ids=["run", "wrap"])
def test_the_console_script_never_imports_click_for_a_run(home: Path, args: tuple) -> None:
    """The whole run, question and report included (consented, so everything happens)."""
    Path("Makefile").write_text("impl-t: ; @:\n")
    opt_in()
    done = subprocess.run(
        [SEND_METRICS, *args],
        env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    modules = imported(done.stderr)
    assert "send_metrics.run.wrapper" in modules and "send_metrics.event.store" in modules
    assert not [m for m in modules if m == "click" or m.startswith("click.")]


def _deferred_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports inside functions (not those under `if TYPE_CHECKING:`, which never run)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found += [n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))]
    return found


def _dotted(path: Path) -> str:
    """`run/wrapper.py` as `run.wrapper` (a package's `__init__.py` as the package)."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "__init__"


@pytest.mark.parametrize(
    "module", sorted(m for m in map(_dotted, PACKAGE.rglob("*.py")) if m not in HOT_PATH)
)
def test_a_deferred_import_outside_the_hot_path_says_why(module: str) -> None:
    """Outside the hot path an import inside a function needs a reason: a comment on its line
    or the line above, or one `# Deferred imports: ...` comment for the whole module."""
    path = PACKAGE.joinpath(*module.split("."))
    text = (path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).read_text()
    lines = text.splitlines()
    if any(line.startswith("# Deferred imports:") for line in lines):
        return
    unexplained = [
        lines[node.lineno - 1].strip()
        for node in _deferred_imports(ast.parse(text))
        if "#" not in lines[node.lineno - 1] and not lines[node.lineno - 2].strip().startswith("#")
    ]
    assert unexplained == [], f"{module}: deferred without a reason: {unexplained}"


def test_the_local_sink_loads_nothing_for_the_network(home: Path) -> None:
    """Without a config the sink is local: a collected run never loads an HTTP client."""
    opt_in()
    done = subprocess.run(
        [SEND_METRICS, "run", "--", "true"],
        env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    modules = imported(done.stderr)
    assert "send_metrics.event.store" in modules
    assert [m for m in modules if m in ("http.client", "ssl", "socket")] == []


def test_an_http_sink_never_loads_http_client_email_or_ssl(home: Path, collector) -> None:
    """The HTTP client is ours, on `_socket`: a send to an http:// endpoint loads neither
    `http.client` (with its `email` parser), `ssl`, `socket` nor `urllib.parse`, before the
    child or after it."""
    Path("send_metrics.toml").write_text(
        f'[report]\nsink = "http"\nendpoint = "{collector.url}/"\n'
    )
    opt_in()
    before, after = run_marked("run")
    heavy = (
        *("http.client", "email", "ssl", "_ssl", "socket", "urllib.parse", "json", "typing"),
        *("hashlib", "datetime", "threading", "sqlite3.dbapi2", "pathlib", "re", "enum"),
    )
    loaded = [m for m in before + after if m in heavy or m.startswith("email.")]
    assert loaded == [], loaded
    assert "_socket" in after  # the event went over the network, through our client
    assert len(collector.ok()) == 1
