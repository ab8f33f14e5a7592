"""The command line: click turns arguments into calls of plain functions, errors into lines."""

from __future__ import annotations

import sys
from typing import Any

import click

from send_metrics import __version__, config, consent, delivery, reports, wrapper
from send_metrics.config import Settings
from send_metrics.errors import ExitCode, MetricsError
from send_metrics.files import state_path
from send_metrics.output import warn

# Deferred imports: each command loads only what it uses (click itself is never loaded
# by a wrapped run, see fastpath).

_PASS_THROUGH = {"ignore_unknown_options": True, "allow_interspersed_args": False}


def _settings() -> Settings:
    loaded = config.load_settings()
    for problem in loaded.problems:
        warn(problem)
    return loaded.settings


class _Group(click.Group):
    """The one error boundary: our expected failures end as one line and a documented code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MetricsError as exc:
            warn(str(exc))
            sys.exit(exc.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="send_metrics")
def cli() -> None:
    """Honest, consented usage metrics for Makefile targets and any command.

    Nothing is collected until you say yes; `send_metrics status` shows what is set,
    `send_metrics preview -- CMD` shows exactly what would be sent.
    """


@cli.command(context_settings=_PASS_THROUGH)
@click.option("--name", help="Name recorded for the command instead of its program's basename.")
@click.option("--dry-run", is_flag=True, help="Print the event instead of recording it.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(name: str | None, dry_run: bool, command: tuple[str, ...]) -> None:
    """Run a command as if directly and record one event for it.

    Usage: send_metrics run [--name NAME] -- CMD [ARG ...]
    """
    wrapper.execute(wrapper.command_spec(_strip_dashes(command), name, dry_run))


@cli.command(context_settings=_PASS_THROUGH)
@click.option("--make", "make", metavar="PATH", help="The calling make: pass '$(MAKE)'.")
@click.option(
    "-f",
    "--makefile",
    metavar="FILE",
    help="The calling makefile: pass '$(firstword $(MAKEFILE_LIST))'.",
)
@click.option("--dry-run", is_flag=True, help="Print the event instead of recording it.")
@click.argument("target")
@click.argument("variables", nargs=-1, type=click.UNPROCESSED)
def wrap(
    make: str | None, makefile: str | None, dry_run: bool, target: str, variables: tuple[str, ...]
) -> None:
    """Run `make impl-TARGET` and record one event for TARGET (Makefile indirection)."""
    bad = [v for v in variables if "=" not in v or v.startswith("=")]
    if bad:
        raise click.UsageError(f"expected VAR=value after the target, got {bad[0]!r}")
    wrapper.execute(wrapper.make_spec(target, list(variables), make, makefile, dry_run))


@cli.command(context_settings=_PASS_THROUGH)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def preview(command: tuple[str, ...]) -> None:
    """Run CMD and print the exact event that would be sent; nothing is stored or sent."""
    wrapper.execute(wrapper.command_spec(_strip_dashes(command), None, True))


def _strip_dashes(command: tuple[str, ...]) -> list[str]:
    argv = list(command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise click.UsageError("missing the command to run (after --)")
    return argv


@cli.command()
def status() -> None:
    """Show the decision, id, files, sink, queue and environment overrides."""
    loaded = config.load_settings()
    lines = reports.status(loaded.settings, loaded.problems)
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        click.echo(f"{label + ':':<{width + 1}} {value}")


@cli.command("opt-in")
@click.option("--yes", "-y", is_flag=True, help="Agree without being asked (for scripts).")
def opt_in(yes: bool) -> None:
    """Show what is collected and record your consent."""
    settings = _settings()
    if not yes:
        if not sys.stdin.isatty():
            click.echo(consent.disclosure(settings), err=True)
            raise click.UsageError(
                "no terminal to ask on; run `send_metrics opt-in --yes` to agree to the text above"
            )
        click.echo(consent.disclosure(settings), err=True)
        if not click.confirm("Share usage metrics?", default=False, err=True):
            consent.record(settings, granted=False)
            click.echo("Not sharing; your answer is recorded.", err=True)
            return
    state = consent.record(settings, granted=True)
    click.echo(f"Thank you: usage metrics are on (anonymous id {state.anonymous_id}).")
    click.echo("`send_metrics opt-out` turns them off and deletes your id and local data.")
    if config.metrics_disabled():
        click.echo(
            "Note: DO_NOT_TRACK or SEND_METRICS_DISABLED is set here, and wins: nothing "
            "is collected while it is."
        )


@cli.command("opt-out")
def opt_out() -> None:
    """Stop collecting; delete the anonymous id, the local queue and history."""
    settings = _settings()
    _state, deleted = consent.opt_out(settings)
    click.echo(
        "Usage metrics are off; your anonymous id is deleted"
        + (" and so are your local queue and history." if deleted else ".")
    )


@cli.command()
def reset() -> None:
    """Forget the decision (and repair a broken state file); the next run asks again."""
    settings = _settings()
    consent.reset(settings)
    click.echo(
        f"Decision forgotten ({state_path(settings.app)}); the next interactive run asks again."
    )


@cli.command()
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to spend at most.")
def flush(timeout: float) -> None:
    """Send the queued events now."""
    done = delivery.flush_now(_settings(), timeout)
    if not done.shown:
        click.echo(done.reason)
    elif not done.before:
        click.echo("Nothing queued.")
    else:
        sent = done.before - done.left
        click.echo(f"Sent {sent} of {done.before} queued events to {done.shown}; {done.left} left.")
    if done.error:
        warn(done.error)
        sys.exit(ExitCode.UNDELIVERED)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of the events."""
    from send_metrics.event import schema_text

    click.echo(schema_text(), nl=False)


@cli.command()
def stats() -> None:
    """Your own local history: per command, runs, failures, median and p95 duration."""
    rows = reports.stats(_settings())
    if not rows:
        click.echo("No runs recorded yet (nothing is recorded before you opt in).")
        return
    header = ("command", "runs", "failures", "median", "p95", "last run (UTC)")
    table = [header] + [
        (
            r.command,
            str(r.runs),
            str(r.failures),
            _seconds(r.median_ms),
            _seconds(r.p95_ms),
            r.last_run[:19].replace("T", " "),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo(
            "  ".join(
                cell.ljust(w) if i in (0, len(header) - 1) else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )


def _seconds(ms: float) -> str:
    return f"{ms / 1000:.2f}s" if ms >= 1000 else f"{ms:.0f}ms"
