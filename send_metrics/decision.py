"""The developer's decision file (`metrics.toml`): what they answered, when, and their id."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, NamedTuple

from send_metrics import files
from send_metrics.errors import ConfigError

# Deferred imports: every wrapped run reads the decision after its child starts; writing
# and removing one (tempfile, tomli_w, shutil) happen only at a question or a command.

Answer = Literal["granted", "declined"]


class Decision(NamedTuple):
    """The recorded decision; `answer` is None when nothing usable is recorded."""

    answer: Answer | None = None
    decided_at: str = ""
    consent_version: int = 0
    anonymous_id: str = ""

    @property
    def granted(self) -> bool:
        return self.answer == "granted" and bool(self.anonymous_id)


def read_decision(path: Path) -> Decision:
    """Read the decision file; a missing file is no decision, a bad one raises ConfigError."""
    from send_metrics import tomlread

    try:
        text = files.read_small(path, follow=False).decode("utf-8")
        raw = tomlread.loads(text)
    except FileNotFoundError:
        return Decision()
    except (ValueError, RecursionError):  # ValueError: not UTF-8, not TOML
        raise ConfigError(f"{path} is not valid TOML") from None
    answer = raw.get("decision")
    version = raw.get("consent_version", 0)
    anonymous_id = raw.get("anonymous_id", "")
    decided_at = raw.get("decided_at", "")
    if (
        answer not in ("granted", "declined")
        or not isinstance(version, int)
        or isinstance(version, bool)
        or not isinstance(anonymous_id, str)
        or not isinstance(decided_at, str)
        or (answer == "granted" and not _looks_like_uuid(anonymous_id))
    ):
        raise ConfigError(f"{path} does not hold a valid decision")
    granted_id = anonymous_id if answer == "granted" else ""
    return Decision(
        "granted" if answer == "granted" else "declined", decided_at, version, granted_id
    )


def _looks_like_uuid(text: str) -> bool:
    parts = text.split("-")
    return [len(p) for p in parts] == [8, 4, 4, 4, 12] and all(
        c in "0123456789abcdef" for c in text.replace("-", "")
    )


def write_decision(path: Path, decision: Decision) -> None:
    """Write the decision atomically (temp file, fsync, rename) with mode 0600; raise
    ConfigError. The rename replaces a symlink at `path` rather than writing through it."""
    import tempfile

    import tomli_w

    data: dict[str, str | int] = {
        "decision": decision.answer or "",
        "decided_at": decision.decided_at,
        "consent_version": decision.consent_version,
    }
    if decision.anonymous_id:
        data["anonymous_id"] = decision.anonymous_id
    text = (
        "# send_metrics: your decision about usage metrics. "
        "Change it with `send_metrics opt-in`, `opt-out` or `reset`.\n" + tomli_w.dumps(data)
    )
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".metrics-", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise ConfigError(f"cannot write {path} ({exc.strerror or exc})") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def remove_decision(path: Path) -> None:
    """Forget the decision; a directory squatting on the file's name is removed too."""
    import shutil

    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot remove {path} ({exc.strerror or exc})") from None
