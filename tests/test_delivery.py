"""Delivery: Segment, OTLP and HTTP bodies on a real loopback server; faults; the durable queue."""

from __future__ import annotations

import base64
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

from tests.helpers import (
    SEND_METRICS,
    assert_no_traceback,
    data_db,
    delivered_ids,
    history,
    opt_in,
    queued,
    sm,
    validate,
)

WRITE_KEY = "wk-C4NARY-never-shown"
STUBS = str(Path(__file__).parent / "stubs")


def timed_run(
    *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = sm("run", "--", *args, env={**os.environ, **(env or {})})
    return result, time.monotonic() - started


def test_segment_track_body_and_basic_auth(home: Path, collector) -> None:
    collector.write_config("segment", write_key=WRITE_KEY)
    opt_in()
    result = sm("run", "--", "sh", "-c", "exit 1")
    assert result.returncode == 1 and result.stderr == ""
    [request] = collector.requests
    assert request.path == "/v1/track"
    expected = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    body = request.json
    [event] = history(home)
    assert body["type"] == "track" and body["event"] == "command_run"
    assert body["messageId"] == event["message_id"]
    assert body["anonymousId"] == event["anonymous_id"]
    assert body["timestamp"] == event["start_time"]
    assert body["context"]["library"]["name"] == "send_metrics"
    assert body["properties"]["exit_code"] == 1
    assert (
        validate(
            {
                **body["properties"],
                "message_id": body["messageId"],
                "anonymous_id": body["anonymousId"],
                "event": body["event"],
            }
        )
        == event
    )
    assert queued(home) == []


def test_segment_queue_goes_out_as_one_batch(home: Path, collector, dead_url: str) -> None:
    Path("send_metrics.toml").write_text(
        f'[report]\nsink = "segment"\nendpoint = "{dead_url}"\nwrite_key = "{WRITE_KEY}"\n'
    )
    opt_in()
    for _ in range(3):
        sm("run", "--", "true")
    assert len(queued(home)) == 3
    collector.write_config("segment", write_key=WRITE_KEY)
    result = sm("flush")
    assert result.returncode == 0, result.stderr
    assert "Sent 3 of 3" in result.stdout
    [request] = collector.requests
    assert request.path == "/v1/batch"
    assert delivered_ids(collector.ok()) == [e["message_id"] for e in history(home)]


def test_otlp_body_is_a_valid_export_logs_request(home: Path, collector) -> None:
    collector.write_config("otlp")
    opt_in()
    sm("run", "--", "sh", "-c", "exit 2")
    [request] = collector.requests
    assert request.path == "/v1/logs"
    message = json_format.Parse(request.body, logs_service_pb2.ExportLogsServiceRequest())
    [resource_logs] = message.resource_logs
    resource = {a.key: a.value for a in resource_logs.resource.attributes}
    assert resource["service.name"].string_value == "send_metrics"
    assert resource["os.type"].string_value == "linux"
    [record] = resource_logs.scope_logs[0].log_records
    attrs = {a.key: a.value for a in record.attributes}
    [event] = history(home)
    assert record.event_name == "command_run"
    assert attrs["process.exit.code"].int_value == 2
    assert attrs["log.record.uid"].string_value == event["message_id"]
    assert attrs["send_metrics.duration_ms"].double_value == event["duration_ms"]
    assert record.time_unix_nano > 0


def test_otlp_honours_the_standard_variables(home: Path, collector) -> None:
    Path("send_metrics.toml").write_text('[report]\nsink = "otlp"\n')
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9/nowhere",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": f"{collector.url}/custom/logs",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-team=dev%20tools,authorization=Bearer%20tok",
    }
    sm("opt-in", "--yes", env={**os.environ, **env})  # the yes names the collector's host
    result, _ = timed_run("true", env=env)
    assert result.returncode == 0 and result.stderr == ""
    [request] = collector.requests
    assert request.path == "/custom/logs"
    assert request.headers["x-team"] == "dev tools"
    assert request.headers["authorization"] == "Bearer tok"
    status = sm("status", env={**os.environ, **env})
    assert "tok" not in status.stdout and "OTEL_EXPORTER_OTLP_HEADERS=***" in status.stdout


def test_otlp_base_endpoint_gets_the_logs_path(home: Path, collector) -> None:
    Path("send_metrics.toml").write_text('[report]\nsink = "otlp"\n')
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"{collector.url}/base"}
    sm("opt-in", "--yes", env={**os.environ, **env})
    timed_run("true", env=env)
    assert [r.path for r in collector.requests] == ["/base/v1/logs"]


def test_http_sink_body_is_the_event_with_headers(home: Path, collector) -> None:
    Path("send_metrics.toml").write_text(
        f'[report]\nsink = "http"\nendpoint = "{collector.url}/hook?x=1"\n'
        'headers = { "X-Api-Key" = "hdr-secret" }\n'
    )
    opt_in()
    sm("run", "--", "true")
    [request] = collector.requests
    assert request.path == "/hook?x=1"
    assert request.headers["X-Api-Key"] == "hdr-secret"
    assert request.json == history(home)[0]
    status = sm("status")
    assert "hdr-secret" not in status.stdout and "/hook" not in status.stdout
    [endpoint] = [line for line in status.stdout.splitlines() if line.startswith("endpoint:")]
    assert endpoint.split() == ["endpoint:", collector.url]  # scheme://host:port only


def test_send_metrics_endpoint_overrides_the_config(home: Path, collector, dead_url) -> None:
    _configure(dead_url)
    opt_in()
    timed_run("true", env={"SEND_METRICS_ENDPOINT": collector.url})
    assert [r.path for r in collector.requests] == ["/v1/track"]


def _configure(url: str, deadline: float = 1.0, **extra: str) -> None:
    lines = [
        "[report]",
        'sink = "segment"',
        f'endpoint = "{url}"',
        f'write_key = "{WRITE_KEY}"',
        f"deadline = {deadline}",
    ] + [f"{k} = {v}" for k, v in extra.items()]
    Path("send_metrics.toml").write_text("\n".join(lines) + "\n")


def _recover(home: Path, collector) -> None:
    """The server is back: flush delivers every queued event exactly once."""
    collector.status, collector.hang, collector.garbage = 200, False, False
    collector.reply_headers.clear()
    before = len(collector.ok())
    _configure(collector.url)
    opt_in()  # a yes to the collector's host: events queued for another host wait for it
    result = sm("flush")
    assert result.returncode == 0, result.stdout + result.stderr
    assert queued(home) == []
    ids = delivered_ids(collector.ok()[before:])
    assert ids == [e["message_id"] for e in history(home)]


@pytest.mark.parametrize("fault", ["refused", "black-hole", "dns-hang", "500", "garbage"])
def test_faults_queue_the_event_within_the_deadline(
    home: Path, collector, black_hole: str, dead_url: str, fault: str
) -> None:
    url = {"refused": dead_url, "black-hole": black_hole, "dns-hang": "http://hang.test:9"}.get(
        fault, collector.url
    )
    collector.status = 500 if fault == "500" else 200
    collector.garbage = fault == "garbage"
    _configure(url, deadline=1.0)
    opt_in()
    env = {"PYTHONPATH": STUBS} if fault == "dns-hang" else {}
    result, took = timed_run("sh", "-c", "exit 3", env=env)
    assert result.returncode == 3
    assert took < 1.0 + 1.5, f"{fault}: the wrapper took {took:.2f} s with a 1 s deadline"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "queued" in lines[0], result.stderr
    assert WRITE_KEY not in result.stderr
    assert_no_traceback(result.stderr)
    assert queued(home) == [history(home)[0]["message_id"]]
    status = sm("status")
    assert "queued events:         1" in status.stdout and WRITE_KEY not in status.stdout
    _recover(home, collector)


def test_retry_after_is_honoured(home: Path, collector) -> None:
    collector.status = 429
    collector.reply_headers["Retry-After"] = "3"
    _configure(collector.url)
    opt_in()
    first, took = timed_run("sh", "-c", "exit 6")
    assert first.returncode == 6 and took < 1.0 + 1.5
    assert "HTTP 429" in first.stderr and "queued" in first.stderr
    assert len(collector.requests) == 1
    second, took = timed_run("true")
    assert second.returncode == 0 and took < 1.0 + 1.5
    assert second.stderr == ""  # said once, by the run that was answered 429
    assert len(collector.requests) == 1  # nothing sent while the endpoint asked us to wait
    assert len(queued(home)) == 2
    assert "asked to wait (Retry-After)" in sm("status").stdout
    _recover(home, collector)  # flush always tries


def test_a_400_is_dropped_and_counted(home: Path, collector) -> None:
    collector.status = 400
    _configure(collector.url)
    opt_in()
    result, took = timed_run("sh", "-c", "exit 0")
    assert result.returncode == 0 and took < 1.0 + 1.5
    assert "dropped" in result.stderr and "queued" not in result.stderr, result.stderr
    assert queued(home) == []
    status = sm("status").stdout
    assert "1 rejected by the endpoint" in status and "HTTP 400" in status


def test_the_next_run_delivers_the_queue_oldest_first(home: Path, collector, dead_url) -> None:
    _configure(dead_url)
    opt_in()
    sm("run", "--", "true")
    sm("run", "--", "false")
    _configure(collector.url)
    sm("run", "--", "sh", "-c", "exit 0")
    assert delivered_ids(collector.ok()) == [e["message_id"] for e in history(home)]
    assert queued(home) == []


def test_two_hundred_offline_events_are_all_delivered_once(
    home: Path, collector, dead_url: str
) -> None:
    _configure(dead_url)
    opt_in()

    def one(i: int) -> int:
        return subprocess.run(
            [SEND_METRICS, "run", "--", "sh", "-c", f"exit {i % 2}"], capture_output=True
        ).returncode

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(one, range(200))) == [i % 2 for i in range(200)]
    assert len(queued(home)) == 200
    _configure(collector.url)
    opt_in()  # a yes to the collector's host: events queued for another host wait for it
    result = sm("flush")
    assert result.returncode == 0 and "Sent 200 of 200" in result.stdout
    ids = delivered_ids(collector.ok())
    assert len(ids) == 200 and len(set(ids)) == 200
    assert set(ids) == {e["message_id"] for e in history(home)}


def test_queue_bound_drops_the_oldest_and_counts_them(home: Path, dead_url: str) -> None:
    _configure(dead_url, queue_max_events="3")
    opt_in()
    for _ in range(5):
        sm("run", "--", "true")
    events = history(home)
    assert queued(home) == [e["message_id"] for e in events[2:]]
    assert "2 over the queue bound" in sm("status").stdout


def test_flush_reports_what_is_left_when_the_endpoint_is_down(home: Path, dead_url) -> None:
    _configure(dead_url)
    opt_in()
    sm("run", "--", "true")
    result = sm("flush", "--timeout", "1")
    assert result.returncode == 4
    assert "1 left" in result.stdout and "connection refused" in result.stderr
    assert_no_traceback(result.stderr)


def test_local_sink_sends_nothing(home: Path) -> None:
    opt_in()
    sm("run", "--", "true")
    assert queued(home) == []
    assert "nothing is ever sent" in sm("flush").stdout


def test_segment_without_a_write_key_queues_and_says_so(home: Path, collector) -> None:
    Path("send_metrics.toml").write_text(
        f'[report]\nsink = "segment"\nendpoint = "{collector.url}"\n'
    )
    opt_in()
    result = sm("run", "--", "sh", "-c", "exit 1")
    assert result.returncode == 1
    assert "write_key is not set" in result.stderr and len(result.stderr.splitlines()) == 1
    assert collector.requests == []
    assert len(queued(home)) == 1


def test_segment_batches_stay_within_the_size_limits() -> None:
    """Segment takes at most 500 KB a batch and 32 KB an event; the queue is split to fit."""
    import json

    from send_metrics import sinks
    from send_metrics.config import Settings

    target = sinks.resolve(Settings(sink="segment", write_key="k", endpoint="http://x"))
    event = json.loads(sm("preview", "--", "true").stdout)
    events = [
        {
            **event,
            "message_id": f"{i:08d}-0000-4000-8000-000000000000",
            "command_args": ["\u00e9" * 200] * 20,
        }
        for i in range(2000)
    ]
    requests = list(sinks.requests_for(target, events))
    assert len(requests) > 1
    assert all(len(body) <= 500_000 for _url, _ids, body in requests)
    assert all(url.endswith("/v1/batch") for url, _ids, _body in requests)
    sent = [i for _url, ids, _body in requests for i in ids]
    assert sent == [e["message_id"] for e in events]
    for _url, _ids, body in requests:
        for message in json.loads(body)["batch"]:
            assert len(json.dumps(message)) <= 32_000


def test_a_prepared_connection_closed_by_the_server_is_reopened_once() -> None:
    """Connected while the command ran, closed by the server before use: one fresh retry."""
    import socket
    import threading

    from send_metrics import sinks

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(1.0)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1/track"
    seen: list[bytes] = []
    connections = 0

    def serve() -> None:
        nonlocal connections
        first, _ = listener.accept()
        connections += 1
        first.close()  # an idle keep-alive connection the server gave up on
        second, _ = listener.accept()
        connections += 1
        seen.append(second.recv(65536))
        second.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        second.close()
        try:  # a third connection would be a retry too many
            listener.accept()[0].close()
            connections += 1
        except TimeoutError:
            pass

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    conn = sinks.HttpClient(time.monotonic() + 5)
    conn.prepare(url)
    time.sleep(0.2)
    conn.post(url, b"{}", {})
    conn.close()
    server.join(5)
    listener.close()
    assert len(seen) == 1 and seen[0].startswith(b"POST /v1/track HTTP/1.1")
    assert connections == 2  # the prepared one, then exactly one fresh retry


def test_debug_sends_nothing_from_runs_or_flush_and_status_says_so(
    home: Path, collector, dead_url: str
) -> None:
    """SEND_METRICS_DEBUG makes one decision everywhere: printed, never sent, flush included."""
    _configure(dead_url)
    opt_in()
    sm("run", "--", "true")
    [waiting] = queued(home)
    _configure(collector.url)
    debug = {**os.environ, "SEND_METRICS_DEBUG": "1"}
    run = sm("run", "--", "true", env=debug)
    assert run.returncode == 0 and "send_metrics debug: {" in run.stderr
    flushed = sm("flush", env=debug)
    assert flushed.returncode == 4 and "printed, not sent" in flushed.stdout  # events stay
    assert "1 events stay queued" in flushed.stderr
    status = sm("status", env=debug).stdout
    assert "events printed, not sent" in status
    assert collector.requests == []
    assert waiting in queued(home)


# ---- an offline laptop: back-off ----


def _pass_the_back_off(home: Path) -> None:
    """Stand-in for the minutes going by: the recorded back-off ends now."""
    import sqlite3

    with sqlite3.connect(data_db(home)) as db:
        db.execute("UPDATE meta SET value = '0' WHERE key = 'not_before'")


def test_twenty_runs_against_a_black_hole_cost_the_deadline_once(home: Path, collector) -> None:
    """The first run waits for the deadline; the next 19 only queue, without even connecting;
    once the endpoint is back and the back-off has passed, one run delivers all of them."""
    collector.hang = True  # accepts, reads, never answers
    _configure(collector.url, deadline=1.0)
    opt_in()
    first, took = timed_run("sh", "-c", "exit 3")
    assert first.returncode == 3 and took < 1.0 + 1.5
    [line] = first.stderr.splitlines()
    assert ("did not answer" in line or "no answer in time" in line) and "queued" in line
    connections = collector.connections
    assert connections >= 1
    for i in range(19):
        result = sm("run", "--", "sh", "-c", f"exit {i % 3}")
        assert result.returncode == i % 3 and result.stderr == ""
    assert collector.connections == connections  # nothing was even connected during back-off
    assert len(queued(home)) == 20
    status = sm("status").stdout
    assert "back-off after 1 failed attempt(s)" in status and "runs only queue" in status
    collector.hang = False
    collector.released.set()
    _pass_the_back_off(home)
    last = sm("run", "--", "true")
    assert last.returncode == 0 and last.stderr == ""
    ids = [e["message_id"] for e in history(home)]
    assert len(ids) == 21 and delivered_ids(collector.ok()) == ids  # one run, all of them
    assert queued(home) == []
    assert "waiting" not in sm("status").stdout


def test_back_off_grows_and_flush_always_tries(home: Path, dead_url: str) -> None:
    import sqlite3

    _configure(dead_url)
    opt_in()
    sm("run", "--", "true")
    waits = []
    for _ in range(3):
        result = sm("flush", "--timeout", "1")
        assert result.returncode == 4 and "connection refused" in result.stderr
        with sqlite3.connect(data_db(home)) as db:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        waits.append(float(meta["not_before"]) - time.time())
    # 2, 3, then 4 failures in a row: 2, 4, 8 minutes, each within +-20 % jitter.
    for wait, minutes in zip(waits, (2, 4, 8), strict=True):
        assert 0.8 * minutes * 60 - 5 <= wait <= 1.2 * minutes * 60
    assert "back-off after 4 failed attempt(s)" in sm("status").stdout


def test_a_fixed_endpoint_is_tried_at_once_despite_the_back_off(
    home: Path, collector, dead_url: str
) -> None:
    _configure(dead_url)
    opt_in()
    sm("run", "--", "true")
    _configure(collector.url)  # the operator fixed the endpoint: its back-off is not ours
    sm("run", "--", "true")
    assert len(delivered_ids(collector.ok())) == 2 and queued(home) == []


# ---- the backlog survives configuration mistakes ----


def _queue_offline(home: Path, dead_url: str, count: int) -> None:
    """`count` events queued by real runs against a refusing endpoint (backed off after one)."""
    _configure(dead_url)
    opt_in()

    def one(i: int) -> int:
        return sm("run", "--", "true").returncode

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(one, range(count))) == [0] * count
    assert len(queued(home)) == count


def test_a_401_keeps_fifty_queued_and_names_the_write_key(
    home: Path, collector, dead_url: str
) -> None:
    _queue_offline(home, dead_url, 50)
    collector.status = 401
    _configure(collector.url)
    result = sm("run", "--", "sh", "-c", "exit 4")
    assert result.returncode == 4
    [line] = result.stderr.splitlines()
    assert "HTTP 401" in line and "report.write_key" in line and WRITE_KEY not in line
    assert len(queued(home)) == 51
    status = sm("status").stdout
    assert "0 rejected by the endpoint" in status and "back-off" in status
    asked = len(collector.requests)
    sm("run", "--", "true")  # backed off: only queued
    assert len(collector.requests) == asked and len(queued(home)) == 52
    collector.status = 200
    result = sm("flush")
    assert result.returncode == 0 and "Sent 52 of 52" in result.stdout
    ids = delivered_ids(collector.ok())
    assert sorted(ids) == sorted(e["message_id"] for e in history(home)) and len(ids) == 52


def test_a_403_from_otlp_names_the_headers(home: Path, collector) -> None:
    collector.status = 403
    collector.write_config("otlp")
    opt_in()
    result = sm("run", "--", "true")
    [line] = result.stderr.splitlines()
    assert "HTTP 403" in line and "OTEL_EXPORTER_OTLP_HEADERS" in line and "queued" in line
    assert len(queued(home)) == 1


@pytest.mark.parametrize("url", ["ftp://example.org/track", "example.org", "http://"])
def test_an_endpoint_that_is_not_http_is_a_configuration_error(home: Path, url: str) -> None:
    _configure(url)
    opt_in()
    result = sm("run", "--", "true")
    assert result.returncode == 0
    [line] = result.stderr.splitlines()
    assert "report.endpoint" in line and "not an http:// or https:// URL" in line
    assert "queued" in line and "rejected" not in line
    assert len(queued(home)) == 1
    flushed = sm("flush")
    assert flushed.returncode == 3 and "not an http://" in flushed.stderr
    assert len(queued(home)) == 1


def test_a_413_splits_the_batch_until_it_fits(home: Path, collector, dead_url: str) -> None:
    _queue_offline(home, dead_url, 10)
    collector.decide = lambda r: 413 if len(r.json.get("batch", [])) > 3 else 200
    _configure(collector.url)
    result = sm("flush")
    assert result.returncode == 0 and "Sent 10 of 10" in result.stdout
    sizes = [len(r.json.get("batch", [r.json])) for r in collector.requests]
    assert sizes[0] == 10 and 413 in [r.status for r in collector.requests]
    ids = delivered_ids(collector.ok())
    assert sorted(ids) == sorted(e["message_id"] for e in history(home)) and len(ids) == 10
    assert "0 rejected" in sm("status").stdout


@pytest.mark.parametrize("sink", ["segment", "otlp"])
def test_a_400_drops_only_the_offending_40_kb_event(
    home: Path, collector, dead_url: str, sink: str
) -> None:
    """Nine good events and one of 40 KB: the endpoint refuses any request carrying the big
    one; bisecting finds it (OTLP), Segment's own limit drops it before sending (Segment)."""
    import json
    import sqlite3

    _queue_offline(home, dead_url, 9)
    big = {**history(home)[4], "message_id": "0b1d0000-0000-4000-8000-000000000040"}
    big["command_args"] = ["x" * 1000] * 40
    with sqlite3.connect(data_db(home)) as db:
        created = db.execute("SELECT created FROM queue ORDER BY created").fetchall()[4][0]
        db.execute(
            "INSERT INTO queue (message_id, created, event) VALUES (?, ?, ?)",
            (big["message_id"], created + 1e-6, json.dumps(big)),
        )
    collector.decide = lambda r: 400 if len(r.body) > 40_000 else 200
    collector.write_config(sink, write_key=WRITE_KEY)
    opt_in()  # another sink: the earlier yes does not cover it
    result = sm("flush")
    assert "Sent 9 of 10 queued events" in result.stdout and "1 dropped, 0 left" in result.stdout
    assert "dropped" in result.stderr
    good = [e["message_id"] for e in history(home)]
    assert sorted(delivered_ids(collector.ok())) == sorted(good)
    assert big["message_id"] not in delivered_ids(collector.ok())
    assert queued(home) == []
    assert "1 rejected by the endpoint" in sm("status").stdout
    if sink == "segment":
        assert all(len(r.body) <= 32_000 * 10 for r in collector.requests)
        assert not any(r.status == 400 for r in collector.requests)


def test_flush_timeout_inf_leases_for_minutes_only(home: Path, collector, dead_url: str) -> None:
    import sqlite3

    _queue_offline(home, dead_url, 3)
    collector.hang = True
    _configure(collector.url)
    flush = subprocess.Popen(
        [SEND_METRICS, "flush", "--timeout", "inf"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if collector.requests:
                break
            time.sleep(0.05)
        assert collector.requests, "flush never sent"
        with sqlite3.connect(data_db(home)) as db:
            leases = [r[0] for r in db.execute("SELECT lease_until FROM queue")]
        assert leases and all(0 < lease - time.time() <= 300 for lease in leases)
    finally:
        flush.kill()
        flush.wait()
        collector.released.set()


def test_a_failed_request_frees_the_rest_of_its_batch(home: Path, collector, dead_url) -> None:
    """The http sink sends one request per event: when the first fails, the others of the
    batch were never tried and must be free for the very next flush, not leased."""
    config = Path("send_metrics.toml")
    config.write_text(f'[report]\nsink = "http"\nendpoint = "{dead_url}/hook"\n')
    opt_in()
    for _ in range(5):
        sm("run", "--", "true")
    assert len(queued(home)) == 5
    assert sm("flush", "--timeout", "5").returncode == 4
    config.write_text(f'[report]\nsink = "http"\nendpoint = "{collector.url}/hook"\n')
    result = sm("flush", "--timeout", "10")
    assert result.returncode == 0, result.stderr
    assert "Sent 5 of 5" in result.stdout
    assert sorted(delivered_ids(collector.ok())) == sorted(e["message_id"] for e in history(home))


def test_a_fifo_as_ca_bundle_is_a_config_error_at_once(home: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "bundle"
    os.mkfifo(fifo)
    Path("send_metrics.toml").write_text(
        '[report]\nsink = "http"\nendpoint = "https://127.0.0.1:9/hook"\n'
        f'ca_bundle = "{fifo}"\ndeadline = 30.0\n'
    )
    opt_in()
    result = sm("run", "--", "sh", "-c", "exit 5", timeout=20)  # a wait would last 30 s
    assert result.returncode == 5
    assert "report.ca_bundle" in result.stderr and "not a regular file" in result.stderr
    assert_no_traceback(result.stderr)
    assert len(queued(home)) == 1
