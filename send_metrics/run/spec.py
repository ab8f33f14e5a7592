"""What a run is to run and how the event names it (`RunSpec`), made by the hot path's parser
or click, and which of its arguments an event may keep.

This module is on the hot path: it follows the rule in `run.fastpath`'s docstring.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from send_metrics.event.event import CommandType


class RunSpec:
    """What to run and how to name it in the event. A make target is data too: its argv is made
    by `child_argv` once the operator's impl prefix is known. (Plain data, not a NamedTuple:
    it exists before the child starts, see `fastpath`.)"""

    __slots__ = ("args", "argv", "command", "command_type", "dry_run", "make", "makefile")

    def __init__(
        self,
        command: str,
        command_type: CommandType,
        args: tuple[str, ...] = (),  # the program's arguments, or the VAR=value words of make
        argv: tuple[str, ...] = (),  # the command to run (empty for a make target)
        make: str | None = None,  # the calling make's binary (make targets)
        makefile: str | None = None,  # the calling makefile (make targets)
        dry_run: bool = False,
    ) -> None:
        self.command = command
        self.command_type = command_type
        self.args = args
        self.argv = argv
        self.make = make
        self.makefile = makefile
        self.dry_run = dry_run

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
    cleans the name further)."""
    program = argv[0].replace("\\", "/").rstrip("/").rpartition("/")[2] or argv[0]
    return RunSpec(name or program, "command", tuple(argv[1:]), tuple(argv), dry_run=dry_run)


def args_allowed(spec: RunSpec, allowed: tuple[str, ...]) -> bool:
    """Arguments are kept only for an allow-listed command; for `run` the program actually run
    must be listed too, so `--name deploy -- curl -H 'token: ...'` never passes as `deploy`."""
    if spec.command not in allowed:
        return False
    if spec.command_type == "make":
        return True
    return command_spec(list(spec.argv)).command in allowed
