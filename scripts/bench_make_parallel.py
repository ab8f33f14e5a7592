#!/usr/bin/env python3
"""Benchmark: what tracing costs per recipe line under `make -j2`, for two snippets.

1,000 targets of one trivial line (`@true`), bare and with each snippet, run in turn three times
in a temporary HOME (opted in); prints the median wall time and CPU (make, its shells and the
watcher) of each. Nothing is asserted.

    python scripts/bench_make_parallel.py OLD.mk send_metrics/send_metrics.mk
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    snippets = {"old": sys.argv[1], "new": sys.argv[2]}
    home = Path(tempfile.mkdtemp())
    env = {**os.environ, "HOME": str(home)}
    subprocess.run(["send_metrics", "opt-in", "--yes"], env=env, capture_output=True, check=True)
    names = [f"t{i}" for i in range(1000)]
    body = "all: " + " ".join(names) + "\n" + "".join(f"{n}:\n\t@true\n" for n in names)
    folders = {}
    for name, snippet in {"bare": None, **snippets}.items():
        folder = home / name
        folder.mkdir()
        folders[name] = folder
        text = body
        if snippet:
            shutil.copy(snippet, folder / "send_metrics.mk")
            text += "-include send_metrics.mk\n"
        (folder / "Makefile").write_text(text)
    found: dict[str, list[tuple[float, float]]] = {name: [] for name in folders}
    for _ in range(3):
        for name, folder in folders.items():
            before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
            subprocess.run(["make", "-j2"], cwd=folder, env=env, check=True)
            wall = (time.monotonic() - start) * 1000
            time.sleep(1)  # the watcher records and ends: its CPU counts too
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            found[name].append((wall, cpu * 1000))
    for name, runs in found.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        print(f"{name}: wall {wall:.0f} ms, CPU {cpu:.0f} ms")


if __name__ == "__main__":
    main()
