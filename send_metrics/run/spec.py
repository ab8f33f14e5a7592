"""What a run is to run and how the event names it (`RunSpec`), made by the hot path's parser
or click, and which of its arguments an event may keep.

This module is on the hot path: it follows the rule in `run.fastpath`'s docstring.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from send_metrics.event.event import CommandType


class RunSpec:
    """What to run and how to name it in the event. A make target is data too: its argv is made
    by `child_argv` once the operator's impl prefix is known. (Plain data, not a NamedTuple:
    it exists before the child starts, see `fastpath`.)"""

    __slots__ = (
        "args",
        "argv",
        "command",
        "command_type",
        "dry_run",
        "goals",
        "make",
        "makefile",
    )

    def __init__(
        self,
        command: str,
        command_type: CommandType,
        args: tuple[str, ...] = (),  # the program's arguments, or the VAR=value words of make
        argv: tuple[str, ...] = (),  # the command to run (empty for a make target)
        make: str | None = None,  # the calling make's binary (make targets)
        makefile: str | None = None,  # the calling makefile (make targets)
        dry_run: bool = False,
        goals: tuple[str, str] | None = None,  # `run -- make`: its goals and -C directory
    ) -> None:
        self.command = command
        self.command_type = command_type
        self.args = args
        self.argv = argv
        self.make = make
        self.makefile = makefile
        self.dry_run = dry_run
        self.goals = goals

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunSpec) and self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]  # mutable fields: compared, never hashed

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"RunSpec({fields})"


def make_spec(
    target: str,
    variables: list[str],
    make: str | None = None,
    makefile: str | None = None,
    dry_run: bool = False,
) -> RunSpec:
    """`make impl-TARGET` with the calling make's binary and makefile; VAR=value passed on."""
    return RunSpec(target, "make", tuple(variables), (), make, makefile, dry_run)


def command_spec(argv: list[str], name: str | None = None, dry_run: bool = False) -> RunSpec:
    """Any command; it is named by --name or its program's basename, never its path (the event
    cleans the name further). GNU make is named by its goals, as the include line names it."""
    program = argv[0].replace("\\", "/").rstrip("/").rpartition("/")[2] or argv[0]
    if program in _MAKES:
        goals, directory = make_goals(argv[1:])
        command = name or " ".join(goals) or program
        spec = RunSpec(command, "command", tuple(argv[1:]), tuple(argv), dry_run=dry_run)
        spec.goals = (" ".join(goals), directory)
        return spec
    return RunSpec(name or program, "command", tuple(argv[1:]), tuple(argv), dry_run=dry_run)


_MAKES = ("make", "gmake")  # GNU make's names: `run -- make GOALS` records as the include does
_MAKE_VALUE = "CfIoW"  # short options whose value is attached or the next word
_MAKE_OPTIONAL = "jlO"  # an optional value, attached (-j4); -j and -l also take a next number
_MAKE_LONG_VALUE = (
    "--directory", "--file", "--makefile", "--include-dir", "--old-file", "--assume-old",
    "--new-file", "--what-if", "--assume-new", "--eval",
)  # fmt: skip


_MAKE_LONG_NUMBER = ("--jobs", "--load-average", "--max-load")  # the long -j and -l


def _number(word: str) -> bool:
    return word.replace(".", "", 1).isdigit()


def make_goals(args: list[str]) -> tuple[list[str], str]:
    """The goals of a make command line and its last -C directory ("" for none): never an
    option, an option's value or a VAR=value assignment (those may hold anything)."""
    goals: list[str] = []
    directory = ""
    i = 0
    while i < len(args):
        arg = args[i]
        following = args[i + 1] if i + 1 < len(args) else ""
        if arg == "--":
            goals += [a for a in args[i + 1 :] if "=" not in a]
            break
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name in _MAKE_LONG_VALUE and not eq:
                value = following
                i += 1
            elif name in _MAKE_LONG_NUMBER and not eq and _number(following):
                i += 1  # make takes a following number as the value of --jobs, --max-load
            if name == "--directory":
                directory = os.path.join(directory, value)
        elif arg.startswith("-") and len(arg) > 1:
            for at, letter in enumerate(arg[1:], 2):
                if letter in _MAKE_VALUE:
                    value = arg[at:] or following
                    i += 0 if arg[at:] else 1
                    if letter == "C":
                        directory = os.path.join(directory, value)
                    break
                if letter in _MAKE_OPTIONAL:
                    if not arg[at:] and letter in "jl" and _number(following):
                        i += 1
                    break
        elif "=" not in arg:
            goals.append(arg)
        i += 1
    return goals, directory


def args_allowed(spec: RunSpec, allowed: tuple[str, ...]) -> bool:
    """Arguments are kept only for an allow-listed command; for `run` the program actually run
    must be listed too, so `--name deploy -- curl -H 'token: ...'` never passes as `deploy`.
    `run -- make` never: its options and VAR=value words may hold anything (as included)."""
    if spec.command not in allowed or spec.goals is not None:
        return False
    if spec.command_type == "make":
        return True
    return command_spec(list(spec.argv)).command in allowed
