"""Segment and OTLP as their own clients and the specifications speak them: Segment's payloads
against `segment-analytics-python`, and every OTLP exporter variable, table-driven."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

from send_metrics import sinks
from tests.helpers import Received, assert_no_traceback, history, opt_in, queued, sm
from tests.network import free_port, wait_listening

WRITE_KEY = "wk-protocols"
NO_PROTO = str(Path(__file__).parent / "stubs" / "no_proto")


def _shape(value: Any) -> Any:
    """The keys at every level (lists by their first element), without the values."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return [_shape(value[0])]
    return None


# Documented differences from segment-analytics-python (README, "Segment"): we put the write
# key only in the Authorization header, never in the body; and we add `context.ip` = 0.0.0.0
# so that Segment records no address for the developer.
OURS_ONLY = {("context", "ip")}
THEIRS_ONLY = {("writeKey",)}


def _paths(shape: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    found = set()
    if isinstance(shape, list):
        return _paths(shape[0], prefix)
    for key, inner in (shape or {}).items():
        found.add((*prefix, key))
        if key != "properties":  # the event's own fields: compared as a whole below
            found |= _paths(inner, (*prefix, key))
    return found


def test_segment_payloads_have_the_keys_of_segments_own_client(
    home: Path, collector, dead_url: str
) -> None:
    from segment.analytics.client import Client

    Path("send_metrics.toml").write_text(
        f'[report]\nsink = "segment"\nendpoint = "{dead_url}"\nwrite_key = "{WRITE_KEY}"\n'
    )
    opt_in()
    sm("run", "--", "true")
    sm("run", "--", "false")
    collector.write_config("segment", write_key=WRITE_KEY)
    sm("flush")  # the queue as a batch
    sm("run", "--", "sh", "-c", "exit 3")  # one event as a track call
    batch, track = (r.json for r in collector.ok())
    event = history(home)[0]
    properties = {k: v for k, v in event.items() if k not in ("anonymous_id", "message_id")}
    properties.pop("event")
    reference = Client(WRITE_KEY, host=collector.url, sync_mode=True)
    reference.track(
        anonymous_id=event["anonymous_id"],
        event=event["event"],
        properties=properties,
        timestamp=datetime.fromisoformat(event["start_time"]),
        message_id=event["message_id"],
    )
    theirs = collector.requests[-1]
    assert theirs.path == "/v1/batch"
    assert theirs.headers["Authorization"] == collector.ok()[0].headers["Authorization"]
    theirs_paths = _paths(_shape(theirs.json))
    ours_paths = _paths(_shape(batch))
    assert ours_paths - theirs_paths == {("batch", *p) for p in OURS_ONLY}
    assert theirs_paths - ours_paths == THEIRS_ONLY
    # A single event goes to /v1/track as one message with its own sentAt.
    message_paths = _paths(_shape(theirs.json["batch"][0]))
    assert _paths(_shape(track)) - {("sentAt",)} - OURS_ONLY == message_paths
    # The same values where they must agree.
    [their_message] = theirs.json["batch"]
    our_message = batch["batch"][0]
    for key in ("type", "event", "anonymousId", "messageId", "properties", "userId"):
        assert our_message[key] == their_message[key], key
    assert datetime.fromisoformat(our_message["timestamp"]) == datetime.fromisoformat(
        their_message["timestamp"]
    )


def test_segment_sends_sent_at_on_track_and_batch(home: Path, collector, dead_url) -> None:
    Path("send_metrics.toml").write_text(
        f'[report]\nsink = "segment"\nendpoint = "{dead_url}"\nwrite_key = "{WRITE_KEY}"\n'
    )
    opt_in()
    sm("run", "--", "true")
    sm("run", "--", "true")
    collector.write_config("segment", write_key=WRITE_KEY)
    sm("flush")
    sm("run", "--", "true")
    batch, track = collector.ok()
    assert batch.path == "/v1/batch" and track.path == "/v1/track"
    for request in (batch, track):
        sent_at = datetime.fromisoformat(request.json["sentAt"])
        assert sent_at.utcoffset() is not None
        timestamps = [m["timestamp"] for m in request.json.get("batch", [request.json])]
        assert all(datetime.fromisoformat(t) <= sent_at for t in timestamps)


def test_segment_batches_stay_within_2500_events(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our events are ~1 KB, so 500 KB comes first; with a larger byte budget the count rules."""
    monkeypatch.setattr(sinks, "SEGMENT_MAX_BATCH_BYTES", 50_000_000)
    target = sinks.resolve(sinks.Settings(sink="segment", write_key="k", endpoint="http://x"))
    assert target is not None
    event = json.loads(sm("preview", "--", "true").stdout)
    events = [{**event, "message_id": f"{i:08d}-0000-4000-8000-000000000000"} for i in range(6000)]
    requests = list(sinks.requests_for(target, events))
    assert [len(ids) for _url, ids, _body in requests] == [2500, 2500, 1000]


@pytest.mark.parametrize(
    ("status", "kept"),
    [
        *((s, True) for s in (408, 410, 429, 460, 500, 503)),
        *((s, False) for s in (501, 505, 422)),
    ],
    ids=str,
)
def test_segment_retries_what_its_documentation_says(
    home: Path, collector, status: int, kept: bool
) -> None:
    collector.status = status
    collector.write_config("segment", write_key=WRITE_KEY)
    opt_in()
    result = sm("run", "--", "true")
    assert f"HTTP {status}" in result.stderr
    assert len(queued(home)) == (1 if kept else 0)


# ---- OTLP: the exporter variables, table-driven ----


def _records(request: Received) -> tuple[dict[str, Any], dict[str, Any]]:
    """(resource attributes, first record's attributes) of an OTLP request, JSON or protobuf,
    gzip or not, decoded with opentelemetry-proto's own messages."""
    body = request.body
    if request.headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    message = logs_service_pb2.ExportLogsServiceRequest()
    if request.headers["Content-Type"] == "application/x-protobuf":
        message.ParseFromString(body)
    else:
        json_format.Parse(body, message)
    [resource_logs] = message.resource_logs
    resource = {
        a.key: json_format.MessageToDict(a.value) for a in resource_logs.resource.attributes
    }
    [record] = resource_logs.scope_logs[0].log_records
    return resource, {a.key: json_format.MessageToDict(a.value) for a in record.attributes}


CASES = [
    # (id, environment, what the collector must have received)
    ("default-json", {}, {"content_type": "application/json"}),
    (
        "protocol-json",
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
        {"content_type": "application/json"},
    ),
    (
        "protocol-protobuf",
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
        {"content_type": "application/x-protobuf"},
    ),
    (
        "logs-protocol-wins",
        {
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf",
        },
        {"content_type": "application/x-protobuf"},
    ),
    ("grpc", {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, {"error": "grpc is not supported"}),
    (
        "protobuf-missing",
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "PYTHONPATH": NO_PROTO},
        {"error": "pip install 'send-metrics[protobuf]'"},
    ),
    ("gzip", {"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"}, {"encoding": "gzip"}),
    (
        "logs-gzip-protobuf",
        {
            "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION": "gzip",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        },
        {"encoding": "gzip", "content_type": "application/x-protobuf"},
    ),
    (
        "compression-unknown",
        {"OTEL_EXPORTER_OTLP_COMPRESSION": "br"},
        {"error": "OTEL_EXPORTER_OTLP_COMPRESSION=br is not supported"},
    ),
    # The developer's OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are environment, which no
    # disclosure names: never sent (the canary test below proves it for every encoding).
    (
        "service-name-not-sent",
        {"OTEL_SERVICE_NAME": "devstack-ci"},
        {"resource": {"service.name": "send_metrics"}},
    ),
    (
        "resource-attributes-not-sent",
        {"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=dev,team=dev%20tools,os.type=nope"},
        {"resource": {"os.type": "linux"}, "absent": ["deployment.environment", "team"]},
    ),
    ("sdk-disabled", {"OTEL_SDK_DISABLED": "true"}, {"nothing": True}),
    ("sdk-disabled-other-value", {"OTEL_SDK_DISABLED": "1"}, {"content_type": "application/json"}),
    (
        "headers",
        {"OTEL_EXPORTER_OTLP_LOGS_HEADERS": "x-team=dev%20tools"},
        {"header": ("x-team", "dev tools")},
    ),
    ("logs-endpoint", {"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "{url}/custom"}, {"path": "/custom"}),
    ("base-endpoint", {"OTEL_EXPORTER_OTLP_ENDPOINT": "{url}/base/"}, {"path": "/base/v1/logs"}),
    ("timeout", {"OTEL_EXPORTER_OTLP_TIMEOUT": "10000"}, {"content_type": "application/json"}),
]


@pytest.mark.parametrize(("env", "expect"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_otlp_exporter_variables(home: Path, collector, env: dict, expect: dict) -> None:
    Path("send_metrics.toml").write_text(
        '[report]\nsink = "otlp"\nendpoint = "' + collector.url + '"\n'
    )
    opt_in()
    env = {k: v.format(url=collector.url) for k, v in env.items()}
    result = sm("run", "--", "sh", "-c", "exit 2", env={**os.environ, **env})
    assert result.returncode == 2
    assert_no_traceback(result.stderr)
    if "error" in expect:
        [line] = result.stderr.splitlines()
        assert expect["error"] in line and "queued" in line
        assert collector.requests == [] and len(queued(home)) == 1
        return
    if expect.get("nothing"):
        assert result.stderr == "" and collector.requests == [] and queued(home) == []
        assert "OTEL_SDK_DISABLED" in sm("flush", env={**os.environ, **env}).stdout
        assert (
            "OTEL_SDK_DISABLED=true: nothing is sent"
            in sm("status", env={**os.environ, **env}).stdout
        )
        return
    assert result.stderr == ""
    [request] = collector.requests
    assert request.path == expect.get("path", "/v1/logs")
    if "content_type" in expect:
        assert request.headers["Content-Type"] == expect["content_type"]
    assert request.headers.get("Content-Encoding") == expect.get("encoding")
    if "header" in expect:
        name, value = expect["header"]
        assert request.headers[name] == value
    resource, attributes = _records(request)
    assert attributes["log.record.uid"]["stringValue"] == history(home)[0]["message_id"]
    assert attributes["process.exit.code"]["intValue"] == "2"
    for key, value in expect.get("resource", {}).items():
        assert resource[key]["stringValue"] == value, key
    assert not set(expect.get("absent", [])) & set(resource)
    assert list(resource).count("service.name") == 1


def test_otlp_protobuf_body_decodes_to_the_json_one(home: Path, collector) -> None:
    """The same events in both encodings are the same ExportLogsServiceRequest."""
    from send_metrics.config import Settings

    event = json.loads(sm("preview", "--", "true").stdout)
    base = Settings(sink="otlp", endpoint=collector.url)
    json_target = sinks.resolve(base, {})
    proto_target = sinks.resolve(base, {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
    assert json_target is not None and proto_target is not None
    [(_u, _i, as_json)] = sinks.requests_for(json_target, [event])
    [(_u, _i, as_proto)] = sinks.requests_for(proto_target, [event])
    decoded = logs_service_pb2.ExportLogsServiceRequest.FromString(as_proto)
    parsed = json_format.Parse(as_json, logs_service_pb2.ExportLogsServiceRequest())
    for message in (decoded, parsed):  # made a moment apart
        message.resource_logs[0].scope_logs[0].log_records[0].observed_time_unix_nano = 0
    assert decoded == parsed and decoded.resource_logs[0].scope_logs[0].log_records


@pytest.mark.parametrize(
    ("status", "kept"),
    [(429, True), (502, True), (503, True), (504, True), (500, False), (400, False), (404, True)],
    ids=str,
)
def test_otlp_retries_only_what_the_specification_allows(
    home: Path, collector, status: int, kept: bool
) -> None:
    collector.status = status
    collector.write_config("otlp")
    opt_in()
    result = sm("run", "--", "true")
    assert f"HTTP {status}" in result.stderr
    assert len(queued(home)) == (1 if kept else 0)


def test_otlp_retry_after_is_honoured(home: Path, collector) -> None:
    collector.status = 503
    collector.reply_headers["Retry-After"] = "120"
    collector.write_config("otlp")
    opt_in()
    sm("run", "--", "true")
    sm("run", "--", "true")
    assert len(collector.requests) == 1 and len(queued(home)) == 2
    assert "asked to wait (Retry-After)" in sm("status").stdout


def test_otlp_partial_success_is_counted_in_status(home: Path, collector) -> None:
    collector.reply = b'{"partialSuccess":{"rejectedLogRecords":"1","errorMessage":"too old"}}'
    collector.write_config("otlp")
    opt_in()
    result = sm("run", "--", "true")
    assert result.stderr == "" and queued(home) == []
    assert "refused by the collector: 1 (OTLP partial success)" in " ".join(
        sm("status").stdout.split()
    )


def test_otlp_semantic_conventions(home: Path, collector) -> None:
    Path("send_metrics.toml").write_text(
        f'[report]\nsink = "otlp"\nendpoint = "{collector.url}"\n[collect]\nallow_args = ["sh"]\n'
    )
    opt_in()
    sm("run", "--", "sh", "-c", "exit 0")
    resource, attributes = _records(collector.requests[0])
    args = [v["stringValue"] for v in attributes["process.command_args"]["arrayValue"]["values"]]
    assert args == ["sh", "-c", "exit 0"]
    assert attributes["process.command"]["stringValue"] == "sh"
    well_known = {"amd64", "arm32", "arm64", "ia64", "ppc32", "ppc64", "s390x", "x86"}
    assert resource["host.arch"]["stringValue"] in well_known


@pytest.mark.parametrize(("machine", "arch"), list(sinks.HOST_ARCH.items()))
def test_host_arch_maps_to_the_well_known_values(machine: str, arch: str) -> None:
    event = json.loads(sm("preview", "--", "true").stdout)
    request = sinks.otlp_request([{**event, "arch": machine}])
    [resource_logs] = request["resourceLogs"]
    values = {a["key"]: a["value"] for a in resource_logs["resource"]["attributes"]}
    assert values["host.arch"] == {"stringValue": arch}


# ---- the make breakdown in OTLP: AnyValue arrays of key-value lists ----

WRAPPED_MAKEFILE = (
    "dev.%: ; +@send_metrics wrap --make='$(MAKE)' -f Makefile $@\n"
    "impl-dev.build: impl-dev.deps out.txt\n\t@echo build\n"
    "impl-dev.deps:\n\t@echo deps\n"
    "out.txt:\n\t@touch out.txt\n"
)


def _plain(value: Any) -> Any:
    """An opentelemetry-proto AnyValue as the JSON value it carries."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_plain(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _plain(kv.value) for kv in value.kvlist_value.values}
    if kind == "int_value":
        return int(value.int_value)
    return getattr(value, kind) if kind else None


def _strict(request: Received) -> logs_service_pb2.ExportLogsServiceRequest:
    """The request parsed as strictly as opentelemetry-proto parses: no unknown field, no
    value of the wrong type (json_format.Parse without ignore_unknown_fields)."""
    headers = {k.lower(): v for k, v in request.headers.items()}  # rotel writes lower case
    body = request.body
    if headers.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    message = logs_service_pb2.ExportLogsServiceRequest()
    if "protobuf" in headers["content-type"]:
        message.ParseFromString(body)
    else:
        json_format.Parse(body, message)
    return message


def _breakdowns(message: logs_service_pb2.ExportLogsServiceRequest) -> list[dict[str, Any]]:
    found = []
    for resource_logs in message.resource_logs:
        for record in resource_logs.scope_logs[0].log_records:
            attributes = {a.key: _plain(a.value) for a in record.attributes}
            found.append({k: v for k, v in attributes.items() if k.startswith("send_metrics.make")})
    return found


def _expected(event: dict[str, Any]) -> dict[str, Any]:
    """The breakdown of a recorded event as OTLP carries it (null members left out)."""
    return {
        "send_metrics.make_targets": [
            {k: v for k, v in t.items() if v is not None} for t in event["make_targets"]
        ],
        "send_metrics.make_file_targets": event["make_file_targets"],
        "send_metrics.make_targets_omitted": event["make_targets_omitted"],
    }


def _wrapped_make(tmp_path: Path) -> None:
    work = tmp_path / "proj"
    work.mkdir()
    (work / "Makefile").write_text(WRAPPED_MAKEFILE)
    import subprocess

    done = subprocess.run(["make", "dev.build"], cwd=work, capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr


@pytest.mark.parametrize("protocol", ["http/json", "http/protobuf"])
def test_make_breakdown_reaches_otlp_as_kvlists(
    home: Path, tmp_path: Path, collector, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    monkeypatch.setenv("SEND_METRICS_CONFIG", str(collector.write_config("otlp")))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    opt_in()
    _wrapped_make(tmp_path)
    [event] = history(home)
    assert event["make_targets"] and event["make_file_targets"]["count"] == 1
    [request] = collector.requests
    [breakdown] = _breakdowns(_strict(request))
    assert breakdown == _expected(event)
    names = [t["name"] for t in breakdown["send_metrics.make_targets"]]
    assert names == ["impl-dev.deps", "impl-dev.build"]


@pytest.fixture
def rotel(collector):
    """The Rust OpenTelemetry collector `rotel` (from PyPI) on loopback, forwarding what it
    receives over OTLP/HTTP to the recording collector."""
    found = importlib.util.find_spec("rotel")
    agent = Path(found.origin).parent / "rotel-agent" if found and found.origin else None
    if agent is None or not agent.exists():
        pytest.skip("rotel is not installed (pip install rotel): no binary for this platform")
    import subprocess

    ports = [free_port(), free_port()]
    process = subprocess.Popen(
        [
            str(agent), "start",
            "--otlp-http-endpoint", f"127.0.0.1:{ports[0]}",
            "--otlp-grpc-endpoint", f"127.0.0.1:{ports[1]}",
            "--exporter", "otlp",
            "--otlp-exporter-protocol", "http",
            "--otlp-exporter-endpoint", collector.url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        wait_listening(ports[0])
        yield f"http://127.0.0.1:{ports[0]}"
    finally:
        process.terminate()
        _out, errors = process.communicate(timeout=10)
    assert "ERROR" not in errors, errors


@pytest.mark.parametrize("protocol", ["http/json", "http/protobuf"])
def test_make_breakdown_survives_a_real_receiver(
    home: Path, tmp_path: Path, collector, rotel: str, monkeypatch: pytest.MonkeyPatch, protocol
) -> None:
    """Through rotel, which decodes what we send and encodes it again for the next hop: the
    breakdown arrives as the same key-value lists."""
    import time

    Path("send_metrics.toml").write_text(f'[report]\nsink = "otlp"\nendpoint = "{rotel}"\n')
    monkeypatch.setenv("SEND_METRICS_CONFIG", str(Path("send_metrics.toml").resolve()))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    opt_in()
    _wrapped_make(tmp_path)
    [event] = history(home)
    assert queued(home) == []  # rotel accepted it
    for _ in range(200):  # rotel forwards in batches, a moment later
        if collector.requests:
            break
        time.sleep(0.05)
    [request] = collector.requests
    assert request.path == "/v1/logs"
    assert _breakdowns(_strict(request)) == [_expected(event)]
