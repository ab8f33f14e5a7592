"""Our own one-line messages on stderr: never a traceback, never more than a line per problem."""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


def warn(message: str) -> None:
    """Write `send_metrics: message` on stderr; a closed or broken stderr is ignored."""
    try:
        sys.stderr.write(f"send_metrics: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):  # AttributeError: stderr was closed (None)
        pass


def say(text: str) -> None:
    """A message of ours on stderr as it is (the consent question and its answers)."""
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):  # AttributeError: stderr was closed (None)
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
