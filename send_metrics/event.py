"""The one event, `command_run`: its fields, built in one place, and its shipped JSON Schema."""

from __future__ import annotations

import os

from send_metrics import __version__
from send_metrics.records import NamedTuple, TypedDict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from send_metrics.facts import GitFacts, MachineFacts
    from send_metrics.maketrace import Breakdown
    from send_metrics.runner import ChildResult
    from send_metrics.wrapper import CommandType

# Deferred imports: every collected run builds its event after the child ends; the schema
# (json, importlib.resources) is read only by `schema`, the disclosure and tests.

SCHEMA_VERSION = 2
EVENT_NAME = "command_run"
MAX_TEXT = 200  # characters kept of a command name or an allow-listed argument
FILE_PLACEHOLDER = "(file)"  # sent instead of a name that could be a path
# Bytes of allow-listed arguments in all, counted as serialised JSON (a character may take 12
# bytes as `\ud83d\ude00`): with every other field at its longest, an event stays under 32 KB.
MAX_ARGS_BYTES = 12_000


class MakeTarget(TypedDict):
    """One target that ran a recipe inside a traced make (see `maketrace`)."""

    name: str
    start_ms: float
    duration_ms: float
    exit_code: int | None
    lines: int
    critical: bool
    depth: int


class FileTargets(TypedDict):
    """The targets whose names could be paths: counted, never named."""

    count: int
    duration_ms: float
    critical: int


class Event(TypedDict):
    """The event's JSON: every field that can leave the machine; the schema documents exactly
    these (a test compares them)."""

    schema_version: int
    event: str
    message_id: str
    anonymous_id: str
    app: str
    app_version: str
    tool_version: str
    consent_version: int
    command: str
    command_args: list[str] | None
    command_type: CommandType
    start_time: str
    duration_ms: float
    exit_code: int | None
    signal: str | None
    interrupted: bool
    exit_code_derived: bool
    cpu_user_s: float | None
    cpu_system_s: float | None
    peak_memory_bytes: int | None
    make_targets: list[MakeTarget] | None
    make_file_targets: FileTargets | None
    make_targets_omitted: int | None
    git_work_tree: bool | None
    git_commit_time: str | None
    git_on_default_branch: bool | None
    git_dirty: bool | None
    git_behind_upstream: int | None
    git_remote_hash: str | None
    os: str
    os_release: str
    arch: str
    python_version: str
    cpu_count: int | None
    memory_total_bytes: int | None
    ci: bool
    ci_vendor: str | None
    container: bool


class Identity(NamedTuple):
    """Who the event is from: the app and the developer's anonymous id."""

    anonymous_id: str
    app: str
    app_version: str
    consent_version: int


def iso_utc(epoch: float) -> str:
    """A moment as ISO 8601 in UTC to the millisecond, `2026-11-24T15:04:05.123+00:00`, as
    `datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")` writes it, without
    importing `datetime` (about 1.5 ms)."""
    import time

    seconds = int(epoch // 1)
    micros = round((epoch - seconds) * 1e6)  # datetime rounds to the microsecond, half to even
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    day_and_time = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{day_and_time}.{micros // 1000:03d}+00:00"


def new_uuid4() -> str:
    """A random UUID (version 4) without importing `uuid`, which costs milliseconds at start."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def clean_text(text: str, limit: int = MAX_TEXT) -> str:
    """Valid UTF-8 (undecodable bytes become U+FFFD), no control characters, bounded length."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    text = "".join(ch if ch.isprintable() else "\ufffd" for ch in text[: limit * 2])
    return text[:limit]


def path_like(name: str) -> bool:
    """A name that could be a path, never sent as it is: it contains a slash or a backslash,
    or starts with `.` or `~` (`--name /home/carol/x`, `wrap ../out.o`)."""
    return "/" in name or "\\" in name or name.startswith((".", "~"))


def _bounded_args(args: list[str]) -> list[str]:
    """Arguments kept whole, in order, while their serialised size fits MAX_ARGS_BYTES."""
    from send_metrics.jsontext import dumps

    kept: list[str] = []
    total = 0
    for arg in args:
        text = clean_text(arg)
        total += len(dumps(text)) + 2  # ensure_ascii and ", ", as the sinks write it
        if total > MAX_ARGS_BYTES:
            break
        kept.append(text)
    return kept


def collected_fields(git_remote_hash: bool) -> tuple[str, ...]:
    """The fields an event carries under these settings, sorted: what a consent covers.
    git_remote_hash is collected only when the operator turns it on."""
    return tuple(
        sorted(n for n in Event.__annotations__ if git_remote_hash or n != "git_remote_hash")
    )


def _signal_name(signum: int | None) -> str | None:
    if not signum:
        return None
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIG{signum}"


def build_event(
    identity: Identity,
    command: str,
    args: list[str] | None,
    command_type: CommandType,
    result: ChildResult,
    git: GitFacts | None,
    machine: MachineFacts,
    make: Breakdown | None = None,
    derived: bool = False,
) -> Event:
    """Assemble the event from plain facts; the only place an event is made. `make` is the
    breakdown of a traced make; `derived` says the outcome was read from its trace (include
    mode), where make's own exit status and resource use are not visible."""
    if git is None:
        from send_metrics.facts import GitFacts

        git = GitFacts()
    return Event(
        schema_version=SCHEMA_VERSION,
        event=EVENT_NAME,
        message_id=new_uuid4(),
        anonymous_id=identity.anonymous_id,
        app=clean_text(identity.app),
        app_version=clean_text(identity.app_version),
        tool_version=__version__,
        consent_version=identity.consent_version,
        command=FILE_PLACEHOLDER if path_like(command) else (clean_text(command) or "?"),
        command_args=_bounded_args(args) if args is not None else None,
        command_type=command_type,
        start_time=iso_utc(result.start_epoch),
        duration_ms=result.duration_ms,
        exit_code=result.exit_code,
        signal=_signal_name(result.signal),
        interrupted=result.interrupted,
        exit_code_derived=derived,
        cpu_user_s=None if derived else result.cpu_user_s,
        cpu_system_s=None if derived else result.cpu_system_s,
        peak_memory_bytes=None if derived else result.peak_memory_bytes,
        make_targets=make.targets if make else None,
        make_file_targets=make.file_targets if make else None,
        make_targets_omitted=make.omitted if make else None,
        git_work_tree=git.work_tree,
        git_commit_time=git.commit_time,
        git_on_default_branch=git.on_default_branch,
        git_dirty=git.dirty,
        git_behind_upstream=git.behind_upstream,
        git_remote_hash=git.remote_hash,
        os=machine.os,
        os_release=machine.os_release,
        arch=machine.arch,
        python_version=machine.python_version,
        cpu_count=machine.cpu_count,
        memory_total_bytes=machine.memory_total_bytes,
        ci=machine.ci,
        ci_vendor=machine.ci_vendor,
        container=machine.container,
    )


def schema_text() -> str:
    """The shipped JSON Schema, as text."""
    from importlib import resources

    return resources.files("send_metrics").joinpath("schema.json").read_text(encoding="utf-8")


def schema() -> dict[str, Any]:
    """The shipped JSON Schema, parsed."""
    import json

    parsed: dict[str, Any] = json.loads(schema_text())
    return parsed


def field_groups() -> list[tuple[str, list[tuple[str, str]]]]:
    """The schema's fields by group, as (group, [(field, description)]), for the disclosure."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for name, spec in schema()["properties"].items():
        groups.setdefault(spec["x-group"], []).append((name, spec["description"]))
    return list(groups.items())
