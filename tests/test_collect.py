"""`send_metrics collect` and the embedded store with real parts: the collector as a process on
loopback, our wrappers sending through each sink, segment-analytics-python and the
OpenTelemetry SDK's exporter as independent clients, `opt-out --erase` end to end, and the
store's de-duplication, erasure and retention across compaction into Parquet."""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from send_metrics.consent.decision import read_decision
from send_metrics.delivery import sinks
from send_metrics.operator import ingest
from send_metrics.operator.store import FIELDS, EmbeddedStore, open_for_report
from tests.collector_proc import KEY, segment_batch, start, stored, stored_targets
from tests.helpers import history, sm, state_file
from tests.operator_events import event, events


@pytest.fixture
def running(tmp_path: Path):
    collector = start(tmp_path / "data")
    yield collector
    collector.stop()


def as_stored(sent: dict[str, Any]) -> dict[str, Any]:
    """What the store must hold for an event: every field, typed as `events_all` gives it."""
    files = sent.get("make_file_targets") or {}
    expected: dict[str, Any] = {}
    for name, kind in FIELDS:
        if name == "received_at":
            continue
        if name.startswith("make_file_"):
            expected[name] = files.get(name.removeprefix("make_file_"))
            continue
        value = sent.get(name)
        if kind == "time" and value is not None:
            value = datetime.fromisoformat(value).astimezone(UTC).replace(tzinfo=None)
        expected[name] = value
    return expected


def assert_same(sent: list[dict[str, Any]], data: Path) -> None:
    """The store holds exactly these events, field for field, and their make targets."""
    found = {row["message_id"]: row for row in stored(data)}
    assert sorted(found) == sorted(e["message_id"] for e in sent)
    for one in sent:
        row = found[one["message_id"]]
        assert {k: row[k] for k in as_stored(one)} == as_stored(one)
    targets = stored_targets(data)
    want = sorted(
        (e["message_id"], t["name"], t["duration_ms"], t["critical"], t["depth"], t["lines"])
        for e in sent
        for t in e.get("make_targets") or []
    )
    got = sorted(
        (t["message_id"], t["name"], t["duration_ms"], t["critical"], t["depth"], t["lines"])
        for t in targets
    )
    assert got == want


# ---- our wrappers through each sink ----

SINKS = {
    "segment": ({"sink": "segment", "write_key": KEY}, "", {}),
    "otlp-json": (
        {"sink": "otlp", "headers": {"Authorization": f"Bearer {KEY}"}},
        "",
        {},
    ),
    "otlp-protobuf-gzip": (
        {"sink": "otlp", "headers": {"Authorization": f"Bearer {KEY}"}},
        "",
        {
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        },
    ),
    "http": ({"sink": "http", "headers": {"Authorization": f"Bearer {KEY}"}}, "/v1/events", {}),
}


def _config(url: str, settings: dict[str, Any], path: str, folder: Path) -> None:
    lines = ["[report]", f'endpoint = "{url}{path}"']
    for key, value in settings.items():
        if isinstance(value, dict):
            continue
        lines.append(f"{key} = {json.dumps(value)}")
    headers = settings.get("headers")
    if headers:
        lines.append("[report.headers]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in headers.items()]
    (folder / "send_metrics.toml").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("sink", sorted(SINKS))
def test_our_wrapper_through_each_sink_lands_field_for_field(
    sink: str, running, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, path, env = SINKS[sink]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    work = tmp_path / "proj"
    work.mkdir()
    _config(running.url, settings, path, work)
    (work / "Makefile").write_text(
        "dev.%: ; +@send_metrics wrap --make='$(MAKE)' -f Makefile $@\n"
        "impl-dev.build: impl-dev.deps\n\t@echo build\n"
        "impl-dev.deps:\n\t@echo deps\n"
    )
    assert sm("opt-in", "--yes", cwd=work).returncode == 0
    done = subprocess.run(["make", "dev.build"], cwd=work, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    failed = sm("run", "--", "sh", "-c", "exit 3", cwd=work)
    assert failed.returncode == 3
    assert sm("flush", cwd=work).returncode == 0
    sent = history(home)
    assert len(sent) == 2 and any(e["make_targets"] for e in sent)
    assert_same(sent, running.data)


def test_a_queue_flushed_as_one_segment_batch_lands_once(
    running, home: Path, tmp_path: Path
) -> None:
    """Queued while the collector was away, sent by `flush` as /v1/batch, then replayed."""
    work = tmp_path / "proj"
    work.mkdir()
    _config("http://127.0.0.1:9", {"sink": "segment", "write_key": KEY}, "", work)
    assert sm("opt-in", "--yes", cwd=work).returncode == 0
    for _ in range(3):
        assert sm("run", "--", "true", cwd=work).returncode == 0
    _config(running.url, {"sink": "segment", "write_key": KEY}, "", work)
    flushed = sm("flush", cwd=work)
    assert flushed.returncode == 0 and "Sent 3 of 3" in flushed.stdout, flushed.stderr
    sent = history(home)
    assert_same(sent, running.data)
    again = running.post("/v1/batch", segment_batch(sent), scheme="Basic")
    assert again.status == 200
    assert_same(sent, running.data)


# ---- independent clients ----


def test_segment_analytics_python_is_understood(running) -> None:
    import segment.analytics as analytics

    errors: list[Exception] = []
    client = analytics.Client(
        write_key=KEY,
        host=running.url,
        sync_mode=True,  # each track is one request, answered before it returns
        max_retries=0,
        gzip=True,
        on_error=lambda error, batch: errors.append(error),
    )
    sent = events(5, seed=3)
    for one in sent:
        properties = {k: v for k, v in one.items() if k not in ("message_id", "anonymous_id")}
        properties.pop("event")
        client.track(
            anonymous_id=one["anonymous_id"],
            event="command_run",
            properties=properties,
            message_id=one["message_id"],
        )
    assert errors == []
    assert_same(sent, running.data)


def _otel_attributes(one: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Resource and record attributes as the OTLP mapping names them, values as the SDK takes
    them (null left out, the breakdown as nested mappings)."""
    resource = {sinks.OTLP_RESOURCE[k]: v for k, v in one.items() if k in sinks.OTLP_RESOURCE}
    record: dict[str, Any] = {}
    for key, value in one.items():
        if key in sinks.OTLP_RESOURCE or value is None:
            continue
        record[sinks.OTLP_RECORD.get(key, f"send_metrics.{key}")] = value
    return {k: v for k, v in resource.items() if v is not None}, record


def test_opentelemetry_sdk_exporter_is_understood(running) -> None:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    sent = events(4, seed=5)
    for one in sent:
        resource, record = _otel_attributes(one)
        provider = LoggerProvider(resource=Resource.create(resource))
        exporter = OTLPLogExporter(
            endpoint=f"{running.url}/v1/logs", headers={"Authorization": f"Bearer {KEY}"}
        )
        provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        logger = provider.get_logger("send_metrics-test")
        logger.emit(body="command_run", attributes=record, event_name="command_run")
        provider.shutdown()
    assert_same(sent, running.data)


# ---- the OTLP forms of the make breakdown ----


def _old_form(request: dict[str, Any], sent: list[dict[str, Any]]) -> None:
    """The make breakdown as the otlp sink sent it before issue 21: Python repr text."""
    for resource_logs, one in zip(request["resourceLogs"], sent, strict=True):
        [record] = resource_logs["scopeLogs"][0]["logRecords"]
        for attribute in record["attributes"]:
            if attribute["key"] == "send_metrics.make_targets":
                texts = [{"stringValue": repr(t)} for t in one["make_targets"]]
                attribute["value"] = {"arrayValue": {"values": texts}}
            if attribute["key"] == "send_metrics.make_file_targets":
                attribute["value"] = {"stringValue": repr(one["make_file_targets"])}


@pytest.mark.parametrize("form", ["repr strings", "key-value lists", "key-value protobuf"])
def test_both_otlp_forms_of_the_breakdown(running, form: str) -> None:
    sent = [e for e in events(30, seed=9) if e["make_targets"]][:3]
    sent[0]["make_targets"][0]["exit_code"] = None  # a null member: the sink leaves it out
    sent[0]["interrupted"] = True
    request = sinks.otlp_request(sent)  # key-value lists, as the otlp sink sends them now
    if form == "repr strings":
        _old_form(request, sent)
    else:
        assert "kvlistValue" in json.dumps(request)
    body = json.dumps(request).encode()
    headers = {}
    if form == "key-value protobuf":
        from google.protobuf import json_format
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

        message = json_format.ParseDict(request, logs_service_pb2.ExportLogsServiceRequest())
        body = message.SerializeToString()
        headers["Content-Type"] = "application/x-protobuf"
    answer = running.post("/v1/logs", gzip.compress(body), {**headers, "Content-Encoding": "gzip"})
    assert answer.status == 200, answer.body
    assert_same(sent, running.data)


# ---- every released schema_version ----


def test_a_schema_version_1_event_is_taken_and_its_missing_fields_are_null(running) -> None:
    v2 = event(random.Random(4))
    v1 = {k: v for k, v in v2.items() if k in ingest.released_schemas()[1]["properties"]}
    v1["schema_version"] = 1
    assert running.post("/", json.dumps(v1).encode()).status == 200
    [row] = stored(running.data)
    assert row["schema_version"] == 1 and row["make_file_count"] is None
    assert row["exit_code_derived"] is None and row["duration_ms"] == v2["duration_ms"]
    bad = {**v1, "message_id": str(uuid.uuid4()), "make_targets": None}  # a field 1 lacked
    answer = running.post("/", json.dumps(bad).encode())
    assert answer.status == 400 and "does not name" in answer.json["message"]


def test_every_older_schema_version_is_kept_beside_the_shipped_one() -> None:
    """A new schema_version must leave the one it replaces in operator/schemas/, or events
    still queued on developers' machines would be refused."""
    from send_metrics.event.event import schema

    current = schema()["properties"]["schema_version"]["const"]
    assert sorted(ingest.released_schemas()) == list(range(1, current + 1))


# ---- erasure ----


def test_opt_out_erase_deletes_this_developers_events_at_the_collector(
    running, home: Path, tmp_path: Path
) -> None:
    work = tmp_path / "proj"
    work.mkdir()
    _config(running.url, {"sink": "segment", "write_key": KEY}, "", work)
    others = events(20, seed=2)
    assert running.post("/v1/batch", segment_batch(others), scheme="Basic").status == 200
    assert sm("opt-in", "--yes", cwd=work).returncode == 0
    for _ in range(3):
        assert sm("run", "--", "true", cwd=work).returncode == 0
    mine = history(home)
    assert len(stored(running.data)) == 23
    done = sm("opt-out", "--erase", cwd=work)
    assert done.returncode == 0, done.stderr
    assert "deleted 3 of your events" in done.stdout
    assert sorted(r["message_id"] for r in stored(running.data)) == sorted(
        e["message_id"] for e in others
    )
    assert mine[0]["anonymous_id"] not in {r["anonymous_id"] for r in stored(running.data)}


def test_opt_out_erase_never_sends_the_id_to_an_endpoint_that_is_not_ours(
    collector, home: Path, tmp_path: Path
) -> None:
    """Another receiver (the recording server) is only asked whether it is a collector; the
    id never reaches it, and the operator's privacy URL is shown instead."""
    work = tmp_path / "proj"
    work.mkdir()
    (work / "send_metrics.toml").write_text(
        f'[consent]\nprivacy_url = "https://example.org/privacy"\n'
        f'[report]\nsink = "http"\nendpoint = "{collector.url}/ingest"\n'
    )
    assert sm("opt-in", "--yes", cwd=work).returncode == 0
    anonymous_id = read_decision(state_file(home)).anonymous_id
    assert anonymous_id
    sent_before = len(collector.requests)
    done = sm("opt-out", "--erase", cwd=work)
    assert done.returncode == 0, done.stderr
    assert "https://example.org/privacy" in done.stdout
    assert all(anonymous_id.encode() not in r.body for r in collector.requests[sent_before:])


def test_erase_reaches_compacted_parts_and_pending_rows(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "data")
    try:
        people = [str(uuid.uuid4()) for _ in range(3)]
        rng = random.Random(1)
        first = [event(rng, rng.choice(people)) for _ in range(300)]
        store.write(first)
        store.compact(force=True)
        later = [event(rng, rng.choice(people)) for _ in range(60)]
        store.write(later)
        gone = people[0]
        expected = sum(e["anonymous_id"] == gone for e in first + later)
        assert store.erase(gone) == expected > 0
        rows = stored(tmp_path / "data")
        assert len(rows) == 360 - expected and gone not in {r["anonymous_id"] for r in rows}
        assert gone not in {t["anonymous_id"] for t in stored_targets(tmp_path / "data")}
        assert store.write([e for e in first if e["anonymous_id"] == gone]) == 0  # no comeback
        assert store.erase(gone) == 0
    finally:
        store.close()


def _files_holding(folder: Path, *needles: str) -> list[str]:
    """Every file under `folder` whose bytes contain one of `needles`."""
    return sorted(
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_file() and any(n.encode() in path.read_bytes() for n in needles)
    )


def test_an_erased_developer_leaves_no_byte_in_the_data_folder(tmp_path: Path) -> None:
    """After `{"erased": N}`, no file of the store (the SQLite database and its log, Parquet
    parts, replaced parts waiting in the trash) holds the id or a canary only their events
    carried, whether the events were pending, compacted or merged."""
    from send_metrics.operator.store import Maintainer

    data = tmp_path / "data"
    collector = start(data)
    try:
        rng = random.Random(21)
        gone, kept = str(uuid.uuid4()), str(uuid.uuid4())
        canary = "canary-build-7f3a"
        maintainer = Maintainer(data)  # compaction as the collector's workers run it
        try:
            for round_ in range(MERGE_ROUNDS):
                batch = [event(rng, gone, days=0.001, command=canary) for _ in range(5)]
                batch += [event(rng, kept, days=0.001) for _ in range(5)]
                assert collector.post("/v1/events", json.dumps(batch).encode()).status == 200
                if round_ < MERGE_ROUNDS - 1:
                    maintainer.compact(force=True)  # the last round stays pending
        finally:
            maintainer.close()
        assert _files_holding(data, gone, canary)  # the test would see them
        answer = collector.post("/v1/erase", json.dumps({"anonymous_id": gone}).encode())
        assert answer.status == 200 and answer.json == {"erased": 5 * MERGE_ROUNDS}
        assert _files_holding(data, gone, canary) == []
        assert len(stored(data)) == 5 * MERGE_ROUNDS
    finally:
        collector.stop()
    assert _files_holding(data, gone, canary) == []


MERGE_ROUNDS = 10  # more parts of one day than MERGE_AT: a merge leaves replaced files


def test_the_store_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """The folder the collector makes is 0700 and every file in it 0600: the database, its
    -wal and -shm, locks, and the Parquet parts its workers write at compaction."""
    import stat

    from send_metrics.operator.store import COMPACT_ROWS

    data = tmp_path / "data"
    collector = start(data)
    try:
        sent = events(COMPACT_ROWS + 100, seed=31, days=0.5)
        for at in range(0, len(sent), 2000):
            body = json.dumps(sent[at : at + 2000]).encode()
            assert collector.post("/v1/events", body).status == 200
        deadline = time.monotonic() + 120
        while not list(data.glob("events/day=*/*.parquet")) and time.monotonic() < deadline:
            time.sleep(0.2)
        made = sorted(data.rglob("*"))
        names = {p.name for p in made}
        assert {"ingest.sqlite3", "ingest.sqlite3-wal", "ingest.sqlite3-shm"} <= names
        assert any(p.suffix == ".parquet" for p in made)
        modes = {str(p.relative_to(data)): stat.S_IMODE(p.stat().st_mode) for p in made}
        assert {name: mode for name, mode in modes.items() if mode not in (0o600, 0o700)} == {}
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        for path in made:
            assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600)
    finally:
        collector.stop()
    data.chmod(0o755)  # an operator's folder open to others: said at start
    again = start(data)
    try:
        assert "open to other users" in again.output()
    finally:
        again.stop()


# ---- de-duplication, retention, reading while writing ----


def test_duplicates_are_never_stored_before_or_after_compaction(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "data")
    try:
        batch = events(200, seed=12)
        assert store.write(batch) == 200
        assert store.write(batch[:50] + batch[:50]) == 0
        store.compact(force=True)
        assert store.write(batch) == 0
        fresh = events(10, seed=13)
        assert store.write(fresh + fresh) == 10
        for _ in range(9):  # enough parts for a merge
            store.write(events(5, seed=random.randrange(10**6)))
            store.compact(force=True)
        rows = stored(tmp_path / "data")
        assert len(rows) == len({r["message_id"] for r in rows}) == 255
    finally:
        store.close()


def test_retention_deletes_old_days_and_refuses_their_replay(tmp_path: Path) -> None:
    rng = random.Random(5)
    old = [event(rng, days=0, start_time="2026-01-02T03:04:05.000+00:00") for _ in range(20)]
    new = events(30, seed=6, days=1)
    store = EmbeddedStore(tmp_path / "data")
    try:
        assert store.write(old + new) == 50
        store.compact(force=True)
        assert store.expire(60) == 20
        assert {r["message_id"] for r in stored(tmp_path / "data")} == {
            e["message_id"] for e in new
        }
    finally:
        store.close()
    kept = EmbeddedStore(tmp_path / "data", retention_days=60)
    try:
        assert kept.write(old) == 0
    finally:
        kept.close()
    assert len(stored(tmp_path / "data")) == 30


def test_report_reads_while_the_collector_writes(running) -> None:
    """Another process's reader sees a growing, duplicate-free store while batches land."""
    sent: list[str] = []
    stop = threading.Event()

    def send() -> None:
        seed = 100
        while not stop.is_set():
            batch = events(100, seed=seed, days=0.1)
            seed += 1
            if running.post("/v1/batch", segment_batch(batch), scheme="Basic").status == 200:
                sent.extend(e["message_id"] for e in batch)

    sender = threading.Thread(target=send)
    sender.start()
    seen = []
    try:
        for _ in range(15):
            con = open_for_report(running.data)
            total, distinct = con.execute(
                "SELECT count(*), count(DISTINCT message_id) FROM events"
            ).fetchone()
            con.close()
            assert total == distinct
            seen.append(total)
            time.sleep(0.2)
    finally:
        stop.set()
        sender.join()
    assert seen == sorted(seen) and seen[-1] > 0
    assert {r["message_id"] for r in stored(running.data)} == set(sent)


def test_the_contract_relations_have_exactly_their_columns(running) -> None:
    assert running.post("/v1/batch", segment_batch(events(5)), scheme="Basic").status == 200
    con = open_for_report(running.data)
    described = {
        name: [(c, t) for c, t, *_ in con.execute(f"DESCRIBE {name}").fetchall()]
        for name in ("events", "targets")
    }
    assert described["events"] == [
        ("message_id", "VARCHAR"), ("anonymous_id", "VARCHAR"), ("app", "VARCHAR"),
        ("app_version", "VARCHAR"), ("tool_version", "VARCHAR"), ("schema_version", "INTEGER"),
        ("command", "VARCHAR"), ("command_type", "VARCHAR"), ("start_time", "TIMESTAMP"),
        ("duration_ms", "DOUBLE"), ("exit_code", "INTEGER"), ("interrupted", "BOOLEAN"),
        ("os", "VARCHAR"), ("arch", "VARCHAR"), ("ci", "BOOLEAN"), ("received_at", "TIMESTAMP"),
    ]  # fmt: skip
    assert described["targets"] == [
        ("message_id", "VARCHAR"), ("anonymous_id", "VARCHAR"), ("start_time", "TIMESTAMP"),
        ("command", "VARCHAR"), ("name", "VARCHAR"), ("duration_ms", "DOUBLE"),
        ("exit_code", "INTEGER"), ("critical", "BOOLEAN"), ("depth", "INTEGER"),
    ]  # fmt: skip


def test_startup_says_when_any_sender_is_accepted(tmp_path: Path) -> None:
    collector = start(tmp_path / "data", ())
    try:
        assert "ANY sender" in collector.output()
        assert "/v1/erase" in collector.output()
        assert (
            collector.post("/", json.dumps(event(random.Random(1))).encode(), key=None).status
            == 200
        )
    finally:
        collector.stop()
    keyed = start(tmp_path / "data")
    try:
        assert "ANY sender" not in keyed.output()
    finally:
        keyed.stop()


def test_sigterm_stops_the_collector_cleanly(tmp_path: Path) -> None:
    """SIGTERM: requests finished, the store and the worker pool closed, exit status 0, and
    no warning (uvicorn re-raises the signal after its graceful stop; that killed the process
    before its cleanup and left the pool's semaphores to the resource tracker)."""
    collector = start(tmp_path / "data")
    one = event(random.Random(8), days=1)
    assert collector.post("/v1/events", json.dumps(one).encode()).status == 200
    collector.stop()
    assert collector.proc.returncode == 0
    lines = collector.output().splitlines()
    assert len(lines) == 2 and lines[0].startswith("send_metrics collect: listening"), lines
    assert [e["message_id"] for e in stored(tmp_path / "data")] == [one["message_id"]]


def test_a_second_collector_on_the_same_folder_is_refused(running) -> None:
    second = sm("collect", "--port", "0", "--data", str(running.data))
    assert second.returncode != 0 and "another collector" in second.stderr
    assert "Traceback" not in second.stderr


def test_collect_with_clickhouse_takes_each_sink_once(tmp_path: Path) -> None:
    """The collector's HTTP side over the ClickHouse Backend (on chDB, ClickHouse's engine
    in-process): events land once, replays included, and erasure reaches them."""
    import uvicorn

    from send_metrics.operator import clickhouse, collect
    from tests.collector_proc import free_port
    from tests.team_events import ChdbConnection

    chdb = ChdbConnection(tmp_path / "clickhouse")
    pool = collect.worker_pool(1)
    backend = clickhouse.ClickHouseBackend(chdb)
    maintenance = collect.Maintenance(backend, pool, None, lambda line: None)
    port = free_port()
    options = collect.Options(port=port, keys=(KEY,))
    receiver = collect.Collector(backend, options, pool, maintenance)
    config = uvicorn.Config(receiver.app(), host="127.0.0.1", port=port, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        from tests.collector_proc import Running

        running = Running(tmp_path, port, None, tmp_path / "none")  # type: ignore[arg-type]
        sent = events(40, seed=51)
        body = segment_batch(sent[:20])
        assert running.post("/v1/batch", body, scheme="Basic").status == 200
        assert running.post("/v1/batch", body, scheme="Basic").status == 200
        otlp = json.dumps(sinks.otlp_request(sent[20:])).encode()
        assert running.post("/v1/logs", otlp).status == 200
        count = "SELECT count(), uniqExact(message_id) FROM " + clickhouse.DEFAULT_TABLE  # noqa: S608
        assert chdb.rows(count) == [(40, 40)]
        gone = sent[0]["anonymous_id"]
        answer = running.post("/v1/erase", json.dumps({"anonymous_id": gone}).encode())
        expected = sum(e["anonymous_id"] == gone for e in sent)
        assert answer.status == 200 and answer.json == {"erased": expected}
    finally:
        server.should_exit = True
        thread.join()
        maintenance.close()
        receiver.close()
        pool.shutdown()
        chdb.close()


def test_collect_with_an_unreachable_clickhouse_says_so_in_one_line() -> None:
    done = sm("collect", "--port", "0", "--clickhouse", "http://127.0.0.1:9/")
    assert done.returncode != 0 and "ClickHouse" in done.stderr
    assert "Traceback" not in done.stderr


def test_clickhouse_url_from_the_environment_never_shows_its_password() -> None:
    """SEND_METRICS_CLICKHOUSE_URL keeps the password out of `ps`; collect and report use it
    and neither prints the password."""
    url = "http://reader:pw-canary-9c1e@127.0.0.1:9/metrics"
    env = {**os.environ, "SEND_METRICS_CLICKHOUSE_URL": url}
    done = sm("collect", "--port", "0", env=env)
    assert done.returncode != 0 and "ClickHouse at 127.0.0.1" in done.stderr
    shown = sm("report", env=env)
    assert shown.returncode != 0 and "ClickHouse at 127.0.0.1" in shown.stderr
    for run in (done, shown):
        assert "pw-canary" not in run.stdout + run.stderr and "Traceback" not in run.stderr
