"""The life of one wrapped run: start the child, prefetch while it runs, ask, record, end like it.

This module is on the hot path: it follows the rule in `run.fastpath`'s docstring.
"""

from __future__ import annotations

import os
import sys
import time

from send_metrics.child import Interrupted
from send_metrics.output import closed_pipe, say, warn
from send_metrics.run import runner
from send_metrics.settings import early

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from send_metrics.child import ChildResult
    from send_metrics.consent.decision import Verdict
    from send_metrics.event.event import Breakdown
    from send_metrics.run.recording import Prefetch
    from send_metrics.run.spec import RunSpec
    from send_metrics.settings.config import Loaded, Settings

# Set for the child: a wrapped run inside is not counted twice. Its value counts the wrappers
# above (1 for the outermost's child), so a loop of wrapped make targets (an impl prefix that
# the wrapping pattern matches again) ends at MAX_NESTING instead of forking forever.
ACTIVE_VAR = "SEND_METRICS_ACTIVE"
MAX_NESTING = 30
PLACEHOLDER_ID = "00000000-0000-4000-8000-000000000000"  # preview before any opt-in
_MAKE_NO_RUN = set("nqt")  # make's --just-print, --question and --touch: no real run happens


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
    if os.environ.get(ACTIVE_VAR) or os.environ.get(early.MAKE_RUN_VAR):
        return True
    if early.metrics_disabled():
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


def _load_settings() -> Loaded:
    from send_metrics.settings import config

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
        prefix = early.impl_prefix(early.config_file()) or ""
        if not prefix:
            try:
                loaded = _load_settings()
                prefix = loaded.settings.impl_prefix
            except Exception:  # the target runs all the same; the problem is told after it
                prefix = early.DEFAULT_IMPL_PREFIX
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
        app = loaded.settings.app if loaded else early.app_name(early.config_file())
        from send_metrics.make import snippet  # a wrapped make's only: the snippet's trace

        # `run -- make`: traced only where its Makefile has the include line, as without us.
        add = spec.goals is None
        trace = snippet.trace_make(argv, env, spec.makefile, spec.dry_run, app, add)
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
            settings, problems, verdict, prefetch = prepared
            made = None
            if trace is not None:
                from send_metrics.make.trace import take_wrapped  # a wrapped make's breakdown

                made = take_wrapped(trace, result)  # deletes the trace either way
            for line in problems:
                warn(line)
            _after(spec, settings, verdict, result, prefetch, made)
    except Interrupted:
        pass  # a second interrupt: stop reporting now; a recorded event waits in the queue
    except BaseException as exc:  # the metrics path must never change the command's outcome
        warn(f"{_describe(exc)}; the command's result is unchanged")
    runner.exit_like(result)


def _prepare(
    spec: RunSpec, loaded: Loaded | None, child: runner.Child
) -> tuple[Settings, list[str], Verdict, Prefetch | None]:
    """While the child runs: the config, the decision, and the prefetch when collecting (done
    here, without a thread, when the child has ended already: nothing is left to overlap)."""
    loaded = loaded or _load_settings()
    settings = loaded.settings
    problems = list(loaded.problems)
    # After the child has started: the decision, made once.
    from send_metrics.consent.decision import decide, recorded

    verdict = decide(settings, recorded(settings, problems))
    prefetch = None
    if spec.dry_run or verdict.collecting:
        from send_metrics.run.recording import Prefetch

        ended = child.has_ended()
        prefetch = Prefetch(settings, connect=not spec.dry_run and not ended, inline=ended)
    return settings, problems, verdict, prefetch


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
    verdict: Verdict,
    result: ChildResult,
    prefetch: Prefetch | None,
    made: Breakdown | None = None,
) -> None:
    if prefetch is None:  # not collecting (a dry run always has its prefetch)
        if not verdict.asking:
            return  # declined: nothing is collected
        from send_metrics.consent import consent  # only to ask
        from send_metrics.consent.decision import decide, recorded

        if consent.is_interactive():
            decision, line = consent.ask_once(settings)
            say(consent.wrapped(line))
        else:
            # Nobody to ask here; but under make -j only one job has the terminal, and the
            # developer may have just answered there. Their answer counts for this run too.
            decision = recorded(settings, [])
        verdict = decide(settings, decision)
        if not verdict.collecting:
            return
        from send_metrics.run.recording import Prefetch

        prefetch = Prefetch(settings)
    from send_metrics.run import recording

    if spec.dry_run:
        identity_id = verdict.decision.anonymous_id if verdict.collecting else PLACEHOLDER_ID
        until = time.monotonic() + settings.deadline
        event = recording.build(spec, settings, identity_id, result, prefetch, until, made)
        import json

        if sys.stdout is not None:  # None when started with stdout closed
            try:
                sys.stdout.write(json.dumps(event, indent=2) + "\n")
                sys.stdout.flush()
            except BrokenPipeError:
                closed_pipe()  # `preview -- CMD | head -1`: the reader left
        return
    recording.record(spec, verdict, result, prefetch, made)
