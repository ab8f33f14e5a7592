"""The developer's decision file (`metrics.toml`): what they answered, when, their id, and what
the disclosure they answered covered."""

from __future__ import annotations

import os

from send_metrics import files
from send_metrics.errors import ConfigError
from send_metrics.records import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

    from send_metrics.files import AnyPath

    Answer = Literal["granted", "declined"]

# Deferred imports: every wrapped run reads the decision after its child starts; writing
# and removing one (tempfile, tomli_w, shutil) happen only at a question or a command.


# SHA-256 from CPython's built-in module (the same digest): every collected run checks its
# yes's fingerprint, and `hashlib` costs ~3 ms to load OpenSSL for it.
try:
    from _sha2 import sha256 as _sha256  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # before Python 3.12
    try:
        from _sha256 import sha256 as _sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
    except ImportError:  # a Python without them
        from hashlib import sha256 as _sha256  # type: ignore[assignment,unused-ignore]


def purpose_hash(message: str) -> str:
    """What a yes keeps of the purpose the operator wrote: enough to see that it changed."""
    return _sha256(message.encode("utf-8")).hexdigest()[:16] if message else ""


class Scope(NamedTuple):
    """What a disclosure covers: enough to tell a narrower disclosure from a wider one, not only
    a hash of it (a hash could only say "different")."""

    app: str = ""
    consent_version: int = 0
    sink: str = "local"
    host: str = ""  # the endpoint's host name; empty for the local sink
    fields: tuple[str, ...] = ()  # the fields collected (sorted)
    allow_args: tuple[str, ...] = ()  # commands whose arguments are collected (sorted)
    privacy_url: str = ""
    retention: str = ""
    purpose: str = ""  # a hash of the operator's `[consent] message`; empty for ours

    @property
    def fingerprint(self) -> str:
        """A stable hash of everything above, stored with a yes and shown by `status`. Without
        a purpose, the hash of the fields before it: a yes recorded before it was kept holds."""
        from send_metrics.jsontext import dumps

        values = list(self) if self.purpose else list(self)[:-1]
        text = dumps(values, separators=(",", ":"))
        digest: str = _sha256(text.encode("utf-8")).hexdigest()
        return digest[:16]


class Decision(NamedTuple):
    """The recorded decision; `answer` is None when nothing usable is recorded. `scope` is what
    a yes covered (None for a no, or a yes recorded before scopes were kept)."""

    answer: Answer | None = None
    decided_at: str = ""
    consent_version: int = 0
    anonymous_id: str = ""
    scope: Scope | None = None
    # The fingerprint of a wider disclosure asked about after this yes and not granted (an
    # empty answer, Ctrl-C, end of input): collected under nothing, and not asked again.
    skipped: str = ""

    @property
    def granted(self) -> bool:
        return self.answer == "granted" and bool(self.anonymous_id)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _read_scope(raw: Any, path: AnyPath) -> Scope | None:
    """The `[disclosure]` table; a table whose fingerprint does not match its content is refused."""
    if raw is None:
        return None
    bad = ConfigError(f"{path} does not hold a valid decision (its [disclosure] table)")
    if not isinstance(raw, dict):
        raise bad
    texts = ("app", "sink", "host", "privacy_url", "retention", "purpose")
    if not all(isinstance(raw.get(k, ""), str) for k in (*texts, "fingerprint")):
        raise bad
    if not (_strings(raw.get("fields", [])) and _strings(raw.get("allow_args", []))):
        raise bad
    version = raw.get("consent_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise bad
    scope = Scope(
        raw.get("app", ""),
        version,
        raw.get("sink", "local"),
        raw.get("host", ""),
        tuple(sorted(raw.get("fields", []))),
        tuple(sorted(raw.get("allow_args", []))),
        raw.get("privacy_url", ""),
        raw.get("retention", ""),
        raw.get("purpose", ""),
    )
    if raw.get("fingerprint") != scope.fingerprint:
        raise bad
    return scope


# The last decision read, by the file's identity: a run reads it up to three times (before
# collecting, before recording, before sending, each time under the lock but the first), and a
# decision is only ever changed by writing a new file and renaming it over the old one.
_LAST: dict[str, tuple[tuple[int, ...], Decision]] = {}


def read_decision(path: AnyPath) -> Decision:
    """Read the decision file; a missing file is no decision, a bad one raises ConfigError."""
    key: tuple[int, ...] = ()
    try:
        seen = os.stat(path, follow_symlinks=False)
        key = (seen.st_ino, seen.st_dev, seen.st_size, seen.st_mtime_ns, seen.st_ctime_ns)
    except OSError:
        pass
    cached = _LAST.get(os.fspath(path))
    if key and cached is not None and cached[0] == key:
        return cached[1]
    decision = _read(path)
    if key:
        _LAST[os.fspath(path)] = (key, decision)
    return decision


def _read(path: AnyPath) -> Decision:
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
    if answer != "granted":
        return Decision("declined", decided_at, version)
    skipped = raw.get("skipped_disclosure", "")
    if not isinstance(skipped, str):
        raise ConfigError(f"{path} does not hold a valid decision")
    return Decision(
        "granted",
        decided_at,
        version,
        anonymous_id,
        _read_scope(raw.get("disclosure"), path),
        skipped,
    )


def _looks_like_uuid(text: str) -> bool:
    parts = text.split("-")
    return [len(p) for p in parts] == [8, 4, 4, 4, 12] and all(
        c in "0123456789abcdef" for c in text.replace("-", "")
    )


def write_decision(path: AnyPath, decision: Decision) -> None:
    """Write the decision atomically (temp file, fsync, rename) with mode 0600; raise
    ConfigError. A symlink at `path` is refused: we never write through one, nor replace it."""
    import tempfile

    import tomli_w

    data: dict[str, Any] = {
        "decision": decision.answer or "",
        "decided_at": decision.decided_at,
        "consent_version": decision.consent_version,
    }
    if decision.anonymous_id:
        data["anonymous_id"] = decision.anonymous_id
    if decision.skipped:
        data["skipped_disclosure"] = decision.skipped
    if decision.scope is not None:
        data["disclosure"] = {
            "fingerprint": decision.scope.fingerprint,
            **decision.scope._asdict(),
            "fields": list(decision.scope.fields),
            "allow_args": list(decision.scope.allow_args),
        }
    text = (
        "# send_metrics: your decision about usage metrics, and what the text you answered "
        "covered.\n# Change it with `send_metrics opt-in`, `opt-out` or `reset`.\n"
        + tomli_w.dumps(data)
    )
    tmp = None
    try:
        folder = os.path.dirname(path)
        files.private_dir(folder)
        files.refuse_link(path, regular=False)  # a FIFO or device is replaced, never opened
        fd, tmp = tempfile.mkstemp(prefix=".metrics-", suffix=".tmp", dir=folder)
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


def remove_decision(path: AnyPath) -> None:
    """Forget the decision; a directory squatting on the file's name is removed when empty, and
    moved aside (`metrics.toml.moved-N`, said in one line) when it holds anything: we never
    delete files we did not write. A symlink is removed itself (never what it points to)."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            if not os.listdir(path):
                os.rmdir(path)
                return
            number = 1
            while os.path.lexists(f"{path}.moved-{number}"):
                number += 1
            os.rename(path, f"{path}.moved-{number}")
            from send_metrics.output import warn  # only for this rare repair

            warn(f"{path} was a folder with files in it: moved aside to {path}.moved-{number}")
        else:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
    except OSError as exc:
        raise ConfigError(f"cannot remove {path} ({exc.strerror or exc})") from None
