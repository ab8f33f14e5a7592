"""Where the time goes inside make: the per-line trace that `send_metrics.mk` writes, turned
into a bounded breakdown of targets with the critical path (the trace model; the include-mode
watcher that records an event is `run.watch`, `trace`'s view is `make.view`).

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

from send_metrics.lean.records import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from send_metrics.child import ChildResult
    from send_metrics.event.event import Breakdown

# Deferred imports: the event's records, only once a breakdown is made.

MAX_TARGETS = 100  # named targets kept in an event; the rest are counted, not named
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


def clock() -> float:
    """Now, on the shim's clock: the boot clock where /proc/uptime exists, else the epoch."""
    if os.path.exists("/proc/uptime") and hasattr(time, "CLOCK_BOOTTIME"):
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    return time.time()


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
    from send_metrics.event.event import path_like

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
    from send_metrics.event.event import Breakdown, FileTargets, MakeTarget, clean_text

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
    from send_metrics.event.event import FILE_PLACEHOLDER

    return " ".join(FILE_PLACEHOLDER if is_file_target(g, cwd) else g for g in goals) or "make"


# ---- wrap: the wrapper traces the make it runs ----


def take_wrapped(path: str, result: ChildResult) -> Breakdown | None:
    """After a wrapped make (see `snippet.trace_make`): its breakdown, None when no recipe
    line was traced; the trace file is deleted either way."""
    trace = read_trace(path)
    remove_trace(path)
    if not trace.lines:
        return None
    ago = time.time() - result.start_epoch
    origin = clock() - ago
    return breakdown(trace, origin, origin + result.duration_ms / 1000.0)
