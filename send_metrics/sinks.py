"""The network sinks (Segment, OTLP/HTTP, plain HTTP): where events go, in what shape, and what
each endpoint's answer means for the queue. The way there (proxies, TLS) is `transport`'s."""

from __future__ import annotations

import binascii
import os
import time

from send_metrics import __version__
from send_metrics.config import Settings, header_ok
from send_metrics.errors import DeliveryError
from send_metrics.jsontext import dumps, loads
from send_metrics.records import NamedTuple
from send_metrics.transport import ClientCert, HttpClient, Response, check_url, mask_url
from send_metrics.urls import quote, unquote, urlsplit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from typing import Any

    from send_metrics.event import Event
    from send_metrics.transport import Environ

__all__ = ["HttpClient", "Target", "deliver", "mask_url", "resolve"]

# Deferred imports: socket and ssl (in `transport`) load on the prefetch thread while the child
# runs; dates, zlib, protobuf and the e-mail date parser only where a request or reply needs them.

DEFAULT_ENDPOINTS = {"segment": "https://api.segment.io", "otlp": "http://localhost:4318"}
# Segment's HTTP API limits, in bytes of JSON as sent: an event (a whole track request) and a
# batch request; and events in a batch.
SEGMENT_MAX_EVENT_BYTES = 32_000
SEGMENT_MAX_BATCH_BYTES = 500_000
SEGMENT_MAX_BATCH_EVENTS = 2_500
OTLP_MAX_RECORDS = 500
# What a status means, per sink; the rest of 4xx drops the event (counted) unless listed here.
_RETRY = {
    # Segment's HTTP API documentation (and its Python client 2.4): retry 408, 410, 429, 460
    # and 5xx except 501 and 505.
    "segment": {408, 410, 429, 460, *(s for s in range(500, 600) if s not in (501, 505))},
    # OTLP/HTTP: only these are retryable; any other failure is final for the data.
    "otlp": {429, 502, 503, 504},
    "http": {408, 429, *range(500, 600)},
}
_SPLIT = {400, 413, 422}  # the request's content is at fault: split a batch to find the event
_CONFIG = {401, 403, 404, 405, 407}  # the operator's key or endpoint is wrong: keep the events

# Event fields as OTLP attributes, named after the OpenTelemetry semantic conventions where one
# exists; the rest live under `send_metrics.`. Resource attributes describe app and machine.
OTLP_RESOURCE = {
    "app": "service.name",
    "app_version": "service.version",
    "os": "os.type",
    "os_release": "os.version",
    "arch": "host.arch",
    "python_version": "process.runtime.version",
    "cpu_count": "send_metrics.host.cpu_count",
    "memory_total_bytes": "send_metrics.host.memory_total_bytes",
    "ci": "send_metrics.ci",
    "ci_vendor": "send_metrics.ci_vendor",
    "container": "send_metrics.container",
}
OTLP_RECORD = {
    "message_id": "log.record.uid",
    "anonymous_id": "enduser.pseudo.id",
    "command": "process.command",
    "command_args": "process.command_args",
    "exit_code": "process.exit.code",
}
# host.arch's well-known values in the semantic conventions, from what `uname -m` says.
HOST_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv6l": "arm32",
    "armv7l": "arm32",
    "armv8l": "arm32",
    "arm": "arm32",
    "i386": "x86",
    "i486": "x86",
    "i586": "x86",
    "i686": "x86",
    "x86": "x86",
    "ia64": "ia64",
    "ppc": "ppc32",
    "ppc64": "ppc64",
    "ppc64le": "ppc64",
    "s390x": "s390x",
}
OTLP_PROTOCOLS = ("http/json", "http/protobuf")


class Target(NamedTuple):
    """A resolved destination: sink, URLs, headers (which may hold secrets; never print them),
    and how to reach and speak to it."""

    sink: str
    url: str
    batch_url: str = ""
    headers: dict[str, str] = {}  # noqa: RUF012 - a shared default, never mutated
    timeout: float | None = None
    ca_bundles: tuple[tuple[str, str], ...] = ()  # (setting, path) of certificates to trust
    auth_setting: str = "report.headers"  # named when the endpoint says 401 or 403
    protobuf: bool = False  # OTLP/HTTP binary encoding instead of JSON
    gzip: bool = False
    client_cert: ClientCert | None = None  # for an endpoint that asks for one (mutual TLS)
    notes: tuple[str, ...] = ()  # settings problems that do not stop sending, said after a run

    def __repr__(self) -> str:
        return f"Target({self.sink!r}, {self.shown!r}, headers=***)"

    @property
    def shown(self) -> str:
        """The endpoint as it may be printed: no credentials, no query values."""
        return mask_url(self.url)

    @property
    def fingerprint(self) -> str:
        """Tells destinations apart (a checksum, stored locally): a back-off recorded for one
        does not hold once the operator fixed the endpoint, key or certificates."""
        import zlib

        return f"{zlib.crc32(repr(tuple(self) + tuple(sorted(self.headers.items()))).encode()):08x}"


def _otel(name: str, environ: Environ) -> tuple[str, str]:
    """An OTLP exporter variable, the logs-specific one first: (variable name, value)."""
    for var in (f"OTEL_EXPORTER_OTLP_LOGS_{name}", f"OTEL_EXPORTER_OTLP_{name}"):
        if environ.get(var, "").strip():
            return var, environ[var].strip()
    return f"OTEL_EXPORTER_OTLP_{name}", ""


def _otel_headers(var: str, text: str) -> tuple[dict[str, str], str]:
    """OTEL_EXPORTER_OTLP_HEADERS: `key=value,key2=value2`, percent-encoded. An entry that is
    not a valid header once decoded is skipped, as the OpenTelemetry SDK skips it; the others
    are kept. Also returned: a line naming the variable (never the value, which may hold a
    token) when one was skipped, said once the command has ended (see `Target.notes`)."""
    pairs = {}
    note = ""
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not item.strip():
            continue
        name, value = unquote(key.strip()), unquote(value.strip())
        if sep and header_ok(name, value):
            pairs[name] = value
        else:
            note = f"{var}: an entry is not a valid header (name=value, percent-encoded); skipped"
    return pairs, note


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, parts.hostname or "", port


def _operators(settings: Settings, url: str, default: str) -> bool:
    """Whether `url` is the operator's endpoint (the configured one, or the sink's default):
    only there do the operator's secrets (report.headers, write_key, client certificate) go,
    never to an endpoint a developer's environment named."""
    try:
        return _origin(url) == _origin(settings.endpoint or default)
    except ValueError:
        return False


def _client_cert(settings: Settings, env: Environ, otlp: bool) -> ClientCert | None:
    """The client certificate for mutual TLS: OTEL_EXPORTER_OTLP_(LOGS_)CLIENT_CERTIFICATE and
    _CLIENT_KEY for otlp (the logs-specific one first), else report.client_cert/client_key."""
    if otlp:
        cvar, cert = _otel("CLIENT_CERTIFICATE", env)
        kvar, key = _otel("CLIENT_KEY", env)
        if cert:
            return ClientCert(f"{cvar} / {kvar}" if key else cvar, cert, key)
    if settings.client_cert:
        setting = "report.client_cert" + (" / report.client_key" if settings.client_key else "")
        return ClientCert(setting, settings.client_cert, settings.client_key)
    return None


def otel_disabled(environ: Environ | None = None) -> bool:
    """OTEL_SDK_DISABLED=true (the specification's only true value): the otlp sink sends nothing."""
    env = os.environ if environ is None else environ
    return env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def _bundles(settings: Settings, env: Environ, extra: tuple[str, str] = ("", "")) -> list[Any]:
    found = [extra] if extra[1] else []
    if settings.ca_bundle:
        found.append(("report.ca_bundle", settings.ca_bundle))
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # what requests honours, in its order
        if env.get(var):
            found.append((var, env[var]))
            break
    return found


def _otlp(settings: Settings, env: Environ, override: str) -> Target:
    logs_var = "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"  # used as it is: no path appended
    logs_url = env.get(logs_var, "").strip()
    if override or not logs_url:
        base_var, base = "report.endpoint", settings.endpoint or DEFAULT_ENDPOINTS["otlp"]
        if env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            base_var, base = "OTEL_EXPORTER_OTLP_ENDPOINT", env["OTEL_EXPORTER_OTLP_ENDPOINT"]
        if override:
            base_var, base = "SEND_METRICS_ENDPOINT", override
        check_url(base, base_var)
        logs_url = f"{base.rstrip('/')}/v1/logs"
    else:
        check_url(logs_url, logs_var)
    var, protocol = _otel("PROTOCOL", env)
    protocol = protocol.lower() or "http/json"
    if protocol not in OTLP_PROTOCOLS:
        hint = "; only OTLP/HTTP is spoken" if protocol == "grpc" else ""
        raise DeliveryError(
            f"{var}={protocol} is not supported (use http/json or http/protobuf){hint}",
            kind="config",
        )
    if protocol == "http/protobuf":
        import importlib.util

        if importlib.util.find_spec("opentelemetry.proto") is None:
            raise DeliveryError(
                f"{var}=http/protobuf needs opentelemetry-proto: "
                "pip install 'send-metrics[protobuf]' (or use http/json)",
                kind="config",
            )
    cvar, compression = _otel("COMPRESSION", env)
    if compression.lower() not in ("", "none", "gzip"):
        raise DeliveryError(f"{cvar}={compression} is not supported (gzip or none)", kind="config")
    ours = _operators(settings, logs_url, DEFAULT_ENDPOINTS["otlp"] + "/v1/logs")
    hvar, env_headers = _otel("HEADERS", env)
    env_pairs, note = _otel_headers(hvar, env_headers)
    headers = {**(settings.headers if ours else {}), **env_pairs}
    timeout = None
    try:
        millis = float(_otel("TIMEOUT", env)[1])
        # Zero, negative, NaN or infinite: not a timeout anyone meant; the deadline bounds it.
        timeout = millis / 1000.0 if 0 < millis < float("inf") else None
    except ValueError:
        pass
    # OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME are never read: they are the developer's
    # environment (a global host.name, user.name...), which no disclosure names (README, OTLP).
    return Target(
        "otlp",
        logs_url,
        logs_url,
        headers,
        timeout,
        tuple(_bundles(settings, env, _otel("CERTIFICATE", env))),
        "report.headers or OTEL_EXPORTER_OTLP_HEADERS"
        if ours
        else "OTEL_EXPORTER_OTLP_HEADERS (report.headers go only to report.endpoint)",
        protocol == "http/protobuf",
        compression.lower() == "gzip",
        _client_cert(settings if ours else Settings(), env, otlp=True),
        (note,) if note else (),
    )


def resolve(settings: Settings, environ: Environ | None = None) -> Target | None:
    """Where events go for these settings and environment; None for the local sink."""
    env = os.environ if environ is None else environ
    sink = settings.sink
    override = env.get("SEND_METRICS_ENDPOINT", "")
    setting = "SEND_METRICS_ENDPOINT" if override else "report.endpoint"
    if sink == "local":
        return None
    if sink == "segment":
        if not settings.write_key:
            raise DeliveryError("report.sink is 'segment' but report.write_key is not set")
        base = override or settings.endpoint or DEFAULT_ENDPOINTS["segment"]
        check_url(base, setting)
        base = base.rstrip("/")
        bundles = tuple(_bundles(settings, env))
        if not _operators(settings, base, DEFAULT_ENDPOINTS["segment"]):
            return Target(
                "segment", f"{base}/v1/track", f"{base}/v1/batch", {}, None, bundles,
                "SEND_METRICS_ENDPOINT (report.write_key goes only to report.endpoint)",
            )  # fmt: skip
        auth = binascii.b2a_base64(f"{settings.write_key}:".encode(), newline=False).decode()
        headers = {**settings.headers, "Authorization": f"Basic {auth}"}
        return Target(
            "segment", f"{base}/v1/track", f"{base}/v1/batch", headers, None, bundles,
            "report.write_key", client_cert=_client_cert(settings, env, otlp=False),
        )  # fmt: skip
    if sink == "otlp":
        return _otlp(settings, env, override)
    url = override or settings.endpoint
    if not url:
        raise DeliveryError("report.sink is 'http' but no endpoint is set", kind="config")
    check_url(url, setting)
    if not _operators(settings, url, url if not override else ""):
        auth = "SEND_METRICS_ENDPOINT (report.headers go only to report.endpoint)"
        return Target("http", url, url, {}, None, tuple(_bundles(settings, env)), auth)
    return Target(
        "http", url, url, dict(settings.headers), None, tuple(_bundles(settings, env)),
        client_cert=_client_cert(settings, env, otlp=False),
    )  # fmt: skip


# ---- Segment ----


def _now_iso() -> str:
    from send_metrics.event import iso_utc

    return iso_utc(time.time())


def segment_message(event: Event) -> dict[str, Any]:
    """One Segment `track` call; the IP is zeroed so Segment cannot locate the developer."""
    properties = {
        k: v for k, v in event.items() if k not in ("anonymous_id", "message_id", "event")
    }
    return {
        "type": "track",
        "event": event["event"],
        "anonymousId": event["anonymous_id"],
        "userId": None,  # anonymous only, as Segment's own clients send it
        "messageId": event["message_id"],
        "timestamp": event["start_time"],
        "properties": properties,
        "context": {
            "library": {"name": "send_metrics", "version": __version__},
            "ip": "0.0.0.0",  # noqa: S104 - not a bind: tells Segment to record no address
        },
        "integrations": {},
    }


def _segment_json(event: Event, extra: Mapping[str, Any]) -> bytes:
    """One Segment message within Segment's 32 KB for an event: a make breakdown too long for
    it is trimmed, the critical path and the slowest targets kept, the others counted in
    `make_targets_omitted` (README, "Segment"). Over the limit still: returned as it is."""
    body = dumps({**segment_message(event), **extra}).encode()
    targets = event.get("make_targets") or []
    if len(body) <= SEGMENT_MAX_EVENT_BYTES or not targets:
        return body
    rank = sorted(
        range(len(targets)), key=lambda i: (not targets[i]["critical"], -targets[i]["duration_ms"])
    )

    def keeping(count: int) -> bytes:
        kept = sorted(rank[:count])
        omitted = (event.get("make_targets_omitted") or 0) + len(targets) - count
        trimmed = {**event, "make_targets": [targets[i] for i in kept]}
        trimmed["make_targets_omitted"] = omitted
        return dumps({**segment_message(trimmed), **extra}).encode()  # type: ignore[arg-type]

    low, high = 0, len(targets) - 1  # the most targets that fit lies in [low, high]
    while low < high:
        middle = (low + high + 1) // 2
        if len(keeping(middle)) <= SEGMENT_MAX_EVENT_BYTES:
            low = middle
        else:
            high = middle - 1
    return keeping(low)


def _segment_requests(target: Target, events: list[Event]) -> Iterator[_Request]:
    """Segment requests within its limits; `sentAt` on each, so Segment corrects clock skew."""
    if len(events) == 1:
        body = _segment_json(events[0], {"sentAt": _now_iso()})
        if len(body) > SEGMENT_MAX_EVENT_BYTES:
            yield _Request(target.url, events, None, "over Segment's 32 KB limit for an event")
        else:
            yield _Request(target.url, events, body, "")
        return
    sent_at = dumps(_now_iso()).encode()
    envelope = len(b'{"batch":[],"sentAt":}') + len(sent_at)
    chunk: list[bytes] = []
    members: list[Event] = []
    size = envelope
    for event in events:
        item = _segment_json(event, {})
        if len(item) > SEGMENT_MAX_EVENT_BYTES:
            yield _Request(target.url, [event], None, "over Segment's 32 KB limit for an event")
            continue
        full = size + len(item) + (1 if chunk else 0) > SEGMENT_MAX_BATCH_BYTES
        if chunk and (full or len(chunk) == SEGMENT_MAX_BATCH_EVENTS):
            yield _Request(target.batch_url, members, _batch(chunk, sent_at), "")
            chunk, members, size = [], [], envelope
        chunk.append(item)
        members.append(event)
        size += len(item) + (1 if len(chunk) > 1 else 0)
    if chunk:
        yield _Request(target.batch_url, members, _batch(chunk, sent_at), "")


def _batch(items: list[bytes], sent_at: bytes) -> bytes:
    return b'{"batch":[' + b",".join(items) + b'],"sentAt":' + sent_at + b"}"


# ---- OTLP ----


def _any_value(value: Any) -> dict[str, Any]:
    """A JSON value as an OTLP AnyValue: a list is an array, an object a key-value list (the
    make breakdown) without its null members, as null attributes are left out (an empty
    AnyValue is valid protobuf, but JSON receivers such as rotel refuse `{}`)."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_any_value(v) for v in value]}}
    if isinstance(value, dict):
        pairs = [{"key": str(k), "value": _any_value(v)} for k, v in value.items() if v is not None]
        return {"kvlistValue": {"values": pairs}}
    return {"stringValue": str(value)}


def _otlp_fields(event: Event) -> dict[str, Any]:
    """The event's values as the semantic conventions want them: `process.command_args` is the
    whole command line (the command first), `host.arch` one of the well-known values."""
    fields: dict[str, Any] = dict(event)
    if event.get("command_args") is not None:
        fields["command_args"] = [event["command"], *(event["command_args"] or [])]
    arch = str(event.get("arch") or "")
    fields["arch"] = HOST_ARCH.get(arch, arch) or None
    return fields


def _attributes(fields: Mapping[str, Any], names: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"key": names[k], "value": _any_value(fields[k])}
        for k in names
        if fields.get(k) is not None
    ]


def otlp_request(events: list[Event]) -> dict[str, Any]:
    """An OTLP/HTTP ExportLogsServiceRequest in its JSON form: one log record per event, the
    event's facts and nothing else (no OTEL_RESOURCE_ATTRIBUTES: see `_otlp`)."""
    from datetime import datetime

    used = {*OTLP_RESOURCE, *OTLP_RECORD}
    rest = {k: f"send_metrics.{k}" for k in events[0] if k not in used} if events else {}
    observed = str(time.time_ns())
    resource_logs = []
    for event in events:
        fields = _otlp_fields(event)
        start_ns = int(datetime.fromisoformat(event["start_time"]).timestamp() * 1e9)
        record = {
            "timeUnixNano": str(start_ns),
            "observedTimeUnixNano": observed,
            "severityNumber": 9,
            "severityText": "INFO",
            "eventName": event["event"],
            "body": {"stringValue": event["event"]},
            "attributes": _attributes(fields, {**OTLP_RECORD, **rest}),
        }
        resource_logs.append(
            {
                "resource": {"attributes": _attributes(fields, OTLP_RESOURCE)},
                "scopeLogs": [
                    {
                        "scope": {"name": "send_metrics", "version": __version__},
                        "logRecords": [record],
                    }
                ],
            }
        )
    return {"resourceLogs": resource_logs}


def _otlp_body(target: Target, events: list[Event]) -> bytes:
    request = otlp_request(events)
    if not target.protobuf:
        return dumps(request).encode()
    from google.protobuf import json_format
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    from opentelemetry.proto.logs.v1 import logs_pb2

    if "event_name" not in logs_pb2.LogRecord.DESCRIPTOR.fields_by_name:  # before OTLP 1.5
        for resource_logs in request["resourceLogs"]:
            resource_logs["scopeLogs"][0]["logRecords"][0].pop("eventName", None)
    message = json_format.ParseDict(request, logs_service_pb2.ExportLogsServiceRequest())
    return bytes(message.SerializeToString())


def warm(target: Target) -> None:
    """Load the optional encoder (protobuf: tens of ms) on the prefetch thread, while the child
    runs, rather than inside the deadline."""
    if target.protobuf:
        from google.protobuf import json_format  # noqa: F401
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2  # noqa: F401


def _partial_rejections(target: Target, response: Response) -> int:
    """OTLP's partial success: how many records the collector refused though it answered 2xx."""
    if target.sink != "otlp" or not response.body:
        return 0
    try:
        if "protobuf" in response.content_type:
            from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

            answer = logs_service_pb2.ExportLogsServiceResponse()
            answer.ParseFromString(response.body)
            return int(answer.partial_success.rejected_log_records)
        doc = loads(response.body)
        partial = doc.get("partialSuccess") if isinstance(doc, dict) else None
        return int(partial.get("rejectedLogRecords") or 0) if isinstance(partial, dict) else 0
    except Exception:  # unreadable (protobuf's DecodeError included): not a failure to send
        return 0


# ---- requests and answers ----


class _Request(NamedTuple):
    """One HTTP request to make: URL, the events it carries, and its body (None: cannot be
    sent at all, for `why`)."""

    url: str
    events: list[Event]
    body: bytes | None
    why: str


def _plan(target: Target, events: list[Event]) -> Iterator[_Request]:
    if target.sink == "segment":
        yield from _segment_requests(target, events)
    elif target.sink == "otlp":
        for i in range(0, len(events), OTLP_MAX_RECORDS):
            chunk = events[i : i + OTLP_MAX_RECORDS]
            yield _Request(target.url, chunk, _otlp_body(target, chunk), "")
    else:
        for event in events:
            yield _Request(target.url, [event], dumps(event).encode(), "")


def requests_for(target: Target, events: list[Event]) -> Iterator[tuple[str, list[str], bytes]]:
    """Every HTTP request that delivers `events`: (url, message ids it carries, body)."""
    for request in _plan(target, events):
        if request.body is not None:
            yield request.url, [e["message_id"] for e in request.events], request.body


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, min(float(value), 86400.0))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        return max(0.0, min(parsedate_to_datetime(value).timestamp() - time.time(), 86400.0))
    except (TypeError, ValueError, IndexError):
        return None


def _redirect(url: str, location: str) -> str:
    """Where a redirect points, as it may be printed: an absolute URL masked as every endpoint
    is; a relative one (`/v2/logs`) as its path on the same host, without its query."""
    if location.startswith("//"):
        location = f"{urlsplit(url).scheme}:{location}"
    if "://" in location:
        return mask_url(location)
    path = location.partition("?")[0].partition("#")[0]
    shown = "".join(c for c in path if c.isprintable())[:80] or "/"
    return f"{quote(shown, safe='/%-._~!$&()*+,;=:@')} on the same host"


def judge(target: Target, url: str, response: Response) -> DeliveryError | None:
    """What an answer means: None for accepted; else the failure and what to do with the events."""
    status = response.status
    if 200 <= status < 300:
        return None
    text = f"{mask_url(url)} answered HTTP {status}"
    if status in (401, 403) or (status == 407 and response.proxied):
        setting = "the proxy's credentials" if status == 407 else target.auth_setting
        return DeliveryError(f"{text}: check {setting}; events stay queued", kind="config")
    if 300 <= status < 400 or status in _CONFIG:
        where = f" (to {_redirect(url, response.location)})" if response.location else ""
        return DeliveryError(
            f"{text}{where}: check report.endpoint; events stay queued", kind="config"
        )
    if status in _RETRY[target.sink]:
        return DeliveryError(text, kind="busy", retry_after=_retry_after(response.retry_after))
    if status in _SPLIT:
        return DeliveryError(text, kind="split")
    return DeliveryError(text, kind="reject")


# on_result(message ids, failure or None, records the collector refused in a partial success)
if TYPE_CHECKING:
    OnResult = Callable[[list[str], DeliveryError | None, int], None]


def deliver(
    target: Target,
    events: list[Event],
    deadline: float,
    on_result: OnResult,
    client: HttpClient | None = None,
    limit: str = "",
) -> None:
    """Send events in as few requests as the sink allows; report each request's outcome. A batch
    refused for its content (400, 413) is halved until the event at fault is alone: only that
    one is dropped. `limit` names what set the deadline, for the message when it runs out."""
    if target.timeout and time.monotonic() + target.timeout < deadline:
        deadline, limit = time.monotonic() + target.timeout, "OTEL_EXPORTER_OTLP_TIMEOUT"
    conn = client or HttpClient(deadline, target.ca_bundles, client_cert=target.client_cert)
    conn.deadline = deadline
    conn.limit = limit
    conn.use(target.ca_bundles, target.client_cert)
    headers = dict(target.headers)
    if target.protobuf:
        headers["Content-Type"] = "application/x-protobuf"
    if target.gzip:
        headers["Content-Encoding"] = "gzip"
    pending = list(_plan(target, events))
    try:
        while pending:
            request = pending.pop(0)
            ids = [e["message_id"] for e in request.events]
            if request.body is None:
                on_result(ids, DeliveryError(f"event {request.why}", kind="reject"), 0)
                continue
            body = request.body
            if target.gzip:
                import zlib

                packer = zlib.compressobj(wbits=31)  # 31: the gzip format, without gzip's import
                body = packer.compress(body) + packer.flush()
            try:
                response = conn.post(request.url, body, headers)
            except DeliveryError as exc:
                on_result(ids, exc, 0)
                return  # unreachable or unusable: leave the rest queued for a later run
            failure = judge(target, request.url, response)
            if failure is not None and failure.kind == "split" and len(request.events) > 1:
                half = len(request.events) // 2
                pending[:0] = [
                    *_plan(target, request.events[:half]),
                    *_plan(target, request.events[half:]),
                ]
                continue
            if failure is not None and failure.kind == "split":
                failure = DeliveryError(str(failure), kind="reject")
            refused = _partial_rejections(target, response) if failure is None else 0
            on_result(ids, failure, refused)
            if failure is not None and failure.retry:
                return  # the endpoint is unwell or misconfigured: the rest waits too
    finally:
        conn.close()
