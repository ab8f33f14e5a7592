"""Consent: when to ask, what to say, what a yes covers, and recording the developer's decision.

A yes covers the disclosure it answered (its `Scope`): a run whose disclosure would collect
more or send elsewhere collects nothing until a new yes; a narrower one needs no question.
The state lock is never held while a person thinks: the answer is recorded under the lock
afterwards, and a no (ours or one recorded meanwhile) always wins over a yes.
"""

from __future__ import annotations

import os
import sys

from send_metrics.consent.decision import (
    Decision,
    Scope,
    gap,
    remove_decision,
    where,
    write_decision,
)
from send_metrics.consent.decision import collecting as collecting
from send_metrics.consent.decision import needs_asking as needs_asking
from send_metrics.consent.decision import scope as scope
from send_metrics.errors import ConfigError, MetricsError
from send_metrics.settings.config import Settings
from send_metrics.settings.files import data_dir, state_path

# Deferred imports: a run loads this module only to ask (its decision is made by `decision`);
# the disclosure, the question and writing a decision load their own modules.

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def is_interactive() -> bool:
    """A person is at a terminal and sees what we write: stdin, stdout and stderr are TTYs
    (`run -- seq 300 | less` must not ask inside the pager), no CI variable is set, and we are
    in the foreground (a background job that read the terminal would be stopped by SIGTTIN)."""
    try:
        if not all(os.isatty(f.fileno()) for f in (sys.stdin, sys.stdout, sys.stderr)):
            return False
    except (OSError, ValueError, AttributeError):
        return False
    from send_metrics.child import in_foreground
    from send_metrics.facts.facts import ci_vendor

    return in_foreground() and not ci_vendor()[0]


def why_not(decision: Decision, settings: Settings) -> str:
    """Why nothing is collected under this decision, in a few words; empty when collecting."""
    if decision.answer is None:
        return "no yes recorded (`send_metrics opt-in`)"
    if not decision.granted:
        return "you declined (`send_metrics opt-in` to change your mind)"
    missing = gap(decision.scope, scope(settings))
    if missing:
        return f"{missing}; your yes does not cover that (a new yes is needed)"
    return ""


def why_not_sending(settings: Settings) -> str:
    """`why_not` for the recorded decision (an unreadable one is no decision)."""
    return why_not(current(settings), settings)


def question(settings: Settings) -> str:
    """The question itself; with the local sink nothing is "shared"."""
    if settings.sink == "local":
        return "Keep usage metrics on this machine?"
    return "Share usage metrics?"


# The question in plain words, per group of the schema (`x-group`); a group without words here
# (a new one) is shown by its field names, so the short text never promises less than the list.
_PLAIN = {
    "identity": "a random id",
    "run": "command name, duration, outcome, CPU time, memory",
    "make": "make target names and times",
    "git": "git state (no branch names)",
    "environment": "OS, hardware, CI",
}
WIDTH = 79  # our lines, so that nothing wraps in an 80-column terminal
SCREEN = 12  # the question's lines at most: the blank line before and its own line included


def _lines(text: str, most: int = 0) -> list[str]:
    """`text` wrapped at WIDTH; a `command` in backquotes and a URL are never split. Cut to
    `most` lines (0: all), the cut marked with "..."."""
    import textwrap

    parts = text.split("`")
    glued = "`".join(p.replace(" ", "\0") if i % 2 else p for i, p in enumerate(parts))
    wrapper = textwrap.TextWrapper(WIDTH, break_long_words=False, break_on_hyphens=False)
    if most:
        wrapper.max_lines, wrapper.placeholder = most, " ..."
    return [line.replace("\0", " ") for line in wrapper.wrap(glued)]


def wrapped(message: str) -> str:
    """A message of ours (a line or "") wrapped at word boundaries for an 80-column terminal;
    a path, a URL or a `command` is never split."""
    return "".join(line + "\n" for line in _lines(message.rstrip("\n")))


def _intro(settings: Settings, covered: Scope, purpose: bool = True) -> str:
    """Who asks, and where the events go (`purpose`: and why, which a short screen drops)."""
    if settings.consent_message and purpose:
        return settings.consent_message
    if covered.sink == "local":
        return (
            f"{settings.app} would like to keep usage metrics of the commands you run on this "
            "machine, for your own `send_metrics stats`; nothing is sent anywhere."
        )
    text = f"{settings.app} would like to send usage metrics of the commands you run to "
    if not purpose:
        return text + f"{where(covered)}."
    return text + (
        f"{where(covered)}, to learn which are used, how long they take and how often they fail."
    )


def _never(covered: Scope, short: bool = False) -> str:
    text = "arguments"
    if short and len(covered.allow_args) > 3:
        text += f" (except those of {len(covered.allow_args)} commands the operator chose)"
    elif covered.allow_args:
        text += f" (except those of: {', '.join(covered.allow_args)})"
    return f"Never: {text}, paths, output, environment, user, host or branch names."


def _kept(settings: Settings, covered: Scope) -> str:
    if covered.sink == "local":
        return "Kept: the newest 10,000 runs, until you opt out."
    return f"Retention: {settings.retention or 'not stated'}."


def _privacy(settings: Settings) -> str:
    return f"Privacy: {settings.privacy_url}" if settings.privacy_url else ""


def _shorter(text: str, then: list[str] | None = None) -> list[list[str]]:
    """`text`'s lines, then shorter and shorter cuts of it (one line at least), each followed
    by the lines of `then` (text that is never cut)."""
    whole = _lines(text)
    rest = [line for part in then or [] if part for line in _lines(part)]
    return [whole + rest] + [_lines(text, most) + rest for most in range(len(whole) - 1, 0, -1)]


def summary(settings: Settings, why: str = "") -> str:
    """The text above the question: with it, at most SCREEN lines of WIDTH. Who asks, what is
    collected in plain groups, where it goes, how long it is kept, how to say no or change
    one's mind, and where the full list is. A yes covers the full list (`disclosure`), which
    this names group by group. To fit, the operator's message (or the reason for asking
    again) is cut first, then the retention, then the groups; the destination and the privacy
    URL never are: when they alone do not fit, the question takes more lines."""
    from send_metrics.event.event import field_groups

    covered = scope(settings)
    groups = []
    for group, fields in field_groups():
        names = [name for name, _ in fields if name in covered.fields]
        if names:
            groups.append(_PLAIN.get(group) or ", ".join(names))
    if "git_remote_hash" in covered.fields:
        groups.append("a guessable hash of the origin URL")
    never = _never(covered, short=True)
    each = "Each run: " + "; ".join(groups) + "."
    kept, privacy = _kept(settings, covered), _privacy(settings)
    asking = f"Asking again: {why}. " if why else ""
    if settings.consent_message:  # the operator's words: where the events go follows them
        intro = _shorter(asking + settings.consent_message, [f"Where: {where(covered)}."])
    else:  # ours names the destination: cut to it, never into it
        short = _intro(settings, covered, purpose=False)
        intro = [_lines(asking + _intro(settings, covered)), *_shorter(asking + short)[:1]]
        intro += [cut + _lines(short) for cut in _shorter(asking)[1:]] if asking else []
    pieces = [
        intro,
        [_lines(f"{kept} {privacy}"), *_shorter(kept, [privacy])[1:]],
        [_lines(f"{each} {never}"), *_shorter(each, [never])[1:]],
    ]
    tail = _lines("Fields: `send_metrics opt-in --details`; example: `send_metrics preview -- CMD`")
    tail += _lines("Change your mind: `send_metrics opt-out` (deletes your data); DO_NOT_TRACK=1.")
    chosen = [0] * len(pieces)

    def rows(lines: list[str]) -> int:  # a URL longer than a line takes more than one row
        return sum(1 + max(0, len(line) - 1) // (WIDTH + 1) for line in lines)

    for at, options in enumerate(pieces):  # shorten the first piece, then the next, ...
        while (
            sum(rows(piece[i]) for piece, i in zip(pieces, chosen, strict=True)) + len(tail)
            > SCREEN - 2
            and chosen[at] < len(options) - 1
        ):
            chosen[at] += 1
    intro_lines, kept_lines, each_lines = (p[i] for p, i in zip(pieces, chosen, strict=True))
    return "\n".join(intro_lines + each_lines + kept_lines + tail)


def disclosure(settings: Settings, why: str = "") -> str:
    """The full text (`opt-in --details`): every field collected, built from the shipped
    schema's field list, and the destination; `why` says what changed since an earlier yes."""
    from send_metrics.event.event import field_groups

    covered = scope(settings)
    lines = [*_lines(f"Asking again: {why}."), ""] if why else []
    lines += [*_lines(_intro(settings, covered)), "", "Each run records exactly these fields:"]
    import textwrap

    only = ", ".join(covered.allow_args) or "none is allow-listed, so always null"
    for group, fields in field_groups():
        names = ", ".join(
            f"{name} (only for the commands the operator allow-listed: {only})"
            if name == "command_args"
            else name
            for name, _ in fields
            if name in covered.fields
        )
        lines.extend(
            textwrap.wrap(f"{group}: {names}", WIDTH, initial_indent="  ", subsequent_indent="    ")
        )
    tail = [_never(covered)]
    if settings.git_remote_hash:
        tail.append(
            "git_remote_hash is a salted hash of the repository's origin URL: pseudonymous, "
            "and anyone who can guess the URL (any public repository) can confirm it."
        )
    else:
        tail.append("git_remote_hash is not collected (always null): it is off in this setup.")
    tail += [
        f"Where the events go: {where(covered)}.",
        " ".join(filter(None, [_kept(settings, covered), _privacy(settings)])),
        "`send_metrics schema` explains every field; `send_metrics preview -- CMD` shows "
        "the exact event.",
        "Change your mind any time: `send_metrics opt-out` (deletes your id and data) or "
        "`send_metrics opt-in`. DO_NOT_TRACK=1 turns send_metrics off everywhere.",
    ]
    for paragraph in tail:
        lines.extend(_lines(paragraph))
    return "\n".join(lines)


def _pending_keys(fd: int) -> int:
    """Bytes typed at the terminal and not read yet, half-typed lines included: canonical mode
    counts only whole lines, so the count is taken with ICANON off for an instant."""
    import fcntl
    import struct
    import termios

    old = termios.tcgetattr(fd)
    raw = [*old[:6], list(old[6])]
    raw[3] &= ~termios.ICANON
    raw[6][termios.VMIN], raw[6][termios.VTIME] = 0, 0
    termios.tcsetattr(fd, termios.TCSANOW, raw)
    try:
        count: int = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, old)
    return count


def ask(
    settings: Settings, why: str = "", details: bool = False, command: bool = False
) -> str | None:
    """Show the question (the full list with `details`) on stderr and read one answer: "yes"
    (`y`, `yes`), "no" (an explicit `n`, `no`) or "" (anything else, an empty line, end of
    input, Ctrl-C: not a yes, and never a reason to delete what an earlier yes recorded).
    None when not asked (keys typed while the command ran are waiting: they belong to the
    shell), or when a hangup or a kill ended the wait. `command` (`opt-in`): keys typed ahead
    are dropped rather than waited on, and Ctrl-C stops the command (KeyboardInterrupt)."""
    import termios

    from send_metrics.child import Interrupted
    from send_metrics.output import say

    fd = sys.stdin.fileno()
    try:
        if not command and _pending_keys(fd):
            return None
        termios.tcflush(fd, termios.TCIFLUSH)  # whatever slipped in since: never an answer
        restore = _cooked(fd)
    except (OSError, termios.error):
        return None  # a terminal we cannot inspect: no question rather than a doubtful answer
    from send_metrics.output import show

    try:  # Ctrl-C from the moment the question starts showing declines
        if details:  # the full list on stdout (`| less`, a file), the question on the terminal
            show(f"\n{disclosure(settings, why)}\n")
            say(f"{question(settings)} [y/N] ")
        else:
            say(f"\n{summary(settings, why)}\n{question(settings)} [y/N] ")
        answer = sys.stdin.readline()
    except (Interrupted, KeyboardInterrupt) as exc:
        if command:
            raise
        say("\n")
        # Ctrl-C is an answer (not a yes); a hangup or a kill is not: nothing is recorded then.
        signum = exc.args[0] if isinstance(exc, Interrupted) and exc.args else 2
        return "" if signum == 2 else None
    except (OSError, ValueError):
        say("\n")
        return ""
    finally:
        restore()
    if not answer.endswith("\n"):
        say("\n")
    word = answer.strip().lower()
    return "yes" if word in ("y", "yes") else "no" if word in ("n", "no") else ""


def _cooked(fd: int) -> Callable[[], None]:
    """Put the terminal in the mode a question needs (blocking reads, whole lines, echo, Ctrl-C),
    whatever the command left it in (raw mode after a crash, O_NONBLOCK from a node tool); the
    returned function gives the command's settings back, as they would be without us."""
    import fcntl
    import termios

    attrs = termios.tcgetattr(fd)
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    cooked = [*attrs[:6], list(attrs[6])]
    cooked[0] = (cooked[0] | termios.ICRNL) & ~(termios.INLCR | termios.IGNCR)
    cooked[3] |= termios.ICANON | termios.ECHO | termios.ISIG | termios.ECHOE | termios.ECHOK
    termios.tcsetattr(fd, termios.TCSANOW, cooked)
    if flags & os.O_NONBLOCK:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)

    def restore() -> None:
        try:
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
            fcntl.fcntl(fd, fcntl.F_SETFL, flags)
        except (OSError, termios.error):
            pass

    return restore


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds")


def _write(settings: Settings, path: str, granted: bool, previous: Decision) -> Decision:
    """Write a decision (the lock held). A yes keeps a still-valid id, else makes a new one; a no
    deletes the id and every copy of the local data, at once."""
    from send_metrics.event.event import new_uuid4

    if not granted:
        wipe(settings)  # first: the data goes even when the decision cannot be written
        if os.path.islink(path):  # a dotfile manager's link: removed itself, never followed
            remove_decision(path)
        state = Decision("declined", _now(), settings.consent_version)
        write_decision(path, state)
        return state
    anonymous_id = previous.anonymous_id if previous.granted else new_uuid4()
    state = Decision("granted", _now(), settings.consent_version, anonymous_id, scope(settings))
    write_decision(path, state)
    if anonymous_id != previous.anonymous_id:
        _forget_queue(settings)
    return state


def _forget_queue(settings: Settings) -> None:
    """A new id: what is still queued was recorded under an earlier yes and is never sent now;
    it leaves the queue at once (counted), rather than waiting to be dropped by a send."""
    from send_metrics.event import store

    path = store.db_path(data_dir(settings.app))
    try:
        if os.path.exists(path):
            db = store.Store(path)
            try:
                db.discard()
            finally:
                db.close()
    except MetricsError:
        pass  # an unusable store: the check before every send drops those events all the same


def wipe(settings: Settings) -> bool:
    """Delete the local history and queue and every copy of them; True if there was any."""
    from send_metrics.event import store

    return store.wipe(data_dir(settings.app))


def record(settings: Settings, granted: bool) -> Decision:
    """Record a decision without asking (opt-in, opt-out)."""
    from send_metrics.consent.lock import decision_at, locked

    path = state_path(settings.app)
    try:
        with locked(path):
            return _write(settings, path, granted, decision_at(path))
    except OSError as exc:
        raise ConfigError(f"cannot write {path} ({exc.strerror or exc})") from None


def ask_once(
    settings: Settings, details: bool = False, command: bool = False
) -> tuple[Decision, str]:
    """Ask, then record the answer; returns the decision and a line to show ("" for none).

    The lock is taken briefly before (an answer that cannot be kept is not asked for) and
    after, never while the person thinks. If a decision was recorded elsewhere meanwhile
    (another terminal, `opt-out`), a no wins: ours is recorded if it is a no, theirs kept if not.
    An answer that is neither yes nor an explicit no never deletes what an earlier yes
    recorded: the earlier decision stands (it covers no more than it did), asked again later.
    `command`: asked by `opt-in` itself (typed-ahead keys are not the shell's; Ctrl-C stops it).
    """
    from send_metrics.consent.lock import decision_at, locked

    path = state_path(settings.app)
    with locked(path):
        seen = decision_at(path)
    if collecting(seen, settings) or not (command or needs_asking(seen, settings)):
        return seen, ""  # `opt-in` asks after a no too: changing one's mind is why it is run
    from send_metrics.event import store

    had_data = bool(store.copies(data_dir(settings.app)))
    why = ""
    if seen.granted:
        why = gap(seen.scope, scope(settings))
    answer = ask(settings, why, details, command)
    if answer is None:
        return seen, (
            "send_metrics: keys typed during the command are left for your shell; the usage "
            "metrics question waits for a later run (nothing recorded).\n"
        )
    if answer == "" and (seen.granted or had_data):
        if seen.granted:  # this disclosure was answered: not asked again until it changes
            _skip(settings, path, seen)
        return seen, (
            "send_metrics: not a yes, so nothing is collected under the changed terms; what "
            "your earlier yes recorded is kept (`send_metrics opt-out` deletes it). Asked "
            "again only if the terms change again (or by `send_metrics opt-in`).\n"
        )
    with locked(path):
        now = decision_at(path)
        if now != seen and answer == "yes":
            return now, (
                "send_metrics: a decision was recorded elsewhere meanwhile; it stands "
                f"(`send_metrics status`). Settings: {path}\n"
            )
        state = _write(settings, path, answer == "yes", now)
    if state.granted:
        return state, "send_metrics: thank you; `send_metrics opt-out` stops it any time.\n"
    return state, (
        "send_metrics: nothing recorded"
        + (" and your earlier data deleted" if had_data else "")
        + f"; `send_metrics opt-in` to change your mind. Settings: {path}\n"
    )


def _skip(settings: Settings, path: str, seen: Decision) -> None:
    """Record that the current disclosure was asked about after `seen`'s yes and not granted,
    unless a decision was recorded elsewhere meanwhile (that one stands)."""
    from send_metrics.consent.lock import decision_at, locked

    try:
        with locked(path):
            if decision_at(path) == seen:
                write_decision(path, seen._replace(skipped=scope(settings).fingerprint))
    except (OSError, MetricsError):
        pass  # not recorded: the question comes back at a later run, nothing is lost


def already_on(state: Decision) -> str:
    """What `opt-in` says under a yes that covers the current disclosure: since when, what it
    covers, and that nothing was asked or changed."""
    from send_metrics.consent.decision import covers_text

    since = state.decided_at.replace("T", " ").replace("+00:00", " UTC")
    text = (
        f"Usage metrics are already on, since {since}: nothing to do. Your yes covers "
        f"{covers_text(state)}. `send_metrics opt-out` turns them off and deletes your id "
        "and local data."
    )
    return "\n".join(_lines(text))


def current(settings: Settings) -> Decision:
    """The recorded decision (an unreadable one is no decision)."""
    from send_metrics.consent.lock import decision_at

    return decision_at(state_path(settings.app))


def opt_out(settings: Settings) -> tuple[Decision, bool]:
    """Decline, forget the id, and delete the local queue and history; True if data was deleted.
    Holding the lock, it waits for sends already in flight; none starts after it returns."""
    from send_metrics.consent.lock import decision_at, locked

    path = state_path(settings.app)
    from send_metrics.event import store

    with locked(path):
        existed = os.path.exists(store.db_path(data_dir(settings.app)))
        state = _write(settings, path, False, decision_at(path))
    return state, existed


def reset(settings: Settings) -> bool:
    """Forget the decision (and repair a broken state file) so the next interactive run asks;
    False when there was none to forget."""
    from send_metrics.consent.lock import locked

    path = state_path(settings.app)
    with locked(path):
        existed = os.path.lexists(path)
        remove_decision(path)
    return existed
