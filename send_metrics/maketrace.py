"""Where the time goes inside make: the per-line trace that `send_metrics.mk` writes, turned
into a bounded breakdown of targets with the critical path; and, for a Makefile that only
includes the snippet, the background watcher that records one event when the make ends.

The trace is tab-separated text, one record per line, appended by the shell shim:
`H root_pid start_ticks flags goals` (include mode, first line), `S shim_pid time make_pid
makelevel dir target prerequisites` when a recipe line starts and `E shim_pid time status
signal` when it ends (signal: the one that killed the line, else empty). Names and the directory
are %XX-encoded by the snippet (every character a shell could read, `%`, `,` and white space);
lists are joined by commas, `-` is an empty list; prerequisites are the first 8, followed by a
`,` when there were more. Each make has a file `TRACE.<make_pid>` (under -j, each line a file
`TRACE.<shim_pid>`) that holds what its shell said about a line killed by a signal; all go with
the trace.
Times are seconds of the boot clock (/proc/uptime, 10 ms steps) on Linux, else epoch seconds.
"""

from __future__ import annotations

import os
import time

from send_metrics.records import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from send_metrics.event import FileTargets, MakeTarget
    from send_metrics.runner import ChildResult

# Deferred imports: the watcher, `trace` and a wrapped make's report each load only what they
# use (the event, consent, delivery), after make has ended or in our own commands.

MAX_TARGETS = 100  # named targets kept in an event; the rest are counted, not named
SNIPPET = "send_metrics.mk"
_MAX_TRACE = 32 << 20  # bytes of trace read at most
TRUNCATED = ""  # ends a line's prerequisites when the snippet left some out (no target is "")


class Line(NamedTuple):
    """One recipe line: which make ran it for which target, when, and how it ended."""

    seq: int  # position of its start record: the order in which lines really started
    make_pid: str
    level: int
    cwd: str
    target: str
    prereqs: tuple[str, ...]
    start: float
    end: float | None  # None: it never ended (its shell was killed: an interruption)
    end_seq: int
    status: int | None


class Trace(NamedTuple):
    """A parsed trace file: the root make (include mode) and every recipe line."""

    root_pid: int | None
    root_start: float | None  # the root make's start, on the trace's clock
    flags: str  # the root make's single-letter flags (MAKEFLAGS' first word)
    goals: list[str]
    lines: list[Line]


class Target(NamedTuple):
    """A target that ran a recipe, its lines merged."""

    name: str
    make_pid: str
    depth: int
    cwd: str
    prereqs: tuple[str, ...]
    start: float
    end: float
    status: int | None
    lines: int
    ended: bool
    first_seq: int  # where its first line started in the trace
    last_seq: int  # where its last line ended (the trace's order is the true order)


class Breakdown(NamedTuple):
    """The event's make fields, and the outcome derived from the trace (include mode)."""

    targets: list[MakeTarget]
    file_targets: FileTargets | None
    omitted: int
    exit_code: int | None
    interrupted: bool


def clock() -> float:
    """Now, on the shim's clock: the boot clock where /proc/uptime exists, else the epoch."""
    if os.path.exists("/proc/uptime") and hasattr(time, "CLOCK_BOOTTIME"):
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    return time.time()


def snippet_path() -> str:
    """The snippet shipped in the package (also the shell shim it runs)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), SNIPPET)


def snippet_text(app: str) -> str:
    """The snippet, with the operator's app name as its default, ready to vendor."""
    with open(snippet_path(), encoding="utf-8") as handle:
        text = handle.read()
    return text.replace("_sm.app := send_metrics", f"_sm.app := {app}", 1)


def decode(word: str) -> str:
    """A name as the snippet wrote it (%XX for a byte), as make knew it."""
    if "%" not in word:
        return word
    head, *parts = word.split("%")
    out = bytearray(head.encode("utf-8", "surrogateescape"))
    for part in parts:
        code = part[:2]
        if len(code) == 2 and all(c in "0123456789ABCDEFabcdef" for c in code):
            out.append(int(code, 16))
            part = part[2:]
        else:
            out += b"%"
        out += part.encode("utf-8", "surrogateescape")
    return out.decode("utf-8", "replace")


def _names(field: str) -> list[str]:
    return [] if field in ("", "-") else [decode(word) for word in field.split(",") if word]


def remove_trace(path: str) -> None:
    """Delete a trace and its lines' side files (`TRACE.<pid>`)."""
    folder, name = os.path.split(path)
    try:
        names = os.listdir(folder or ".")
    except OSError:
        names = []
    for other in [name] + [n for n in names if n.startswith(name + ".")]:
        try:
            os.unlink(os.path.join(folder, other))
        except OSError:
            pass


def read_trace(path: str) -> Trace:
    """Parse a trace file; lines it cannot read are skipped, never fatal."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_MAX_TRACE)
    except OSError:
        raw = b""
    root_pid: int | None = None
    root_start: float | None = None
    flags = ""
    goals: list[str] = []
    starts: dict[str, int] = {}  # shim pid -> index of its open line
    lines: list[Line] = []
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for seq, record in enumerate(raw.decode("utf-8", "surrogateescape").split("\n")):
        fields = record.split("\t")
        try:
            if fields[0] == "H" and len(fields) >= 5:
                root_pid = int(fields[1])
                root_start = int(fields[2]) / tick if fields[2] else None
                flags = "" if fields[3].startswith("-") else fields[3]  # letters only
                goals = _names(fields[4])
            elif fields[0] == "S" and len(fields) >= 8:
                level = int(fields[4]) if fields[4].isdigit() else 0
                prereqs = tuple(_names(fields[7]))
                if fields[7].endswith(","):  # the snippet kept only the first few
                    prereqs += (TRUNCATED,)
                line = Line(
                    seq,
                    fields[3],
                    level,
                    decode(fields[5]),
                    decode(fields[6]),
                    prereqs,
                    float(fields[2]),
                    None,
                    0,
                    None,
                )
                starts[fields[1]] = len(lines)
                lines.append(line)
            elif fields[0] == "E" and len(fields) >= 4 and fields[1] in starts:
                index = starts.pop(fields[1])
                lines[index] = lines[index]._replace(
                    end=float(fields[2]), end_seq=seq, status=int(fields[3])
                )
        except ValueError:
            continue
    return Trace(root_pid, root_start, flags, goals, lines)


def is_file_target(name: str, cwd: str) -> bool:
    """A target whose name could be a path is never sent: it contains a slash or backslash,
    starts with `.` or `~`, or names a file or directory that exists in its make's directory."""
    from send_metrics.event import path_like

    if not name or path_like(name):
        return True
    try:
        return os.path.lexists(os.path.join(cwd, name))
    except (OSError, ValueError):
        return True


def derive_outcome(trace: Trace) -> tuple[int | None, bool]:
    """make's exit status as far as the trace shows it: (exit_code, interrupted).

    A line that never ended means the make was interrupted. A failing line of the root make
    counts as make's failure (2) unless make went on after it in a way it only does for an
    ignored failure (`-` or -i): the same target ran another line, or, without -k, any new
    line started after it ended (without -k, make starts nothing new after a real failure).
    """
    if any(line.end is None for line in trace.lines):
        return None, True
    if "i" in trace.flags:
        return 0, False
    roots = _root_lines(trace.lines)
    keep_going = "k" in trace.flags
    for line in roots:
        if not line.status:
            continue
        later = [o for o in roots if o.seq > line.end_seq]
        if any(o.target == line.target and o.make_pid == line.make_pid for o in later):
            continue
        if not keep_going and later:
            continue
        return 2, False
    return 0, False


def _root_lines(lines: list[Line]) -> list[Line]:
    """The lines of the outermost traced make(s): the lowest MAKELEVEL seen."""
    if not lines:
        return []
    top = min(line.level for line in lines)
    return [line for line in lines if line.level == top]


def _targets(lines: list[Line], end: float) -> list[Target]:
    top = min((line.level for line in lines), default=0)
    merged: dict[tuple[str, str], list[Line]] = {}
    for line in lines:
        merged.setdefault((line.make_pid, line.target), []).append(line)
    found = []
    for (make_pid, name), group in merged.items():
        status = next((x.status for x in group if x.status), 0)
        ended = all(x.end is not None for x in group)
        found.append(
            Target(
                name,
                make_pid,
                group[0].level - top,
                group[0].cwd,
                group[0].prereqs,
                min(x.start for x in group),
                max(x.end if x.end is not None else end for x in group),
                status if ended else None,
                len(group),
                ended,
                min(x.seq for x in group),
                max(x.end_seq if x.end is not None else 1 << 62 for x in group),
            )
        )
    return sorted(found, key=lambda t: t.first_seq)


def critical_path(targets: list[Target]) -> list[Target]:
    """The chain that set the total time. It starts at the outermost make's target that ended
    last and steps back to the prerequisite (one that ran a recipe) that ended last; for a
    target none of whose prerequisites ran a recipe, to the target that ended last before it
    started (a prerequisite reached through a target without recipe, or under -j the job that
    freed its slot), until there is none. "Ended before" is the trace's order, which is the
    order make saw. Sub-make targets are not on it: their parent's $(MAKE) line is."""
    top = [t for t in targets if t.depth == 0]
    by_name = {(t.make_pid, t.name): t for t in top}
    chain: list[Target] = []
    current = max(top, key=lambda t: (t.last_seq, t.first_seq), default=None)
    while current is not None:
        chain.append(current)
        start = current.first_seq
        before = [t for t in top if t.last_seq < start]
        named = [by_name.get((current.make_pid, p)) for p in current.prereqs]
        prereqs = [t for t in named if t is not None and t.last_seq < start]
        if TRUNCATED in current.prereqs:  # an unnamed one may have ended last
            prereqs = before
        current = max(prereqs or before, key=lambda t: t.last_seq, default=None)
    return list(reversed(chain))


def breakdown(trace: Trace, origin: float, end: float) -> Breakdown:
    """The bounded, privacy-filtered breakdown of a run that started at `origin` and ended
    at `end` (both on the trace's clock)."""
    from send_metrics.event import FileTargets, MakeTarget, clean_text

    targets = _targets(trace.lines, end)
    critical = set(critical_path(targets))
    named: list[tuple[Target, bool]] = []
    files = FileTargets(count=0, duration_ms=0.0, critical=0)
    for target in targets:
        on_path = target in critical
        if is_file_target(target.name, target.cwd):
            files["count"] += 1
            files["duration_ms"] = round(files["duration_ms"] + _ms(target.end - target.start), 3)
            files["critical"] += int(on_path)
        else:
            named.append((target, on_path))
    # Keep the critical ones first, then the longest; show them in the order they started.
    kept = sorted(named, key=lambda p: (not p[1], p[0].start - p[0].end))[:MAX_TARGETS]
    kept.sort(key=lambda p: p[0].first_seq)
    exit_code, interrupted = derive_outcome(trace)
    return Breakdown(
        [
            MakeTarget(
                name=clean_text(t.name),
                start_ms=_ms(t.start - origin),
                duration_ms=_ms(t.end - t.start),
                exit_code=t.status,
                lines=t.lines,
                critical=on_path,
                depth=t.depth,
            )
            for t, on_path in kept
        ],
        files if files["count"] else None,
        len(named) - len(kept),
        exit_code,
        interrupted,
    )


def _ms(seconds: float) -> float:
    return round(max(0.0, seconds) * 1000.0, 3)


def command_of(goals: list[str], cwd: str) -> str:
    """The event's `command` for an included make: its goals, a goal that could be a path
    replaced by `(file)`."""
    from send_metrics.event import FILE_PLACEHOLDER

    return " ".join(FILE_PLACEHOLDER if is_file_target(g, cwd) else g for g in goals) or "make"


# ---- wrap: the wrapper traces the make it runs ----


def take_wrapped(path: str, result: ChildResult) -> Breakdown | None:
    """After a wrapped make (see `fastpath.trace_make`): its breakdown, None when no recipe
    line was traced; the trace file is deleted either way."""
    trace = read_trace(path)
    remove_trace(path)
    if not trace.lines:
        return None
    ago = time.time() - result.start_epoch
    origin = clock() - ago
    return breakdown(trace, origin, origin + result.duration_ms / 1000.0)


# ---- include mode: the watcher the first recipe line starts ----


def _detach() -> None:
    """Leave make's session and every inherited descriptor (a pipe to `tee`, the jobserver),
    so nothing waits for us and no signal meant for make reaches us."""
    try:
        os.setsid()
    except OSError:
        pass
    os.closerange(3, 4096)


def _alive(pid: int, start_ticks: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if start_ticks is None:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("utf-8", "replace")
        return stat.rpartition(")")[2].split()[19] == start_ticks
    except (OSError, IndexError):
        return True


_PIDFD_GET_INFO = (3 << 30) | (64 << 16) | (0xFF << 8) | 11  # _IOWR(0xFF, 11, 64 bytes)
_PIDFD_INFO_EXIT = 1 << 3


def _exit_status(fd: int) -> int | bool:
    """The ended process's wait status from its pidfd (Linux 6.15 and later keep it even for
    a process another parent reaped); True while not there yet, False where it never will."""
    import fcntl  # only here: Linux with pidfds
    import struct

    info = bytearray(64)
    struct.pack_into("Q", info, 0, _PIDFD_INFO_EXIT)
    try:
        fcntl.ioctl(fd, _PIDFD_GET_INFO, info)
    except OSError:
        return False
    if not struct.unpack_from("Q", info, 0)[0] & _PIDFD_INFO_EXIT:
        return True
    status: int = struct.unpack_from("i", info, 60)[0]
    return status


def _wait_exit(pid: int, start_ticks: str | None) -> tuple[int | None, float | None]:
    """Wait until the root make has ended (a pidfd where Linux has one, else polling): its
    wait status when the kernel keeps it for us, else None; and when it ended on `clock()`,
    None when that was not seen as it happened (it had ended already, or polling)."""
    if not _alive(pid, start_ticks):
        return None, None
    if hasattr(os, "pidfd_open"):
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            fd = -1
        if fd >= 0:
            import select  # only here: Linux with pidfds

            try:
                if not _alive(pid, start_ticks):  # the pid is a newer process's, not make's
                    return None, None
                select.select([fd], [], [])
                ended = clock()
                for _ in range(20):  # bounded: the kernel records it as the process exits
                    status = _exit_status(fd)
                    if status is not True:
                        return (None if status is False else int(status)), ended
                    time.sleep(0.005)
                return None, ended
            finally:
                os.close(fd)
    while _alive(pid, start_ticks):
        time.sleep(0.1)
    return None, None


def _last_record(trace: Trace) -> float | None:
    """When the trace's last line ended: make ends right after it (within the clock's step)."""
    times = [t for line in trace.lines for t in (line.start, line.end) if t is not None]
    return max(times) if times else None


def _root_ticks(path: str) -> tuple[int | None, str | None]:
    header = read_trace(path)
    if header.root_pid is None:
        return None, None
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    ticks = str(round(header.root_start * tick)) if header.root_start is not None else None
    return header.root_pid, ticks


def _sweep(directory: str, keep: str) -> None:
    """Remove traces whose watcher died: their make is gone and nothing wrote to them for a
    minute (a live watcher finishes within its delivery deadline)."""
    now = time.time()
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        entry = os.path.join(directory, name)
        stem = name.partition(".")[0]
        try:
            if name.partition(".")[2].partition(".")[0] != "trace" or not stem:
                continue
            if entry.startswith(os.path.normpath(keep)):
                continue
            if now - os.stat(entry).st_mtime < 60:
                continue
            if not stem.isdigit() or not _alive(int(stem), None):
                os.unlink(entry)
        except OSError:
            pass


def watch(argv: list[str]) -> None:
    """`send_metrics _make-watch TRACE`: started by the first recipe line of an included make;
    waits for that make to end, then records its event (under a recorded yes only)."""
    _detach()
    if len(argv) != 1:
        return
    import sys

    # The prefetch thread runs Python while this one waits for make: a short switch interval
    # lets this one take the end time as soon as make exits, not a GIL turn (5 ms+) later.
    sys.setswitchinterval(0.0005)
    path = argv[0]
    try:
        _record_when_done(path)
    except Exception:  # noqa: S110 - a background helper has nowhere to report, must not linger
        pass
    finally:
        remove_trace(path)
        _sweep(os.path.dirname(path) or ".", path)
    os._exit(0)


def _record_when_done(path: str) -> None:
    from send_metrics import config, consent, delivery, wrapper

    pid, ticks = _root_ticks(path)
    if pid is None:
        return
    loaded = config.load_settings()
    settings = loaded.settings
    decision = wrapper._read_decision(settings, [])
    prefetch = None
    if not config.metrics_disabled() and consent.collecting(decision, settings):
        prefetch = wrapper._Prefetch(settings)  # git and machine facts while make runs
    status, ended = _wait_exit(pid, ticks)
    now, wall_now = clock(), time.time()
    trace = read_trace(path)
    end = ended if ended is not None else _last_record(trace) or now
    wall_end = wall_now - (now - end)
    if prefetch is None or not trace.lines:
        return
    # Asked again now: an opt-out or DO_NOT_TRACK while make ran wins.
    decision = wrapper._read_decision(settings, [])
    if config.metrics_disabled() or not consent.collecting(decision, settings):
        return
    origin = trace.root_start if trace.root_start is not None else trace.lines[0].start
    made = breakdown(trace, origin, end)
    from send_metrics.runner import FORWARDED, ChildResult

    exit_code, signal, interrupted = made.exit_code, None, made.interrupted
    if status is not None:  # make's own status: exact, nothing derived
        code = os.waitstatus_to_exitcode(status)
        exit_code, signal = (code, None) if code >= 0 else (None, -code)
        interrupted = interrupted or signal in FORWARDED
    result = ChildResult(
        exit_code=exit_code,
        signal=signal,
        interrupted=interrupted,
        start_epoch=wall_end - (end - origin),
        duration_ms=_ms(end - origin),
        cpu_user_s=None,  # make's own accounting is not visible from outside it
        cpu_system_s=None,
        peak_memory_bytes=None,
    )
    cwd = os.getcwd()
    spec = wrapper.RunSpec(command_of(trace.goals, cwd), "make")
    deadline = time.monotonic() + settings.deadline
    event = wrapper._build(
        spec,
        settings,
        decision.anonymous_id,
        result,
        prefetch,
        deadline - 0.2,
        made,
        status is None,
    )
    delivery.report(event, settings, deadline, prefetch.ready_client())


# ---- `send_metrics trace`: the developer's view ----


def last_event(events: Sequence[Mapping[str, Any]], target: str | None) -> Mapping[str, Any] | None:
    """The newest event with a breakdown, of `target` when given (a command or one of its
    goals)."""
    for event in reversed(events):
        if not event.get("make_targets") and not event.get("make_file_targets"):
            continue
        if (
            target is None
            or target == event.get("command")
            or target in str(event.get("command", "")).split()
        ):
            return event
    return None


def goals(events: Sequence[Mapping[str, Any]]) -> list[str]:
    """The names `trace TARGET` can find: each recorded make run's command and its goals."""
    found: set[str] = set()
    for event in events:
        if event.get("make_targets") or event.get("make_file_targets"):
            command = str(event.get("command", ""))
            found.update([command, *command.split()])
    return sorted(found)


def _seconds(ms: float) -> str:
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.0f} ms"


def render(event: Mapping[str, Any], width: int = 100) -> str:
    """The terminal view: one row per target, indented by sub-make depth, with its start,
    duration and a bar on the run's timeline; `*` marks the critical path."""
    total = float(event.get("duration_ms") or 0.0)
    targets: list[dict[str, Any]] = event.get("make_targets") or []
    if event.get("interrupted"):
        outcome = "interrupted"
    elif event.get("exit_code") == 0:
        outcome = "succeeded"
    else:
        outcome = f"failed (exit {event.get('exit_code')})"
    lines = [
        f"make {event.get('command')}: {_seconds(total)}, {outcome}, "
        f"started {str(event.get('start_time', ''))[:19].replace('T', ' ')} UTC"
    ]
    name_width = min(30, max([len(t["name"]) + 2 * t["depth"] for t in targets] + [6]))
    bar_width = max(10, width - name_width - 30)
    scale = bar_width / total if total > 0 else 0.0
    lines.append(f"  {'target':<{name_width}} {'start':>9} {'took':>9}  timeline")
    for t in targets:
        mark = "*" if t["critical"] else " "
        name = ("  " * t["depth"] + t["name"])[:name_width]
        begin = int(t["start_ms"] * scale)
        length = max(1, int(t["duration_ms"] * scale))
        bar = " " * begin + ("#" if t["critical"] else "=") * length
        failed = "" if t["exit_code"] == 0 else (" !" if t["exit_code"] else " ?")
        lines.append(
            f"{mark} {name:<{name_width}} {_seconds(t['start_ms']):>9} "
            f"{_seconds(t['duration_ms']):>9}  {bar[: bar_width + 1]}{failed}"
        )
    files = event.get("make_file_targets")
    if files:
        lines.append(
            f"  (file targets, not named: {files['count']}, {_seconds(files['duration_ms'])} "
            f"in all, {files['critical']} on the critical path)"
        )
    if event.get("make_targets_omitted"):
        lines.append(f"  ({event['make_targets_omitted']} more targets not kept in the event)")
    chain = [t for t in targets if t["critical"]]
    if chain:
        spent = sum(t["duration_ms"] for t in chain)
        lines.append(
            f"* critical path: {' -> '.join(t['name'] for t in chain)} "
            f"({_seconds(spent)} of {_seconds(total)})"
        )
    lines.append("  ! failed   ? interrupted   # critical path   = other targets")
    return "\n".join(lines)


def chrome_trace(event: Mapping[str, Any]) -> dict[str, Any]:
    """Chrome trace-event JSON (Perfetto, chrome://tracing): the run, then each target as a
    complete event on the first lane free at its start, so parallel jobs sit side by side."""
    targets: list[dict[str, Any]] = event.get("make_targets") or []
    ends: list[float] = []  # per lane, when it frees
    events: list[dict[str, Any]] = [
        {
            "name": f"make {event.get('command')}",
            "cat": "make",
            "ph": "X",
            "ts": 0,
            "dur": round(float(event.get("duration_ms") or 0) * 1000),
            "pid": 1,
            "tid": 0,
            "args": {"exit_code": event.get("exit_code"), "interrupted": event.get("interrupted")},
        }
    ]
    for t in sorted(targets, key=lambda t: t["start_ms"]):
        lane = next((i for i, free in enumerate(ends) if free <= t["start_ms"]), len(ends))
        if lane == len(ends):
            ends.append(0.0)
        ends[lane] = t["start_ms"] + t["duration_ms"]
        events.append(
            {
                "name": t["name"],
                "cat": "critical" if t["critical"] else "target",
                "ph": "X",
                "ts": round(t["start_ms"] * 1000),
                "dur": round(t["duration_ms"] * 1000),
                "pid": 1,
                "tid": lane + 1,
                "args": {
                    "exit_code": t["exit_code"],
                    "lines": t["lines"],
                    "critical": t["critical"],
                    "depth": t["depth"],
                },
            }
        )
    names = [(0, "make")] + [(i + 1, f"job {i + 1}") for i in range(len(ends))]
    for tid, label in names:
        events.append(
            {"name": "thread_name", "ph": "M", "pid": 1, "tid": tid, "args": {"name": label}}
        )
    return {"traceEvents": events, "displayTimeUnit": "ms"}
