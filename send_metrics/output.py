"""Our own one-line messages on stderr: never a traceback, never more than a line per problem."""

from __future__ import annotations

import sys


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
