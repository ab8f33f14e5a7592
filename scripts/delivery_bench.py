#!/usr/bin/env python3
"""Delivery figures for the README: what proxy resolution costs to import, and what a run costs
while the endpoint is backed off (an offline laptop) against a run with the local sink.

    python scripts/delivery_bench.py [--runs 15]

1. Start-up: `python -c pass` against the same interpreter importing each way of resolving
   proxies (requests; urllib.request's getproxies/proxy_bypass; our own resolver and client,
   `send_metrics.lean.urls` and `delivery.transport`), and what a send imports besides
   (http.client for comparison, _socket, ssl). Alternated, medians.
2. Offline: in a temporary HOME, 20 runs of `send_metrics run -- true` against an endpoint that
   accepts connections and never answers (deadline 1 s): the first pays the deadline, the rest
   only queue. Their added time is compared with `send_metrics run -- true` on the local sink.
Nothing is asserted; ratios and differences are printed.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
IMPORTS = {
    "requests": "import requests",
    "urllib.request getproxies + proxy_bypass": (
        "import urllib.request as u; u.proxy_bypass('api.segment.io', u.getproxies())"
    ),
    "own resolver and client (send_metrics.delivery.transport)": (
        "from send_metrics.delivery import transport; transport.proxy_for('https://api.segment.io')"
    ),
    "http.client (what a client on it would add)": "import http.client",
    "_socket (what our client adds for http://)": "import _socket",
    "ssl (https sends only)": "import ssl",
}


def _wall(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, check=False, capture_output=True)
    return (time.perf_counter() - started) * 1000


def import_costs(runs: int) -> None:
    base = [sys.executable, "-c", "pass"]
    floor = statistics.median(_wall(base) for _ in range(runs))
    print(f"Start-up cost over `python -c pass` ({floor:.1f} ms; median of {runs}, alternated):")
    own = _imported("pass")
    for name, code in IMPORTS.items():
        added = []
        for _ in range(runs + 2):
            bare = _wall(base)
            added.append(_wall([sys.executable, "-c", code]) - bare)
        median = statistics.median(added[2:])
        modules = {m: t for m, t in _imported(code).items() if m not in own}
        fastest = min(sum(_imported(code, only=modules).values()) for _ in range(5))
        print(
            f"  {name:45s} +{median:6.1f} ms wall ({median / floor:.2f} x python -c pass); "
            f"{len(modules)} modules, {fastest:.1f} ms of imports (fastest of 5)"
        )


def _imported(code: str, only: dict[str, float] | None = None) -> dict[str, float]:
    """Module -> its own import time in ms, from -X importtime."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True
    )
    found = {}
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            self_us, _cumulative, name = line[len("import time:") :].split("|")
            module = name.strip()
            if only is None or module in only:
                found[module] = int(self_us) / 1000
    return found


def offline(runs: int) -> None:
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)  # the kernel accepts; nobody answers
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        env = {
            **os.environ,
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_DATA_HOME": str(home / "data"),
        }
        for var in ("SEND_METRICS_ENDPOINT", "DO_NOT_TRACK", "SEND_METRICS_DISABLED"):
            env.pop(var, None)
        local, hole_dir = home / "local", home / "hole"
        local.mkdir()
        hole_dir.mkdir()
        (local / "send_metrics.toml").write_text('app = "bench-local"\n')
        (hole_dir / "send_metrics.toml").write_text(
            'app = "bench-hole"\n[report]\nsink = "segment"\nwrite_key = "k"\n'
            f'endpoint = "http://127.0.0.1:{hole.getsockname()[1]}"\ndeadline = 1.0\n'
        )
        sm = str(BIN / "send_metrics")
        for folder in (local, hole_dir):
            subprocess.run([sm, "opt-in", "--yes"], env=env, cwd=folder, capture_output=True)
        run = [sm, "run", "--", "true"]
        bare = [_wall(["true"]) for _ in range(5)]
        first = _wall(run, env, hole_dir)
        pairs = []
        for _ in range(max(runs, 19)):
            pairs.append((_wall(run, env, local), _wall(run, env, hole_dir)))
        locals_, holes = zip(*pairs, strict=True)
        diffs = [h - loc for loc, h in pairs]
        print(f"Offline (black hole, deadline 1 s), {len(pairs)} runs after the first:")
        print(f"  bare `true`                     {statistics.median(bare):7.1f} ms")
        print(f"  first run (pays the deadline)   {first:7.1f} ms")
        print(f"  later runs, backed off, median  {statistics.median(holes):7.1f} ms")
        print(f"  local sink run, median          {statistics.median(locals_):7.1f} ms")
        print(
            f"  backed off minus local: median {statistics.median(diffs):+.1f} ms, "
            f"max {max(diffs):+.1f} ms"
        )
    hole.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    import_costs(args.runs)
    offline(args.runs)


if __name__ == "__main__":
    main()
