"""Where events go: the operator's sink settings and the environment (`SEND_METRICS_ENDPOINT`,
the `OTEL_EXPORTER_OTLP_*` variables, CA bundles) resolved into one `Target`, and the one
destination decision (`destination`) that a run, `flush`, `status` and the disclosure share.
How the events get there is `delivery`'s."""

from __future__ import annotations

import binascii
import os

from send_metrics.errors import DeliveryError, MetricsError
from send_metrics.lean.records import NamedTuple
from send_metrics.lean.urls import mask_url, unquote, urlsplit
from send_metrics.settings.config import Settings, header_ok
from send_metrics.settings.early import env_flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    Environ = Mapping[str, str]

# Deferred imports: zlib for a destination's fingerprint, importlib.util to look for the
# optional protobuf encoder.

DEFAULT_ENDPOINTS = {"segment": "https://api.segment.io", "otlp": "http://localhost:4318"}
OTLP_PROTOCOLS = ("http/json", "http/protobuf")


class ClientCert(NamedTuple):
    """A client certificate for mutual TLS: the settings that named it (for messages) and the
    PEM files; `key` empty when the certificate file holds the key too."""

    setting: str
    cert: str
    key: str = ""


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


def check_url(url: str, setting: str) -> None:
    """An endpoint must be an http(s) URL with a host: anything else is the operator's mistake,
    kept apart from an endpoint's answer so that the queue is never dropped for it."""
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        ok = False
    if not ok:
        raise DeliveryError(
            f"{setting} {mask_url(url)!r} is not an http:// or https:// URL", kind="config"
        )


def destination(settings: Settings) -> tuple[Target | None, str | None]:
    """Where events go: (target, None); (None, None) for the local sink or SEND_METRICS_DEBUG;
    (None, problem) when the operator's sink settings are incomplete."""
    if settings.sink == "local" or env_flag("SEND_METRICS_DEBUG"):
        return None, None
    if settings.sink == "otlp" and otel_disabled():
        return None, None  # OTEL_SDK_DISABLED=true: the history only, as with the local sink
    try:
        return resolve(settings), None
    except MetricsError as exc:
        return None, str(exc)
