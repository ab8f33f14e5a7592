"""The life of one wrapped run: start the child, gather while it runs, ask, record, deliver."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple, NoReturn

from send_metrics import config, runner
from send_metrics.config import Settings, State
from send_metrics.errors import CommandNotFound, MetricsError

ACTIVE_VAR = "SEND_METRICS_ACTIVE"  # set for the child: a wrapped run inside is not counted twice
PLACEHOLDER_ID = "00000000-0000-4000-8000-000000000000"  # preview before any opt-in
_MAKE_NO_RUN = set("nqt")  # make's --just-print, --question and --touch: no real run happens


class RunSpec(NamedTuple):
    """What to run and how to name it in the event."""

    argv: list[str]
    command: str
    args: tuple[str, ...] = ()
    command_type: str = "command"
    dry_run: bool = False


def warn(message: str) -> None:
    """Our one line on stderr: never a traceback, never more than a line per problem."""
    try:
        sys.stderr.write(f"send_metrics: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def make_flags(makeflags: str) -> set[str]:
    """The calling make's single-letter flags without arguments ('n' under make -n).

    GNU make puts them all, without a dash, in MAKEFLAGS' first word ("ks -I/tmp -j2"); a
    first word with a dash is an option with an argument, whose letters mean nothing here.
    """
    words = makeflags.split()
    return set(words[0]) if words and not makeflags.startswith((" ", "-")) else set()


# A run to make, given a way to read the operator config: a plain command does not need it
# before its child starts, so it is read while the child runs; `wrap` needs its impl prefix.
Builder = Callable[[Callable[[], Settings]], RunSpec]


def make_spec(target: str, variables: list[str], make: str | None = None,
              makefile: str | None = None, dry_run: bool = False) -> Builder:
    """`make impl-TARGET` with the calling make's binary and makefile; VAR=value passed on."""

    def build(settings: Callable[[], Settings]) -> RunSpec:
        argv = [make or os.environ.get("MAKE") or "make", "--no-print-directory"]
        if makefile:
            argv += ["-f", makefile]
        argv += [f"{settings().impl_prefix}{target}", *variables]
        return RunSpec(argv, target, tuple(variables), "make", dry_run)

    return build


def command_spec(argv: list[str], name: str | None = None, dry_run: bool = False) -> Builder:
    """Any command; it is named by --name or its program's basename, never its path."""
    from send_metrics.event import command_name

    def build(_settings: Callable[[], Settings]) -> RunSpec:
        return RunSpec(list(argv), name or command_name(argv[0]), tuple(argv[1:]), "command",
                       dry_run)

    return build


def _nothing_to_record(spec: RunSpec) -> bool:
    """Nested in another wrapper, switched off by the user, or make is not really running."""
    if spec.dry_run:
        return False
    if os.environ.get(ACTIVE_VAR) or config.metrics_disabled():
        return True
    return spec.command_type == "make" and bool(
        make_flags(os.environ.get("MAKEFLAGS", "")) & _MAKE_NO_RUN)


def _exec_plain(argv: list[str]) -> NoReturn:
    """Become the command: used when nothing is to be recorded by this process."""
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        warn(f"{argv[0]}: command not found" if isinstance(exc, FileNotFoundError)
             else f"{argv[0]}: {exc.strerror or exc}")
        os._exit(127 if isinstance(exc, FileNotFoundError) else 126)


class _Gatherer:
    """Work done on a thread while the child runs (only once consent is known): the imports and
    connection the report needs, and the git and machine facts."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.git: Any = None
        self.machine: Any = None
        self.target: Any = None
        self.conn: Any = None
        self.thread = runner.start_thread(self._work, "send_metrics-gather")

    def _work(self) -> None:
        from send_metrics import context, event, sinks, store  # noqa: F401 - warm imports

        self.target, _error = destination(self.settings)
        self.machine = context.machine_facts()
        self.git = context.git_facts(self.settings.app)
        if self.target is not None:  # last: a hanging DNS must not cost the facts above
            conn = sinks.Connection(time.monotonic() + self.settings.deadline)
            conn.prepare(self.target.url)
            self.conn = conn

    def join(self, until: float) -> tuple[Any, Any]:
        self.thread.join(max(0.0, until - time.monotonic()))
        if self.machine is None:
            from send_metrics import context

            self.machine = context.machine_facts()
        return self.git, self.machine


def _read_state(settings: Settings, problems: list[str]) -> State:
    try:
        return config.read_state(config.state_path(settings.app))
    except MetricsError as exc:
        problems.append(f"{exc}; treated as no decision (`send_metrics reset` repairs it)")
        return State()


def execute(build: Builder) -> NoReturn:
    """Run the command as if directly, record it if the developer agreed, end as it ended."""
    loaded: list[config.Loaded] = []

    def settings_now() -> Settings:
        if not loaded:
            loaded.append(config.load_settings())
        return loaded[0].settings

    spec = build(settings_now)
    if _nothing_to_record(spec):
        _exec_plain(spec.argv)
    env = {**os.environ, ACTIVE_VAR: "1"}
    try:
        child = runner.Child(spec.argv, env)
    except CommandNotFound as exc:
        settings_now()
        for line in loaded[0].problems:
            warn(line)
        warn(str(exc))
        os._exit(exc.exit_code)
    settings = settings_now()
    problems = list(loaded[0].problems)
    state = _read_state(settings, problems)
    from send_metrics import consent

    gatherer = None
    if spec.dry_run or consent.collecting(state, settings):
        gatherer = _Gatherer(settings)
    result = child.wait()
    child.release()
    try:
        for line in problems:
            warn(line)
        _after(spec, settings, state, result, gatherer)
    except runner.Interrupted:
        pass  # a second interrupt: stop reporting now; a recorded event waits in the queue
    except MetricsError as exc:
        warn(str(exc))
    except Exception as exc:  # the metrics path must never change the command's outcome
        warn(f"internal error ({type(exc).__name__}); the command's result is unchanged")
    runner.exit_like(result)


def _after(spec: RunSpec, settings: Settings, state: State, result: runner.ChildResult,
           gatherer: _Gatherer | None) -> None:
    from send_metrics import consent

    if gatherer is None:  # not collecting (a dry run always has its gatherer)
        if not consent.needs_asking(state, settings):
            return  # declined: nothing is collected
        if consent.is_interactive():
            state, asked = consent.ask_once(settings)
        else:
            # Nobody to ask here; but under make -j only one job has the terminal, and the
            # developer may have just answered there. Their answer counts for this run too.
            state, asked = _read_state(settings, []), False
        if not consent.collecting(state, settings):
            if asked:
                sys.stderr.write(f"send_metrics: nothing recorded; `send_metrics opt-in` to "
                                 f"change your mind. Settings: {config.state_path(settings.app)}\n")
            return
        if asked:
            sys.stderr.write("send_metrics: thank you; `send_metrics opt-out` stops it any "
                             "time.\n")
        gatherer = _Gatherer(settings)
    if spec.dry_run:
        identity_id = state.anonymous_id if consent.collecting(state, settings) else PLACEHOLDER_ID
        event = _build(spec, settings, identity_id, result, gatherer,
                       time.monotonic() + settings.deadline)
        import json

        sys.stdout.write(json.dumps(event, indent=2) + "\n")
        return
    deadline = time.monotonic() + settings.deadline
    event = _build(spec, settings, state.anonymous_id, result, gatherer, deadline - 0.2)
    report(event, settings, deadline, gatherer.conn if not gatherer.thread.is_alive() else None)


def _build(spec: RunSpec, settings: Settings, anonymous_id: str, result: runner.ChildResult,
           gatherer: _Gatherer, until: float) -> dict[str, Any]:
    from send_metrics.event import Identity, build_event

    git, machine = gatherer.join(until)
    args = list(spec.args) if spec.command in settings.allow_args else None
    identity = Identity(anonymous_id, settings.app, settings.app_version, settings.consent_version)
    return build_event(identity, spec.command, args, spec.command_type, result, git,
                       machine).to_dict()


def destination(settings: Settings) -> tuple[Any, str | None]:
    """Where events go: (target, None); (None, None) for the local sink or SEND_METRICS_DEBUG;
    (None, problem) when the operator's sink settings are incomplete."""
    from send_metrics import sinks

    if settings.sink == "local" or config.env_flag("SEND_METRICS_DEBUG"):
        return None, None
    try:
        return sinks.resolve(settings), None
    except MetricsError as exc:
        return None, str(exc)


def report(event: dict[str, Any], settings: Settings, deadline: float, conn: Any = None) -> None:
    """Store the event in the history and queue, then deliver the queue until the deadline."""
    from send_metrics import store

    target, error = destination(settings)
    networked = target is not None or error is not None  # an incomplete config keeps events
    # Not closed: the process ends right after, and an abandoned sender may still be using it.
    # Waiting for a lock held by other wrappers counts against the deadline too.
    db = store.Store(store.db_path(config.data_dir(settings.app)),
                     busy_timeout=max(0.05, deadline - time.monotonic()))
    if db.notice:
        warn(db.notice)
    db.record(event, queue=networked, max_events=settings.queue_max_events,
              max_age_days=settings.queue_max_age_days)
    if config.env_flag("SEND_METRICS_DEBUG"):
        import json

        sys.stderr.write("send_metrics debug: " + json.dumps(event) + "\n")
    if target is not None:
        error = flush(db, target, deadline, conn=conn)
    if error:
        warn(f"{error}; the event is queued for a later run or `send_metrics flush`")


def flush(db: Any, target: Any, deadline: float, batch: int = 100, conn: Any = None) -> str | None:
    """Deliver queued events oldest first until done or the deadline; the last error, if any."""
    outcome: dict[str, Any] = {"error": None}
    claimed: list[str] = []  # appended by the sender thread, read here
    if db.counts().not_before > time.time():
        return "the endpoint asked to wait (Retry-After)"

    def work() -> None:
        from send_metrics import sinks

        while time.monotonic() < deadline:
            # The lease outlives this process's deadline by a little: a wrapper killed while
            # sending leaves its events to others soon after, never while it may still send.
            events = db.claim(batch, lease_s=deadline - time.monotonic() + 2.0)
            if not events:
                return
            claimed.extend(e["message_id"] for e in events)
            stop = False

            def on_result(ids: list[str], exc: Any) -> None:
                nonlocal stop
                if exc is None:
                    db.delivered(ids)
                elif exc.retry:
                    db.failed(ids, str(exc), exc.retry_after)
                    outcome["error"] = str(exc)
                    stop = True
                else:
                    db.rejected(ids, str(exc))
                    outcome["error"] = f"{exc} (event dropped)"

            try:
                sinks.deliver(target, events, deadline, on_result, conn)
            except MetricsError as exc:
                db.failed([e["message_id"] for e in events], str(exc), None)
                outcome["error"] = str(exc)
                return
            if stop:
                return

    def guarded() -> None:
        try:
            work()
        except MetricsError as exc:
            outcome["error"] = str(exc)
        except Exception as exc:
            outcome["error"] = f"delivery failed ({type(exc).__name__})"

    thread = runner.start_thread(guarded, "send_metrics-send")
    thread.join(max(0.0, deadline - time.monotonic()))
    if thread.is_alive():
        error = "the endpoint did not answer within report.deadline"
        # The sender is abandoned mid-request; free its claims so the next run or flush can
        # send them at once. A separate connection: the sender may be inside a transaction.
        from send_metrics import store

        try:
            other = store.Store(db.path, busy_timeout=0.2)
            other.failed(claimed[:], error, None)
            other.close()
        except MetricsError:
            pass  # the claims' short lease runs out on its own
        return error
    return outcome["error"]
