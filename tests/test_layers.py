"""The order of layers (docs/design.md, "Layers"), held on every import of every module.

Every `import` and `from ... import` is read with `ast`, at every depth: at module level,
inside functions (the deferred imports kept for speed), under `if TYPE_CHECKING:`, relative or
absolute. A module may import from its own layer or from a lower one, never from a higher one,
and no set of modules may import each other in a circle, lazily or not.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "send_metrics"

# Top to bottom. A name stands for a module and, for a subpackage, every module inside it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("entry", ("send_metrics.__main__", "send_metrics.cli")),
    # The team's side (issue 24): above everything a wrapped run loads, so the run never loads it.
    ("operator", ("send_metrics.operator",)),
    ("run", ("send_metrics.run",)),
    ("make", ("send_metrics.make",)),
    ("delivery", ("send_metrics.delivery",)),
    ("local", ("send_metrics.local",)),
    ("consent", ("send_metrics.consent",)),
    ("event", ("send_metrics.event",)),
    ("facts", ("send_metrics.facts",)),
    ("settings", ("send_metrics.settings",)),
    (
        "base",
        (
            *("send_metrics.lean", "send_metrics.errors", "send_metrics.output"),
            *("send_metrics.child", "send_metrics"),
        ),
    ),
]


def modules(root: Path) -> dict[str, Path]:
    """Every module of the package under `root` by dotted name (a package by its own name)."""
    found = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def layer_of(module: str) -> int:
    """The rank of a module's layer (0 is the top); the longest name that holds it decides."""
    best, rank = "", -1
    for index, (_name, members) in enumerate(LAYERS):
        for member in members:
            inside = member != "send_metrics" and module.startswith(member + ".")
            holds = module == member or inside  # the package root holds only `__version__`
            if holds and len(member) > len(best):
                best, rank = member, index
    return rank


def imports(root: Path) -> list[tuple[str, str, int]]:
    """(importer, imported module, line) for every import of one of the package's own modules,
    at any depth."""
    known = modules(root)
    found = []
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    source = node.module or ""
                # `from pkg import mod` imports the module `pkg.mod`; `from mod import name`, mod.
                targets = [
                    f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                    for alias in node.names
                ]
            for target in targets:
                while target and target not in known:
                    target = target.rpartition(".")[0]  # `import a.b.c` of a module a.b
                if target and target != name:
                    found.append((name, target, node.lineno))
    return found


def upward(root: Path) -> list[str]:
    """Every import from a lower layer to a higher one, as `importer:line -> imported`."""
    return [
        f"{source}:{line} -> {target} ({LAYERS[layer_of(source)][0]} imports "
        f"{LAYERS[layer_of(target)][0]})"
        for source, target, line in imports(root)
        if layer_of(target) < layer_of(source)
    ]


def circles(root: Path) -> list[list[str]]:
    """Sets of modules that import each other, directly or through others (Tarjan)."""
    graph: dict[str, set[str]] = {name: set() for name in modules(root)}
    for source, target, _line in imports(root):
        graph[source].add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_layer() -> None:
    """A new module (or package) is placed in the order before it is used."""
    assert [m for m in modules(PACKAGE) if layer_of(m) < 0] == []


def test_no_import_goes_up_a_layer() -> None:
    assert upward(PACKAGE) == []


def test_no_modules_import_each_other_in_a_circle() -> None:
    assert circles(PACKAGE) == []


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A copy of the package to plant imports in."""
    shutil.copytree(PACKAGE, tmp_path / "send_metrics", ignore=shutil.ignore_patterns("*.pyc"))
    return tmp_path / "send_metrics"


def _plant(path: Path, function: str) -> None:
    path.write_text(path.read_text() + f"\n\n{function}\n")


@pytest.mark.parametrize(
    ("module", "planted", "found"),
    [
        (
            "settings/files.py",
            "def _planted() -> None:\n    from send_metrics.run import wrapper  # noqa: F401",
            "send_metrics.settings.files:",
        ),
        (
            "lean/records.py",
            "def _planted() -> None:\n    from ..consent import consent  # noqa: F401",
            "send_metrics.lean.records:",
        ),
        (
            "event/store.py",
            "TYPE_CHECKING = False\nif TYPE_CHECKING:\n    import send_metrics.delivery.sinks",
            "send_metrics.event.store:",
        ),
    ],
    ids=["lazy absolute", "lazy relative", "type-only"],
)
def test_a_planted_upward_import_is_found(
    copy: Path, module: str, planted: str, found: str
) -> None:
    assert upward(copy) == []
    _plant(copy / module, planted)
    assert [line for line in upward(copy) if line.startswith(found)] != []


def test_a_planted_circle_is_found(copy: Path) -> None:
    """`urls` imports `records`; a lazy import back (same layer, so not upward) closes a circle."""
    assert circles(copy) == []
    _plant(
        copy / "lean/records.py", "def _planted() -> None:\n    from . import urls  # noqa: F401"
    )
    assert circles(copy) == [["send_metrics.lean.records", "send_metrics.lean.urls"]]
