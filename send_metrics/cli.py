"""The command line: click turns arguments into calls of plain functions, errors into lines."""

from __future__ import annotations

import os
import sys
import textwrap
from typing import TYPE_CHECKING, Any

import click

from send_metrics import __version__
from send_metrics.consent import consent
from send_metrics.delivery import delivery
from send_metrics.errors import ExitCode, MetricsError, NoMatch
from send_metrics.local import reports
from send_metrics.output import closed_pipe, no_output, say, warn
from send_metrics.run import wrapper
from send_metrics.run.spec import command_spec, make_spec
from send_metrics.settings import config
from send_metrics.settings.config import Settings
from send_metrics.settings.files import state_path

# Deferred imports: each command loads only what it uses (click itself is never loaded
# by a wrapped run, see fastpath).
if TYPE_CHECKING:
    from send_metrics.local import stats_text

# The command's own options follow it untouched; an unknown option of ours is a usage error.
_PASS_THROUGH = {"allow_interspersed_args": False}
MAX_TIMEOUT = 86400  # flush --timeout: a day is enough, and larger waits overflow thread joins


def _value(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An option's value is never the next option or `--` (`run --name -- true` is a typo)."""
    if value is not None and value.startswith("-"):
        name = param.opts[-1] if param.opts else param.name
        raise click.BadOptionUsage(
            str(param.name), f"Option '{name}' needs a value, not {value!r}.", ctx
        )
    return value


def _timeout(ctx: click.Context, param: click.Parameter, value: float) -> float:
    """Seconds above 0, at most a day, or inf (no limit): nan, 0 and negatives are usage errors."""
    import math

    if not (value == math.inf or 0 < value <= MAX_TIMEOUT):  # nan fails every comparison
        raise click.BadParameter(
            f"must be above 0 and at most {MAX_TIMEOUT} seconds, or inf", ctx, param
        )
    return value


def _settings() -> Settings:
    loaded = config.load_settings()
    for problem in loaded.problems:
        warn(problem)
    return loaded.settings


_ON = "To turn usage metrics on: `send_metrics opt-in`."
_OFF = "To turn usage metrics off: `send_metrics opt-out` (deletes your id and data)."
_HINTS = {
    "enable": _ON,
    "on": _ON,
    "optin": _ON,
    "opt_in": _ON,
    "consent": _ON,
    "disable": _OFF,
    "off": _OFF,
    "optout": _OFF,
    "opt_out": _OFF,
    "telemetry": "What is collected and where it goes: `send_metrics status`; "
    "`send_metrics opt-in` or `opt-out` change it.",
}


# The commands whose whole work is what they print: with standard output closed, an error.
_PRINTS = {"status", "stats", "schema", "trace", "makefile", "completion", "report"}


def _writing_stdout(exc: OSError) -> bool:
    """Whether `exc` came from writing our standard output (a full disk, /dev/full): raised by
    click.echo or a `sys.stdout` write. Other files of ours fail as MetricsError."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    last = frames[-1] if frames else None
    if last is None:
        return False
    return (last.name == "echo" and "click" in last.filename) or "stdout" in (last.line or "")


class _Group(click.Group):
    """The one error boundary: our expected failures end as one line and a documented code."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:  # --help and --version print here
            return super().make_context(info_name, args, parent, **extra)
        except BrokenPipeError:
            closed_pipe()

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """What other tools' users type (`disable`, `off`, `telemetry`...) gets our command's
        name in the error, never a guess that runs: opting out deletes data."""
        name = args[0] if args else ""
        if sys.stdout is None and name in _PRINTS:
            no_output("standard output is closed")  # click would print nothing, and exit 0
        hint = _HINTS.get(name.lower()) if name not in self.commands else None
        if hint:  # wrapped at word boundaries after click's "Error: "
            text = consent.wrapped(f"Error: No such command {name!r}. {hint}")
            ctx.fail(text.rstrip("\n").removeprefix("Error: "))
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MetricsError as exc:
            _tell(str(exc))
            sys.exit(exc.exit_code)
        except BrokenPipeError:
            closed_pipe()  # click itself would exit 1
        except OSError as exc:
            if not _writing_stdout(exc):
                raise
            no_output(exc.strerror or str(exc))
        except (KeyboardInterrupt, click.exceptions.Abort):
            say("\n")  # Ctrl-C (or end of input) at a question or in `flush`: no "Aborted!"
            sys.exit(ExitCode.INTERRUPTED)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="send_metrics")
def cli() -> None:
    """Honest, consented usage metrics for Makefile targets and any command.

    Nothing is collected until you say yes; `send_metrics status` shows what is set,
    `send_metrics preview -- CMD` shows exactly what would be sent.

    \b
    Example: send_metrics run -- make test
    """


@cli.command(
    context_settings=_PASS_THROUGH, short_help="Run any command and record one event for it."
)
@click.option(
    "--name",
    metavar="NAME",
    callback=_value,
    help="Name recorded for the command instead of its program's basename.",
)
@click.option("--dry-run", is_flag=True, help="Print the event instead of recording it.")
@click.argument(
    "command", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- CMD [ARG]..."
)
def run(name: str | None, dry_run: bool, command: tuple[str, ...]) -> None:
    """Run a command as if directly and record one event for it (`make GOALS`: named by its
    goals).

    \b
    Example: send_metrics run -- make test
    """
    wrapper.execute(command_spec(_strip_dashes(command), name, dry_run))


@cli.command(
    context_settings=_PASS_THROUGH,
    short_help="Run `make impl-TARGET`; record one event for TARGET.",
)
@click.option(
    "--make", "make", metavar="PATH", callback=_value, help="The calling make: pass '$(MAKE)'."
)
@click.option(
    "-f",
    "--makefile",
    metavar="FILE",
    callback=_value,
    help="The calling makefile: pass '$(firstword $(MAKEFILE_LIST))'.",
)
@click.option("--dry-run", is_flag=True, help="Print the event instead of recording it.")
@click.argument("target")
@click.argument("variables", nargs=-1, type=click.UNPROCESSED)
def wrap(
    make: str | None, makefile: str | None, dry_run: bool, target: str, variables: tuple[str, ...]
) -> None:
    """Run `make impl-TARGET` and record one event for TARGET (Makefile indirection).

    \b
    Example (in a Makefile): dev.%: ; +@send_metrics wrap --make='$(MAKE)' $@
    """
    bad = [v for v in variables if "=" not in v or v.startswith("=")]
    if bad:
        raise click.UsageError(f"expected VAR=value after the target, got {bad[0]!r}")
    wrapper.execute(make_spec(target, list(variables), make, makefile, dry_run))


@cli.command(
    context_settings=_PASS_THROUGH, short_help="Run CMD and print the event it would make."
)
@click.argument(
    "command", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- CMD [ARG]..."
)
def preview(command: tuple[str, ...]) -> None:
    """Run CMD and print the exact event that would be sent; nothing is stored or sent.

    \b
    Example: send_metrics preview -- make test
    """
    wrapper.execute(command_spec(_strip_dashes(command), None, True))


def _strip_dashes(command: tuple[str, ...]) -> list[str]:
    argv = list(command)  # click has taken the `--` that ends our options
    if not argv:
        raise click.UsageError("missing the command to run (after --)")
    return argv


@cli.command(short_help="Show the decision, files, sink, queue and overrides.")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts: one key per line.")
def status(as_json: bool) -> None:
    """Show the decision, id, files, sink, queue and environment overrides.

    \b
    Example: send_metrics status --json
    """
    loaded = config.load_settings()
    lines = reports.status(loaded.settings, loaded.problems)
    if as_json:
        import json

        click.echo(json.dumps(reports.status_json(loaded.settings, lines), indent=2))
        return
    width = max(len(label) for label, _ in lines)
    # Wrapped at word boundaries on a terminal; whole lines for scripts and pipes.
    columns = _width() if sys.stdout.isatty() else 0
    for label, value in lines:
        head = f"{label + ':':<{width + 1}} "
        if columns - len(head) < 20:
            click.echo(head + value)
            continue
        wrapped = textwrap.wrap(
            value,
            columns - 1,
            initial_indent=head,
            subsequent_indent=" " * len(head),
            break_long_words=False,
            break_on_hyphens=False,
        )
        click.echo("\n".join(wrapped) if wrapped else head.rstrip())


@cli.command("opt-in", short_help="Show what is collected and ask for your yes.")
@click.option("--yes", "-y", is_flag=True, help="Agree without being asked (for scripts).")
@click.option("--details", is_flag=True, help="Show every field collected before asking.")
def opt_in(yes: bool, details: bool) -> None:
    """Show what is collected and ask for your consent (once: a yes stands).

    \b
    Example: send_metrics opt-in --details
    """
    settings = _settings()
    if config.metrics_disabled():  # the off switch wins: no question, nothing written
        click.echo(
            f"{config.disabled_by()} is set here, and wins: nothing recorded (unset it first)."
        )
        return
    state = consent.current(settings)
    if consent.collecting(state, settings):  # asking again could only lose what it recorded
        if details:
            click.echo(consent.disclosure(settings))
        click.echo(consent.already_on(state))
        return
    if not yes:
        if not sys.stdin.isatty():
            click.echo(consent.disclosure(settings), err=not details)
            raise click.UsageError(
                "no terminal to ask on; run `send_metrics opt-in --yes` to agree to the text above"
            )
        state, line = consent.ask_once(settings, details=details, command=True)
        if not consent.collecting(state, settings):
            told = line.removeprefix("send_metrics: ").rstrip("\n")
            click.echo(click.wrap_text(told[:1].upper() + told[1:], 79), err=True)
            return
    else:
        state = consent.record(settings, granted=True)
    click.echo(f"Thank you: usage metrics are on (anonymous id {state.anonymous_id}).")
    click.echo("`send_metrics opt-out` turns them off and deletes your id and local data.")


def _nothing_stored(settings: Settings) -> bool:
    """Under an off switch, with no decision and no data here: nothing to delete, and nothing
    (not even a lock file) is written to find that out."""
    from send_metrics.event import store
    from send_metrics.settings.files import data_dir

    return (
        config.metrics_disabled()
        and not os.path.lexists(state_path(settings.app))
        and not store.copies(data_dir(settings.app))
    )


@cli.command("opt-out", short_help="Stop; delete your id, local queue and history.")
@click.option(
    "--erase", is_flag=True, help="Also ask the operator's collector to delete your events."
)
def opt_out(erase: bool) -> None:
    """Stop collecting; delete the anonymous id, the local queue and history.

    \b
    Example: send_metrics opt-out --erase
    """
    settings = _settings()
    before = consent.current(settings).anonymous_id if erase else ""
    if _nothing_stored(settings):
        click.echo("Usage metrics are off; nothing is stored here to delete.")
        return
    _state, deleted = consent.opt_out(settings)
    click.echo(
        "Usage metrics are off; your anonymous id is deleted"
        + (" and so are your local queue and history." if deleted else ".")
    )
    if erase:
        from send_metrics.delivery import erasure

        done = erasure.erase(settings, before)
        click.echo(done.line)
        if done.deleted is None and before:
            click.echo(f"Your anonymous id was {before} (give it to the operator).")


@cli.command(short_help="Forget the decision; the next run asks again.")
def reset() -> None:
    """Forget the decision (and repair a broken state file); the next run asks again.

    \b
    Example: send_metrics reset
    """
    settings = _settings()
    if not _nothing_stored(settings) and consent.reset(settings):
        click.echo(
            f"Decision forgotten ({state_path(settings.app)}); the next interactive run asks again."
        )
    else:
        click.echo("There was no decision to forget; the next interactive run asks.")


@cli.command()
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    callback=_timeout,
    help="Seconds to spend at most (above 0, at most a day, or inf).",
)
def flush(timeout: float) -> None:
    """Send the queued events now; exit 4 while any stay queued.

    \b
    Example: send_metrics flush --timeout 60
    """
    settings = _settings()
    done = delivery.flush_now(settings, timeout)
    if not done.shown:
        click.echo(done.reason)
    elif not done.before:
        click.echo("Nothing queued.")
    else:
        refused = f" ({done.refused} of them refused by the collector)" if done.refused else ""
        click.echo(
            f"Sent {done.accepted} of {done.before} queued events to {done.shown}{refused}; "
            f"{done.dropped} dropped, {done.left} left."
        )
    left = done.left if done.shown else reports.queued(settings)
    why = done.error or done.reason.rstrip(".") or f"--timeout {timeout:g} s ran out"
    if done.error or left:
        warn(f"{left} events stay queued: {why}" if left else why)
        sys.exit(ExitCode.UNDELIVERED)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of the events.

    \b
    Example: send_metrics schema > event.schema.json
    """
    from send_metrics.event.event import schema_text

    click.echo(schema_text(), nl=False)


@cli.command(short_help="Your own history: runs, failures, durations, trends.")
@click.option(
    "--since",
    metavar="7d|30d|DATE",
    help="Only runs started at or after this: 7d, 30d, 12h, 2w ago, or a date (00:00 UTC).",
)
@click.option("--command", "command", metavar="NAME", help="One command in detail.")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts (documented keys).")
@click.option("--csv", "as_csv", is_flag=True, help="CSV for scripts (documented columns).")
@click.option("--html", "html_file", metavar="FILE", help="Write a page of charts ('-': stdout).")
def stats(
    since: str | None, command: str | None, as_json: bool, as_csv: bool, html_file: str | None
) -> None:
    """Your own local history: per command, runs, failures, durations, time spent, trends.

    \b
    Example: send_metrics stats --since 7d --html report.html
    """
    from send_metrics.local import stats as numbers
    from send_metrics.local import stats_text

    if as_json + as_csv + bool(html_file) > 1:
        raise click.UsageError("choose one of --json, --csv and --html")
    try:
        window = numbers.window(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--since'") from None
    settings = _settings()
    runs = numbers.load_runs(settings)
    if html_file:
        from send_metrics.local import report_html

        report = numbers.report(
            [r for r in runs if r.command == command] if command else runs, window
        )
        traced = report_html.most_informative(numbers.traced_events(settings, window, command))
        slowest = report_html.slowest_command(report)
        found = None
        if slowest is not None and traced is None:
            found = numbers.detail(report, slowest, numbers.command_events(settings, slowest))
        report_html.write(html_file, report_html.page(report, found, settings.app, traced))
        if html_file != "-":
            click.echo(f"Wrote {html_file} ({len(report.runs)} runs).")
        return
    report = numbers.report(runs, window)
    if command is None:
        if as_json:
            click.echo(stats_text.report_json(report))
        elif as_csv:
            click.echo(stats_text.report_csv(report), nl=False)
        else:
            for line in stats_text.table(report, _style(), len(runs)):
                click.echo(line)
            if not runs:
                _echo_wrapped(reports.first_steps(settings, "runs"))
        return
    found = numbers.detail(report, command, numbers.command_events(settings, command))
    if as_json:
        click.echo(stats_text.detail_json(found, command, window))
    elif as_csv:
        click.echo(stats_text.runs_csv(found.runs), nl=False)
    elif found.stats is not None:
        for line in stats_text.detail_text(found, command, window, _style()):
            click.echo(line)
    if found.stats is None:
        known = sorted({r.command for r in runs})
        since = "" if window.since is None else f" since {stats_text.when(window.since)} UTC"
        hint = (
            f"{len(runs)} runs of other commands are recorded (`send_metrics stats`)."
            if runs
            else reports.first_steps(settings, "runs")
        )
        raise NoMatch(numbers.no_match(f"no runs recorded{since} of", command, known, hint))


def _style() -> stats_text.Style:
    """The terminal's width (COLUMNS wins), colour only on a terminal and never with NO_COLOR."""
    import shutil

    from send_metrics.local.stats_text import Style

    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "▁█↑…".encode(encoding)
        unicode = True
    except (LookupError, UnicodeEncodeError):
        unicode = False
    color = (
        sys.stdout.isatty()
        and not os.environ.get("NO_COLOR")
        and os.environ.get("TERM", "") != "dumb"
    )
    return Style(max(20, shutil.get_terminal_size().columns), color, unicode)


@cli.command(short_help="Print the snippet for the `-include send_metrics.mk` line.")
@click.option("--path", "show_path", is_flag=True, help="Print the shipped file's path instead.")
def makefile(show_path: bool) -> None:
    """Print the snippet that records every target of a Makefile with one include line: save
    it next to your Makefile and add `-include send_metrics.mk` as its last line.

    \b
    Example: send_metrics makefile > send_metrics.mk
    """
    from send_metrics.make import snippet

    if show_path:
        click.echo(str(snippet.snippet_path()))
        return
    settings = _settings()
    click.echo(snippet.snippet_text(settings.app), nl=False)
    # The next step, on stderr: standard output is the snippet, redirected into a file.
    step = "next: `-include send_metrics.mk` as the Makefile's last line"
    if not consent.collecting(consent.current(settings), settings):
        step += "; make never asks, so say yes once: `send_metrics opt-in`"
    _tell(step)


@cli.command(short_help="Show where the time went in the last make run.")
@click.argument("target", required=False)
@click.option("--chrome", metavar="FILE", help="Write Chrome trace-event JSON (for Perfetto).")
def trace(target: str | None, chrome: str | None) -> None:
    """Show where the time went in the last recorded make run (of TARGET).

    \b
    Example: send_metrics trace dev.provision --chrome trace.json
    """
    import json

    from send_metrics.errors import ConfigError
    from send_metrics.event import store
    from send_metrics.local import stats as numbers
    from send_metrics.make import view
    from send_metrics.settings.files import data_dir

    settings = _settings()
    path = store.db_path(data_dir(settings.app))
    events = []
    if os.path.exists(path):
        db = store.Store(path)
        try:
            events = db.recent_events(2000)
        finally:
            db.close()
    event = view.last_event(events, target)
    if event is None:
        if target:
            known = view.goals(events)
            hint = (
                reports.first_steps(settings, "make")
                if not known
                else "Recorded goals: "
                + (", ".join(known[:5]) + (", ..." if len(known) > 5 else "") + ".")
            )
            raise NoMatch(numbers.no_match("no recorded make run of", target, known, hint))
        click.echo("No make run with a breakdown recorded yet.")
        _echo_wrapped(reports.first_steps(settings, "make"))
        return
    if chrome:
        try:
            with open(chrome, "w", encoding="utf-8") as out:
                json.dump(view.chrome_trace(event), out, indent=1)
        except OSError as exc:
            raise ConfigError(f"cannot write {chrome} ({exc.strerror or exc})") from None
        click.echo(f"Wrote {chrome}: open it in https://ui.perfetto.dev or chrome://tracing.")
        return
    click.echo(view.render(event, _width()))


def _tell(message: str) -> None:
    """`send_metrics: message` on stderr: one line for scripts, wrapped at word boundaries on
    a terminal (never cut mid-word by it)."""
    try:
        columns = os.get_terminal_size(sys.stderr.fileno()).columns  # stdout may be a file
    except (OSError, ValueError):
        warn(message)
        return
    text = textwrap.fill(
        f"send_metrics: {message}",
        max(40, columns - 1),
        subsequent_indent="  ",
        break_long_words=False,
        break_on_hyphens=False,
    )
    say(text + "\n")


def _echo_wrapped(text: str) -> None:
    """A sentence on standard output, wrapped at word boundaries to fit the terminal."""
    click.echo(click.wrap_text(text, min(_width(), 100) - 1, preserve_paragraphs=True))


def _width() -> int:
    """The terminal's width (100 when not a terminal), for the trace's timeline."""
    import shutil

    return shutil.get_terminal_size((100, 24)).columns


@cli.command(short_help="The operator's receiver: every sink's events into one store.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=4318, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--data",
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="Folder of the embedded store (default: send_metrics-collector in your data folder).",
)
@click.option(
    "--write-key",
    "keys",
    multiple=True,
    metavar="KEY",
    envvar="SEND_METRICS_WRITE_KEYS",
    help="A key senders must present (Basic user or Bearer); repeat for more. "
    "SEND_METRICS_WRITE_KEYS (space-separated) keeps them out of `ps`.",
)
@click.option("--retention-days", type=click.IntRange(min=1), help="Delete events older than this.")
@click.option(
    "--clickhouse",
    metavar="URL",
    envvar="SEND_METRICS_CLICKHOUSE_URL",
    help="Store in ClickHouse instead: http(s)://user:password@host:port/database. "
    "SEND_METRICS_CLICKHOUSE_URL keeps the password out of `ps`.",
)
@click.option(
    "--rate",
    default=20000.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Events per second per key before 429.",
)
def collect(
    host: str,
    port: int,
    data: str | None,
    keys: tuple[str, ...],
    retention_days: int | None,
    clickhouse: str | None,
    rate: float,
) -> None:
    """The operator's receiver: Segment, OTLP/HTTP and http-sink events into one store.

    \b
    Example: send_metrics collect --port 4318 --write-key "$KEY" --retention-days 365
    """
    from pathlib import Path

    try:
        from send_metrics.operator import collect as receiver
        from send_metrics.operator.store import default_data_dir
    except ImportError as exc:
        raise click.ClickException(
            f"collect needs the collector extra ({exc.name} is missing): "
            "pip install 'send-metrics[collector]'"
        ) from None
    options = receiver.Options(
        host, port, Path(data) if data else default_data_dir(), keys, retention_days,
        clickhouse or "", rate,
    )  # fmt: skip
    receiver.serve(options, click.echo)


@cli.command(short_help="The team's report over the collected events.")
@click.option(
    "--data",
    "data",
    metavar="DIR",
    help="The collector's data folder (default: the one `collect` uses by default).",
)
@click.option(
    "--clickhouse",
    metavar="URL",
    envvar="SEND_METRICS_CLICKHOUSE_URL",
    help="Read ClickHouse instead: http(s)://user:password@host:port/database "
    "(or SEND_METRICS_CLICKHOUSE_URL, out of `ps`; --data wins over it).",
)
@click.option(
    "--table",
    default="send_metrics_events",
    show_default=True,
    help="With --clickhouse: our table, or the OpenTelemetry exporter's (otel_logs).",
)
@click.option(
    "--since",
    metavar="DATE|4w",
    help="Start of the period, rounded down to the Monday of its ISO week (default: --weeks back).",
)
@click.option("--weeks", default=12, show_default=True, type=click.IntRange(1, 520))
@click.option(
    "--idle-weeks",
    default=4,
    show_default=True,
    type=click.IntRange(1, 520),
    help="List the commands nobody ran in the last N weeks.",
)
@click.option(
    "--min-developers",
    default=5,
    show_default=True,
    type=click.IntRange(2, 1000),
    help="Suppress every number drawn from fewer developers.",
)
@click.option(
    "--regression",
    default=20.0,
    show_default=True,
    type=click.FloatRange(0, 10_000),
    help="Flag a p50 up by more than this percentage on the week before...",
)
@click.option(
    "--regression-runs",
    default=10,
    show_default=True,
    type=click.IntRange(1),
    help="...with at least this many runs in both weeks.",
)
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts (documented keys).")
@click.option("--csv", "as_csv", is_flag=True, help="CSV for scripts (documented columns).")
@click.option("--html", "html_file", metavar="FILE", help="Write a page of charts ('-': stdout).")
def report(
    data: str | None,
    clickhouse: str | None,
    table: str,
    since: str | None,
    weeks: int,
    idle_weeks: int,
    min_developers: int,
    regression: float,
    regression_runs: int,
    as_json: bool,
    as_csv: bool,
    html_file: str | None,
) -> None:
    """The team's numbers per ISO week, from the collector's store or ClickHouse; numbers drawn
    from fewer than --min-developers developers are suppressed.

    \b
    Example: send_metrics report --data /srv/metrics --html team.html
    """
    from datetime import UTC, datetime

    from send_metrics.local.stats import parse_since
    from send_metrics.operator import runreport

    if as_json + as_csv + bool(html_file) > 1:
        raise click.UsageError("choose one of --json, --csv and --html")
    if data and clickhouse:
        source = click.get_current_context().get_parameter_source("clickhouse")
        if source is not click.core.ParameterSource.ENVIRONMENT:
            raise click.UsageError("give one of --data DIR and --clickhouse URL")
        clickhouse = None  # --data given: the URL in the environment is for other runs
    now = datetime.now(UTC)
    try:
        start = parse_since(since, now) if since is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--since'") from None
    fmt = "json" if as_json else "csv" if as_csv else "html" if html_file else "text"
    for line in runreport.run(
        data, clickhouse, table, fmt, html_file,
        now=now, since=start, weeks=weeks, idle_weeks=idle_weeks,
        min_developers=min_developers, regression=regression / 100,
        regression_runs=regression_runs,
    ):  # fmt: skip
        click.echo(line)


@cli.command(short_help="Print the shell completion script (bash, zsh or fish).")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the completion script for SHELL (click's completion): evaluate it at start-up.

    \b
    Example (in ~/.bashrc): eval "$(send_metrics completion bash)"
    """
    from click.shell_completion import get_completion_class

    found = get_completion_class(shell)
    if found is None:  # every choice has a class; kept for the type checker
        raise click.UsageError(f"no completion for {shell}")
    click.echo(found(cli, {}, "send_metrics", "_SEND_METRICS_COMPLETE").source())
