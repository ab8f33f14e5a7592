#!/usr/bin/env python3
"""Benchmark: what send_metrics adds to a command, as ratios to the interpreter's own start.

P is `python -c pass` with the interpreter the console script runs on. Every round runs, for
each scenario and in a shuffled order, P, the bare command and the wrapped command back to
back, so machine noise hits all three alike; each wrapped run is compared with the bare run and
the P of its own round. Per scenario the table gives the median and spread (p10-p90) of the
added wall time, the median ratio added/P, the time from the wrapper's start to its child's
start (the child prints the clock; compared with the bare command's), the CPU the wrapper
adds (user+sys from wait4, which includes the wrapper's own children such as git, less the
bare command's) and the wrapper's peak RSS, against the budgets of the performance issue.

The `floor` scenarios run `scripts/floor_wrapper.py` (spawn, read a consent file, connect while
the child runs, post, append a line) in the same rounds, so every run shows how far we are
from the least any Python wrapper can do on that machine. Everything runs in a temporary HOME,
inside a git clone made in a temporary directory, against a server on 127.0.0.1.

    python scripts/bench.py [--rounds 20] [--json]
    python scripts/bench.py --importtime   # consented instant runs under -X importtime
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLOCK = ["date", "+%s%N"]  # an instant child that prints when it started, in ns
JOBS = 16  # targets of the make -j scenario


class _Server(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    received = 0

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Server.received += 1
        body = b'{"success":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that leaves early (an abandoned prepared connection) is expected


@dataclass
class Run:
    """One process: wall seconds, CPU seconds (its own and its waited-for children's), and the
    clock its child printed (ns, or None)."""

    wall: float
    cpu: float
    child_clock_ns: int | None
    started_ns: int


@dataclass
class Scenario:
    name: str
    wrapped: list[str]
    bare: list[str]
    env: dict[str, str]
    cwd: Path
    budget_p: float | None = None  # added wall time, in P
    start_budget_p: float | None = None  # wrapper start to child start, in P
    rounds: int | None = None  # fewer rounds for slow scenarios
    per: int = 1  # wrappers per run (make -j)
    note: str = ""
    samples: list[tuple[float, Run, Run]] = field(default_factory=list)  # (P, bare, wrapped)
    rss_kib: int = 0


def run_once(argv: list[str], env: dict[str, str], cwd: Path) -> Run:
    """Run a command with stdio away from the terminal; stdout to a file, to read a clock."""
    with tempfile.TemporaryFile() as out:
        started_ns = time.time_ns()
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.DEVNULL
        )
        _pid, _status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = 0  # reaped above; keep Popen from waiting again
        out.seek(0)
        words = out.read().split()
    clock = int(words[0]) if words and words[0].isdigit() else None
    return Run(wall, usage.ru_utime + usage.ru_stime, clock, started_ns)


# Peak RSS is read by a small parent: wait4's ru_maxrss counts the memory a forked child had
# before its exec, so a child forked from this (bigger) process would report our size.
_RSS_PARENT = (
    "import os, sys; pid = os.posix_spawnp(sys.argv[1], sys.argv[1:], os.environ); "
    "print(os.wait4(pid, 0)[2].ru_maxrss)"
)


def peak_rss_kib(python: str, argv: list[str], env: dict[str, str], cwd: Path) -> int:
    """The peak RSS of a command, measured from a minimal interpreter (no site, isolated)."""
    done = subprocess.run(
        [python, "-S", "-I", "-c", _RSS_PARENT, *argv],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    return int(done.stdout.split()[-1])


def _q(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@dataclass
class Row:
    scenario: str
    rounds: int
    p_ms: float
    added_ms: float
    added_p10_ms: float
    added_p90_ms: float
    added_p: float
    budget_p: float | None
    start_ms: float | None
    start_p: float | None
    start_budget_p: float | None
    cpu_ms: float
    cpu_p: float
    peak_rss_mib: float
    within: bool
    note: str


def summarise(s: Scenario, p_cpu: float) -> Row:
    per = s.per
    added = [(w.wall - b.wall) / per for _p, b, w in s.samples]
    ratios = [(w.wall - b.wall) / per / p for p, b, w in s.samples]
    starts = [
        (w.child_clock_ns - w.started_ns - (b.child_clock_ns - b.started_ns)) / 1e9
        for _p, b, w in s.samples
        if w.child_clock_ns and b.child_clock_ns
    ]
    start_ratios = [
        (w.child_clock_ns - w.started_ns - (b.child_clock_ns - b.started_ns)) / 1e9 / p
        for p, b, w in s.samples
        if w.child_clock_ns and b.child_clock_ns
    ]
    cpu = statistics.median([(w.cpu - b.cpu) / per for _p, b, w in s.samples])
    rss = s.rss_kib / 1024
    added_p = statistics.median(ratios)
    start_p = statistics.median(start_ratios) if start_ratios else None
    within = (
        (s.budget_p is None or added_p <= s.budget_p)
        and (s.start_budget_p is None or start_p is None or start_p <= s.start_budget_p)
        and rss <= 30
    )
    return Row(
        s.name,
        len(s.samples),
        statistics.median(p for p, _b, _w in s.samples) * 1000,
        statistics.median(added) * 1000,
        _q(added, 0.1) * 1000,
        _q(added, 0.9) * 1000,
        added_p,
        s.budget_p,
        statistics.median(starts) * 1000 if starts else None,
        start_p,
        s.start_budget_p,
        cpu * 1000,
        cpu / p_cpu if p_cpu else float("inf"),
        rss,
        within,
        s.note,
    )


def _queued(home: Path) -> int:
    import sqlite3

    db = home / ".local/share/send_metrics/metrics.sqlite3"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM queue").fetchone()[0])


def _git(cwd: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.org",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.org",
    }
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def make_clone(root: Path) -> Path:
    """A devstack-like checkout: a clone with origin, origin/HEAD and an upstream branch."""
    upstream = root / "upstream"
    upstream.mkdir(parents=True)
    _git(upstream, "init", "-q", "-b", "main")
    for i in range(20):
        (upstream / f"file{i}.txt").write_text(f"{i}\n" * 50)
    _git(upstream, "add", ".")
    _git(upstream, "commit", "-q", "-m", "first")
    clone = root / "clone"
    _git(root, "clone", "-q", str(upstream), str(clone))
    return clone


def wrapper_env(home: Path, bytecode: bool) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SEND_METRICS", "MAKE", "OTEL_", "PYTHON"))
        and k not in ("CI", "DO_NOT_TRACK", "MFLAGS", "MAKELEVEL")
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local/share"),
    )
    if not bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def importtime(exe: str, runs_wanted: int = 9) -> None:
    """Consented instant runs under -X importtime: what is imported before the child starts,
    what after, with cumulative times (top-level imports, the least of several runs)."""
    root = Path(tempfile.mkdtemp(prefix="send_metrics-importtime-"))
    server = _QuietServer(("127.0.0.1", 0), _Server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    work = make_clone(root)
    env = wrapper_env(root / "home", bytecode=True)
    (work / "send_metrics.toml").write_text(
        f'[report]\nsink = "segment"\nendpoint = "http://127.0.0.1:{server.server_address[1]}"\n'
        'write_key = "bench"\n'
    )
    subprocess.run([exe, "opt-in", "--yes"], env=env, cwd=work, check=True, capture_output=True)
    marker = "--child-started--"
    # The console script's own launcher, plus an audit hook that marks the first fork or spawn
    # (the group witness, just before the child): a mark printed by the child itself can come
    # after imports the wrapper made while the child was still starting.
    launcher = (
        "import sys\n"
        "def mark(event, args):\n"
        "    if event in ('os.fork', 'os.posix_spawn'):\n"
        f"        sys.stderr.write('{marker}\\n'); sys.stderr.flush()\n"
        "sys.addaudithook(mark)\n"
        "from send_metrics.__main__ import main\n"
        "sys.exit(main())\n"
    )
    python = Path(exe).read_text().splitlines()[0].removeprefix("#!")
    runs = []
    for _ in range(runs_wanted):
        done = subprocess.run(
            [python, "-c", launcher, "run", "--", "true"],
            env={**env, "PYTHONPROFILEIMPORTTIME": "1"},
            cwd=work,
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(done.stderr.partition(marker)[::2])
    shutil.rmtree(root, ignore_errors=True)
    bare = subprocess.run(
        [python, "-X", "importtime", "-c", "pass"], env=env, capture_output=True, text=True
    )
    own = {name for _cum, name in _top_imports(bare.stderr)}
    print(
        f"the interpreter's own start imports {', '.join(sorted(own))}: left out below; "
        f"each time is the least of {runs_wanted} runs (load only ever adds)"
    )
    for title, index in (("before the child started", 0), ("after", 1)):
        least: dict[str, int] = {}
        for run in runs:
            for cum, name in _top_imports(run[index]):
                if name not in own:
                    least[name] = min(cum, least.get(name, cum))
        total = sum(least.values())
        print(f"{title}: {len(least)} top-level imports, {total / 1000:.1f} ms cumulative")
        for name, cum in sorted(least.items(), key=lambda item: -item[1])[:14]:
            print(f"  {cum / 1000:6.1f} ms  {name}")


def _top_imports(text: str) -> list[tuple[int, str]]:
    """(cumulative us, module) of each top-level import in -X importtime output."""
    found = []
    for line in text.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cum, name = line[len("import time:") :].split("|")
        if not name.startswith("  "):
            found.append((int(cum), name.strip()))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="measured rounds")
    parser.add_argument("--warmup", type=int, default=3, help="rounds run first and discarded")
    parser.add_argument("--black-hole-rounds", type=int, default=5, help="0 to skip it")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--no-bytecode",
        action="store_true",
        help="measure with no bytecode cache (PYTHONDONTWRITEBYTECODE=1)",
    )
    parser.add_argument(
        "--importtime", action="store_true", help="show the imports of one consented run"
    )
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="another send_metrics console script (an older install) measured in the same rounds",
    )
    args = parser.parse_args()

    exe = shutil.which("send_metrics")
    if not exe:
        sys.exit("bench: send_metrics is not on PATH (pip install -e . first)")
    with open(exe, "rb") as fh:
        shebang = fh.readline().decode().strip()
        launcher_imports_re = b"import re" in fh.read()
    python = shebang[2:] if shebang.startswith("#!/") else sys.executable
    # Measure what developers get: an install has its bytecode compiled.
    import compileall

    import send_metrics

    package = Path(send_metrics.__file__).parent
    if args.no_bytecode:
        shutil.rmtree(package / "__pycache__", ignore_errors=True)
    else:
        compileall.compile_dir(package, quiet=1)
    if args.importtime:
        for label, path in [("this install", exe), *(a.split("=", 1) for a in args.also)]:
            print(f"== {label}: {path}")
            importtime(path)
        return

    root = Path(tempfile.mkdtemp(prefix="send_metrics-bench-"))
    server = _QuietServer(("127.0.0.1", 0), _Server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(1024)
    hole_url = f"http://127.0.0.1:{hole.getsockname()[1]}"
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    dead_url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    probe.close()

    def place(name: str, endpoint: str | None, decision: str | None) -> tuple[dict, Path]:
        """A HOME and a git clone to run in, with the operator config and a decision."""
        work = make_clone(root / name)
        home = root / name / "home"
        (home / ".config").mkdir(parents=True)
        env = wrapper_env(home, not args.no_bytecode)
        if endpoint:
            (work / "send_metrics.toml").write_text(
                f'[report]\nsink = "segment"\nendpoint = "{endpoint}"\nwrite_key = "bench"\n'
            )
        (work / "Makefile").write_text(
            f"impl-hello: ; @{' '.join(CLOCK)}\n"
            + "".join(f"t{i}: ; +@{exe} wrap t{i}\nimpl-t{i}: ; @:\n" for i in range(JOBS))
            + f"all: {' '.join(f't{i}' for i in range(JOBS))}\n"
            + f"bare: {' '.join(f'impl-t{i}' for i in range(JOBS))}\n"
        )
        if decision:
            subprocess.run(
                [exe, f"opt-{decision}", *(["--yes"] if decision == "in" else [])],
                env=env,
                cwd=work,
                check=True,
                capture_output=True,
            )
        return env, work

    run_exe = [exe, "run", "--"]
    scenarios: list[Scenario] = []
    env, work = place("segment", url, "in")
    scenarios += [
        Scenario("instant", run_exe + CLOCK, CLOCK, env, work, 3.0, 1.5),
        Scenario(
            "instant wrap", [exe, "wrap", "hello"], ["make", "impl-hello"], env, work, 3.0, 1.5
        ),
        Scenario("0.5 s", [*run_exe, "sleep", "0.5"], ["sleep", "0.5"], env, work, 2.0),
        Scenario(
            f"make -j{JOBS}",
            ["make", f"-j{JOBS}", "all"],
            ["make", f"-j{JOBS}", "bare"],
            env,
            work,
            per=JOBS,
            note="per wrapper",
        ),
    ]
    env, work = place("floor", None, None)
    consent_file, log_file = root / "floor" / "consent", root / "floor" / "log"
    consent_file.write_text("yes\n")
    floor = [sys.executable, str(HERE / "floor_wrapper.py"), str(consent_file), url, str(log_file)]
    scenarios += [
        Scenario("floor instant", [*floor, "--", *CLOCK], CLOCK, env, work),
        Scenario("floor 0.5 s", [*floor, "--", "sleep", "0.5"], ["sleep", "0.5"], env, work),
    ]
    env, work = place("no-decision", url, None)
    scenarios.append(
        Scenario("no decision", run_exe + CLOCK, CLOCK, env, work, 1.5, 1.5, note="no terminal")
    )
    env, work = place("declined", url, "out")
    scenarios.append(Scenario("declined", run_exe + CLOCK, CLOCK, env, work, 1.5, 1.5))
    # Another install (`--also before=PATH`) in the same rounds: a before/after on equal terms.
    others = [item.partition("=")[::2] for item in args.also]
    for label, other in others:
        seg_env, seg_work = scenarios[0].env, scenarios[0].cwd
        scenarios += [
            Scenario(f"{label}: instant", [other, "run", "--", *CLOCK], CLOCK, seg_env, seg_work),
            Scenario(
                f"{label}: 0.5 s",
                [other, "run", "--", "sleep", "0.5"],
                ["sleep", "0.5"],
                seg_env,
                seg_work,
            ),
            Scenario(f"{label}: declined", [other, "run", "--", *CLOCK], CLOCK, env, work),
        ]
    env, work = place("refused", dead_url, "in")
    refused = Scenario("refused", run_exe + CLOCK, CLOCK, env, work)
    scenarios.append(refused)
    if args.black_hole_rounds:
        env, work = place("black-hole", hole_url, "in")
        hole_s = Scenario("black hole", run_exe + CLOCK, CLOCK, env, work)
        hole_s.rounds = args.black_hole_rounds
        scenarios.append(hole_s)

    p_cpu: list[float] = []
    p_argv = [python, "-c", "pass"]
    for i in range(args.warmup + args.rounds):
        for s in scenarios:
            if s.rounds is not None and (i < args.warmup or len(s.samples) >= s.rounds):
                continue  # a slow scenario: no warm-up, fewer rounds
            order = [("p", p_argv), ("bare", s.bare), ("wrapped", s.wrapped)]
            random.shuffle(order)
            runs = {key: run_once(argv, s.env, s.cwd) for key, argv in order}
            if i >= args.warmup:
                s.samples.append((runs["p"].wall, runs["bare"], runs["wrapped"]))
                p_cpu.append(runs["p"].cpu)
    for s in scenarios:
        s.rss_kib = max(peak_rss_kib(python, s.wrapped, s.env, s.cwd) for _ in range(3))
    refused.note = f"{_queued(Path(refused.env['HOME']))} queued"
    if args.black_hole_rounds:
        hole_s.note = f"deadline 2 s; {_queued(Path(hole_s.env['HOME']))} queued"
    scenarios[0].note = f"server got {_Server.received} requests"
    shutil.rmtree(root, ignore_errors=True)

    cpu_p = statistics.median(p_cpu)
    rows = [summarise(s, cpu_p) for s in scenarios]
    all_p = [p for s in scenarios for p, _b, _w in s.samples]
    machine = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "processor": _cpu_model(),
        "rounds": args.rounds,
        "bytecode": "none" if args.no_bytecode else "compiled",
        "launcher_imports_re": launcher_imports_re,
        "p_ms": statistics.median(all_p) * 1000,
        "p_p10_ms": _q(all_p, 0.1) * 1000,
        "p_p90_ms": _q(all_p, 0.9) * 1000,
        "p_cpu_ms": cpu_p * 1000,
    }
    if args.json:
        print(json.dumps({"machine": machine, "rows": [r.__dict__ for r in rows]}, indent=2))
        return
    print(
        f"send_metrics bench: {machine['implementation']} {machine['python']} on "
        f"{machine['system']} {machine['machine']}, {machine['cpus']} CPUs "
        f"({machine['processor']}); {args.rounds} rounds after {args.warmup} warm-up; "
        f"bytecode {machine['bytecode']}; console-script launcher "
        f"{'imports' if launcher_imports_re else 'does not import'} re"
    )
    print(
        f"P = `python -c pass`: median {machine['p_ms']:.1f} ms "
        f"(p10-p90 {machine['p_p10_ms']:.1f}-{machine['p_p90_ms']:.1f}), "
        f"CPU {machine['p_cpu_ms']:.1f} ms; every ratio below is to the P of its own round"
    )
    header = (
        "scenario",
        "added ms",
        "p10-p90",
        "added/P",
        "budget",
        "start ms",
        "start/P",
        "budget",
        "CPU ms",
        "CPU/P",
        "RSS MiB",
        "ok",
        "note",
    )

    def opt(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    table = [header] + [
        (
            r.scenario,
            f"{r.added_ms:.1f}",
            f"{r.added_p10_ms:.1f}-{r.added_p90_ms:.1f}",
            f"{r.added_p:.2f}",
            opt(r.budget_p, ".1f"),
            opt(r.start_ms, ".1f"),
            opt(r.start_p, ".2f"),
            opt(r.start_budget_p, ".1f"),
            f"{r.cpu_ms:.1f}",
            f"{r.cpu_p:.2f}",
            f"{r.peak_rss_mib:.1f}",
            "yes" if r.within else "NO",
            r.note,
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for line in table:
        print(
            "  ".join(
                c.ljust(w) if i in (0, len(header) - 1) else c.rjust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            ).rstrip()
        )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
