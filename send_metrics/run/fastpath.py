"""The hot path's dispatch: a plain `run`, `wrap` or `preview` call parsed without click.

Every wrapped make target pays for whatever is imported before its child starts, so that part
of the code keeps one rule, stated here once: before the child starts, import nothing that
costs. That is this module, `run.spec`, `run.wrapper`, `run.runner`, `child`,
`settings.early`, `make.snippet` (a wrapped make only) and `output`, which import only
built-in or already loaded modules (`os`, `sys`, `time`, `_signal`, and `ctypes` to tie the
child to us); types come from `typing` only under TYPE_CHECKING (`typing` costs ~8 ms here,
`enum` ~3, `pathlib` ~5, `re` ~5, `tomllib` ~7, click ~20). Everything else is imported inside the
function that needs it, after the child has started, preferably on the prefetch thread.
`tests/test_imports.py` holds the rule in a real process.

The common shapes are parsed here; anything else (help, a typo, an unusual form) returns None
and click takes over, so click stays the one place that explains usage.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from send_metrics.run.spec import RunSpec


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
    from send_metrics.run.spec import command_spec, make_spec

    verb, rest = argv[0], argv[1:]
    if verb in ("run", "preview"):
        flags = {"--dry-run": "dry_run"} if verb == "run" else {}
        parsed = _options(rest, {"--name": "name"} if verb == "run" else {}, flags)
        if parsed is None or not parsed[1] or parsed[1][0] != "--" or len(parsed[1]) < 2:
            return None
        opts, tail = parsed
        name = opts.get("name")
        return command_spec(
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
    return make_spec(
        target,
        variables,
        str(make) if make else None,
        str(makefile) if makefile else None,
        bool(opts.get("dry_run")),
    )


def try_fast(argv: list[str]) -> None:
    """Run a plain `run`/`wrap`/`preview` call now (never returns); return to hand it to click."""
    if argv[:1] == ["_make-watch"]:  # started by send_metrics.mk's first recipe line
        from send_metrics.run import watch

        watch.watch(argv[1:])
    spec = parse(argv)
    if spec is None:
        return
    from send_metrics.run import wrapper

    wrapper.execute(spec)
