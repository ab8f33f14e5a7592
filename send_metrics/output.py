"""Our own one-line messages on stderr: never a traceback, never more than a line per problem.

This module is on the hot path: it follows the rule in `fastpath`'s docstring.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    from typing import NoReturn
else:
    import _signal as signal  # what `signal` wraps in enums, which cost ~3 ms at start

# A background job writing to a terminal set to `stty tostop` is stopped by SIGTTOU, unless the
# writer blocks or ignores it. Our own lines must never stop a job whose command ran fine.
_TTOU = {signal.SIGTTOU} if hasattr(signal, "SIGTTOU") else set()


def _write(text: str) -> None:
    """Write our text on stderr with SIGTTOU blocked (for this thread only, then restored): the
    kernel lets a background writer through instead of stopping it. A closed or broken stderr
    is ignored."""
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _TTOU) if _TTOU else None
    except (OSError, ValueError, AttributeError):  # AttributeError: no pthread_sigmask here
        old = None
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):  # AttributeError: stderr was closed (None)
        pass
    finally:
        if old is not None:
            try:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
            except (OSError, ValueError):
                pass


def warn(message: str) -> None:
    """Write `send_metrics: message` on stderr; a closed or broken stderr is ignored."""
    _write(f"send_metrics: {message}\n")


def say(text: str) -> None:
    """A message of ours on stderr as it is (the consent question and its answers)."""
    _write(text)


def show(text: str) -> None:
    """Text of ours on standard output (the full list `opt-in --details` asks about), so that
    it can go to a pager or a file; a closed or broken stdout is ignored."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except (OSError, ValueError, AttributeError):
        pass


def closed_pipe() -> NoReturn:
    """Our reader left (`send_metrics schema | head`): say nothing more and exit 141, the status
    a shell shows for a writer that SIGPIPE ended."""
    import os

    try:
        sys.stderr.flush()
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    os._exit(141)  # ExitCode.BROKEN_PIPE; os._exit: nothing may flush into the pipe again


def no_output(reason: str) -> NoReturn:
    """Our standard output is closed or cannot take what we write (`status >/dev/full`, a full
    disk, `stats >&-`): one line on stderr, exit 6, never a traceback."""
    import os

    warn(f"cannot write the output: {reason}")
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # what is still buffered goes nowhere
    except OSError:
        pass
    os._exit(6)  # ExitCode.NO_OUTPUT
