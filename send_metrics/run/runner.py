"""Start the wrapped child, pass signals on to it, follow its stops, wait for it, end like it.

This module is on the hot path: it follows the rule in `fastpath`'s docstring.
"""

from __future__ import annotations

import errno
import os
import sys
import time

from send_metrics.child import ChildResult, Interrupted, in_foreground

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    from collections.abc import Callable, Iterable, Mapping
    from typing import NoReturn

else:
    import _signal as signal  # what `signal` wraps in enums, which cost ~3 ms at start

# Signals a user sends to stop a command: they mark the run as interrupted.
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
# Every signal a directly run command could be sent is passed on to the child; SIGCHLD is ours.
PASSED = frozenset(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD}
_WAITED = PASSED | {signal.SIGCHLD}
# Raised by a fault of the process itself: a handler for them would return into the fault.
_SYNCHRONOUS = {
    getattr(signal, name)
    for name in ("SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGTRAP", "SIGSYS")
    if hasattr(signal, name)
}
# Stops and continues: the portable path lets them act on the wrapper as on the child.
_JOB_CONTROL = {signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGCONT}
_PR_SET_PDEATHSIG = 1
_SI_USER = 0
_SI_KERNEL = 0x80  # Linux si_code of signals the terminal sends to the whole foreground group
_CORE_SIGNALS = {
    signal.SIGQUIT,
    signal.SIGABRT,
    signal.SIGSEGV,
    signal.SIGBUS,
    signal.SIGFPE,
    signal.SIGILL,
    signal.SIGSYS,
    signal.SIGTRAP,
    signal.SIGXCPU,
    signal.SIGXFSZ,
}
# Python ignores these at start-up, before any code of ours runs, whatever the caller gave it
# (`caller_ignores` tells what the command would have got).
_RESTORED = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ", "SIGXFZ") if hasattr(signal, name)
)
# Programs that pass every disposition they have on to the commands they start, and ignore
# SIGPIPE and SIGXFSZ only when their own caller did (`trap '' PIPE` included): the POSIX shells,
# make, and the tools that start a command for a shell, by the kernel's name for them (comm, as
# /proc/PID/status shows it).
_PASSERS = frozenset(
    b"sh bash dash ash ksh ksh93 mksh posh yash zsh busybox make gmake timeout xargs find flock "
    b"time".split()
)


def _on_interrupt(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


class Child:
    """One child process: creating it starts it; then `wait`, then `release`."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None):
        if not argv or not argv[0]:
            from send_metrics.errors import CommandNotFound

            raise CommandNotFound("the program to run is empty (usage: run -- CMD [ARG ...])")
        self._use_sigwait = hasattr(signal, "sigtimedwait")
        self._old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _WAITED)
        self._old_handlers: dict[int, object] = {}
        self.interrupted = False
        self.start_epoch = time.time()
        self._start = time.monotonic()
        self._ended: float | None = None  # when we first saw it had ended, before reaping
        environ = os.environ if env is None else env
        # A caller that ignores SIGCHLD (the kernel then reaps children at once) gives the
        # command that disposition; the wrapper itself needs the default to wait for it.
        ignore: tuple[int, ...] = ()
        if signal.getsignal(signal.SIGCHLD) == signal.SIG_IGN:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            ignore = (signal.SIGCHLD,)
        # The witness is in the group before the child, so no group signal can miss it.
        self._witness = _Witness.start() if self._use_sigwait and sys.platform == "linux" else None
        try:
            try:
                self.pid = _start(argv, environ, self._old_mask, ignore)
            except BlockingIOError:  # no process left (ulimit -u): the command comes first
                if self._witness is None:
                    raise
                self._witness.end(now=True)
                self._witness = None
                self.pid = _start(argv, environ, self._old_mask, ignore)
        except OSError as exc:
            if self._witness is not None:
                self._witness.end(now=True)  # we exit without `exit_like`
            signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask)
            from send_metrics.errors import CommandNotFound

            name = argv[0]
            if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
                raise CommandNotFound(f"{name}: command not found", 127) from None
            raise CommandNotFound(f"{name}: {exc.strerror or exc}", 126) from None
        if not self._use_sigwait:
            self._install_forwarders()

    def _pass_on(self, signum: int, code: int, sender: int) -> None:
        """Give the child a signal sent to us, unless it has it already."""
        if signum in FORWARDED:
            self.interrupted = True
        if code == _SI_USER and sender == os.getpid():
            return  # ours (a write to a closed pipe while the child runs): not the child's
        held = self._witness.holds(signum) if self._witness is not None else None
        # A signal sent to our whole process group (the terminal's Ctrl-C, `kill -TERM -PGID`,
        # `timeout`, the shell's `fg`) has reached the child already: sending it again would
        # make "press Ctrl-C twice to force" programs force. The witness, in our group, tells.
        if held if held is not None else code == _SI_KERNEL:
            return
        try:
            os.kill(self.pid, signum)
        except OSError:  # gone already, or a setuid program we may not signal (as a shell)
            pass

    def _install_forwarders(self) -> None:
        """Portable fallback where sigtimedwait is missing (macOS): handlers that forward."""

        def handler(signum: int, _frame: object) -> None:
            from_terminal = signum in _FROM_TERMINAL and in_foreground()
            self._pass_on(signum, _SI_KERNEL if from_terminal else _SI_USER, 0)

        for sig in PASSED - _SYNCHRONOUS - _JOB_CONTROL:
            try:
                self._old_handlers[sig] = signal.signal(sig, handler)
            except (OSError, ValueError):
                pass
        signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask)

    def has_ended(self) -> bool:
        """Whether the child has ended, without reaping it; the moment is kept, so the time
        our own work takes after an instant command is not counted as the command's."""
        if self._ended is None:
            try:
                seen = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except (OSError, AttributeError):  # AttributeError: no waitid (macOS)
                return False
            if seen is not None and seen.si_pid:
                self._ended = time.monotonic()
        return self._ended is not None

    def wait(self) -> ChildResult:
        """Wait for the child, passing signals on and stopping when it stops; never raises for
        a signal."""
        options = os.WUNTRACED | (os.WNOHANG if self._use_sigwait else 0)
        while True:
            pid, status, usage = os.wait4(self.pid, options)
            if pid and os.WIFSTOPPED(status):
                _stop_like(os.WSTOPSIG(status))
                continue
            if pid:
                break
            info = signal.sigtimedwait(_WAITED, 1.0)
            if info is not None and info.si_signo != signal.SIGCHLD:
                self._pass_on(info.si_signo, info.si_code, info.si_pid)
        duration_ms = ((self._ended or time.monotonic()) - self._start) * 1000.0
        exit_code = os.waitstatus_to_exitcode(status)
        signum = -exit_code if exit_code < 0 else None
        peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
        return ChildResult(
            exit_code=None if signum else exit_code,
            signal=signum,
            interrupted=self.interrupted or signum in FORWARDED,
            start_epoch=self.start_epoch,
            duration_ms=round(duration_ms, 3),
            cpu_user_s=round(usage.ru_utime, 6),
            cpu_system_s=round(usage.ru_stime, 6),
            peak_memory_bytes=int(peak),
        )

    def release(self) -> None:
        """After the child ended: drop signals meant for it; a new one interrupts our own work."""
        if self._witness is not None:
            self._witness.end()
        if self._use_sigwait:
            while signal.sigtimedwait(_WAITED, 0) is not None:
                pass
        for sig, old in self._old_handlers.items():
            signal.signal(sig, old)  # type: ignore[arg-type]
        for sig in FORWARDED:
            signal.signal(sig, _on_interrupt)
        signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask)


# Signals a terminal sends to its whole foreground group (the portable path's rule).
_FROM_TERMINAL = {signal.SIGINT, signal.SIGQUIT, signal.SIGWINCH}


def _stop_like(stop: int) -> None:
    """The child stopped (Ctrl-Z, `kill -TSTP $$`, a read from the terminal in the background):
    stop by the same signal, so the shell sees a stopped job and shows its prompt. Whoever
    continues us (`fg`, `bg`, `kill -CONT`) sends SIGCONT, which `wait` passes on as needed."""
    try:
        os.kill(os.getpid(), stop)  # blocked, so pending until unblocked just below
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {stop})  # stopped here until continued
        signal.pthread_sigmask(signal.SIG_BLOCK, {stop})
    except (OSError, ValueError):
        pass


_PRCTL: list[Callable[..., int]] = []


def _prctl() -> Callable[..., int]:
    """libc's `prctl`, called in a forked child to tie it to us (Linux). Made with `_ctypes`,
    the C module under `ctypes`: `import ctypes` costs ~2 ms before every child starts, for
    this one function. Any surprise in `_ctypes` falls back to `ctypes` itself."""
    if not _PRCTL:
        try:
            import _ctypes

            class _Int(_ctypes._SimpleCData):  # type: ignore[type-arg]
                _type_ = "i"

            class _Function(_ctypes.CFuncPtr):
                _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
                _restype_ = _Int

            class _Libc:
                _handle = _ctypes.dlopen(None, os.RTLD_NOW)  # type: ignore[arg-type]  # libc itself

            _PRCTL.append(_Function(("prctl", _Libc)))  # type: ignore[arg-type]  # a CDLL-like
        except (ImportError, AttributeError, OSError, TypeError):
            import ctypes

            _PRCTL.append(ctypes.CDLL(None, use_errno=True).prctl)
    return _PRCTL[0]


class _Witness:
    """A process of ours that sleeps in our process group blocking every signal (Linux).

    A kill of the whole group reaches it, the child and us in one system call, and stays
    pending in the witness; a `kill` of the wrapper alone does not. So a signal we receive that
    the witness also holds has reached the child already and is not sent again."""

    @classmethod
    def start(cls) -> _Witness | None:
        """A new witness, or None where no process can be made (the terminal rule then)."""
        try:
            return cls()
        except OSError:
            return None

    def __init__(self) -> None:
        prctl = _prctl()
        parent = os.getpid()
        read_end, self._write_end = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # the witness: every signal is blocked already (inherited mask)
            try:
                prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
                if os.getppid() == parent:
                    os.closerange(0, read_end)  # never hold the terminal, a pipe or a jobserver
                    os.closerange(read_end + 1, os.sysconf("SC_OPEN_MAX"))
                    while request := os.read(read_end, 64):
                        for signum in request:
                            signal.sigtimedwait({signum}, 0)
            finally:
                os._exit(0)
        os.close(read_end)
        self.pid = pid

    def holds(self, signum: int) -> bool | None:
        """Whether the signal is pending in the witness; None when that cannot be known."""
        try:
            with open(f"/proc/{self.pid}/status", "rb") as fh:
                text = fh.read(8192)
        except OSError:
            return None
        pending = 0
        for line in text.splitlines():
            if line.startswith((b"SigPnd:", b"ShdPnd:")):
                pending |= int(line.split()[1], 16)
        held = bool(pending >> (signum - 1) & 1)
        if held:
            try:
                os.write(self._write_end, bytes([signum]))  # consumed: the next one is new
            except OSError:
                pass
        return held

    def end(self, now: bool = False) -> None:
        """Stop the witness. Tearing down a forked copy of Python takes the kernel milliseconds,
        so it is reaped at our exit (`exit_like`), by when it is long gone, or `now` when its
        process slot is needed (`ulimit -u`); never left to init, which in a container may not
        reap at all (and zombies count against `ulimit -u`)."""
        try:
            os.close(self._write_end)
            os.kill(self.pid, signal.SIGKILL)
        except OSError:
            return
        if now:
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
        else:
            _UNREAPED.append(self.pid)


_UNREAPED: list[int] = []  # stopped witnesses, reaped just before we exit


class _Signals:
    """The child's signals: `mask` blocked, `restore` at their default, `ignore` ignored (Linux);
    every other disposition as ours (ignored stays ignored, handled is reset by exec)."""

    __slots__ = ("ignore", "mask", "restore")

    def __init__(self, mask: Iterable[int], restore: tuple[int, ...], ignore: tuple[int, ...]):
        self.mask = mask
        self.restore = restore
        self.ignore = ignore


def _start(
    argv: list[str], env: Mapping[str, str], mask: Iterable[int], ignore: tuple[int, ...] = ()
) -> int:
    """Start the program as a shell would: a script without a `#!` line runs with /bin/sh.
    Its signals: `mask` blocked, `ignore` ignored, and those `defaults` names at their default
    (see `_Signals`)."""
    spawn = _spawn_tied if sys.platform == "linux" else _spawn
    signals = _Signals(mask, defaults(), ignore)
    try:
        return spawn(argv, env, signals)
    except OSError as exc:
        path = script_for_sh(exc, argv[0], env)
        if path is None:
            raise
        return spawn(["/bin/sh", path, *argv[1:]], env, signals)


def script_for_sh(exc: OSError, name: str, env: Mapping[str, str]) -> str | None:
    """The file to run with /bin/sh after `exc`, as bash and dash do for an executable without
    a `#!` line (ENOEXEC); None for any other error, and for a binary file (the shells' test:
    ELF magic, or a NUL byte in the first line of its first 80 bytes), which stays "Exec
    format error" (126) rather than being read as a script."""
    if exc.errno != errno.ENOEXEC:
        return None
    path = find_program(name, env)
    if path is None:
        return None
    try:
        with open(path, "rb") as program:
            head = program.read(80)
    except OSError:
        return None
    if head.startswith(b"\x7fELF"):
        return None
    lines = 2 if head.startswith(b"#!") else 1
    for byte in head:
        if byte == 0:
            return None
        lines -= byte == 10
        if not lines:
            break
    return path


def caller_environ() -> dict[str, str]:
    """The environment this process was given, byte for byte (as str, the way os.environ holds
    bytes). On Linux it is read from the kernel's copy of the initial block, so nothing the
    interpreter set for itself at start-up (PEP 538's LC_CTYPE=C.UTF-8 under a C or POSIX
    locale) reaches the command; where there is no /proc, os.environ. Entries that are not
    NAME=value are left out, and a repeated name keeps its first value, as getenv reads it."""
    try:
        fd = os.open("/proc/self/environ", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return dict(os.environ)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    except OSError:
        return dict(os.environ)
    finally:
        os.close(fd)
    env: dict[str, str] = {}
    encoding, errors = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()  # fsdecode's
    for entry in b"".join(chunks).split(b"\0"):
        name, eq, value = entry.partition(b"=")
        if eq and name:
            key = name.decode(encoding, errors)
            if key not in env:
                env[key] = value.decode(encoding, errors)
    return env


def defaults() -> tuple[int, ...]:
    """Of the signals Python ignores at start-up (SIGPIPE, SIGXFSZ), those the command gets at
    their default. Python keeps no trace of what it found, so this is inferred: on Linux a
    parent that is a shell or make passes its own dispositions on, and its SigIgn is what we
    were given; under any other parent, and where /proc is missing, the default (what Python,
    Node and Rust, which ignore SIGPIPE for themselves, give the commands they start)."""
    if sys.platform != "linux":
        return _RESTORED
    try:  # stat, not status: a third of the kernel's time to make it
        fd = os.open(f"/proc/{os.getppid()}/stat", os.O_RDONLY | os.O_CLOEXEC)
        try:
            text = os.read(fd, 1 << 12)
        finally:
            os.close(fd)
    except OSError:
        return _RESTORED
    # "PID (COMM) STATE ...": COMM may hold spaces and parentheses; field 33 is sigignore.
    name = text[text.find(b"(") + 1 : text.rfind(b")")]
    fields = text[text.rfind(b")") + 2 :].split()
    if name not in _PASSERS or len(fields) < 31 or not fields[30].isdigit():
        return _RESTORED
    mask = int(fields[30])
    return tuple(sig for sig in _RESTORED if not mask >> (sig - 1) & 1)


def restore_defaults(restore: Iterable[int]) -> None:
    """Give these signals back their default disposition (in the process about to exec)."""
    for sig in restore:
        signal.signal(sig, signal.SIG_DFL)


def _exec_path(env: Mapping[str, str]) -> list[str]:
    """The child's PATH folders, as `os.get_exec_path` gives them (which imports `warnings`,
    a millisecond in the forked child before its exec, which we wait for)."""
    path = env.get("PATH")
    return (os.defpath if path is None else path).split(os.pathsep)


def find_program(name: str, env: Mapping[str, str]) -> str | None:
    """The file `execvp` would run for `name`: the first executable on the child's PATH."""
    if "/" in name:
        return name
    for folder in _exec_path(env):
        candidate = os.path.join(folder or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def execvpe(argv: list[str], env: Mapping[str, str]) -> NoReturn:
    """`os.execvpe` without its imports, answering as the shells do: each PATH folder in turn,
    a directory skipped (execve says EACCES for one, where bash and dash go on and answer
    "command not found"); on failure the first error that is not "no such file" (EACCES for
    a file that is not executable, ENOEXEC...), else "no such file". A path to a directory
    says so (bash's "Is a directory")."""
    if "/" in argv[0]:
        try:
            os.execve(argv[0], argv, env)
        except PermissionError:
            if os.path.isdir(argv[0]):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)) from None
            raise
    first: OSError | None = None
    folder_first = False  # bash: a directory met first, a later non-executable file is no answer
    for folder in _exec_path(env):
        candidate = os.path.join(folder, argv[0])
        try:
            os.execve(candidate, argv, env)
        except (FileNotFoundError, NotADirectoryError):
            pass
        except PermissionError as exc:
            if os.path.isdir(candidate):
                folder_first = folder_first or first is None
            elif not folder_first:
                first = first or exc
        except OSError as exc:
            first = first or exc
    raise first or FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))


def _spawn(argv: list[str], env: Mapping[str, str], signals: _Signals) -> int:
    """posix_spawn: the child gets the signal mask and dispositions a shell would give it, and
    the program the shells would find (posix_spawnp stops at a directory on PATH). It cannot
    ignore a signal: a caller's ignored SIGCHLD is not passed on here."""
    return os.posix_spawn(
        _resolve(argv[0], env),
        argv,
        env,
        setsigmask=signals.mask,
        setsigdef=signals.restore,
    )


def _resolve(name: str, env: Mapping[str, str]) -> str:
    """The file the shells run for `name`: the first executable regular file on PATH, else the
    first regular file (whose exec then fails with EACCES, 126); raise FileNotFoundError."""
    found = find_program(name, env)
    if found is not None:
        return found
    for folder in _exec_path(env):
        candidate = os.path.join(folder or ".", name)
        if os.path.isdir(candidate):
            break  # bash: a directory met first answers "not found"
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))


def _spawn_tied(argv: list[str], env: Mapping[str, str], signals: _Signals) -> int:
    """Linux: like _spawn, and the kernel sends the child SIGTERM should the wrapper die, even
    by SIGKILL (PR_SET_PDEATHSIG), so killing the wrapper never leaves the command running."""
    prctl = _prctl()
    parent = os.getpid()
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # the child: only system calls from here to exec
        try:
            os.close(report_r)
            prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
            if os.getppid() != parent:
                os._exit(128 + signal.SIGTERM)  # the wrapper died before the tie was made
            restore_defaults(signals.restore)
            for sig in signals.ignore:
                signal.signal(sig, signal.SIG_IGN)
            # A Ctrl-C pending since the fork must act on the command as it would on any
            # program (die by SIGINT), not raise KeyboardInterrupt in this copy of Python.
            for sig in FORWARDED:
                if callable(signal.getsignal(sig)):
                    signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, signals.mask)
            execvpe(argv, env)
        except OSError as exc:
            os.write(report_w, str(exc.errno or 0).encode())
        finally:
            os._exit(127)  # only reached if exec failed; the parent reads the errno above
    os.close(report_w)
    try:
        failure = os.read(report_r, 32)  # empty once exec succeeded and closed the pipe
    finally:
        os.close(report_r)
    if failure:
        os.waitpid(pid, 0)
        code = int(failure)
        raise OSError(code, os.strerror(code))
    return pid


def exit_like(result: ChildResult) -> NoReturn:
    """End the wrapper as the child ended: same exit code, or death by the same signal."""
    for pid in _UNREAPED:
        try:
            os.waitpid(pid, 0)
        except (OSError, ChildProcessError):
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # AttributeError: started with it closed
            pass
    if result.signal:
        sig = result.signal
        if sig in _CORE_SIGNALS:
            import resource

            try:
                resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            except (OSError, ValueError):
                pass
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass  # SIGKILL and SIGSTOP keep their default anyway
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
            os.kill(os.getpid(), sig)
            time.sleep(0.05)
        except (OSError, ValueError):
            pass
    # Abandoned delivery threads must not hold the exit up; everything durable is committed.
    os._exit(result.status)
