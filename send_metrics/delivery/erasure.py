"""`send_metrics opt-out --erase`: ask the operator's collector to delete this developer's events.

Only a send_metrics collector is asked: a GET of its erase path (which carries nothing) must
answer that it is one; only then does one POST carry the anonymous id, and nothing else, with
the sink's own credentials, to the endpoint that already receives that id with every event.
Any other endpoint (Segment, an OpenTelemetry Collector, a plain http receiver) is never sent
the request: the operator's privacy URL says how to ask them."""

from __future__ import annotations

import time

from send_metrics.delivery.transport import HttpClient
from send_metrics.errors import DeliveryError
from send_metrics.lean.jsontext import dumps, loads
from send_metrics.lean.records import NamedTuple
from send_metrics.lean.urls import mask_url
from send_metrics.settings.config import Settings
from send_metrics.settings.destination import resolve

ERASE_PATH = "/v1/erase"
_SINK_PATHS = ("/v1/track", "/v1/batch", "/v1/logs", "/v1/events")
TIMEOUT_S = 10.0


class Erased(NamedTuple):
    """What happened: `deleted` events (None when no collector was asked or reached), and a
    line that says so."""

    deleted: int | None
    line: str


def erase_url(url: str) -> str:
    """The collector's erase URL beside a sink's URL: its `/v1/...` path replaced, or appended."""
    base = url.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    for path in _SINK_PATHS:
        if base.endswith(path):
            base = base[: -len(path)]
            break
    return base + ERASE_PATH


def _elsewhere(settings: Settings, why: str) -> Erased:
    where = (
        f"ask the operator to erase them: {settings.privacy_url}"
        if settings.privacy_url
        else "ask the operator to erase them (no consent.privacy_url is configured)"
    )
    return Erased(None, f"{why}; {where}.")


def erase(settings: Settings, anonymous_id: str) -> Erased:
    """Ask the configured endpoint's collector to delete `anonymous_id`'s events."""
    if not anonymous_id:
        return Erased(None, "No anonymous id was set, so no event of yours was sent.")
    try:
        target = resolve(settings)
    except DeliveryError as exc:
        return _elsewhere(settings, f"Events cannot be erased remotely ({exc})")
    if target is None:
        return Erased(None, "Events were only kept on this machine (the local sink).")
    url = erase_url(target.url)
    client = HttpClient(time.monotonic() + TIMEOUT_S, target.ca_bundles)
    try:
        probe = client.post(url, b"", {}, method="GET")
        known = probe.status == 200 and _is_collector(probe.body)
        if not known:
            return _elsewhere(settings, f"{mask_url(url)} is not a send_metrics collector")
        body = dumps({"anonymous_id": anonymous_id}).encode()
        headers = {**target.headers, "Content-Type": "application/json"}
        answer = client.post(url, body, headers)
    except DeliveryError as exc:
        return _elsewhere(settings, f"The collector could not be reached ({exc})")
    finally:
        client.close()
    count = _count(answer.body) if answer.status == 200 else None
    if count is None:
        return _elsewhere(settings, f"The collector answered HTTP {answer.status} to the erasure")
    return Erased(count, f"The operator's collector deleted {count} of your events.")


def _is_collector(body: bytes) -> bool:
    try:
        doc = loads(body)
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("collector") == "send_metrics"


def _count(body: bytes) -> int | None:
    try:
        doc = loads(body)
    except ValueError:
        return None
    value = doc.get("erased") if isinstance(doc, dict) else None
    return value if type(value) is int and value >= 0 else None
