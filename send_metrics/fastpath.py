"""The hot path: recognise plain `run`, `wrap` and `preview` calls without importing click.

Importing click costs about 20 ms, paid on every wrapped make target. The common shapes are
parsed here; anything else (help, a typo, an unusual form) returns None and click takes over,
so click stays the one place that explains usage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from send_metrics.wrapper import RunSpec


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
    spec = parse(argv)
    if spec is None:
        return
    from send_metrics import wrapper

    wrapper.execute(spec)
