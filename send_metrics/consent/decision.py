"""The developer's decision: the file (`metrics.toml`: what they answered, when, their id, and
what the disclosure they answered covered), whether a yes covers the current disclosure, and a
run's consent decided once from it (`decide`, a `Verdict`). Asking is `consent`'s, and a run
that does not ask never loads it."""

from __future__ import annotations

import os

from send_metrics.errors import ConfigError, MetricsError
from send_metrics.lean.records import NamedTuple
from send_metrics.settings import files
from send_metrics.settings.files import state_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

    from send_metrics.settings.config import Settings
    from send_metrics.settings.files import AnyPath

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
        from send_metrics.lean.jsontext import dumps

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
    from send_metrics.lean import tomlread

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


SINK_NAMES = {
    "segment": "Segment",
    "otlp": "an OpenTelemetry collector",
    "http": "an HTTP endpoint",
}


def where(covered: Scope) -> str:
    """Where events go, as the disclosure and `status` say it."""
    if covered.sink == "local":
        return "this machine only (nothing is sent)"
    host = covered.host or "(no endpoint set)"
    if covered.sink == "segment":
        return f"{host} (Segment)"
    return f"{SINK_NAMES.get(covered.sink, covered.sink)} at {host}"


def gap(accepted: Scope | None, current: Scope) -> str:
    """Why a yes to `accepted` does not cover `current`, in a few words; empty when it does.
    Narrowing (fewer fields or commands, the local sink) is covered."""
    if accepted is None:
        return "the recorded yes does not say what it covered (an older send_metrics)"
    if current.consent_version > accepted.consent_version:
        return f"the operator raised the consent version to {current.consent_version}"
    if current.sink != "local" and (current.sink, current.host) != (accepted.sink, accepted.host):
        before = "only this machine" if accepted.sink == "local" else where(accepted)
        return f"events would go to {where(current)} instead of {before}"
    more = sorted(set(current.fields) - set(accepted.fields))
    if more:
        return "more fields would be collected: " + ", ".join(more)
    commands = sorted(set(current.allow_args) - set(accepted.allow_args))
    if commands:
        return "the arguments of more commands would be collected: " + ", ".join(commands)
    if current.privacy_url != accepted.privacy_url:
        return "the privacy URL changed"
    if current.retention != accepted.retention:
        return "the retention changed"
    if current.purpose != accepted.purpose:
        return "the purpose shown (consent.message) changed"
    return ""


def covers_text(state: Decision) -> str:
    """What a recorded yes covered, in one line."""

    accepted = state.scope
    if accepted is None:
        return "(not recorded: a yes from an older send_metrics)"
    parts = [
        f"consent version {accepted.consent_version}",
        f"events to {where(accepted)}",
        f"{len(accepted.fields)} fields"
        + ("" if "git_remote_hash" in accepted.fields else " (no git_remote_hash)"),
        "arguments of " + (", ".join(accepted.allow_args) or "no command"),
    ]
    if accepted.privacy_url:
        parts.append(f"privacy {accepted.privacy_url}")
    if accepted.retention:
        parts.append(f"retention {accepted.retention!r}")
    return "; ".join(parts) + f" (fingerprint {accepted.fingerprint})"


def covers(decision: Decision, current: Scope) -> bool:
    """Whether `decision` is a yes that covers the disclosure `current`: made under its consent
    version or a later one, to a disclosure that collected no less (`gap`)."""
    return (
        decision.granted
        and decision.consent_version >= current.consent_version
        and not gap(decision.scope, current)
    )


def _host(settings: Settings) -> str:
    """The host events would go to, as text that can be shown and stored (bytes that are not
    UTF-8, from an environment variable, become U+FFFD)."""
    found = _raw_host(settings)
    return found.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _raw_host(settings: Settings) -> str:
    """The host events would go to: the same resolution a send makes (the key plays no part)."""
    from send_metrics.lean.urls import urlsplit
    from send_metrics.settings import destination

    try:
        target = destination.resolve(settings._replace(write_key=settings.write_key or "-"))
        return (urlsplit(target.url).hostname or "") if target else ""
    except (MetricsError, ValueError):
        pass  # a setting the sink refuses (events wait in the queue): the configured endpoint
    url = (
        os.environ.get("SEND_METRICS_ENDPOINT")
        or settings.endpoint
        or destination.DEFAULT_ENDPOINTS.get(settings.sink, "")
    )
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


_SCOPES: list[tuple[Settings, Scope]] = []  # the last one made: a run asks up to three times


def scope(settings: Settings) -> Scope:
    """What the current disclosure covers: app, consent version, where events go, the fields,
    the allow-listed commands, the privacy URL and retention."""
    for known, covered in _SCOPES:
        if known is settings:
            return covered
    covered = _scope(settings)
    _SCOPES[:] = [(settings, covered)]
    return covered


def _scope(settings: Settings) -> Scope:
    from send_metrics.event.event import collected_fields  # the fields a yes covers

    local = settings.sink == "local"
    return Scope(
        settings.app,
        settings.consent_version,
        settings.sink,
        "" if local else _host(settings),
        collected_fields(settings.git_remote_hash),
        tuple(sorted(set(settings.allow_args))),
        settings.privacy_url,
        settings.retention,
        purpose_hash(settings.consent_message),
    )


def needs_asking(decision: Decision, settings: Settings) -> bool:
    """No usable decision, one made under an older consent version, or a yes that does not
    cover what would now be collected, unless this very disclosure was already asked about
    and not granted (`Decision.skipped`). A no stands until the consent version is raised."""
    if decision.answer is None:
        return True
    if decision.granted and _skipped(decision, settings):
        return False
    if decision.consent_version < settings.consent_version:
        return True
    return decision.granted and not collecting(decision, settings)


def _skipped(decision: Decision, settings: Settings) -> bool:
    return bool(decision.skipped) and decision.skipped == scope(settings).fingerprint


def recorded(settings: Settings, problems: list[str]) -> Decision:
    """The developer's recorded decision, as a run reads it: a problem reading it (no home, a
    broken file) is one line in `problems` and counts as no decision."""
    try:
        path = state_path(settings.app)
    except MetricsError as exc:  # no home: nothing to repair, no decision to read
        problems.append(str(exc))
        return Decision()
    try:
        return read_decision(path)
    except MetricsError as exc:
        problems.append(f"{exc}; treated as no decision (`send_metrics reset` repairs it)")
        return Decision()


def collecting(decision: Decision, settings: Settings) -> bool:
    """Whether this developer has said yes to a disclosure covering the current one."""
    return (
        decision.granted
        and decision.consent_version >= settings.consent_version
        and not gap(decision.scope, scope(settings))
    )


def decide(settings: Settings, decision: Decision) -> Verdict:
    """A run's consent, decided once from the decision it read (or was given): whether it
    collects, and then what the yes covers, which its recording and sending check again under
    the lock (`lock.recording`, `lock.sending`); or whether a question is due."""
    asking = needs_asking(decision, settings)
    collects = collecting(decision, settings)
    return Verdict(settings, decision, scope(settings) if collects else None, asking)


class Verdict(NamedTuple):
    """A run's consent, decided once (`decide`) and handed down to its recording and
    sending, which check it again under the lock."""

    settings: Settings
    decision: Decision  # the decision the run read (or the answer it was given)
    scope: Scope | None  # what the current disclosure covers; None unless collecting
    asking: bool  # a question is due: no usable decision, or a yes that does not cover this

    @property
    def collecting(self) -> bool:
        """This run collects: a yes that covers the current disclosure."""
        return self.scope is not None

    def still(self, decision: Decision) -> bool:
        """Whether a decision read again still lets this run collect: a yes that covers the
        same disclosure (what `decide` would find under the same settings)."""
        return self.scope is not None and covers(decision, self.scope)
