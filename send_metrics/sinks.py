"""The network sinks (Segment, OTLP/HTTP JSON, plain HTTP): where events go and in what shape."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import SplitResult, quote, unquote, urlsplit

from send_metrics import __version__
from send_metrics.config import Settings
from send_metrics.errors import DeliveryError

if TYPE_CHECKING:
    from http.client import HTTPConnection

    from send_metrics.event import Event

# Deferred imports: http.client and its email parsing (~10 ms) load on the prefetch thread
# while the child runs; dates and sockets only where a reply needs them.

DEFAULT_ENDPOINTS = {"segment": "https://api.segment.io", "otlp": "http://localhost:4318"}
SEGMENT_MAX_BATCH_BYTES = 480_000  # Segment allows 500 KB a batch; keep a margin for the envelope
OTLP_MAX_RECORDS = 500
MAX_RESPONSE_BYTES = 65_536  # more than this of a reply is never read
MAX_IDLE_S = 10.0  # an older prepared connection may have died (a laptop slept): open anew

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


class Target(NamedTuple):
    """A resolved destination: sink, URLs and headers (which may hold secrets; never print them)."""

    sink: str
    url: str
    batch_url: str = ""
    headers: dict[str, str] = {}  # noqa: RUF012 - a shared default, never mutated
    timeout: float | None = None

    def __repr__(self) -> str:
        return f"Target({self.sink!r}, {self.shown!r}, headers=***)"

    @property
    def shown(self) -> str:
        """The endpoint as it may be printed: no credentials, no query values."""
        return mask_url(self.url)


def mask_url(url: str) -> str:
    """A URL with user name, password and query values replaced by `***`."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        if parts.username or parts.password:
            host = f"***@{host}"
        query = "&".join(f"{kv.split('=', 1)[0]}=***" for kv in parts.query.split("&") if kv)
        return SplitResult(parts.scheme, host, parts.path, query, "").geturl()
    except ValueError:
        return "(unparseable URL)"


def _otel(name: str, environ: dict[str, str]) -> str:
    return environ.get(f"OTEL_EXPORTER_OTLP_LOGS_{name}") or environ.get(
        f"OTEL_EXPORTER_OTLP_{name}", ""
    )


def _otel_headers(text: str) -> dict[str, str]:
    headers = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            headers[unquote(key.strip())] = unquote(value.strip())
    return headers


def resolve(settings: Settings, environ: dict[str, str] | None = None) -> Target | None:
    """Where events go for these settings and environment; None for the local sink."""
    env = dict(os.environ if environ is None else environ)
    sink = settings.sink
    override = env.get("SEND_METRICS_ENDPOINT", "")
    if sink == "local":
        return None
    if sink == "segment":
        if not settings.write_key:
            raise DeliveryError("report.sink is 'segment' but report.write_key is not set")
        base = (override or settings.endpoint or DEFAULT_ENDPOINTS["segment"]).rstrip("/")
        auth = base64.b64encode(f"{settings.write_key}:".encode()).decode()
        headers = {**settings.headers, "Authorization": f"Basic {auth}"}
        return Target("segment", f"{base}/v1/track", f"{base}/v1/batch", headers)
    if sink == "otlp":
        logs_url = env.get("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "")
        if override or not logs_url:
            base = (
                override
                or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                or settings.endpoint
                or DEFAULT_ENDPOINTS["otlp"]
            ).rstrip("/")
            logs_url = f"{base}/v1/logs"
        headers = {**settings.headers, **_otel_headers(_otel("HEADERS", env))}
        timeout = None
        try:
            timeout = float(_otel("TIMEOUT", env)) / 1000.0 or None
        except ValueError:
            pass
        return Target("otlp", logs_url, logs_url, headers, timeout)
    url = override or settings.endpoint
    if not url:
        raise DeliveryError("report.sink is 'http' but no endpoint is set", retry=True)
    return Target("http", url, url, dict(settings.headers))


def segment_message(event: Event) -> dict[str, Any]:
    """One Segment `track` call; the IP is zeroed so Segment cannot locate the developer."""
    properties = {
        k: v for k, v in event.items() if k not in ("anonymous_id", "message_id", "event")
    }
    return {
        "type": "track",
        "event": event["event"],
        "anonymousId": event["anonymous_id"],
        "messageId": event["message_id"],
        "timestamp": event["start_time"],
        "properties": properties,
        "context": {
            "library": {"name": "send_metrics", "version": __version__},
            "ip": "0.0.0.0",  # noqa: S104 - not a bind: tells Segment to record no address
        },
    }


def _any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_any_value(v) for v in value]}}
    return {"stringValue": str(value)}


def _attributes(event: Event, names: dict[str, str]) -> list[dict[str, Any]]:
    fields: Mapping[str, object] = event
    return [
        {"key": names[k], "value": _any_value(fields[k])}
        for k in names
        if fields.get(k) is not None
    ]


def otlp_request(events: list[Event]) -> dict[str, Any]:
    """An OTLP/HTTP JSON ExportLogsServiceRequest: one log record per event."""
    from datetime import datetime

    used = {*OTLP_RESOURCE, *OTLP_RECORD}
    rest = {k: f"send_metrics.{k}" for k in events[0] if k not in used} if events else {}
    observed = str(time.time_ns())
    resource_logs = []
    for event in events:
        start_ns = int(datetime.fromisoformat(event["start_time"]).timestamp() * 1e9)
        record = {
            "timeUnixNano": str(start_ns),
            "observedTimeUnixNano": observed,
            "severityNumber": 9,
            "severityText": "INFO",
            "eventName": event["event"],
            "body": {"stringValue": event["event"]},
            "attributes": _attributes(event, {**OTLP_RECORD, **rest}),
        }
        resource_logs.append(
            {
                "resource": {"attributes": _attributes(event, OTLP_RESOURCE)},
                "scopeLogs": [
                    {
                        "scope": {"name": "send_metrics", "version": __version__},
                        "logRecords": [record],
                    }
                ],
            }
        )
    return {"resourceLogs": resource_logs}


def _segment_bodies(events: list[Event]) -> Iterator[tuple[bool, list[str], bytes]]:
    """Segment requests: (is_batch, message ids, body), each batch within Segment's size limits."""
    if len(events) == 1:
        body = json.dumps(segment_message(events[0])).encode()
        yield False, [events[0]["message_id"]], body
        return
    chunk: list[bytes] = []
    ids: list[str] = []
    size = 0
    for event in events:
        item = json.dumps(segment_message(event)).encode()  # under 32 KB: see event.py
        if chunk and size + len(item) > SEGMENT_MAX_BATCH_BYTES:
            yield True, ids, b'{"batch":[' + b",".join(chunk) + b"]}"
            chunk, ids, size = [], [], 0
        chunk.append(item)
        ids.append(event["message_id"])
        size += len(item) + 1
    if chunk:
        yield True, ids, b'{"batch":[' + b",".join(chunk) + b"]}"


def requests_for(target: Target, events: list[Event]) -> Iterator[tuple[str, list[str], bytes]]:
    """Every HTTP request that delivers `events`: (url, message ids it carries, JSON body)."""
    if target.sink == "segment":
        for batch, ids, body in _segment_bodies(events):
            yield (target.batch_url if batch else target.url), ids, body
    elif target.sink == "otlp":
        for i in range(0, len(events), OTLP_MAX_RECORDS):
            chunk = events[i : i + OTLP_MAX_RECORDS]
            yield (
                target.url,
                [e["message_id"] for e in chunk],
                json.dumps(otlp_request(chunk)).encode(),
            )
    else:
        for event in events:
            yield target.url, [event["message_id"]], json.dumps(event).encode()


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


class HttpClient:
    """Keep-alive HTTP connections, one per host, with every wait bounded by a deadline."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self._conns: dict[tuple[str, str, int], HTTPConnection] = {}
        self._opened: dict[tuple[str, str, int], float] = {}

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeliveryError("deadline reached before the endpoint answered")
        return left

    def _get(self, parts: SplitResult) -> HTTPConnection:
        import http.client

        port = parts.port or (443 if parts.scheme == "https" else 80)
        key = (parts.scheme, parts.hostname or "", port)
        conn = self._conns.get(key)
        if conn is not None and time.monotonic() - self._opened[key] > MAX_IDLE_S:
            conn.close()
            conn = None
        if conn is None:
            kind = (
                http.client.HTTPSConnection
                if parts.scheme == "https"
                else http.client.HTTPConnection
            )
            conn = kind(parts.hostname or "", port, timeout=self._left())
            self._conns[key] = conn
            self._opened[key] = time.monotonic()
        return conn

    def prepare(self, url: str) -> None:
        """Connect ahead of time (DNS, TCP, TLS) while the child runs; failures wait for post."""
        try:
            parts = urlsplit(url)
            if parts.scheme in ("http", "https") and parts.hostname:
                self._get(parts).connect()
        except (OSError, ValueError, DeliveryError):
            self.close()

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        """POST a JSON body; return on 2xx, raise DeliveryError (retry or reject) otherwise."""
        import http.client

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DeliveryError(f"endpoint {mask_url(url)} is not an http(s) URL", retry=False)
        all_headers = {
            "Content-Type": "application/json",
            "User-Agent": f"send_metrics/{__version__}",
            **headers,
        }
        if parts.username or parts.password:
            user = unquote(parts.username or "")
            secret = unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{secret}".encode()).decode()
            all_headers.setdefault("Authorization", f"Basic {token}")
        path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~") + (
            f"?{parts.query}" if parts.query else ""
        )
        for attempt in (1, 2):
            conn = self._get(parts)
            reused = conn.sock is not None
            try:
                if reused:
                    conn.sock.settimeout(self._left())
                else:
                    conn.timeout = self._left()
                conn.request("POST", path, body=body, headers=all_headers)
                if conn.sock is not None:
                    conn.sock.settimeout(self._left())
                response = conn.getresponse()
                response.read(MAX_RESPONSE_BYTES)
                if not response.isclosed():
                    self.close()
                break
            except DeliveryError:
                self.close()
                raise
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
                self.close()
                if reused and attempt == 1:
                    continue  # the server closed an idle keep-alive connection: once more, fresh
                raise DeliveryError(f"{mask_url(url)}: connection closed by the server") from None
            except (OSError, http.client.HTTPException, ValueError) as exc:
                self.close()
                raise DeliveryError(f"{mask_url(url)}: {_describe(exc)}") from None
        status = response.status
        if 200 <= status < 300:
            return
        text = f"{mask_url(url)} answered HTTP {status}"
        if status in (408, 429) or status >= 500 or 300 <= status < 400:
            raise DeliveryError(
                text, retry=True, retry_after=_retry_after(response.getheader("Retry-After"))
            )
        raise DeliveryError(text, retry=False)

    def close(self) -> None:
        for conn in self._conns.values():
            try:
                conn.close()
            except OSError:
                pass
        self._conns.clear()
        self._opened.clear()


def _describe(exc: BaseException) -> str:
    import socket

    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "no answer in time"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "host name not found"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return f"bad response ({type(exc).__name__})"


def deliver(
    target: Target,
    events: list[Event],
    deadline: float,
    on_result: Callable[[list[str], DeliveryError | None], None],
    client: HttpClient | None = None,
) -> None:
    """Send events in as few requests as the sink allows; report each request's outcome."""
    if target.timeout:
        deadline = min(deadline, time.monotonic() + target.timeout)
    conn = client or HttpClient(deadline)
    conn.deadline = deadline
    try:
        for url, ids, body in requests_for(target, events):
            try:
                conn.post(url, body, target.headers)
            except DeliveryError as exc:
                on_result(ids, exc)
                if exc.retry:
                    return  # the endpoint is unwell: leave the rest queued for a later run
                continue
            on_result(ids, None)
    finally:
        conn.close()
