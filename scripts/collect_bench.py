"""Ingestion benchmark of `send_metrics collect`: Segment batches of 100 realistic events over
HTTP on loopback, from several client threads, for a fixed time; prints the events acknowledged
per second, request latencies, the collector's peak resident memory, and then checks (after a
kill -9 of the collector) that every acknowledged event is in the store exactly once.

    python scripts/collect_bench.py [--seconds 20] [--clients 4] [--batch 100]

Everything runs in a temporary folder; the collector is a real process (the installed console
script), the clients are plain http.client connections (keep-alive), bodies are made before the
clock starts (only their message ids change per request). The clients share the machine's
cores with the collector, so the figure is a floor for a collector with a machine of its own.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from send_metrics.delivery import sinks
from tests.operator_events import events

KEY = "bench-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree(pid: int) -> list[psutil.Process]:
    """The collector and its worker processes."""
    main = psutil.Process(pid)
    return [main, *main.children(recursive=True)]


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time used by the collector's main process, and by its whole tree."""
    times = [p.cpu_times() for p in tree(pid)]
    return times[0].user + times[0].system, sum(t.user + t.system for t in times)


def rss_kib(pid: int) -> int:
    """Memory of the collector and its workers together: the sum of their proportional set
    sizes (pages shared after fork counted once, not once per process as RSS would)."""
    return sum(p.memory_full_info().pss for p in tree(pid)) // 1024


class Batches:
    """Segment batch bodies of `size` events; each call gives fresh message ids."""

    def __init__(self, size: int) -> None:
        self.parts = []
        for event in events(size, seed=11, people=200, days=0.05):  # as they arrive: recent
            message = json.dumps(sinks.segment_message(event)).encode()
            self.parts.append(message.split(event["message_id"].encode()))

    def next(self) -> tuple[bytes, int]:
        ids = [str(uuid.uuid4()).encode() for _ in self.parts]
        items = [mid.join(part) for mid, part in zip(ids, self.parts, strict=True)]
        return b'{"batch":[' + b",".join(items) + b'],"sentAt":"2026-12-04T00:00:00Z"}', len(items)


def client(
    port: int, size: int, until: float, result: dict[str, list[float]], lock: threading.Lock
) -> None:
    batches = Batches(size)
    auth = "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
    headers = {"Content-Type": "application/json", "Authorization": auth}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    acked = 0
    latencies: list[float] = []
    refused: list[float] = []
    while time.monotonic() < until:
        body, count = batches.next()
        started = time.monotonic()
        conn.request("POST", "/v1/batch", body, headers)
        answer = conn.getresponse()
        answer.read()
        latencies.append(time.monotonic() - started)
        if answer.status == 200:
            acked += count
        else:
            refused.append(answer.status)
    conn.close()
    with lock:
        result["acked"].append(acked)
        result["latency"].extend(latencies)
        result["refused"].extend(refused)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    random.seed(1)
    folder = Path(tempfile.mkdtemp(prefix="collect-bench-"))
    port = free_port()
    data = folder / "data"
    exe = Path(sys.executable).parent / "send_metrics"
    server = subprocess.Popen(
        [str(exe), "collect", "--port", str(port), "--data", str(data), "--write-key", KEY,
         "--rate", "1000000"],
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "collect.log", "wb"),  # noqa: SIM115 - the child's own file
    )  # fmt: skip
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    result: dict[str, list[float]] = {"acked": [], "latency": [], "refused": []}
    lock = threading.Lock()
    cpu_before = cpu_seconds(server.pid)
    ours_before = sum(os.times()[:2])
    started = time.monotonic()
    until = started + args.seconds
    threads = [
        threading.Thread(target=client, args=(port, args.batch, until, result, lock))
        for _ in range(args.clients)
    ]
    for thread in threads:
        thread.start()
    peak = 0
    samples = []
    while any(t.is_alive() for t in threads):
        kib = rss_kib(server.pid)
        samples.append(kib)
        peak = max(peak, kib)
        time.sleep(0.25)
    elapsed = time.monotonic() - started
    cpu_after = cpu_seconds(server.pid)
    main_cpu, cpu = cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1]
    client_cpu = sum(os.times()[:2]) - ours_before
    acked = int(sum(result["acked"]))
    server.send_signal(signal.SIGKILL)  # no clean shutdown: what was acknowledged must be there
    server.wait()
    from send_metrics.operator.store import open_for_report

    con = open_for_report(data)
    stored, distinct = con.execute(
        "SELECT count(*), count(DISTINCT message_id) FROM events"
    ).fetchone() or (0, 0)
    latency = sorted(result["latency"])
    size = sum(f.stat().st_size for f in data.rglob("*") if f.is_file())
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end")
    print(
        f"clients: {args.clients} threads, Segment /v1/batch of {args.batch} events, "
        f"{elapsed:.1f} s"
    )
    print(f"acknowledged: {acked} events, {acked / elapsed:,.0f} events/s sustained")
    print(
        f"request latency: p50 {statistics.median(latency) * 1000:.1f} ms, "
        f"p99 {latency[int(len(latency) * 0.99) - 1] * 1000:.1f} ms, {len(latency)} requests"
    )
    print(
        f"CPU: collector {cpu:.1f} s (main process {main_cpu:.1f} s; "
        f"{cpu / max(acked, 1) * 1e6:.0f} µs an event, so "
        f"{max(acked, 1) / max(cpu, 1e-9):,.0f} events per CPU-second), clients {client_cpu:.1f} s"
    )
    print(f"refused requests: {len(result['refused'])} {sorted(set(result['refused']))}")
    print(
        f"collector memory (PSS of main and workers): peak {peak / 1024:.0f} MiB, "
        f"last {samples[-1] / 1024:.0f} MiB"
    )
    print(
        f"store after kill -9: {stored} events, {distinct} distinct, {size / 2**20:.0f} MiB on disk"
    )
    ok = stored == distinct == acked
    print("every acknowledged event stored exactly once: " + ("yes" if ok else "NO"))
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
