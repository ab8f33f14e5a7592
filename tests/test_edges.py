"""Protocols and privacy at the edges: what reaches a real loopback server when settings come
from two owners (the operator's file, the developer's environment), when a setting is malformed,
when an event is large, and what the messages say about it. Canaries prove what never leaves."""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
from pathlib import Path

import pytest

from send_metrics import sinks
from send_metrics.config import Settings
from tests.helpers import (
    Received,
    assert_no_traceback,
    delivered_ids,
    history,
    opt_in,
    queued,
    sm,
)

CANARY = "C4NARY-7f3a9"
WRITE_KEY = f"wk-{CANARY}"


def _body(request: Received) -> bytes:
    if request.headers.get("Content-Encoding") == "gzip":
        return gzip.decompress(request.body)
    return request.body


def _leaked(requests: list[Received], canary: str = CANARY) -> list[str]:
    """Where the canary shows in what the server received: a header (also base64-encoded, as
    Basic auth carries it) or the body (JSON or protobuf: strings are their UTF-8 bytes)."""
    found = []
    encoded = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    for r in requests:
        for name, value in r.headers.items():
            if canary in value or encoded in value:
                found.append(f"header {name}")
        if canary.encode() in _body(r):
            found.append("body")
    return found


def _config(sink: str, endpoint: str, *more: str) -> None:
    lines = ["[report]", f'sink = "{sink}"', f'endpoint = "{endpoint}"', "deadline = 5.0"]
    if sink == "segment":
        lines.append(f'write_key = "{WRITE_KEY}"')
    lines += ["[report.headers]", f'Authorization = "Bearer OPERATOR-{CANARY}"', *more]
    Path("send_metrics.toml").write_text("\n".join(lines) + "\n")


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = sm("run", *args, "--", "sh", "-c", "exit 3", env={**os.environ, **(env or {})})
    assert result.returncode == 3
    assert_no_traceback(result.stderr)
    return result


# ---- 4: the operator's secrets go only to the operator's endpoint ----

ELSEWHERE = [
    ("otlp", "OTEL_EXPORTER_OTLP_ENDPOINT", ""),
    ("otlp", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "/v1/logs"),
    ("otlp", "SEND_METRICS_ENDPOINT", ""),
    ("http", "SEND_METRICS_ENDPOINT", "/hook"),
    ("segment", "SEND_METRICS_ENDPOINT", ""),
]


@pytest.mark.parametrize(("sink", "var", "path"), ELSEWHERE, ids=lambda x: x or "-")
def test_operator_headers_and_write_key_never_follow_an_environment_endpoint(
    home: Path, collector, dead_url: str, sink: str, var: str, path: str
) -> None:
    """The developer's shell names another endpoint, and the yes was given with it set: the
    events go there, the operator's Authorization header and write key do not."""
    _config(sink, dead_url)
    env = {var: collector.url + path, "OTEL_EXPORTER_OTLP_HEADERS": "x-developer=mine"}
    os.environ.update(env)
    try:
        opt_in()
        result = _run(env=env)
    finally:
        for name in env:
            del os.environ[name]
    [request] = collector.requests
    assert _leaked(collector.requests) == []
    assert "Authorization" not in request.headers
    if sink == "otlp":
        assert request.headers["x-developer"] == "mine"  # the environment's own headers go
        assert delivered_ids(collector.ok()) == [history(home)[0]["message_id"]]
    assert CANARY not in result.stderr


@pytest.mark.parametrize(("sink", "var", "path"), ELSEWHERE, ids=lambda x: x or "-")
def test_operator_headers_go_to_the_operators_own_endpoint_however_it_is_named(
    home: Path, collector, sink: str, var: str, path: str
) -> None:
    """The control: the same variable naming the operator's own host and port keeps them."""
    _config(sink, collector.url)
    env = {var: collector.url + path}
    os.environ.update(env)
    try:
        opt_in()
        _run(env=env)
    finally:
        del os.environ[var]
    assert _leaked(collector.requests) == ["header Authorization"]


# ---- 5: nothing undisclosed leaves ----


@pytest.mark.parametrize("protocol", ["http/json", "http/protobuf"])
def test_otel_resource_attributes_and_service_name_never_leave(
    home: Path, collector, protocol: str
) -> None:
    collector.write_config("otlp")
    opt_in()
    env = {
        "OTEL_RESOURCE_ATTRIBUTES": f"host.name=host-{CANARY},user.name=user-{CANARY}",
        "OTEL_SERVICE_NAME": f"svc-{CANARY}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
    }
    _run(env=env)
    assert len(collector.ok()) == 1 and _leaked(collector.requests) == []
    assert CANARY not in sm("preview", "--", "true", env={**os.environ, **env}).stdout


@pytest.mark.parametrize(
    "name",
    [f"/home/carol/{CANARY}", f"~/{CANARY}", f"./{CANARY}", f".{CANARY}", f"C:\\{CANARY}", "a/b"],
)
@pytest.mark.parametrize("sink", ["http", "otlp", "segment"])
def test_a_path_like_name_is_sent_as_file(home: Path, collector, sink: str, name: str) -> None:
    collector.write_config(sink, write_key="wk")
    opt_in()
    _run("--name", name)
    assert _leaked(collector.requests, name) == [] and len(collector.ok()) == 1
    assert history(home)[0]["command"] == "(file)"


def test_a_plain_name_is_sent_as_it_is(home: Path, collector) -> None:
    """The control for the test above: the same check sees a name that is sent."""
    collector.write_config("http")
    opt_in()
    _run("--name", f"deploy-{CANARY}")
    assert _leaked(collector.requests) == ["body"]


def test_a_path_like_wrap_target_is_sent_as_file(home: Path, tmp_path: Path, collector) -> None:
    collector.write_config("http")
    opt_in()
    work = Path.cwd()
    (work / "Makefile").write_text(
        f"dev/%: ; +@send_metrics wrap --make='$(MAKE)' -f Makefile $@\n"
        f"impl-dev/{CANARY}:\n\t@echo built\n"
    )
    done = subprocess.run(["make", f"dev/{CANARY}"], cwd=work, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == "built\n", done.stderr
    [event] = history(home)
    assert event["command"] == "(file)"
    assert _leaked(collector.requests) == [] and len(collector.ok()) == 1


def test_a_changed_consent_message_needs_a_new_yes(home: Path, collector) -> None:
    def configure(message: str) -> None:
        path = collector.write_config("http")
        path.write_text(path.read_text() + f'[consent]\nmessage = "{message}"\n')

    configure("We measure build times to speed up CI.")
    opt_in()
    _run()
    assert len(collector.ok()) == 1
    configure(f"We measure build times, and {CANARY} more.")  # a wider purpose
    result = _run()
    assert len(collector.ok()) == 1 and len(history(home)) == 1  # nothing collected or sent
    assert "purpose" in sm("status").stdout
    assert result.stderr == ""
    opt_in()
    _run()
    assert len(collector.ok()) == 2


def test_a_yes_recorded_before_the_purpose_was_kept_still_holds(home: Path, collector) -> None:
    """A decision file written without the purpose (an older send_metrics, no message): its
    fingerprint still checks, and it covers the same disclosure."""
    from tests.helpers import state_file

    collector.write_config("http")
    opt_in()
    path = state_file(home)
    text = path.read_text()
    assert 'purpose = ""' in text
    path.write_text(text.replace('purpose = ""\n', ""))
    _run()
    assert len(collector.ok()) == 1


# ---- 3: malformed headers ----


def test_a_malformed_otel_header_entry_is_skipped_with_one_line(home: Path, collector) -> None:
    collector.write_config("otlp")
    opt_in()
    value = f"bad%20name=1,good=2,x-crlf=a%0D%0AInjected: {CANARY},novalue,=x,also-good=3"
    env = {**os.environ, "OTEL_EXPORTER_OTLP_HEADERS": value}
    child = "sleep 0.5; echo child-done >&2"
    result = sm("run", "--", "sh", "-c", child, env=env)
    assert result.returncode == 0
    done, line = result.stderr.splitlines()  # said once, after the command's own output
    assert done == "child-done"
    assert "OTEL_EXPORTER_OTLP_HEADERS" in line and "skipped" in line and CANARY not in line
    [request] = collector.ok()
    assert (request.headers["good"], request.headers["also-good"]) == ("2", "3")
    assert _leaked(collector.requests) == [] and "Injected" not in request.headers
    assert queued(home) == []


def test_the_sdk_keeps_the_same_well_formed_entries() -> None:
    """The OpenTelemetry SDK's own parser as the oracle for the entries that are valid."""
    from opentelemetry.util.re import parse_env_headers

    value = "good=2,x-team=dev%20tools,also-good=a%3Db"
    target = sinks.resolve(Settings(sink="otlp"), {"OTEL_EXPORTER_OTLP_HEADERS": value})
    assert target is not None
    assert target.headers == dict(parse_env_headers(value))


def test_a_line_break_in_report_headers_is_a_config_error_naming_the_key(
    home: Path, collector
) -> None:
    path = collector.write_config("http")
    path.write_text(path.read_text() + f'[report.headers]\nX-Team = "a\\r\\nInjected: {CANARY}"\n')
    opt_in()
    result = _run()
    [line] = result.stderr.splitlines()
    assert "'report.headers.X-Team' is not a valid HTTP header" in line and CANARY not in line
    assert _leaked(collector.requests) == [] and len(collector.ok()) == 1


# ---- 6: Segment's 32 KB for an event ----


def test_a_large_make_breakdown_is_trimmed_to_fit_segment(
    home: Path, tmp_path: Path, collector
) -> None:
    """100 targets with 200-character names, from a real wrapped make: the event would be
    over 32 KB; Segment gets it trimmed, the critical path and the slowest targets kept."""
    collector.write_config("segment", write_key="wk")
    opt_in()
    names = [f"impl-dev.t{i:03d}-" + "x" * 186 for i in range(100)]
    rules = [f"{n}:\n\t@{'sleep 0.2' if i % 10 == 0 else 'true'}" for i, n in enumerate(names)]
    Path("Makefile").write_text(
        "dev.%: ; +@send_metrics wrap --make='$(MAKE)' -f Makefile $@\n"
        f"impl-dev.all: {' '.join(names)}\n\t@true\n" + "\n".join(rules) + "\n"
    )
    done = subprocess.run(["make", "dev.all"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    [event] = history(home)
    assert len(event["make_targets"]) == 100  # all of them kept locally
    assert len(json.dumps(sinks.segment_message(event))) > 32_000
    [request] = collector.ok()
    assert len(request.body) <= 32_000
    sent = request.json["properties"]
    kept = {t["name"] for t in sent["make_targets"]}
    assert sent["make_targets_omitted"] == 101 - len(sent["make_targets"])
    # Kept first: the critical path, then the slowest; nothing omitted ranks above the kept.
    rank = {t["name"]: (t["critical"], t["duration_ms"]) for t in event["make_targets"]}
    omitted = set(rank) - kept
    assert omitted and min(rank[n] for n in kept) >= max(rank[n] for n in omitted)
    slow = {n for i, n in enumerate(names) if i % 10 == 0}
    assert slow <= kept
    order = [t["name"] for t in event["make_targets"] if t["name"] in kept]
    assert [t["name"] for t in sent["make_targets"]] == order


# ---- 7: messages that say what happened ----


@pytest.mark.parametrize(
    ("location", "shown"),
    [
        ("/v2/track?token=secret", "(to /v2/track on the same host)"),
        ("https://other.example:8443/x?token=secret", "(to https://other.example:8443)"),
        ("//other.example/x", "(to http://other.example:80)"),
    ],
)
def test_a_redirect_says_where_it_points(home: Path, collector, location: str, shown: str) -> None:
    collector.status = 307
    collector.reply_headers["Location"] = location
    collector.write_config("http")
    opt_in()
    [line] = _run().stderr.splitlines()
    assert shown in line and "secret" not in line and "://)" not in line, line


def test_flush_counts_rejected_events_as_dropped(home: Path, collector, dead_url: str) -> None:
    path = collector.write_config("http")
    path.write_text(path.read_text().replace(collector.url, dead_url))
    opt_in()
    for _ in range(4):
        _run()
    path.write_text(path.read_text().replace(dead_url, collector.url))
    collector.status = 400
    result = sm("flush")
    assert "Sent 0 of 4 queued events" in result.stdout
    assert "4 dropped, 0 left" in result.stdout
    assert result.returncode == 4


def test_a_407_from_a_server_that_is_not_a_proxy_blames_the_endpoint(home: Path, collector) -> None:
    collector.status = 407
    collector.write_config("http")
    opt_in()
    [line] = _run().stderr.splitlines()
    assert "HTTP 407" in line and "proxy" not in line and "report.endpoint" in line, line


def test_a_407_from_a_forward_proxy_blames_the_proxy(home: Path, collector, proxy) -> None:
    proxy.require = "Basic nobody-has-this"
    collector.write_config("http")
    opt_in()
    [line] = _run(env={"HTTP_PROXY": proxy.url}).stderr.splitlines()
    assert "HTTP 407" in line and "proxy's credentials" in line, line
