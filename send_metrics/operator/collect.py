"""`send_metrics collect`: the operator's receiver, on uvicorn and starlette.

One process: the event loop reads bodies (bounded in size, time and total memory) and decodes
them; one writer thread stores the events of every request waiting at that moment in one
transaction (group commit: one fsync for many requests) and only then are they answered 2xx;
one maintenance thread compacts, expires and erases. Answers, as the clients understand them:
400 bad input, 401 wrong key, 408 too slow a body, 413 too large, 429 over the key's rate (with
Retry-After), 503 when the events cannot be stored now or the collector is full (all our sinks,
segment-analytics-python and the OpenTelemetry exporter keep or retry the events on 429 and 503).

Nothing from a request body is ever logged: a refusal is logged with its status, path and a
message that names a field, never a value."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

from send_metrics.operator import ingest
from send_metrics.operator.store import (
    Backend,
    EmbeddedStore,
    Maintainer,
    StoreUnavailable,
    to_row,
)
from send_metrics.output import warn

# Deferred imports: the web stack (uvicorn, starlette: the collector extra) loads when `collect`
# serves, ClickHouse only when asked for; ctypes, signal and multiprocessing where they are used.

DEFAULT_PORT = 4318  # the OTLP/HTTP port: an otlp sink's default endpoint finds us there
MAX_BODY = 8 << 20  # bytes of a request body, as sent and once decompressed
BUFFER_BUDGET = 64 << 20  # bytes of bodies being read at once, across all requests
BODY_SECONDS = 30.0  # a body must arrive within this
HEADER_SECONDS = 10.0  # a request's headers must arrive within this (from connecting, or the
# previous answer on a kept-alive connection): a trickle of header lines holds no connection
WORKERS = 4  # requests decoded and waiting for storage at once (bounds parsed events in memory)
DECODERS = 2  # worker processes that decode bodies and run maintenance (the GIL is per process)
GROUP_EVENTS = 10_000  # events the writer stores in one transaction at most
DEFAULT_RATE = 20_000.0  # events per second per key (burst: two seconds' worth)
ERASE_PATH = "/v1/erase"
INGEST_PATHS = (*ingest.SEGMENT_PATHS, ingest.OTLP_PATH, *ingest.HTTP_PATHS)


class Options(NamedTuple):
    """What `collect` was asked for."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    data: Path = Path()
    keys: tuple[str, ...] = ()
    retention_days: int | None = None
    clickhouse: str = ""
    rate: float = DEFAULT_RATE
    max_body: int = MAX_BODY


class Refused(Exception):
    """A request answered with an error status, and why (no value from the request)."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


# ---- credentials and rates ----


def presented_key(authorization: str) -> str | None:
    """The key a request presents: Segment's Basic (the write key as user name) or Bearer."""
    scheme, _, value = authorization.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip() or None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        return decoded.partition(":")[0] or None
    return None


def key_matches(given: str | None, keys: Sequence[str]) -> bool:
    """Whether `given` is one of `keys`, compared in constant time for each."""
    if given is None:
        return False
    found = False
    for key in keys:
        found |= hmac.compare_digest(given.encode(), key.encode())
    return found


class Buckets:
    """A token bucket per key: `rate` events a second, bursts of two seconds' worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.burst = rate * 2
        self._state: dict[str, tuple[float, float]] = {}

    def take(self, who: str, count: int) -> float:
        """Take `count` events for `who`: 0 when allowed, else the seconds to wait."""
        now = time.monotonic()
        tokens, then = self._state.get(who, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        need = min(count, self.burst)  # a request larger than a burst passes on a full bucket
        if need > tokens:
            self._state[who] = (tokens, now)
            return (need - tokens) / self.rate
        self._state[who] = (tokens - count, now)
        if len(self._state) > 10_000:  # forget the idlest senders: the table stays small
            self._state = dict(sorted(self._state.items(), key=lambda kv: kv[1][1])[-5_000:])
        return 0.0


# ---- decoding and maintenance in worker processes ----

_VALIDATOR: ingest.Validator | None = None
_MAINTAINERS: dict[str, Maintainer] = {}


def _start_worker() -> None:
    """A decoding process: dies with its parent, the collector (even by kill -9), leaves Ctrl-C
    to the collector."""
    import ctypes
    import signal

    global _VALIDATOR
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PDEATHSIG
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _VALIDATOR = ingest.Validator()


def decode_job(
    path: str, content_type: str, encoding: str, raw: bytes, max_body: int, as_rows: bool
) -> tuple[Any, ...]:
    """Decompress, parse and validate one body (in a worker process): ("ok", count, rows or
    events) or ("bad", status, message)."""
    assert _VALIDATOR is not None
    try:
        body = ingest.inflate(raw, encoding, max_body)
        events = ingest.decode(path, content_type, body, _VALIDATOR)
    except ingest.BadRequest as exc:
        return ("bad", exc.status, str(exc))
    if as_rows:
        now_us = time.time_ns() // 1000
        return ("ok", len(events), [to_row(e, now_us) for e in events])
    return ("ok", len(events), events)


def maintain_job(folder: str, operation: str, *args: Any) -> int:
    """One maintenance operation on a store folder (in a worker process)."""
    maintainer = _MAINTAINERS.get(folder)
    if maintainer is None:
        maintainer = _MAINTAINERS[folder] = Maintainer(Path(folder))
    result: int = getattr(maintainer, operation)(*args)
    return result


def worker_pool(count: int) -> ProcessPoolExecutor:
    """The decoding processes, started now and warmed up. Spawned, not forked: the collector
    has threads, and a spawned worker is the collector's own child, so PDEATHSIG ties it to
    the collector itself (a forkserver in between would outlive a kill -9)."""
    import multiprocessing

    pool = ProcessPoolExecutor(
        count, multiprocessing.get_context("spawn"), initializer=_start_worker
    )
    for done in [pool.submit(time.time) for _ in range(count)]:
        done.result()
    return pool


# ---- the writer thread: group commit ----


class Writer:
    """Stores the events of every request waiting at that moment in one backend write."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.rows = isinstance(backend, EmbeddedStore)  # jobs hold rows (to_row), not events
        self._jobs: queue.Queue[tuple[list[Any], Future[None]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self._thread.start()

    def submit(self, items: list[Any]) -> Future[None]:
        done: Future[None] = Future()
        self._jobs.put((items, done))
        return done

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            jobs = [job]
            size = len(job[0])
            while size < GROUP_EVENTS:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._jobs.put(None)
                    break
                jobs.append(more)
                size += len(more[0])
            items = [item for batch, _ in jobs for item in batch]
            try:
                if isinstance(self.backend, EmbeddedStore):
                    self.backend.write_rows(items)
                else:
                    self.backend.write(items)
            except Exception as exc:  # any failure to store: none of these is acknowledged
                failure = (
                    exc
                    if isinstance(exc, StoreUnavailable)
                    else StoreUnavailable(f"cannot store events ({type(exc).__name__})")
                )
                for _, done in jobs:
                    done.set_exception(failure)
            else:
                for _, done in jobs:
                    done.set_result(None)

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join()


# ---- the maintenance thread ----


class Maintenance:
    """Compaction (embedded store), retention and emptying the trash, in the background: the
    embedded store's run in a worker process, so the event loop never waits for them."""

    def __init__(
        self,
        backend: Backend,
        pool: ProcessPoolExecutor,
        retention_days: int | None,
        log: Callable[[str], None],
    ) -> None:
        self.backend = backend
        self.pool = pool
        self.retention_days = retention_days
        self.log = log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="maintenance", daemon=True)
        self._thread.start()

    def run(self, operation: str, *args: Any) -> int:
        if isinstance(self.backend, EmbeddedStore):
            return self.pool.submit(
                maintain_job, str(self.backend.folder), operation, *args
            ).result()
        result: int = getattr(self.backend, operation)(*args)
        return result

    def _run(self) -> None:
        last_expiry = last_trash = 0.0
        while not self._stop.wait(1.0):
            try:
                if isinstance(self.backend, EmbeddedStore):
                    self.run("compact")
                    if time.monotonic() - last_trash > 60:
                        last_trash = time.monotonic()
                        self.run("empty_trash")
                if self.retention_days is not None and time.monotonic() - last_expiry > 3600:
                    last_expiry = time.monotonic()
                    gone = self.run("expire", self.retention_days)
                    if gone:
                        self.log(
                            f"retention: deleted {gone} events older than "
                            f"{self.retention_days} days"
                        )
            except Exception as exc:  # a full disk, say: the events stay pending, tried again
                self.log(f"maintenance postponed ({type(exc).__name__}: {str(exc)[:120]})")

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


# ---- the HTTP side ----


class RefusalLog:
    """One line per refused request, at most `most` a minute (a flood of bad requests does not
    fill the operator's disk); the rest counted."""

    def __init__(self, most: int = 30) -> None:
        self.most = most
        self.window = 0.0
        self.count = 0
        self.dropped = 0

    def __call__(self, line: str) -> None:
        now = time.monotonic()
        if now - self.window > 60:
            if self.dropped:
                warn(f"collect: {self.dropped} more requests refused in the last minute")
            self.window, self.count, self.dropped = now, 0, 0
        if self.count < self.most:
            self.count += 1
            warn(f"collect: {line}")
        else:
            self.dropped += 1


class Collector:
    """The ASGI application's state and handlers."""

    def __init__(
        self,
        backend: Backend,
        options: Options,
        pool: ProcessPoolExecutor,
        maintenance: Maintenance,
    ) -> None:
        self.options = options
        self.backend = backend
        self.pool = pool
        self.maintenance = maintenance
        self.validator = ingest.Validator()
        self.buckets = Buckets(options.rate)
        self.writer = Writer(backend)
        self.slots = asyncio.Semaphore(WORKERS)
        self.buffered = 0
        self.refusals = RefusalLog()

    def who(self, request: Any) -> str:
        """The key a request presents (checked), or its address when no keys are configured;
        Refused(401) for a wrong or missing key."""
        if not self.options.keys:
            client = request.client
            return client.host if client else "?"
        given = presented_key(request.headers.get("authorization", ""))
        if not key_matches(given, self.options.keys):
            raise Refused(401, "missing or wrong key")
        return f"key:{given}"

    async def body(self, request: Any) -> bytes:
        """The raw body: at most max_body bytes, within BODY_SECONDS, and only while all the
        bodies read and not yet decoded fit in BUFFER_BUDGET (else 503: try again shortly).
        The caller gives its share back (`release`) once the body is decoded."""
        limit = self.options.max_body
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            raise Refused(413 if length.isdigit() else 400, f"body over {limit} bytes")
        chunks: list[bytes] = []
        held = 0  # bytes of this body counted in self.buffered
        try:
            async with asyncio.timeout(BODY_SECONDS):
                async for chunk in request.stream():
                    if held + len(chunk) > limit:
                        raise Refused(413, f"body over {limit} bytes")
                    if self.buffered + len(chunk) > BUFFER_BUDGET:
                        raise Refused(503, "collector busy", retry_after=1)
                    self.buffered += len(chunk)
                    held += len(chunk)
                    chunks.append(chunk)
        except BaseException as exc:
            self.buffered -= held
            if isinstance(exc, TimeoutError):
                raise Refused(408, f"body not received within {BODY_SECONDS:g} s") from None
            raise
        return b"".join(chunks)

    def release(self, raw: bytes) -> None:
        self.buffered -= len(raw)

    async def ingest(self, request: Any) -> Any:
        from starlette.responses import Response

        path = request.url.path
        who = self.who(request)
        content_type = request.headers.get("content-type", "")
        encoding = request.headers.get("content-encoding", "")
        raw = await self.body(request)  # outside the slots: a slow sender holds none of them
        async with self.slots:
            loop = asyncio.get_running_loop()
            try:
                outcome = await loop.run_in_executor(
                    self.pool,
                    decode_job,
                    path,
                    content_type,
                    encoding,
                    raw,
                    self.options.max_body,
                    self.writer.rows,
                )
            finally:
                self.release(raw)
                del raw
            if outcome[0] == "bad":
                raise Refused(outcome[1], outcome[2])
            _, count, items = outcome
            wait = self.buckets.take(who, count)
            if wait:
                raise Refused(429, "over this key's rate", retry_after=wait)
            if items:
                try:
                    await asyncio.wrap_future(self.writer.submit(items))
                except StoreUnavailable as exc:
                    raise Refused(503, str(exc), retry_after=5) from None
        if path == ingest.OTLP_PATH:
            if content_type.partition(";")[0].strip().lower() in ingest.PROTOBUF_TYPES:
                return Response(b"", media_type="application/x-protobuf")
            return Response(b"{}", media_type="application/json")
        return _json(200, {"success": True, "events": count})

    async def erase(self, request: Any) -> Any:
        if request.method == "GET":  # how `opt-out --erase` knows this is our collector
            return _json(200, {"collector": "send_metrics", "erase": "POST {anonymous_id}"})
        self.who(request)
        raw = await self.body(request)
        try:
            doc = ingest.parse_json(raw)
        except ingest.BadRequest as exc:
            raise Refused(400, str(exc)) from None
        finally:
            self.release(raw)
        anonymous_id = doc.get("anonymous_id") if type(doc) is dict else None
        pattern = self.validator.schemas[max(self.validator.versions)]["properties"]
        check = ingest.compile_schema(pattern["anonymous_id"])
        if type(doc) is not dict or set(doc) != {"anonymous_id"} or check(anonymous_id):
            raise Refused(400, 'the body must be {"anonymous_id": "<uuid>"} and nothing else')
        try:
            erased = await asyncio.to_thread(self.maintenance.run, "erase", anonymous_id)
        except Exception as exc:
            raise Refused(503, f"cannot erase now ({type(exc).__name__})", retry_after=5) from None
        return _json(200, {"erased": erased})

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.routing import Route

        async def guarded(request: Any) -> Any:
            handler = self.erase if request.url.path == ERASE_PATH else self.ingest
            try:
                return await handler(request)
            except Refused as exc:
                where = request.client.host if request.client else "?"
                self.refusals(f"{exc.status} {request.url.path} from {where}: {exc}")
                headers = {}
                if exc.retry_after is not None:
                    headers["Retry-After"] = str(max(1, round(exc.retry_after + 0.5)))
                if exc.status == 401:
                    headers["WWW-Authenticate"] = 'Basic realm="send_metrics", Bearer'
                if exc.status in (401, 408, 413):
                    headers["Connection"] = "close"  # the rest of the body is never read
                return _json(exc.status, {"code": exc.status, "message": str(exc)}, headers)
            except Exception as exc:  # a bug of ours: answered, logged without request data
                self.refusals(f"500 {request.url.path}: internal error ({type(exc).__name__})")
                return _json(500, {"code": 500, "message": "internal error"})

        routes = [Route(p, guarded, methods=["POST"]) for p in INGEST_PATHS]
        routes.append(Route(ERASE_PATH, guarded, methods=["GET", "POST"]))
        return Starlette(routes=routes)

    def close(self) -> None:
        self.writer.close()


def header_deadline_protocol() -> type[Any]:
    """uvicorn's HTTP protocol with a deadline on request headers: a connection whose next
    request's headers are not complete HEADER_SECONDS after it opened (or after the previous
    answer) is closed. uvicorn bounds neither, so keyless connections trickling header lines
    would hold every connection slot (limit_concurrency) for ever."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HeaderDeadline(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(HEADER_SECONDS, self._late)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _late(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.timeout_keep_alive_task is not None:  # idle now, not a pipelined request
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderDeadline


def _json(status: int, doc: Any, headers: dict[str, str] | None = None) -> Any:
    from starlette.responses import Response

    return Response(json.dumps(doc), status, headers, media_type="application/json")


def open_backend(options: Options) -> Backend:
    """The embedded store in --data, or ClickHouse with --clickhouse."""
    if options.clickhouse:
        from send_metrics.operator import clickhouse  # type: ignore[attr-defined, unused-ignore]

        backend: Backend = clickhouse.ClickHouseBackend(options.clickhouse)
        return backend
    return EmbeddedStore(options.data, options.retention_days)


def serve(options: Options, announce: Callable[[str], None]) -> None:
    """Run the collector until SIGINT or SIGTERM; everything acknowledged is stored by then."""
    import os
    import signal
    import stat

    import uvicorn

    os.umask(0o077)  # the store's files (SQLite's -wal and -shm too), workers' too: 0600
    if not options.clickhouse and options.data.is_dir():
        mode = options.data.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            warn(
                f"collect: {options.data} is open to other users (mode {stat.filemode(mode)});"
                f" its files are not: chmod 700 {options.data} hides their names too"
            )
    pool = worker_pool(DECODERS)
    try:
        backend = open_backend(options)
    except BaseException:
        pool.shutdown(cancel_futures=True)
        raise
    refusals = RefusalLog()
    maintenance = Maintenance(backend, pool, options.retention_days, refusals)
    collector = Collector(backend, options, pool, maintenance)
    collector.refusals = refusals
    config = uvicorn.Config(
        collector.app(),
        host=options.host,
        port=options.port,
        log_level="warning",
        access_log=False,  # a request line is no one's business but the operator's proxy's
        lifespan="off",
        http=header_deadline_protocol(),
        limit_concurrency=256,  # connections beyond: 503 at once
        timeout_keep_alive=5,
        server_header=False,
    )
    server = uvicorn.Server(config)
    where = (options.clickhouse and "ClickHouse") or str(options.data)
    announce(
        f"send_metrics collect: listening on http://{options.host}:{options.port}, "
        f"storing in {where}"
    )
    if options.keys:
        announce(f"Accepting requests that present one of {len(options.keys)} keys.")
    else:
        announce(
            "No --write-key given: accepting events from ANY sender that can reach this port,"
            f" and erasures ({ERASE_PATH}) too."
        )
    # uvicorn stops gracefully on SIGTERM, then raises it again: with the default handler the
    # process would die there, before the cleanup below (the workers' semaphores leaked)
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
        with contextlib.suppress(Exception):
            maintenance.close()
            collector.close()
        backend.close()
        pool.shutdown(cancel_futures=True)
