"""The operator's side under a team's load: make -j16 of wrapped targets sending to a real
collector process while `send_metrics report` runs again and again beside them."""

from __future__ import annotations

import json
import subprocess
import threading
from collections import Counter
from pathlib import Path

import pytest

from tests.collector_proc import KEY, start, stored
from tests.helpers import SEND_METRICS, history, opt_in, sm

pytestmark = pytest.mark.stress

# t1..t48; every fifth fails (its inner make exits 2; make -k keeps going), the rest succeed.
MAKEFILE = """\
dev.%: ; +@send_metrics wrap --make='$(MAKE)' -f Makefile $@
impl-dev.%: ; @exit $$(( $(subst t,,$*) % 5 == 0 ))
"""
TARGETS = [f"dev.t{i}" for i in range(1, 49)]


def test_wrappers_under_make_j16_land_once_while_report_runs(home: Path, tmp_path: Path) -> None:
    running = start(tmp_path / "data")
    try:
        (tmp_path / "send_metrics.toml").write_text(
            f'[report]\nsink = "segment"\nendpoint = "{running.url}"\nwrite_key = "{KEY}"\n'
            "deadline = 10\n"
        )
        (tmp_path / "Makefile").write_text(MAKEFILE)
        opt_in()
        reports: list[subprocess.CompletedProcess[str]] = []
        stop = threading.Event()

        def report_loop() -> None:
            while not stop.is_set():
                reports.append(
                    subprocess.run(
                        [SEND_METRICS, "report", "--data", str(running.data), "--json"],
                        capture_output=True,
                        text=True,
                        timeout=300,
                    )
                )

        reader = threading.Thread(target=report_loop)
        reader.start()
        try:
            made = subprocess.run(
                ["make", "-k", "-j16", *TARGETS],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=900,
            )
        finally:
            stop.set()
            reader.join()
        # make -k: the failing targets make it exit 2, and nothing of ours is on stderr.
        assert made.returncode == 2
        assert all("send_metrics" not in line for line in made.stderr.splitlines()), made.stderr
        runs = history(home)
        assert Counter(e["command"] for e in runs) == {t: 1 for t in TARGETS}
        assert {e["command"] for e in runs if e["exit_code"] != 0} == {
            t for t in TARGETS if int(t[5:]) % 5 == 0
        }
        # Whatever a busy machine left queued goes now; then every run is stored exactly once.
        assert sm("flush", cwd=tmp_path).returncode == 0
        landed = stored(running.data)
        assert sorted(r["message_id"] for r in landed) == sorted(e["message_id"] for e in runs)
        assert reports and all(r.returncode == 0 for r in reports), [r.stderr for r in reports]
        for done in reports:
            json.loads(done.stdout)
        assert running.proc.poll() is None  # the collector is still up
    finally:
        running.stop()
