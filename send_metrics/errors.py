"""The typed errors of send_metrics and our own exit codes; only the CLI turns them into output."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal


class ExitCode:
    """Every exit status of our own; `run`, `wrap` and `preview` otherwise end as their child.

    Plain int constants, as pip's `status_codes`: every wrapped run imports this module after
    its child starts, and an `IntEnum` would import `enum` (about 3 ms) for eight numbers."""

    OK = 0
    USAGE = 2  # bad usage: unknown option, missing command, no terminal to ask on
    FILES = 3  # a file we need cannot be read or written
    UNDELIVERED = 4  # `flush` left events in the queue
    NO_MATCH = 5  # a look-up (`stats --command NAME`, `trace TARGET`) matched nothing
    NO_OUTPUT = 6  # our standard output is closed or cannot be written (a full disk)
    NOT_EXECUTABLE = 126  # the wrapped program exists but cannot be run
    NOT_FOUND = 127  # the wrapped program does not exist
    INTERRUPTED = 130  # Ctrl-C before the child started, or in a command of our own
    BROKEN_PIPE = 141  # our output went to a pipe that was closed

    @classmethod
    def codes(cls) -> dict[str, int]:
        """Every code by name (the README's table is checked against it)."""
        return {name: value for name, value in vars(cls).items() if name.isupper()}


class MetricsError(Exception):
    """Base of every error we raise on purpose; its text is one line for the user."""

    exit_code: int = ExitCode.FILES


class ConfigError(MetricsError):
    """An operator config or developer state file that cannot be used as it is."""


class NoMatch(MetricsError):
    """A name looked up (`stats --command NAME`, `trace TARGET`) matches no recorded run."""

    exit_code = ExitCode.NO_MATCH


class StoreError(MetricsError):
    """The local history and queue cannot be read or written."""


class StoreBusy(StoreError):
    """Other send_metrics processes hold the store (SQLite's write lock, or the state lock) for
    longer than this process waits: busy, not broken."""


# What a failed delivery means for the queue: kept and retried by a later run ("busy"); kept
# with a growing back-off ("unreachable": timeout, refused, DNS, TLS; "config": the operator's
# key, endpoint or certificates are wrong); dropped and counted ("reject"); or a batch that must
# be split to find the event at fault ("split").
if TYPE_CHECKING:
    FailureKind = Literal["busy", "unreachable", "config", "reject", "split"]


class DeliveryError(MetricsError):
    """An endpoint refused, failed or did not answer in time."""

    def __init__(
        self,
        message: str,
        *,
        retry: bool = True,
        retry_after: float | None = None,
        kind: FailureKind | None = None,
    ):
        super().__init__(message)
        self.kind: FailureKind = kind or ("busy" if retry else "reject")
        self.retry = self.kind not in ("reject", "split")
        self.retry_after = retry_after

    @property
    def backs_off(self) -> bool:
        """Later runs only queue for a while: trying again at once would cost every run."""
        return self.kind in ("unreachable", "config")


class CommandNotFound(MetricsError):
    """The program to wrap does not exist or cannot be executed (the shell's 127/126)."""

    def __init__(self, message: str, exit_code: int = ExitCode.NOT_FOUND):
        super().__init__(message)
        self.exit_code = exit_code
