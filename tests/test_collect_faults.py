"""The collector under faults and bad input, as a real process: kill -9 mid-ingest, a full
disk, fuzzed JSON and protobuf garbage, huge and compressed-huge bodies, slow bodies, wrong
keys, replays and floods. Always a 4xx (or 503 when it cannot store), never a crash, never a
duplicate, never an acknowledged event lost, never a request's content in the log."""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import jsonschema
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from send_metrics.delivery import sinks
from send_metrics.operator import ingest
from tests.collector_proc import KEY, Running, children, segment_batch, start, stored
from tests.operator_events import event, events

pytestmark = pytest.mark.stress


@pytest.fixture
def running(tmp_path: Path):
    collector = start(tmp_path / "data")
    yield collector
    collector.stop()
    assert "Traceback" not in collector.output()


def _send_until(collector: Running, stop: threading.Event, acked: list[str], seed: int) -> None:
    """Send Segment batches until told to stop or the collector is gone; note what was
    acknowledged."""
    rng = random.Random(seed)
    while not stop.is_set():
        batch = [event(rng, days=0.1) for _ in range(50)]
        try:
            answer = collector.post("/v1/batch", segment_batch(batch), scheme="Basic", timeout=10)
        except OSError:
            return
        if answer.status == 200:
            acked.extend(e["message_id"] for e in batch)


def test_kill_9_mid_ingest_loses_no_acknowledged_event(tmp_path: Path) -> None:
    data = tmp_path / "data"
    collector = start(data)
    acked: list[str] = []
    stop = threading.Event()
    senders = [
        threading.Thread(target=_send_until, args=(collector, stop, acked, seed))
        for seed in range(4)
    ]
    for sender in senders:
        sender.start()
    try:
        deadline = time.monotonic() + 60
        while len(acked) < 3000 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = children(collector.proc.pid)
        collector.proc.send_signal(signal.SIGKILL)  # in the middle of requests in flight
        collector.proc.wait()
        _gone, alive = psutil.wait_procs(workers, timeout=10)
        assert workers and not alive  # its decoding processes do not outlive it
    finally:
        stop.set()
        for sender in senders:
            sender.join()
        collector.stop()
    assert len(acked) >= 3000
    found = [r["message_id"] for r in stored(data)]
    assert len(found) == len(set(found))
    assert set(acked) <= set(found)
    again = start(data)  # and the store opens again, with every acknowledged event
    try:
        batch = events(10, seed=77, days=0.1)
        assert again.post("/v1/batch", segment_batch(batch), scheme="Basic").status == 200
        assert len(stored(data)) == len(found) + 10
    finally:
        again.stop()


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 3 MB tmpfs (root, mount): a disk that fills up for real."""
    folder = tmp_path / "small"
    folder.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root and mount for a small tmpfs")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode()[-200:]}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_answers_503_and_loses_nothing_acknowledged(small_disk: Path) -> None:
    data = small_disk / "data"
    collector = start(data)
    acked: list[str] = []
    statuses: list[int] = []
    rng = random.Random(3)
    try:
        for _ in range(400):
            batch = [event(rng, days=0.1) for _ in range(50)]
            answer = collector.post("/v1/batch", segment_batch(batch), scheme="Basic")
            statuses.append(answer.status)
            if answer.status == 200:
                acked.extend(e["message_id"] for e in batch)
            elif answer.status == 503:
                assert answer.headers.get("retry-after")
                if statuses.count(503) >= 5:
                    break
        assert 503 in statuses and set(statuses) <= {200, 503}, statuses
        assert collector.alive()
        found = [r["message_id"] for r in stored(data)]
        assert len(found) == len(set(found)) and set(acked) <= set(found)
    finally:
        collector.stop()
    assert "Traceback" not in collector.output()


# ---- bad input ----

PATHS = ["/v1/track", "/v1/batch", "/v1/logs", "/", "/v1/events"]
# Values near the schema's edges: patterns with a final newline or the wrong case, times
# without an offset, bounds, whole floats, booleans where numbers go, lone surrogates.
NEAR_MISSES = [
    "", "x", "SIGINT", "SIGINT\n", "SIGint", "command_run", "make", "MAKE",
    "0b7e3f6a-8c2d-4e1f-9a3b-5c6d7e8f9a0b", "0b7e3f6a-8c2d-4e1f-9a3b-5c6d7e8f9a0b\n",
    "0B7E3F6A-8C2D-4E1F-9A3B-5C6D7E8F9A0B", "0b7e3f6a-8c2d-1e1f-9a3b-5c6d7e8f9a0b",
    "9c1d2e3f4a5b6c7d", "9c1d2e3f4a5b6c7", "2026-11-20T09:30:00+00:00", "2026-11-20T09:30:00",
    "x" * 201, "\ud800", -1, 0, 1, 2, 2.0, 2.5, -0.5, 2**31, 2**63, 1e308, True, False, None,
    [], {}, ["a"], [1], [{}],
]  # fmt: skip
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)
edge_values = json_values | st.sampled_from(NEAR_MISSES)


def test_fuzzed_json_is_a_4xx_never_a_crash(running) -> None:
    @settings(
        max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(path=st.sampled_from(PATHS), doc=json_values)
    def check(path: str, doc: Any) -> None:
        answer = running.post(path, json.dumps(doc).encode(), scheme="Basic")
        # 200 only for a request that carries no event at all (an empty OTLP export or batch)
        assert answer.status in (200, 400), (answer.status, answer.body)
        if answer.status == 200:
            assert json.loads(answer.body) in ({}, {"success": True, "events": 0})

    check()
    assert running.alive() and stored(running.data) == []


def test_mutated_events_are_refused_exactly_when_the_schema_refuses_them(running) -> None:
    """Each request is one real event with one field changed: stored if and only if the
    shipped schema (jsonschema, the reference) accepts it, never twice."""
    from send_metrics.event.event import schema

    reference = jsonschema.Draft202012Validator(schema())
    fields = list(schema()["properties"])

    @settings(
        max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(seed=st.integers(0, 10**6), field=st.sampled_from(fields), value=edge_values)
    def check(seed: int, field: str, value: Any) -> None:
        one = event(random.Random(seed), days=1)
        one[field] = value
        valid = reference.is_valid(one) and ingest.Validator().problem(dict(one)) is None
        body = json.dumps(one).encode()
        answer = running.post("/v1/events", body)
        assert answer.status == (200 if valid else 400), (field, answer.body)
        assert running.post("/v1/events", body).status == answer.status  # a replay

    check()
    rows = stored(running.data)
    assert len(rows) == len({r["message_id"] for r in rows})


@settings(max_examples=600, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    field=st.sampled_from(sorted(event(random.Random(0)))),
    value=edge_values,
)
def test_the_validator_agrees_with_jsonschema(seed: int, field: str, value: Any) -> None:
    """Our compiled checks against the reference implementation: never more lenient, and
    stricter only by the store's documented limits (32/64-bit integers, date-times with an
    offset, UTF-8 text, no newline before a pattern's end)."""
    from send_metrics.event.event import schema

    one = event(random.Random(seed), days=1)
    one[field] = value
    ours = ingest.Validator().problem(dict(one))
    if not jsonschema.Draft202012Validator(schema()).is_valid(one):
        assert ours is not None
    elif ours is not None:
        # JSON Schema counts 2.0 as the integer 2; we take only the integer literal our sinks send.
        whole_float = isinstance(value, float) and value.is_integer()
        assert whole_float or any(
            word in ours for word in ("out of range", "date-time", "UTF-8", "pattern", "not number")
        ), ours


def test_protobuf_garbage_is_a_400(running) -> None:
    rng = random.Random(8)
    headers = {"Content-Type": "application/x-protobuf"}
    for size in (1, 5, 64, 1000, 100_000):
        for _ in range(5):
            body = rng.randbytes(size)
            assert running.post("/v1/logs", body, headers).status == 400
    nested = b"\x0a\x7f" * 2000  # deeply nested length-delimited fields
    assert running.post("/v1/logs", nested, headers).status == 400
    assert running.alive() and stored(running.data) == []


def _status_of_huge(port: int, head: bytes, body: bytes) -> int:
    """Send a request whose body the server may refuse before reading it all (it answers and
    closes: the rest of our sending fails), and read the status it answered."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        sock.sendall(head)
        try:
            sock.sendall(body)
        except OSError:
            pass
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        return int(answer.split(b" ", 2)[1])
    finally:
        sock.close()


def test_huge_and_compressed_huge_bodies_are_413(running) -> None:
    auth = b"Authorization: Bearer " + KEY.encode() + b"\r\n"
    head = b"POST / HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Length: %d\r\n\r\n"
    assert _status_of_huge(running.port, head % (1 << 30), b"x" * 1024) == 413
    assert _status_of_huge(running.port, head % (9 << 20), b" " * (9 << 20)) == 413
    chunked = b"POST / HTTP/1.1\r\nHost: x\r\n" + auth + b"Transfer-Encoding: chunked\r\n\r\n"
    chunk = b"100000\r\n" + b" " * 0x100000 + b"\r\n"
    assert _status_of_huge(running.port, chunked, chunk * 10) == 413
    bomb = gzip.compress(b" " * (64 << 20))  # 64 MiB of spaces in about 64 KiB
    assert len(bomb) < 200_000
    answer = running.post("/v1/batch", bomb, {"Content-Encoding": "gzip"}, scheme="Basic")
    assert answer.status == 413
    deflate = zlib.compress(b"0" * (32 << 20))
    answer = running.post("/v1/logs", deflate, {"Content-Encoding": "deflate"})
    assert answer.status == 413
    broken = gzip.compress(b"{}")[:-6]
    assert running.post("/", broken, {"Content-Encoding": "gzip"}).status == 400
    assert running.post("/", b"{}", {"Content-Encoding": "br"}).status == 400
    assert running.alive()


def test_bodies_sent_too_slowly_do_not_hold_the_collector(running) -> None:
    """Senders that stop mid-body (more of them than requests decoded at once) are cut off
    later; others are served meanwhile."""
    stalled = []
    head = (
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode()
        + b"\r\nContent-Length: 100000\r\n\r\n{"
    )  # fmt: skip
    for _ in range(12):
        sock = socket.create_connection(("127.0.0.1", running.port))
        sock.sendall(head)
        stalled.append(sock)
    try:
        time.sleep(0.5)
        one = event(random.Random(2), days=1)
        assert running.post("/v1/events", json.dumps(one).encode(), timeout=20).status == 200
    finally:
        for sock in stalled:
            sock.close()


def test_headers_trickled_slowly_do_not_hold_the_collector(running) -> None:
    """300 keyless connections each trickling a header line every 2 s (more than the
    collector's 256 connections): they are closed once their headers are late, and a sender
    gets its events stored while the attack goes on."""
    trickling: list[socket.socket] = []
    for _ in range(300):
        sock = socket.create_connection(("127.0.0.1", running.port))
        sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n")
        trickling.append(sock)
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(2):
            for sock in trickling:
                with contextlib.suppress(OSError):
                    sock.sendall(b"X-a: b\r\n")

    thread = threading.Thread(target=trickle)
    thread.start()
    one = event(random.Random(3), days=1)
    statuses = []
    try:
        for _ in range(20):  # a sender retrying on 503, as every client of ours does
            try:
                answer = running.post("/v1/events", json.dumps(one).encode(), timeout=10)
                statuses.append(answer.status)
            except OSError as exc:
                statuses.append(type(exc).__name__)
            if statuses[-1] == 200:
                break
            time.sleep(3)
        assert statuses[-1] == 200, statuses
        closed = 0
        for sock in trickling:
            sock.settimeout(5)
            with contextlib.suppress(OSError):
                closed += sock.recv(1) == b""
        assert closed == len(trickling)
    finally:
        stop.set()
        thread.join()
        for sock in trickling:
            sock.close()
    assert [e["message_id"] for e in stored(running.data)] == [one["message_id"]]


def test_an_event_dated_more_than_a_day_ahead_is_a_400_naming_the_field(running) -> None:
    """It would be kept past any --retention-days; a clock a few hours ahead is fine."""
    rng = random.Random(4)
    ahead = time.time() + 2 * 86400
    late = time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime(ahead))
    answer = running.post("/v1/events", json.dumps(event(rng, start_time=late)).encode())
    assert answer.status == 400 and "start_time" in answer.json["message"]
    soon = time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime(time.time() + 3 * 3600))
    fine = event(rng, start_time=soon)
    assert running.post("/v1/events", json.dumps(fine).encode()).status == 200
    assert [e["message_id"] for e in stored(running.data)] == [fine["message_id"]]


def test_an_otlp_attribute_key_twice_is_a_400(running) -> None:
    """Which value would count is anyone's guess: refused, in JSON and in protobuf."""
    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

    doc = sinks.otlp_request([event(random.Random(5))])
    record = doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    record["attributes"].append(dict(record["attributes"][0]))
    answer = running.post("/v1/logs", json.dumps(doc).encode())
    assert answer.status == 400 and "twice" in answer.json["message"]
    proto = ParseDict(doc, logs_service_pb2.ExportLogsServiceRequest()).SerializeToString()
    answer = running.post("/v1/logs", proto, {"Content-Type": "application/x-protobuf"})
    assert answer.status == 400
    assert stored(running.data) == []


def test_wrong_keys_are_401_and_never_logged(running) -> None:
    body = segment_batch(events(3, seed=21))
    assert running.post("/v1/batch", body, key=None).status == 401
    assert running.post("/v1/batch", body, key="canary-wrong-KEY-1", scheme="Basic").status == 401
    assert running.post("/v1/logs", b"{}", key="canary-wrong-KEY-2").status == 401
    bad = {"Authorization": "Basic !!!not-base64"}
    assert running.post("/v1/batch", body, bad, key=None).status == 401
    assert (
        running.post("/v1/erase", b'{"anonymous_id": "x"}', key="canary-wrong-KEY-3").status == 401
    )
    assert stored(running.data) == []
    assert running.post("/v1/batch", body, scheme="Basic").status == 200
    assert "canary-wrong-KEY" not in running.output() and KEY not in running.output()


def test_request_content_never_reaches_the_log(running) -> None:
    canary = "CANARY-7f3a9"
    one = event(random.Random(5))
    for field, value in [("command", canary * 30), ("duration_ms", canary), ("os", [canary])]:
        bad = {**one, field: value}
        assert running.post("/v1/events", json.dumps(bad).encode()).status == 400
    assert running.post("/v1/events", f'{{"{canary}": '.encode()).status == 400
    otlp = sinks.otlp_request([one])
    otlp["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["attributes"].append(
        {"key": "send_metrics.duration_ms", "value": {"intValue": canary}}
    )
    assert running.post("/v1/logs", json.dumps(otlp).encode()).status == 400
    log = running.output()
    assert "400" in log and canary not in log


def test_replayed_batches_are_stored_once(running) -> None:
    batch = events(100, seed=31)
    body = segment_batch(batch)
    for _ in range(3):
        assert running.post("/v1/batch", body, scheme="Basic").status == 200
    halves = segment_batch(batch[:50] + events(10, seed=32))
    assert running.post("/v1/batch", halves, scheme="Basic").status == 200
    rows = stored(running.data)
    assert len(rows) == len({r["message_id"] for r in rows}) == 110


def test_over_the_keys_rate_is_429_with_retry_after(tmp_path: Path) -> None:
    collector = start(tmp_path / "data", (KEY,), "--rate", "50")
    try:
        answers = [
            collector.post("/v1/batch", segment_batch(events(60, seed=s)), scheme="Basic")
            for s in range(4)
        ]
        statuses = [a.status for a in answers]
        assert 429 in statuses and statuses[0] == 200, statuses
        limited = next(a for a in answers if a.status == 429)
        assert int(limited.headers["retry-after"]) >= 1
        other = collector.post("/v1/batch", segment_batch(events(5, seed=9)), key="x")
        assert other.status == 401  # the rate is per key; a wrong key is still wrong
    finally:
        collector.stop()


def test_erase_takes_only_an_anonymous_id(running) -> None:
    assert running.get("/v1/erase").json["collector"] == "send_metrics"
    extra = {"anonymous_id": "0b7e3f6a-8c2d-4e1f-9a3b-5c6d7e8f9a0b", "x": 1}
    for body in (
        b"{}",
        b'{"anonymous_id": "not-a-uuid"}',
        b"[]",
        b"nope",
        json.dumps(extra).encode(),
    ):
        assert running.post("/v1/erase", body).status == 400
    answer = running.post("/v1/erase", b'{"anonymous_id": "0b7e3f6a-8c2d-4e1f-9a3b-5c6d7e8f9a0b"}')
    assert answer.status == 200 and answer.json == {"erased": 0}


def test_segment_basic_auth_takes_the_write_key_as_user(running) -> None:
    body = segment_batch(events(2, seed=41))
    token = base64.b64encode(f"{KEY}:ignored-password".encode()).decode()
    answer = running.post("/v1/batch", body, {"Authorization": f"Basic {token}"}, key=None)
    assert answer.status == 200


def test_decompression_stops_at_the_limit_whatever_the_ratio() -> None:
    """A 256 MiB gzip bomb costs the limit's worth of memory, not its own size."""
    import tracemalloc

    packer = zlib.compressobj(wbits=31)
    block = b"\0" * (1 << 20)
    bomb = b"".join(packer.compress(block) for _ in range(256)) + packer.flush()
    tracemalloc.start()
    try:
        with pytest.raises(ingest.BadRequest) as refused:
            ingest.inflate(bomb, "gzip", 8 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.status == 413
    assert peak < 32 << 20, peak
