"""The typed errors of send_metrics; only the CLI turns them into output."""


class MetricsError(Exception):
    """Base of every error we raise on purpose; its text is one line for the user."""

    exit_code = 3


class ConfigError(MetricsError):
    """An operator config or developer state file that cannot be used as it is."""


class StoreError(MetricsError):
    """The local history and queue cannot be read or written."""


class DeliveryError(MetricsError):
    """An endpoint refused, failed or did not answer in time."""

    def __init__(self, message: str, *, retry: bool = True, retry_after: float | None = None):
        super().__init__(message)
        self.retry = retry
        self.retry_after = retry_after


class CommandNotFound(MetricsError):
    """The program to wrap does not exist or cannot be executed (the shell's 127/126)."""

    def __init__(self, message: str, exit_code: int = 127):
        super().__init__(message)
        self.exit_code = exit_code
