"""The life of one wrapped run: start the child, prefetch while it runs, ask, record, end like it.

This module is on the hot path: it follows the rule in `fastpath`'s docstring.
"""

from __future__ import annotations

import os
import sys
import time

from send_metrics import fastpath, runner
from send_metrics.output import closed_pipe, say, warn

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal, NoReturn

    from send_metrics.config import Loaded, Settings
    from send_metrics.decision import Decision
    from send_metrics.event import Event
    from send_metrics.facts import GitFacts, MachineFacts
    from send_metrics.maketrace import Breakdown
    from send_metrics.sinks import HttpClient, Target

# Set for the child: a wrapped run inside is not counted twice. Its value counts the wrappers
# above (1 for the outermost's child), so a loop of wrapped make targets (an impl prefix that
# the wrapping pattern matches again) ends at MAX_NESTING instead of forking forever.
ACTIVE_VAR = "SEND_METRICS_ACTIVE"
MAX_NESTING = 30
PLACEHOLDER_ID = "00000000-0000-4000-8000-000000000000"  # preview before any opt-in
_MAKE_NO_RUN = set("nqt")  # make's --just-print, --question and --touch: no real run happens

if TYPE_CHECKING:
    CommandType = Literal["make", "command"]


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


def child_argv(spec: RunSpec, impl_prefix: str) -> list[str]:
    """The command line of the child: the command itself, or the inner make for a target."""
    if spec.command_type != "make":
        return list(spec.argv)
    argv = [spec.make or os.environ.get("MAKE") or "make", "--no-print-directory"]
    if spec.makefile:
        argv += ["-f", spec.makefile]
    return [*argv, f"{impl_prefix}{spec.command}", *spec.args]


def make_flags(makeflags: str) -> set[str]:
    """The calling make's single-letter flags without arguments ('n' under make -n).

    GNU make puts them all, without a dash, in MAKEFLAGS' first word ("ks -I/tmp -j2"); a
    first word with a dash is an option with an argument, whose letters mean nothing here.
    """
    words = makeflags.split()
    return set(words[0]) if words and not makeflags.startswith((" ", "-")) else set()


def _nesting() -> int:
    """How many wrappers run above this one: ACTIVE_VAR's count; any other value that is set
    (an older send_metrics's child) counts as 1, a number too long to read as too deep."""
    value = os.environ.get(ACTIVE_VAR, "")
    if not value:
        return 0
    if not (value.isascii() and value.isdigit()):
        return 1
    try:
        return max(1, int(value))
    except ValueError:  # more digits than int() reads
        return MAX_NESTING + 1


def _nothing_to_record(spec: RunSpec) -> bool:
    """Nested in another wrapper, switched off by the user, or make is not really running."""
    if spec.dry_run:
        return False
    if os.environ.get(ACTIVE_VAR) or os.environ.get(fastpath.MAKE_RUN_VAR):
        return True
    if fastpath.metrics_disabled():
        return True
    return spec.command_type == "make" and bool(
        make_flags(os.environ.get("MAKEFLAGS", "")) & _MAKE_NO_RUN
    )


def _phony_answer(spec: RunSpec) -> int | None:
    """Under `make -q` and `make -t` a wrapped target answers as a phony target does, running
    nothing: never up to date (1), nothing to touch (0). `make -n` runs the inner make instead,
    which shows the real recipe."""
    if spec.command_type != "make" or spec.dry_run:
        return None
    flags = make_flags(os.environ.get("MAKEFLAGS", ""))
    if "n" in flags:
        return None
    return 1 if "q" in flags else 0 if "t" in flags else None


def _exec_plain(argv: list[str], env: dict[str, str]) -> NoReturn:
    """Become the command: used when nothing is to be recorded by this process. It starts as
    `runner.Child` starts one: the caller's environment and signal dispositions."""
    runner.restore_defaults(runner.defaults())
    try:
        try:
            runner.execvpe(argv, env)
        except OSError as exc:
            path = runner.script_for_sh(exc, argv[0], env)
            if path is None:
                raise
            os.execve("/bin/sh", ["/bin/sh", path, *argv[1:]], env)  # no #! line: as a shell
    except OSError as exc:
        missing = isinstance(exc, FileNotFoundError)
        warn(f"{argv[0]}: command not found" if missing else f"{argv[0]}: {exc.strerror or exc}")
        from send_metrics.errors import ExitCode

        os._exit(ExitCode.NOT_FOUND if missing else ExitCode.NOT_EXECUTABLE)


class _Prefetch:
    """Work done on a thread while the child runs (only once consent is known): the imports and
    connection the report needs, and the git and machine facts."""

    def __init__(self, settings: Settings, connect: bool = True, inline: bool = False):
        self.settings = settings
        self.connect = connect  # never for preview and --dry-run: they touch no network
        self.git: GitFacts | None = None
        self.machine: MachineFacts | None = None
        self.client: HttpClient | None = None
        self.thread: runner.Worker | None = None
        if inline:  # the facts only (git is bounded); the sender connects on its own thread
            self._work()
            return
        try:
            self.thread = runner.start_thread(self._work, "send_metrics-prefetch")
        except RuntimeError:  # no thread left (ulimit -u): the facts are made at the end
            pass

    def _work(self) -> None:
        try:
            self._gather()
        except BaseException:  # noqa: S110 - a fact we could not gather is unknown (null), and
            pass  # a thread's traceback would land in the middle of the command's output

    def _gather(self) -> None:
        from send_metrics import facts

        git = facts.start_git()  # git runs on another core while the imports below load
        # Imported here, on the thread, so the main thread never waits for them.
        from send_metrics import delivery, event, sinks, store  # noqa: F401

        target: Target | None = delivery.destination(self.settings)[0]
        if target is not None:
            import _socket  # noqa: F401 - the HTTP client's; never for the local sink

            if target.url[:6].lower() == "https:":
                import ssl  # noqa: F401 - the costliest, for https endpoints only
        self.machine = facts.machine_facts()
        self.git = facts.git_facts(
            self.settings.app, started=git, hash_remote=self.settings.git_remote_hash
        )
        # Last: a hanging DNS must not cost the facts above. Not while backing off: an offline
        # laptop's runs only queue, and never wait for the network.
        if target is not None and self.connect and not delivery.backing_off(self.settings, target):
            sinks.warm(target)
            client = sinks.HttpClient(
                time.monotonic() + self.settings.deadline,
                target.ca_bundles,
                client_cert=target.client_cert,
            )
            client.prepare(target.url)
            self.client = client

    def join(self, until: float) -> tuple[GitFacts | None, MachineFacts]:
        """The facts gathered by `until`; machine facts are cheap and made here if missing."""
        if self.thread is not None:
            self.thread.join(max(0.0, until - time.monotonic()))
        if self.machine is None:
            from send_metrics import facts

            self.machine = facts.machine_facts()
        return self.git, self.machine

    def ready_client(self) -> HttpClient | None:
        """The prepared connection, only once the thread is done with it."""
        return self.client if self.thread is not None and not self.thread.is_alive() else None


def _read_decision(settings: Settings, problems: list[str]) -> Decision:
    from send_metrics.decision import Decision, read_decision
    from send_metrics.errors import MetricsError
    from send_metrics.files import state_path

    try:
        path = state_path(settings.app)
    except MetricsError as exc:  # no home: nothing to repair, no decision to read
        problems.append(str(exc))
        return Decision()
    try:
        return read_decision(path)
    except MetricsError as exc:
        problems.append(f"{exc}; treated as no decision (`send_metrics reset` repairs it)")
        return Decision()


def _load_settings() -> Loaded:
    from send_metrics import config

    return config.load_settings()


def execute(spec: RunSpec) -> NoReturn:
    """Run the command as if directly, record it if the developer agreed, end as it ended."""
    depth = _nesting()
    if spec.command_type == "make" and depth > MAX_NESTING:
        warn(
            f"wrapped make targets nest more than {MAX_NESTING} deep; "
            "is make.impl_prefix making a loop?"
        )
        os._exit(2)  # ExitCode.USAGE (errors is not imported on this path); nothing ran
    answer = _phony_answer(spec)
    if answer is not None:
        os._exit(answer)
    # The operator config is read once the child runs. A make target needs its impl prefix
    # first: that costs nothing for a config that does not set one, else it is read first.
    loaded = None
    prefix = ""
    if spec.command_type == "make":
        prefix = fastpath.impl_prefix(fastpath.config_file()) or ""
        if not prefix:
            try:
                loaded = _load_settings()
                prefix = loaded.settings.impl_prefix
            except Exception:  # the target runs all the same; the problem is told after it
                prefix = fastpath.DEFAULT_IMPL_PREFIX
    argv = child_argv(spec, prefix)
    if not argv or not argv[0]:
        warn("the program to run is empty (usage: send_metrics run -- CMD [ARG ...])")
        os._exit(127)  # the shell's answer for a command that does not exist
    # What the caller gave us, not os.environ: the interpreter adds to that for itself.
    env = runner.caller_environ()
    if _nothing_to_record(spec):
        if depth or spec.command_type == "make":  # counted, so a loop ends even when off
            env[ACTIVE_VAR] = str(depth + 1)
        _exec_plain(argv, env)
    env[ACTIVE_VAR] = str(depth + 1)
    trace = None
    if spec.command_type == "make" or spec.goals is not None:
        app = loaded.settings.app if loaded else fastpath.app_name(fastpath.config_file())
        # `run -- make`: traced only where its Makefile has the include line, as without us.
        add = spec.goals is None
        trace = fastpath.trace_make(argv, env, spec.makefile, spec.dry_run, app, add)
    try:
        child = runner.Child(argv, env)
    except Exception as exc:  # CommandNotFound, imported only then (see fastpath)
        from send_metrics.errors import CommandNotFound

        if not isinstance(exc, CommandNotFound):
            raise
        for line in (loaded or _load_settings()).problems:
            warn(line)
        warn(str(exc))
        os._exit(exc.exit_code)
    # From here on the child runs: nothing that fails in our own work may touch it. A failure
    # (even RecursionError, MemoryError, a thread that cannot start) costs one line, after it.
    failure = ""
    try:
        prepared = _prepare(spec, loaded, child)
    except BaseException as exc:  # signals are blocked here: never an interrupt of the user's
        prepared, failure = None, _describe(exc)
    result = child.wait()
    child.release()
    try:
        if prepared is None:
            warn(f"{failure}; nothing recorded, the command's result is unchanged")
        else:
            settings, problems, decision, prefetch = prepared
            made = None
            if trace is not None:
                from send_metrics import maketrace

                made = maketrace.take_wrapped(trace, result)  # deletes the trace either way
            for line in problems:
                warn(line)
            _after(spec, settings, decision, result, prefetch, made)
    except runner.Interrupted:
        pass  # a second interrupt: stop reporting now; a recorded event waits in the queue
    except BaseException as exc:  # the metrics path must never change the command's outcome
        warn(f"{_describe(exc)}; the command's result is unchanged")
    runner.exit_like(result)


def _prepare(
    spec: RunSpec, loaded: Loaded | None, child: runner.Child
) -> tuple[Settings, list[str], Decision, _Prefetch | None]:
    """While the child runs: the config, the decision, and the prefetch when collecting (done
    here, without a thread, when the child has ended already: nothing is left to overlap)."""
    loaded = loaded or _load_settings()
    settings = loaded.settings
    problems = list(loaded.problems)
    decision = _read_decision(settings, problems)
    from send_metrics import consent

    prefetch = None
    if spec.dry_run or consent.collecting(decision, settings):
        ended = child.has_ended()
        prefetch = _Prefetch(settings, connect=not spec.dry_run and not ended, inline=ended)
    return settings, problems, decision, prefetch


def _describe(exc: BaseException) -> str:
    """One line for a failure of our own: ours say what they are; others name their kind."""
    from send_metrics.errors import MetricsError

    if isinstance(exc, MetricsError):
        return str(exc)
    detail = (str(exc).splitlines() or [""])[0][:200]
    return f"internal error ({type(exc).__name__}{': ' + detail if detail else ''})"


def _after(
    spec: RunSpec,
    settings: Settings,
    decision: Decision,
    result: runner.ChildResult,
    prefetch: _Prefetch | None,
    made: Breakdown | None = None,
) -> None:
    from send_metrics import consent

    if prefetch is None:  # not collecting (a dry run always has its prefetch)
        if not consent.needs_asking(decision, settings):
            return  # declined: nothing is collected
        if consent.is_interactive():
            decision, line = consent.ask_once(settings)
            say(consent.wrapped(line))
        else:
            # Nobody to ask here; but under make -j only one job has the terminal, and the
            # developer may have just answered there. Their answer counts for this run too.
            decision = _read_decision(settings, [])
        if not consent.collecting(decision, settings):
            return
        prefetch = _Prefetch(settings)
    if spec.dry_run:
        granted = consent.collecting(decision, settings)
        identity_id = decision.anonymous_id if granted else PLACEHOLDER_ID
        until = time.monotonic() + settings.deadline
        event = _build(spec, settings, identity_id, result, prefetch, until, made)
        import json

        if sys.stdout is not None:  # None when started with stdout closed
            try:
                sys.stdout.write(json.dumps(event, indent=2) + "\n")
                sys.stdout.flush()
            except BrokenPipeError:
                closed_pipe()  # `preview -- CMD | head -1`: the reader left
        return
    from send_metrics import delivery

    deadline = time.monotonic() + settings.deadline
    event = _build(spec, settings, decision.anonymous_id, result, prefetch, deadline - 0.2, made)
    delivery.report(event, settings, deadline, prefetch.ready_client())


def _args_allowed(spec: RunSpec, allowed: tuple[str, ...]) -> bool:
    """Arguments are kept only for an allow-listed command; for `run` the program actually run
    must be listed too, so `--name deploy -- curl -H 'token: ...'` never passes as `deploy`.
    `run -- make` never: its options and VAR=value words may hold anything (as included)."""
    if spec.command not in allowed or spec.goals is not None:
        return False
    if spec.command_type == "make":
        return True
    return command_spec(list(spec.argv)).command in allowed


def _build(
    spec: RunSpec,
    settings: Settings,
    anonymous_id: str,
    result: runner.ChildResult,
    prefetch: _Prefetch,
    until: float,
    make: Breakdown | None = None,
    derived: bool = False,
) -> Event:
    from send_metrics.event import Identity, build_event

    git, machine = prefetch.join(until)
    if git is not None and not settings.git_remote_hash:
        git = git._replace(remote_hash=None)  # the operator's opt-in: guessable for public repos
    args = list(spec.args) if _args_allowed(spec, settings.allow_args) else None
    identity = Identity(anonymous_id, settings.app, settings.app_version, settings.consent_version)
    command, command_type = spec.command, spec.command_type
    if spec.goals is not None:  # `run -- make GOALS`: named as the include line names a run
        from send_metrics.maketrace import command_of

        goals, directory = spec.goals
        command_type = "make"
        if command == (goals or "make"):  # not a --name
            command = command_of(goals.split(), os.path.abspath(directory or "."))
    return build_event(identity, command, args, command_type, result, git, machine, make, derived)
