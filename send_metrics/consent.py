"""Consent: when to ask, what to say, and recording the developer's decision."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from send_metrics.config import Settings
from send_metrics.decision import Decision, read_decision, remove_decision, write_decision
from send_metrics.errors import ConfigError
from send_metrics.files import data_dir, state_path

# Deferred imports: every wrapped run asks this module whether to collect, after its child
# starts; asking, the disclosure and writing a decision are rare and load their own modules.


def is_interactive() -> bool:
    """A person is at a terminal: stdin and stderr are TTYs, no CI variable is set, and we are
    in the foreground (a background job that read the terminal would be stopped by SIGTTIN)."""
    from send_metrics.facts import ci_vendor
    from send_metrics.runner import in_foreground

    try:
        ttys = os.isatty(sys.stdin.fileno()) and os.isatty(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return ttys and in_foreground() and not ci_vendor()[0]


def needs_asking(decision: Decision, settings: Settings) -> bool:
    """No usable decision, or one made under an older consent version."""
    return decision.answer is None or decision.consent_version < settings.consent_version


def collecting(decision: Decision, settings: Settings) -> bool:
    """Whether this developer has said yes to the current consent version."""
    return decision.granted and not needs_asking(decision, settings)


def disclosure(settings: Settings) -> str:
    """The full text shown before asking, built from the shipped schema's field list."""
    import textwrap

    from send_metrics.event import field_groups

    intro = settings.consent_message or (
        f"{settings.app} would like to record anonymous usage metrics when you run its "
        "commands, to learn which ones are used, how long they take and how often they fail."
    )
    lines = [*textwrap.wrap(intro, 78), "", "Each run records exactly these fields:"]
    for group, fields in field_groups():
        names = ", ".join(name for name, _ in fields)
        lines.extend(
            textwrap.wrap(f"{group}: {names}", 78, initial_indent="  ", subsequent_indent="    ")
        )
    never = (
        "Never: environment variables, paths, user or host names, branch names, remote "
        "URLs, the command's output, or command arguments"
    )
    if settings.allow_args:
        never += f" (except those of: {', '.join(settings.allow_args)})"
    tail = [
        never + ".",
        "`send_metrics schema` explains every field; `send_metrics preview -- CMD` shows "
        "the exact event.",
    ]
    if settings.privacy_url:
        tail.append(f"Privacy: {settings.privacy_url}")
    tail += [
        "Change your mind any time: `send_metrics opt-out` (deletes your id and data) or "
        "`send_metrics opt-in`. DO_NOT_TRACK=1 silences send_metrics everywhere."
    ]
    for paragraph in tail:
        lines.extend(textwrap.wrap(paragraph, 78))
    return "\n".join(lines)


def ask(settings: Settings) -> bool:
    """Show the disclosure on stderr and read one answer: only `y` or `yes` grants."""
    from send_metrics.runner import Interrupted

    sys.stderr.write("\n" + disclosure(settings) + "\nShare usage metrics? [y/N] ")
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except (Interrupted, KeyboardInterrupt, OSError, ValueError):
        sys.stderr.write("\n")
        return False
    if not answer.endswith("\n"):
        sys.stderr.write("\n")
    return answer.strip().lower() in ("y", "yes")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise read-modify-write of the state among concurrent wrappers and commands."""
    import fcntl

    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path.parent / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write in {path.parent} ({exc.strerror or exc})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds")


def _current(path: Path) -> Decision:
    try:
        return read_decision(path)
    except ConfigError:
        return Decision()


def _write(settings: Settings, path: Path, granted: bool, previous: Decision) -> Decision:
    """Write a decision (the lock held); a grant keeps a still-valid id, else makes a new one."""
    from send_metrics.event import new_uuid4

    anonymous_id = ""
    if granted:
        anonymous_id = previous.anonymous_id if previous.granted else new_uuid4()
    state = Decision(
        "granted" if granted else "declined", _now(), settings.consent_version, anonymous_id
    )
    write_decision(path, state)
    return state


def record(settings: Settings, granted: bool) -> Decision:
    """Record a decision without asking (opt-in --yes, opt-out, the prompt's answer)."""
    path = state_path(settings.app)
    try:
        with _locked(path):
            return _write(settings, path, granted, _current(path))
    except OSError as exc:
        raise ConfigError(f"cannot write {path} ({exc.strerror or exc})") from None


def ask_once(settings: Settings) -> tuple[Decision, bool]:
    """Ask and record the answer, holding the lock: wrappers that end together (make -j) wait,
    then use the answer instead of asking again. Returns the state and whether we asked."""
    path = state_path(settings.app)
    try:
        with _locked(path):
            previous = _current(path)
            if not needs_asking(previous, settings):
                return previous, False
            return _write(settings, path, ask(settings), previous), True
    except OSError as exc:
        raise ConfigError(f"cannot write {path} ({exc.strerror or exc})") from None


def opt_out(settings: Settings) -> tuple[Decision, bool]:
    """Decline, forget the id, and delete the local queue and history; True if data was deleted."""
    from send_metrics import store

    state = record(settings, granted=False)
    return state, store.wipe(data_dir(settings.app))


def reset(settings: Settings) -> None:
    """Forget the decision (and repair a broken state file) so the next interactive run asks."""
    path = state_path(settings.app)
    with _locked(path):
        remove_decision(path)
