"""`send_metrics trace`: the developer's view of the last make breakdown recorded, as a
timeline in the terminal or Chrome trace-event JSON."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any


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
