"""Include mode: the watcher that the first recipe line of a make reading `send_metrics.mk`
starts in the background (`send_metrics _make-watch TRACE`). It waits for that make to end,
then records one event for it from the trace, through the same recording step as a wrapped
run."""

from __future__ import annotations

import os
import sys
import time

from send_metrics.make.trace import (
    Trace,
    _ms,
    breakdown,
    clock,
    command_of,
    read_trace,
    remove_trace,
)

# Deferred imports: the config, the decision and the recording step load once the watcher is
# detached from make; fcntl and select only where Linux has pidfds.


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
    from send_metrics.consent.decision import decide, recorded
    from send_metrics.run import recording
    from send_metrics.run.spec import RunSpec
    from send_metrics.settings import config

    pid, ticks = _root_ticks(path)
    if pid is None:
        return
    loaded = config.load_settings()
    settings = loaded.settings
    verdict = decide(settings, recorded(settings, []))
    prefetch = None
    if not config.metrics_disabled() and verdict.collecting:
        prefetch = recording.Prefetch(settings)  # git and machine facts while make runs
    status, ended = _wait_exit(pid, ticks)
    now, wall_now = clock(), time.time()
    trace = read_trace(path)
    end = ended if ended is not None else _last_record(trace) or now
    wall_end = wall_now - (now - end)
    if prefetch is None or not trace.lines:
        return
    # Asked again now: an opt-out or DO_NOT_TRACK while make ran wins.
    if config.metrics_disabled() or not verdict.still(recorded(settings, [])):
        return
    origin = trace.root_start if trace.root_start is not None else trace.lines[0].start
    made = breakdown(trace, origin, end)
    from send_metrics.child import ChildResult
    from send_metrics.run.runner import FORWARDED

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
    spec = RunSpec(command_of(trace.goals, cwd), "make")
    recording.record(spec, verdict, result, prefetch, made, status is None)
