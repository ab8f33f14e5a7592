#!/usr/bin/env python3
"""Soak: thousands of wrapped make targets under make -j16 against a loopback server that fails
30 % of requests, with `flush` and `stats` running alongside and wrappers killed with -9 at
random moments. Prints what was run, what was injected and what was lost (it should be 0).

    python scripts/soak.py --runs 5000
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import ClassVar

MAKEFILE = """\
dev.%: ; +@send_metrics wrap --make='$(MAKE)' -f '$(firstword $(MAKEFILE_LIST))' $@
impl-dev.%: ; @exit $$(( $(subst t,,$*) % 7 == 0 ))
"""


class Collector(http.server.BaseHTTPRequestHandler):
    """Segment-compatible; fails `fail_rate` of requests with a 500."""

    protocol_version = "HTTP/1.1"
    fail_rate = 0.3
    lock = threading.Lock()
    accepted: ClassVar[Counter] = Counter()
    failures = 0

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        fail = random.random() < Collector.fail_rate
        with Collector.lock:
            if fail:
                Collector.failures += 1
            else:
                for message in body.get("batch", [body]):
                    Collector.accepted[message["messageId"]] += 1
        reply = b'{"success":true}'
        self.send_response(500 if fail else 200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="wrapped make targets to run")
    parser.add_argument("--jobs", type=int, default=16, help="make -j")
    parser.add_argument("--kills", type=int, default=50, help="extra wrappers killed with -9")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    random.seed(args.seed)
    exe = shutil.which("send_metrics")
    if not exe:
        sys.exit("soak: send_metrics is not on PATH (pip install -e . first)")

    root = Path(tempfile.mkdtemp(prefix="send_metrics-soak-"))
    home, work = root / "home", root / "work"
    work.mkdir(parents=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SEND_METRICS", "MAKE", "OTEL_")) and k not in ("CI", "MFLAGS")
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local/share"),
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    (work / "send_metrics.toml").write_text(
        f'[report]\nsink = "segment"\nendpoint = "http://127.0.0.1:{server.server_address[1]}"\n'
        'write_key = "soak"\nqueue_max_events = 1000000\n'
    )
    (work / "Makefile").write_text(MAKEFILE)
    subprocess.run([exe, "opt-in", "--yes"], env=env, cwd=work, check=True, capture_output=True)

    stop = threading.Event()
    tracebacks = 0
    side_runs = 0
    notes: Counter = Counter()  # our one-line messages, by text without numbers

    def note(stderr: str) -> int:
        """Count our messages; the number of tracebacks (each one is printed in full)."""
        for line in stderr.splitlines():
            if line.startswith("send_metrics: "):
                notes["".join("#" if c.isdigit() else c for c in line)[:160]] += 1
        if "Traceback" in stderr:
            print(stderr, file=sys.stderr)
            return 1
        return 0

    def alongside() -> None:
        nonlocal tracebacks, side_runs
        while not stop.is_set():
            for verb in (["flush", "--timeout", "5"], ["stats"]):
                done = subprocess.run(
                    [exe, *verb], env=env, cwd=work, capture_output=True, text=True
                )
                side_runs += 1
                tracebacks += note(done.stderr)

    def killer() -> None:
        for _ in range(args.kills):
            if stop.is_set():
                return
            proc = subprocess.Popen(
                [exe, "run", "--", "sleep", "0.05"],
                env=env,
                cwd=work,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(random.uniform(0.0, 0.15))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            time.sleep(random.uniform(0.0, 0.5))

    helpers = [threading.Thread(target=alongside), threading.Thread(target=killer)]
    for helper in helpers:
        helper.start()
    started = time.monotonic()
    targets = [f"dev.t{i}" for i in range(args.runs)]
    wrong_status = 0
    for start in range(0, args.runs, args.jobs):
        batch = targets[start : start + args.jobs]
        done = subprocess.run(
            ["make", "-k", f"-j{args.jobs}", *batch],
            env=env,
            cwd=work,
            capture_output=True,
            text=True,
        )
        expected_fail = any(int(t[5:]) % 7 == 0 for t in batch)
        wrong_status += (done.returncode != 0) != expected_fail
        tracebacks += note(done.stderr)
    stop.set()
    for helper in helpers:
        helper.join()
    elapsed = time.monotonic() - started
    # Leases of killed wrappers run out, then the server is healthy and one flush empties all.
    time.sleep(5)
    Collector.fail_rate = 0.0
    subprocess.run([exe, "flush", "--timeout", "120"], env=env, cwd=work, capture_output=True)

    db = sqlite3.connect(home / ".local/share/send_metrics/metrics.sqlite3")
    recorded = [json.loads(r[0]) for r in db.execute("SELECT event FROM history")]
    left = {r[0] for r in db.execute("SELECT message_id FROM queue")}
    integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    db.close()
    make_events = [e for e in recorded if e["command"].startswith("dev.t")]
    ids = {e["message_id"] for e in recorded}
    delivered = set(Collector.accepted)
    lost = ids - delivered - left
    duplicates = sum(n - 1 for n in Collector.accepted.values())
    summary = {
        "make runs": args.runs,
        "make runs recorded": len(make_events),
        "wrappers killed with -9": args.kills,
        "flush/stats runs alongside": side_runs,
        "HTTP 500s injected": Collector.failures,
        "events recorded": len(recorded),
        "events delivered": len(delivered & ids),
        "duplicate deliveries (receivers drop by message_id)": duplicates,
        "still queued": len(left),
        "events lost": len(lost),
        "wrong exit statuses": wrong_status,
        "tracebacks": tracebacks,
        "sqlite integrity_check": integrity,
        "seconds": round(elapsed, 1),
    }
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        print(f"{key:<{width}}  {value}")
    for text, count in notes.most_common(10):
        print(f"  {count:5d} x {text}")
    shutil.rmtree(root, ignore_errors=True)
    ok = (
        not lost
        and len(make_events) == args.runs
        and not wrong_status
        and not tracebacks
        and integrity == "ok"
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
