"""`send_metrics collect` as a real process on loopback, for the operator's tests."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers import SEND_METRICS

KEY = "collector-test-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Running:
    """A collector process: its URL, data folder, and what it printed."""

    data: Path
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    keys: tuple[str, ...] = ()
    extra: tuple[str, ...] = field(default=())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def post(
        self,
        path: str,
        body: bytes,
        headers: dict[str, str] | None = None,
        key: str | None = KEY,
        scheme: str = "Bearer",
        timeout: float = 60,
    ) -> Answer:
        """One request on a fresh connection; `key` presented as Bearer or Segment's Basic."""
        sent = {"Content-Type": "application/json", **(headers or {})}
        if key is not None:
            if scheme == "Basic":
                sent["Authorization"] = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
            else:
                sent["Authorization"] = f"Bearer {key}"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("POST", path, body, sent)
            answer = conn.getresponse()
            return Answer(
                answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
            )
        finally:
            conn.close()

    def get(self, path: str) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path)
            answer = conn.getresponse()
            return Answer(
                answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
            )
        finally:
            conn.close()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it, then wait until its workers are gone too (they die with it)."""
        import psutil

        workers = children(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        _gone, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, f"workers outlived the collector: {alive}"


def children(pid: int) -> list[Any]:
    """The collector's worker processes (and the forkserver that starts them)."""
    import psutil

    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


def start(
    data: Path, keys: tuple[str, ...] = (KEY,), *extra: str, port: int | None = None
) -> Running:
    """Start a collector on a free loopback port; return once it accepts connections."""
    port = port or free_port()
    log = data.parent / f"collect-{port}.log"
    args = [SEND_METRICS, "collect", "--port", str(port), "--data", str(data)]
    for key in keys:
        args += ["--write-key", key]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*args, *extra], stdout=out, stderr=subprocess.STDOUT, env={**os.environ}
        )
    running = Running(data, port, proc, log, keys, extra)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"collect exited {proc.returncode}: {running.output()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return running
        except OSError:
            time.sleep(0.05)
    running.stop(signal.SIGKILL)
    raise AssertionError(f"collect did not listen in time: {running.output()}")


def _rows(data: Path, query: str) -> list[dict[str, Any]]:
    from send_metrics.operator.store import open_for_report

    con = open_for_report(data)
    try:
        cursor = con.execute(query)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        con.close()


def stored(data: Path) -> list[dict[str, Any]]:
    """Every stored event (all fields) as dicts, read as `report` reads them."""
    return _rows(data, "SELECT * FROM events_all ORDER BY message_id")


def stored_targets(data: Path) -> list[dict[str, Any]]:
    return _rows(data, "SELECT * FROM targets_all ORDER BY message_id, name")


def segment_batch(events: list[dict[str, Any]]) -> bytes:
    from send_metrics.delivery import sinks

    return json.dumps({"batch": [sinks.segment_message(e) for e in events]}).encode()
