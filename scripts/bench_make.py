#!/usr/bin/env python3
"""Benchmark: what tracing make costs, per recipe line and per make run.

Scenarios, each against bare make, run alternately (A B A B ...) after a warm-up, in a temporary
HOME (opted in) with the send_metrics next to this Python; nothing is asserted:

- lines: a Makefile of 1,000 targets with one trivial recipe line each (`@true`); bare, with the
  include line but no yes (untraced), and traced (the include under a yes). Per-line overhead
  is (traced - bare) / 1,000; the ratio is traced / bare.
- goal: one target with one trivial line: the time the include adds to the make the developer
  waits for (the event is recorded by a watcher after make exits, off that path), and how long
  after make's exit the event is in the history.
- wrap: `send_metrics wrap` of the same one-line target (the Makefile pattern), traced.

    python scripts/bench_make.py [--pairs 5] [--json] [--shell /bin/bash] [--snippet OLD.mk]

`--shell` puts `SHELL := ...` in every Makefile (the shim then runs in that shell); `--snippet`
measures another send_metrics.mk (e.g. `git show main:send_metrics/send_metrics.mk`) with the
same send_metrics, so two versions compare in one session.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SNIPPET = ROOT / "send_metrics" / "send_metrics.mk"
BIN = Path(sys.executable).parent
LINES = 1000


CPU: dict[str, list[float]] = {}  # argv and folder -> CPU ms of make and what it waited for


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Wall ms of one run; its CPU ms (make and every process it waited for, which excludes
    the detached watcher) go to CPU, a figure less at the mercy of other load on the machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, check=True)
    wall = (time.perf_counter() - start) * 1000.0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000.0
    CPU.setdefault(f"{argv} {cwd.name}", []).append(cpu)
    return wall


def _cpu(argv: list[str], cwd: Path) -> float:
    return statistics.median(CPU[f"{argv} {cwd.name}"])


def _events(home: Path) -> int:
    db = home / ".local/share/send_metrics/metrics.sqlite3"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as conn:
            count: int = conn.execute("SELECT COUNT(*) FROM history").fetchone()[0]
    except sqlite3.Error:  # being created by the first watcher
        return 0
    return count


def _wait_recorded(home: Path, before: int) -> float:
    """Milliseconds until the watcher has recorded one more event (bounded: 30 s)."""
    start = time.perf_counter()
    while _events(home) <= before and time.perf_counter() - start < 30:
        time.sleep(0.002)
    return (time.perf_counter() - start) * 1000.0


def _pairs(
    bare: tuple[list[str], Path],
    other: tuple[list[str], Path],
    env: dict[str, str],
    pairs: int,
    home: Path,
    other_env: dict[str, str] | None = None,
) -> tuple[list[float], list[float], list[float]]:
    """Alternate bare and other (argv, folder); after each `other`, the time until its event
    is recorded (none is waited for under `other_env`). The first pair warms the caches."""
    bare_ms, other_ms, lag_ms = [], [], []
    for i in range(pairs + 1):
        b = _run(bare[0], bare[1], env)
        before = _events(home)
        o = _run(other[0], other[1], other_env or env)
        lag = _wait_recorded(home, before) if other_env is None else 0.0
        if i:
            bare_ms.append(b)
            other_ms.append(o)
            lag_ms.append(lag)
    return bare_ms, other_ms, lag_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--shell", help="SHELL for every Makefile (default: make's /bin/sh)")
    parser.add_argument("--snippet", type=Path, default=SNIPPET, help="the send_metrics.mk to use")
    args = parser.parse_args()
    if not shutil.which("make"):
        sys.exit("make is needed")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        home = base / "home"
        home.mkdir()
        env = {
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(home),
            "LANG": "C.UTF-8",
        }
        subprocess.run(
            ["send_metrics", "opt-in", "--yes"], env=env, check=True, cwd=base, capture_output=True
        )
        rules = "".join(f"t{i}:\n\t@true\n" for i in range(LINES))
        many = "all: " + " ".join(f"t{i}" for i in range(LINES)) + "\n" + rules
        one = "one:\n\t@true\nimpl-one:\n\t@true\n"
        folders = {}
        for name, body, include in (
            ("bare", many, False),
            ("traced", many, True),
            ("bare-one", one, False),
            ("traced-one", one, True),
        ):
            folder = base / name
            folder.mkdir()
            text = (f"SHELL := {args.shell}\n" if args.shell else "") + body
            text += f"-include {args.snippet.resolve()}\n" if include else ""
            (folder / "Makefile").write_text(text)
            folders[name] = folder
        rows: dict[str, dict[str, object]] = {}
        make = ["make", "-s"]
        bare, traced, lag = _pairs(
            (make, folders["bare"]), (make, folders["traced"]), env, args.pairs, home
        )
        undecided = {**env, "HOME": str(base / "nobody")}
        _bare, untraced, _lag = _pairs(
            (make, folders["bare"]), (make, folders["traced"]), env, args.pairs, home, undecided
        )
        bare_med, traced_med = statistics.median(bare), statistics.median(traced)
        bare_cpu, traced_cpu = _cpu(make, folders["bare"]), _cpu(make, folders["traced"])
        rows["lines"] = {
            "recipe_lines": LINES,
            "bare_ms": round(bare_med, 1),
            "untraced_ms": round(statistics.median(untraced), 1),
            "traced_ms": round(traced_med, 1),
            "per_line_ms": round((traced_med - bare_med) / LINES, 3),
            "ratio": round(traced_med / bare_med, 2),
            "bare_cpu_ms": round(bare_cpu, 1),
            "traced_cpu_ms": round(traced_cpu, 1),
            "per_line_cpu_ms": round((traced_cpu - bare_cpu) / LINES, 3),
            "recorded_after_exit_ms": round(statistics.median(lag), 1),
        }
        bare_one, traced_one, lag_one = _pairs(
            (make, folders["bare-one"]), (make, folders["traced-one"]), env, args.pairs * 4, home
        )
        impl_ms, wrap_ms, _lag = _pairs(
            (["make", "-s", "impl-one"], folders["bare-one"]),
            (["send_metrics", "wrap", "one"], folders["bare-one"]),
            env,
            args.pairs * 4,
            home,
        )
        rows["goal"] = {
            "bare_ms": round(statistics.median(bare_one), 1),
            "traced_ms": round(statistics.median(traced_one), 1),
            "added_ms": round(statistics.median(traced_one) - statistics.median(bare_one), 1),
            "recorded_after_exit_ms": round(statistics.median(lag_one), 1),
            "wrap_bare_ms": round(statistics.median(impl_ms), 1),
            "wrap_ms": round(statistics.median(wrap_ms), 1),
            "wrap_added_ms": round(statistics.median(wrap_ms) - statistics.median(impl_ms), 1),
        }
        rows["setup"] = {"shell": args.shell or "/bin/sh", "snippet": str(args.snippet)}
        rows["machine"] = {
            "cpus": os.cpu_count(),
            "make": subprocess.run(
                ["make", "--version"], capture_output=True, text=True, check=False
            ).stdout.splitlines()[0],
            "python": sys.version.split()[0],
        }
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    lines, goal = rows["lines"], rows["goal"]
    print(f"{args.snippet} under SHELL={args.shell or '/bin/sh'}")
    print(f"{LINES} trivial recipe lines ({args.pairs} runs each, medians):")
    print(f"  bare make                 {lines['bare_ms']:>8} ms")
    print(f"  include, no yes (untraced){lines['untraced_ms']:>8} ms")
    print(f"  include, traced           {lines['traced_ms']:>8} ms")
    print(f"  per recipe line           {lines['per_line_ms']:>8} ms   ratio {lines['ratio']}x")
    print(
        f"  CPU: bare {lines['bare_cpu_ms']} ms, traced {lines['traced_cpu_ms']} ms, "
        f"{lines['per_line_cpu_ms']} ms per line"
    )
    print(f"  event recorded after exit {lines['recorded_after_exit_ms']:>8} ms (background)")
    print("one trivial target:")
    print(f"  bare make                 {goal['bare_ms']:>8} ms")
    print(f"  include, traced           {goal['traced_ms']:>8} ms   added {goal['added_ms']} ms")
    print(f"  event recorded after exit {goal['recorded_after_exit_ms']:>8} ms (background)")
    print(f"  make impl-one             {goal['wrap_bare_ms']:>8} ms")
    print(f"  send_metrics wrap one     {goal['wrap_ms']:>8} ms   added {goal['wrap_added_ms']} ms")


if __name__ == "__main__":
    main()
