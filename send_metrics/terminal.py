"""The terminal a run shares with its child: whether we are in its foreground, and the
interrupt a person gives once the child has ended (the consent question reads both).

Built-in modules only: the wrapper imports this module before its child starts (the rule in
`run.fastpath`'s docstring).
"""

from __future__ import annotations

import os
import sys


class Interrupted(BaseException):
    """Raised in the wrapper when the user interrupts it after the child has ended."""


def in_foreground() -> bool:
    """Whether we are in the foreground process group of the terminal on stdin."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError, AttributeError):
        return False
