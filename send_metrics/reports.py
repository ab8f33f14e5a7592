"""What `status` reports: plain data from the config, the state and the store."""

from __future__ import annotations

import os
import time

from send_metrics import config, delivery, sinks, store
from send_metrics.config import Settings
from send_metrics.decision import Decision, read_decision
from send_metrics.errors import MetricsError
from send_metrics.files import data_dir, state_path

# Deferred imports: `status` and `stats` share this module; statistics are loaded only
# for `stats`.

# Every variable that changes what send_metrics does; `status` names the ones in force.
OVERRIDES = (
    "DO_NOT_TRACK",
    "SEND_METRICS_DISABLED",
    "SEND_METRICS_CONFIG",
    "SEND_METRICS_ENDPOINT",
    "SEND_METRICS_DEBUG",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION",
    "OTEL_EXPORTER_OTLP_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_SDK_DISABLED",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
)
_SECRET_VARS = ("HEADERS",)
# What still matters with the local sink: the off switches, the config and the folders.
_LOCAL_OVERRIDES = (
    "DO_NOT_TRACK",
    "SEND_METRICS_DISABLED",
    "SEND_METRICS_CONFIG",
    "SEND_METRICS_DEBUG",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
)


def status(settings: Settings, problems: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """The lines of `send_metrics status`, as (label, value); secrets are masked."""
    from send_metrics import consent
    from send_metrics.facts import ci_vendor

    lines: list[tuple[str, str]] = []
    state_file = state_path(settings.app)
    covers = ""
    try:
        state = read_decision(state_file)
        decision: str = state.answer or "not asked yet"
        if state.decided_at:
            decision += f" on {state.decided_at}"
        if state.granted:
            covers = covers_text(state)
        elif state.answer and consent.needs_asking(state, settings):
            decision += f" (consent version {state.consent_version} is older than "
            decision += f"{settings.consent_version}: you will be asked again)"
    except MetricsError as exc:
        state = Decision()
        decision = f"unreadable: {exc} (`send_metrics reset` repairs it)"
    if config.metrics_disabled():
        decision += f"; overridden: disabled by {config.disabled_by()}"
    elif ci_vendor()[0]:
        decision += "; CI detected: never asks here"
    lines.append(("app", " ".join(filter(None, (settings.app, settings.app_version)))))
    lines.append(("decision", decision))
    if covers:
        lines.append(("your yes covers", covers))
        why = consent.why_not(state, settings)
        holds = "yes" if not why else f"no: {why}; nothing is collected until then"
        lines.append(("still holds", holds))
    lines.append(("anonymous id", state.anonymous_id or "(none)"))
    lines.append(("consent version", str(settings.consent_version)))
    lines.append(
        (
            "operator config",
            str(settings.path) if settings.path else "(none found: defaults, local sink)",
        )
    )
    lines.extend(("config problem", p) for p in dict.fromkeys(problems))  # each one once
    lines.append(("state file", str(state_file)))
    data = data_dir(settings.app)
    lines.append(("history and queue", str(store.db_path(data))))
    debug = config.env_flag("SEND_METRICS_DEBUG")
    target, problem = delivery.destination(settings)  # the same decision a run makes
    if problem:
        endpoint = problem
    elif target is not None:
        endpoint = target.shown
    elif debug and settings.sink != "local":
        endpoint = "(none while SEND_METRICS_DEBUG is set: events are printed, not sent)"
    elif settings.sink == "otlp" and sinks.otel_disabled():
        endpoint = "(none while OTEL_SDK_DISABLED=true: nothing is sent)"
    else:
        endpoint = "(none: nothing leaves this machine)"
    lines.append(
        (
            "sink",
            settings.sink + (" (SEND_METRICS_DEBUG: events printed, not sent)" if debug else ""),
        )
    )
    lines.append(("endpoint", endpoint))
    if settings.sink == "segment":
        lines.append(("write key", "set (hidden)" if settings.write_key else "(not set)"))
    local = settings.sink == "local"
    if not local:  # the local sink never waits for a network
        lines.append(("deadline", f"{settings.deadline:g} s"))
    if os.path.exists(store.db_path(data)):  # False, not an error, for an unreadable folder
        try:
            db = store.Store(store.db_path(data))
            if db.notice:
                lines.append(("store", db.notice))
            counts = db.counts()
            db.close()
            lines.append(("runs recorded", str(counts.runs)))
            lines.append(("queued events", str(counts.queued)))
            dropped = (
                counts.dropped_rejected,
                counts.dropped_overflow,
                counts.dropped_expired,
                counts.dropped_old_id,
            )
            if not local or any(dropped):
                lines.append(
                    (
                        "dropped events",
                        f"{dropped[0]} rejected by the endpoint, {dropped[1]} over the queue "
                        f"bound, {dropped[2]} too old, {dropped[3]} from an earlier yes "
                        "(never sent under a new id)",
                    )
                )
            lost = store.unrecorded(data)
            if lost:
                lines.append(
                    (
                        "runs not recorded",
                        f"{lost} (the store stayed busy for {delivery.RECORD_WAIT_S:g} s)",
                    )
                )
            if counts.last_delivery:
                lines.append(("last delivery", counts.last_delivery))
            if counts.last_error:
                lines.append(("last error", counts.last_error))
            if counts.partial_rejected:
                lines.append(
                    (
                        "refused by the collector",
                        f"{counts.partial_rejected} (OTLP partial success)",
                    )
                )
            if counts.not_before > time.time():
                wait = counts.not_before - time.time()
                why = (
                    f"back-off after {counts.backoff_step} failed attempt(s) in a row"
                    if counts.backoff_step
                    else "the endpoint asked to wait (Retry-After)"
                )
                lines.append(
                    (
                        "waiting",
                        f"{why}: runs only queue for {wait:.0f} s more; "
                        "`send_metrics flush` tries now",
                    )
                )
        except MetricsError as exc:
            lines.append(("store", str(exc)))
    else:
        lines.append(("queued events", "0 (no local data)"))
    in_force = []
    for name in OVERRIDES:
        if local and name not in _LOCAL_OVERRIDES:
            continue  # endpoints, proxies and certificates change nothing for the local sink
        if os.environ.get(name):
            shown = "***" if any(s in name for s in _SECRET_VARS) else os.environ[name]
            if name.endswith("ENDPOINT"):
                shown = sinks.mask_url(shown)
            elif name.lower() in ("https_proxy", "http_proxy", "all_proxy"):
                shown = sinks.mask_url(shown if "://" in shown else f"http://{shown}")
            in_force.append(f"{name}={shown}")
    lines.append(("environment overrides", ", ".join(in_force) or "(none)"))
    return lines


def status_json(settings: Settings, lines: list[tuple[str, str]]) -> dict[str, object]:
    """`status --json`: `format` (1), `collecting` (a yes covering the current disclosure, and
    no off switch), `disabled_by` (the off switches set), then each line of `status` under its
    label in snake_case; `config_problems` is a list."""
    from send_metrics import consent

    problems = [value for label, value in lines if label == "config problem"]
    doc: dict[str, object] = {
        "format": 1,
        "collecting": not config.metrics_disabled()
        and consent.collecting(consent.current(settings), settings),
        "disabled_by": config.disabled_by().split(" and ") if config.metrics_disabled() else [],
        "config_problems": problems,
    }
    doc.update((label.replace(" ", "_"), v) for label, v in lines if label != "config problem")
    return doc


def covers_text(state: Decision) -> str:
    """What a recorded yes covered, in one line."""
    from send_metrics import consent

    accepted = state.scope
    if accepted is None:
        return "(not recorded: a yes from an older send_metrics)"
    parts = [
        f"consent version {accepted.consent_version}",
        f"events to {consent.where(accepted)}",
        f"{len(accepted.fields)} fields"
        + ("" if "git_remote_hash" in accepted.fields else " (no git_remote_hash)"),
        "arguments of " + (", ".join(accepted.allow_args) or "no command"),
    ]
    if accepted.privacy_url:
        parts.append(f"privacy {accepted.privacy_url}")
    if accepted.retention:
        parts.append(f"retention {accepted.retention!r}")
    return "; ".join(parts) + f" (fingerprint {accepted.fingerprint})"


def queued(settings: Settings) -> int:
    """How many events wait in the queue (0 without a store)."""
    path = store.db_path(data_dir(settings.app))
    if not os.path.exists(path):
        return 0
    db = store.Store(path)
    try:
        return db.counts().queued
    finally:
        db.close()


def first_steps(settings: Settings, wanted: str) -> str:
    """Why nothing is recorded yet and the next step, in one line: the off switch that is set,
    the missing yes (make never asks: `opt-in` does), or, under a yes, how `wanted` (runs, or
    make runs with a breakdown) get recorded."""
    from send_metrics import consent

    if config.metrics_disabled():
        return f"{config.disabled_by()} is set here: nothing is recorded while it is."
    why = consent.why_not_sending(settings)
    if why:
        return f"Nothing is recorded: {why}."
    if wanted == "make":
        return (
            "Your yes is recorded; a make run gets a breakdown through `send_metrics wrap` or "
            "the `-include send_metrics.mk` line (`send_metrics makefile`)."
        )
    return (
        "Your yes is recorded; runs appear once you run `send_metrics run -- CMD`, a wrapped "
        "target, or make with the `-include send_metrics.mk` line."
    )
