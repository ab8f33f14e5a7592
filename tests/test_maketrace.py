"""Every target with one include line, and where the time goes inside make: real GNU make in
tmp_path, a Makefile with only `-include send_metrics.mk` added, the real watcher."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from send_metrics.make.snippet import snippet_path
from send_metrics.make.trace import Trace, derive_outcome, read_trace
from send_metrics.run.watch import _exit_status
from tests.helpers import BIN, data_db, history, opt_in, queued, sm

INCLUDE = f"-include {snippet_path()}\n"


def makefile(folder: Path, body: str) -> Path:
    """A Makefile with the given rules and, as its last line, the include line."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "Makefile"
    path.write_text(body.lstrip() + "\n" + INCLUDE)
    return path


def make(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def traces(home: Path) -> list[Path]:
    folder = home / ".cache" / "send_metrics-make"
    return sorted(folder.glob("*.trace")) if folder.exists() else []


def events_after_make(home: Path, count: int = 1) -> list[dict]:
    """The events once the watchers are done: a watcher records after its make has exited and
    then deletes the trace, so wait (bounded) until no trace is left."""
    for _ in range(400):
        if not traces(home):
            break
        time.sleep(0.05)
    found = history(home)
    assert len(found) == count, found
    return found


def only_event(home: Path) -> dict:
    [event] = events_after_make(home)
    return event


def targets(event: dict) -> dict[str, dict]:
    return {t["name"]: t for t in event["make_targets"]}


AB = """
a:
\t@echo in a
b: c
\t@echo in b
\t@echo again b
c:
\t@echo in c
"""


def test_make_a_b_records_one_event_with_each_target(home: Path, tmp_path: Path) -> None:
    opt_in()
    work = tmp_path / "proj"
    makefile(work, AB)
    done = make("a", "b", cwd=work)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["in a", "in c", "in b", "again b"]
    assert done.stderr == ""
    event = only_event(home)
    assert event["command"] == "a b"
    assert event["command_type"] == "make"
    assert event["exit_code"] == 0 and event["interrupted"] is False
    assert event["cpu_user_s"] is None  # make's own accounting is not visible from inside
    found = targets(event)
    assert sorted(found) == ["a", "b", "c"]
    assert found["b"]["lines"] == 2 and found["a"]["lines"] == 1
    assert all(t["exit_code"] == 0 and t["depth"] == 0 for t in found.values())
    assert event["make_file_targets"] is None and event["make_targets_omitted"] == 0
    assert event["schema_version"] == 2


def test_without_a_yes_nothing_is_traced_spawned_or_recorded(home: Path, tmp_path: Path) -> None:
    work = tmp_path / "proj"
    makefile(work, AB)
    done = make("a", "b", cwd=work)
    assert done.returncode == 0 and done.stdout.splitlines()[0] == "in a"
    assert traces(home) == [] and not (home / ".cache" / "send_metrics-make").exists()
    assert history(home) == []


def test_without_send_metrics_installed_the_include_changes_nothing(tmp_path: Path) -> None:
    opt_in()
    work = tmp_path / "proj"
    makefile(work, AB)
    bare = tmp_path / "bare-bin"
    bare.mkdir()
    for tool in ("make", "sh", "echo"):
        os.symlink(shutil.which(tool), bare / tool)
    env = {**os.environ, "PATH": str(bare)}
    done = subprocess.run(
        ["make", "a", "b"], cwd=work, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.splitlines() == ["in a", "in c", "in b", "again b"]


CRITICAL = """
all: slow fast side
\t@:
slow: prep
\t@sleep 0.6
prep:
\t@sleep 0.3
fast:
\t@sleep 0.1
side:
\t@sleep 0.2
"""


def test_j4_critical_path_is_the_chain_known_by_construction(home: Path, tmp_path: Path) -> None:
    """prep (0.3 s) then slow (0.6 s) then all; fast and side run beside them under -j4."""
    opt_in()
    work = tmp_path / "proj"
    makefile(work, CRITICAL)
    assert make("-j4", cwd=work).returncode == 0
    event = only_event(home)
    assert event["command"] == "all"
    found = targets(event)
    chain = [t["name"] for t in event["make_targets"] if t["critical"]]
    assert chain == ["prep", "slow", "all"]
    assert not found["fast"]["critical"] and not found["side"]["critical"]
    # They ran side by side: fast and side started before prep ended.
    assert found["fast"]["start_ms"] < found["prep"]["start_ms"] + found["prep"]["duration_ms"]
    assert found["slow"]["start_ms"] >= found["prep"]["start_ms"] + found["prep"]["duration_ms"]


def test_failing_recipe_exit_2_and_the_event_says_failed(home: Path, tmp_path: Path) -> None:
    opt_in()
    work = tmp_path / "proj"
    makefile(work, "ok:\n\t@echo fine\nbad: ok\n\t@echo before\n\t@exit 3\n\t@echo never\n")
    done = make("bad", cwd=work)
    assert done.returncode == 2 and "never" not in done.stdout
    event = only_event(home)
    assert event["exit_code"] == 2 and event["interrupted"] is False
    found = targets(event)
    assert found["bad"]["exit_code"] == 3 and found["bad"]["lines"] == 2
    assert found["ok"]["exit_code"] == 0


def test_keep_going_with_two_failures(home: Path, tmp_path: Path) -> None:
    opt_in()
    work = tmp_path / "proj"
    makefile(work, "all: x y z\nx:\n\t@exit 1\ny:\n\t@echo y ran\nz:\n\t@exit 4\n")
    done = make("-k", "all", cwd=work)
    assert done.returncode == 2 and "y ran" in done.stdout
    event = only_event(home)
    assert event["exit_code"] == 2
    found = targets(event)
    assert (found["x"]["exit_code"], found["y"]["exit_code"], found["z"]["exit_code"]) == (1, 0, 4)


def test_an_ignored_failure_is_not_a_failed_run(home: Path, tmp_path: Path) -> None:
    opt_in()
    work = tmp_path / "proj"
    makefile(work, "all: first\n\t@echo done\nfirst:\n\t-@exit 5\n\t@echo after\n")
    done = make(cwd=work)
    assert done.returncode == 0 and "done" in done.stdout and "(ignored)" in done.stderr
    event = only_event(home)
    assert event["exit_code"] == 0
    assert targets(event)["first"]["exit_code"] == 5


def recorded_trace(home: Path, work: Path, *args: str) -> Trace:
    """Run make with the include under a yes, a stand-in watcher that does nothing, and parse
    the trace it leaves: the derivation rules tested on real make's records, whatever the
    kernel can tell the real watcher."""
    opt_in()
    stub = work / "stub-bin"
    stub.mkdir()
    (stub / "send_metrics").write_text("#!/bin/sh\nexit 0\n")
    (stub / "send_metrics").chmod(0o755)
    env = {**os.environ, "PATH": f"{stub}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["make", *args], cwd=work, env=env, capture_output=True, check=False)
    [trace] = traces(home)
    return read_trace(trace)


@pytest.mark.parametrize(
    ("recipe", "args", "derived"),
    [
        ("all: first\n\t@echo done\nfirst:\n\t@exit 3\n", [], 2),
        ("all: x y\nx:\n\t@exit 1\ny:\n\t@exit 4\n", ["-k"], 2),
        ("all: first\n\t@echo done\nfirst:\n\t-@exit 5\n\t@echo after\n", [], 0),
        ("all: first\n\t@echo done\nfirst:\n\t-@exit 5\n", [], 0),
        ("all: first\n\t@echo done\nfirst:\n\t-@exit 5\n\t@:\n", ["-k"], 0),
        ("all: first\n\t@echo done\nfirst:\n\t@exit 5\n", ["-i"], 0),
        # The documented wrong case: under -k an ignored failure on a target's last line
        # cannot be told from a real one (make itself exits 0 here).
        ("all: first\n\t@echo done\nfirst:\n\t-@exit 5\n", ["-k"], 2),
    ],
    ids=["fails", "k-two", "ignored-mid", "ignored-last", "ignored-k-mid", "i", "k-wrong"],
)
def test_the_outcome_derived_from_real_make_traces(
    home: Path, tmp_path: Path, recipe: str, args: list[str], derived: int
) -> None:
    work = tmp_path / "proj"
    makefile(work, recipe)
    assert derive_outcome(recorded_trace(home, work, *args)) == (derived, False)


def test_make_s_own_status_where_the_kernel_keeps_it(home: Path, tmp_path: Path) -> None:
    """A make that outlives the watcher's start: on Linux 6.15 and later its real status is
    read from a pidfd (exit_code_derived false); elsewhere it is derived as documented."""
    opt_in()
    work = tmp_path / "proj"
    makefile(work, "all: first\n\t@echo done\nfirst:\n\t@sleep 1.5\n\t-@exit 5\n")
    assert make("-k", cwd=work).returncode == 0
    event = only_event(home)
    probe = subprocess.Popen(["sh", "-c", "exit 3"])
    fd = os.pidfd_open(probe.pid)
    probe.wait()
    kept = _exit_status(fd)
    os.close(fd)
    if kept is False:  # an older kernel: derived, and wrong as documented
        assert (event["exit_code"], event["exit_code_derived"]) == (2, True)
    else:
        assert kept == 3 << 8
        assert (event["exit_code"], event["exit_code_derived"]) == (0, False)


@pytest.mark.parametrize("flags", [["-n"], ["-q"], ["-pRrq"], ["--dry-run"], ["-t"]])
def test_no_run_flags_spawn_and_record_nothing(
    home: Path, tmp_path: Path, flags: list[str]
) -> None:
    opt_in()
    work = tmp_path / "proj"
    makefile(work, AB + "sub:\n\t$(MAKE) a\n")
    command = ["make", *flags, "a", "b", "sub"]
    if shutil.which("strace"):
        log = tmp_path / "strace.log"
        subprocess.run(
            ["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(log), *command],
            cwd=work,
            capture_output=True,
            check=False,
            timeout=60,
        )
        execs = [line for line in log.read_text().splitlines() if "execve(" in line]
        programs = [line.split('"')[1] for line in execs]
        # make itself, and under -n the recursive $(MAKE) line (which make runs even then).
        assert all(os.path.basename(p) == "make" for p in programs), programs
    else:
        subprocess.run(command, cwd=work, capture_output=True, check=False, timeout=60)
    assert traces(home) == [] and not (home / ".cache" / "send_metrics-make").exists()
    assert history(home) == []


def test_a_make_with_nothing_to_do_spawns_nothing(home: Path, tmp_path: Path) -> None:
    opt_in()
    work = tmp_path / "proj"
    makefile(work, "out.txt:\n\techo x > out.txt\n")
    (work / "out.txt").write_text("x\n")
    done = make("out.txt", cwd=work)
    assert "is up to date" in done.stdout
    assert not (home / ".cache" / "send_metrics-make").exists() and history(home) == []


def test_recursive_make_belongs_to_the_outer_invocation(home: Path, tmp_path: Path) -> None:
    opt_in()
    work = tmp_path / "proj"
    makefile(work / "sub", "inner:\n\t@echo inner ran\n")
    makefile(work, "outer:\n\t@$(MAKE) --no-print-directory -C sub inner\n\t@echo outer ran\n")
    done = make("outer", cwd=work)
    assert done.stdout.splitlines() == ["inner ran", "outer ran"]
    event = only_event(home)
    assert event["command"] == "outer"
    found = targets(event)
    assert found["outer"]["depth"] == 0 and found["inner"]["depth"] == 1
    assert [t["name"] for t in event["make_targets"] if t["critical"]] == ["outer"]


def test_bash_with_strict_shellflags_and_oneshell_are_kept(home: Path, tmp_path: Path) -> None:
    opt_in()
    work = tmp_path / "proj"
    body = (
        "SHELL := /bin/bash\n.SHELLFLAGS := -eu -o pipefail -c\n.ONESHELL:\n"
        "all:\n"
        "\t@x=one\n"
        '\techo "$$x $${BASH_VERSION:+bash} $$SHELLOPTS" | tr : "\\n" | grep -x pipefail\n'
        "\techo $$x\n"
        "unset:\n"
        "\t@echo $$NOT_SET_ANYWHERE\n"
        "piped:\n"
        "\t@false | true\n"
    )
    makefile(work, body)
    done = make("all", cwd=work)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == ["pipefail", "one"]
    assert make("unset", cwd=work).returncode == 2  # -u kept
    assert make("piped", cwd=work).returncode == 2  # pipefail kept
    events = events_after_make(home, 3)
    assert [e["exit_code"] for e in events] == [0, 2, 2]
    assert targets(events[0])["all"]["lines"] == 1  # .ONESHELL: one shell for the recipe


def test_make_dash_c_dir(home: Path, tmp_path: Path) -> None:
    opt_in()
    work = tmp_path / "proj"
    makefile(work, "where:\n\t@pwd\n")
    done = make("-C", str(work), "where", cwd=tmp_path)
    assert done.returncode == 0 and str(work) in done.stdout
    assert only_event(home)["command"] == "where"


def test_file_targets_under_a_secret_path_are_never_sent(
    home: Path, tmp_path: Path, collector
) -> None:
    canary = tmp_path / "secret-canary"
    canary.mkdir()
    work = tmp_path / "proj"
    work.mkdir()
    collector.write_config("http", folder=work)
    assert sm("opt-in", "--yes", cwd=work).returncode == 0  # a yes to that config's sink
    body = (
        f"all: {canary}/out.bin build/obj.o report.txt phony-name\n\t@:\n"
        f"{canary}/out.bin:\n\t@touch $@\n"
        "build/obj.o:\n\t@mkdir -p build && touch $@\n"
        "report.txt:\n\t@touch $@\n"
        "phony-name:\n\t@:\n"
    )
    body += "phony-name: ; @echo output-canary $(TOKEN) # recipe-canary\n"
    makefile(work, body.replace("phony-name:\n\t@:\n", ""))
    done = make("all", "TOKEN=variable-canary", cwd=work)
    assert done.returncode == 0 and "output-canary variable-canary" in done.stdout
    event = only_event(home)
    assert sorted(targets(event)) == ["all", "phony-name"]
    assert event["make_file_targets"]["count"] == 3
    sent = b"".join(r.body for r in collector.requests)
    assert b"phony-name" in sent
    stored = b"".join(f.read_bytes() for f in data_db(home).parent.glob("metrics.sqlite3*"))
    for secret in (
        b"secret-canary",
        b"out.bin",
        b"obj.o",
        b"report.txt",
        b"output-canary",
        b"variable-canary",
        b"recipe-canary",
        str(tmp_path).encode(),
    ):
        assert secret not in sent and secret not in stored


def test_a_goal_that_is_a_path_is_not_sent_as_the_command(home: Path, tmp_path: Path) -> None:
    opt_in()
    work = tmp_path / "proj"
    makefile(work, "build/x.o:\n\t@mkdir -p build && touch $@\n")
    assert make("build/x.o", cwd=work).returncode == 0
    event = only_event(home)
    assert event["command"] == "(file)" and event["make_targets"] == []


def _in_group(process: psutil.Process, pgid: int) -> bool:
    try:
        return os.getpgid(process.pid) == pgid
    except OSError:
        return False


def test_ctrl_c_is_recorded_as_interrupted(home: Path, tmp_path: Path) -> None:
    opt_in()
    work = tmp_path / "proj"
    makefile(work, "quick:\n\t@echo quick\nslow: quick\n\t@echo started; sleep 30\n")
    with subprocess.Popen(
        ["make", "slow"],
        cwd=work,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "quick"
        assert proc.stdout.readline().strip() == "started"
        # As a person would: once the sleep runs (a signal between `echo` and the fork of
        # `sleep` is lost by dash and make even without send_metrics).
        for _ in range(400):
            if any(
                p.info["name"] == "sleep"
                for p in psutil.process_iter(["name"])
                if _in_group(p, proc.pid)
            ):
                break
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGINT
    event = only_event(home)
    assert event["interrupted"] is True and event["exit_code"] is None
    found = targets(event)
    assert found["slow"]["exit_code"] is None and found["quick"]["exit_code"] == 0


def test_do_not_track_wins_in_include_mode(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opt_in()
    work = tmp_path / "proj"
    makefile(work, AB)
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    assert make("a", cwd=work).returncode == 0
    assert traces(home) == [] and history(home) == []


def test_wrap_gains_the_breakdown(home: Path, tmp_path: Path) -> None:
    opt_in()
    work = tmp_path / "proj"
    work.mkdir()
    (work / "Makefile").write_text(
        "SHELL := /bin/bash\n"
        "dev.%: ; +@send_metrics wrap --make='$(MAKE)' -f Makefile $@\n"
        "impl-dev.build: impl-dev.deps\n\t@echo build; sleep 0.2\n"
        "impl-dev.deps:\n\t@echo deps\n"
    )
    done = make("dev.build", cwd=work)
    assert done.returncode == 0 and done.stdout.splitlines() == ["deps", "build"], done.stderr
    [event] = history(home)
    assert event["command"] == "dev.build" and event["exit_code_derived"] is False
    assert event["cpu_user_s"] is not None
    found = targets(event)
    assert sorted(found) == ["impl-dev.build", "impl-dev.deps"]
    chain = [t["name"] for t in event["make_targets"] if t["critical"]]
    assert chain == ["impl-dev.deps", "impl-dev.build"]
    assert not list((home / ".config" / "send_metrics" / "make-traces").glob("*"))


def test_trace_shows_the_last_run_and_writes_chrome_json(home: Path, tmp_path: Path) -> None:
    opt_in()
    work = tmp_path / "proj"
    makefile(work, CRITICAL)
    assert make("-j4", cwd=work).returncode == 0
    events_after_make(home)
    shown = sm("trace")
    assert shown.returncode == 0, shown.stderr
    assert "critical path: prep -> slow -> all" in shown.stdout
    assert sm("trace", "all").stdout == shown.stdout
    missing = sm("trace", "nosuch")  # a look-up that matches nothing: one line, exit 5
    assert (missing.returncode, missing.stdout) == (5, "")
    assert (
        missing.stderr == "send_metrics: no recorded make run of 'nosuch'. Recorded goals: all.\n"
    )
    assert "did you mean all?" in sm("trace", "al").stderr
    out = tmp_path / "out.json"
    written = sm("trace", "--chrome", str(out))
    assert written.returncode == 0, written.stderr
    doc = json.loads(out.read_text())
    complete = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    for e in doc["traceEvents"]:
        assert {"ph", "name", "pid", "tid"} <= set(e)
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
    for e in complete:
        assert isinstance(e["ts"], int) and isinstance(e["dur"], int) and e["dur"] >= 0
    by_name = {e["name"]: e for e in complete}
    assert {"prep", "slow", "fast", "side", "all", "make all"} <= set(by_name)
    # Targets that overlapped are on different lanes; prep then slow follow in time.
    assert by_name["fast"]["tid"] != by_name["prep"]["tid"]
    assert by_name["slow"]["ts"] >= by_name["prep"]["ts"] + by_name["prep"]["dur"]
    names = [e for e in doc["traceEvents"] if e["ph"] == "M"]
    assert {e["args"]["name"] for e in names} >= {"make", "job 1"}


def test_makefile_command_prints_the_snippet_and_its_path(home: Path, tmp_path: Path) -> None:
    config = tmp_path / "send_metrics.toml"
    config.write_text('app = "devstack"\n')
    shown = sm("makefile", cwd=tmp_path)
    assert shown.returncode == 0
    assert "_sm.app := devstack" in shown.stdout
    assert "_make-watch" in shown.stdout
    # Standard output is the snippet only; the next step (the include line, then a yes: make
    # never asks) is on stderr, and the yes part goes once it is given.
    assert shown.stdout == Path(snippet_path()).read_text().replace(
        "_sm.app := send_metrics", "_sm.app := devstack"
    )
    assert "-include send_metrics.mk" in shown.stderr and "send_metrics opt-in" in shown.stderr
    assert len(shown.stderr.splitlines()) == 1
    opt_in()
    assert "opt-in" not in sm("makefile").stderr
    path = sm("makefile", "--path").stdout.strip()
    assert Path(path) == Path(snippet_path()) and Path(path).exists()
    assert (BIN / "send_metrics").exists()


def test_makefile_example_with_the_snippet_vendored_counts_each_run_once(
    home: Path, tmp_path: Path
) -> None:
    """Both patterns in Makefile.example: with send_metrics.mk saved beside it, every run is
    one event from the include, and the dev.* wrappers inside run as plain make."""
    opt_in()
    work = tmp_path / "devstack"
    work.mkdir()
    shutil.copy(Path(__file__).parent.parent / "Makefile.example", work / "Makefile")
    saved = sm("makefile")
    (work / "send_metrics.mk").write_text(saved.stdout)
    hello = make("hello", cwd=work)
    assert hello.returncode == 0 and hello.stdout.startswith("hello from")
    provision = make("dev.provision", cwd=work)
    assert provision.returncode == 0, provision.stderr
    assert provision.stdout.splitlines() == [
        "pulling image for lms",
        "pulling image for cms",
        "provisioning lms cms",
    ]
    first, second = events_after_make(home, 2)
    assert (first["command"], second["command"]) == ("hello", "dev.provision")
    found = targets(second)
    assert found["dev.provision"]["depth"] == 0
    assert found["impl-dev.provision"]["depth"] == 1
    assert {"dev.pull.lms", "impl-dev.pull.cms"} <= set(found)
    assert first["exit_code"] == 0 and second["exit_code"] == 0


def test_the_portable_include_line_works_in_gnu_make(home: Path, tmp_path: Path) -> None:
    opt_in()
    work = tmp_path / "proj"
    work.mkdir()
    shutil.copy(snippet_path(), work / "send_metrics.mk")
    portable = "-include $(if $(MAKE_VERSION),send_metrics.mk)\n"
    (work / "Makefile").write_text("a:\n\t@echo a\n" + portable)
    assert make("a", cwd=work).stdout == "a\n"
    assert only_event(home)["command"] == "a"


def test_wrap_under_an_operator_app_name_gains_the_breakdown(home: Path, tmp_path: Path) -> None:
    work = tmp_path / "proj"
    work.mkdir()
    (work / "send_metrics.toml").write_text('app = "devstack"  # the operator\'s name\n')
    (work / "Makefile").write_text(
        "dev.%: ; +@send_metrics wrap --make='$(MAKE)' $@\nimpl-dev.up:\n\t@echo up\n"
    )
    assert sm("opt-in", "--yes", cwd=work).returncode == 0
    done = make("dev.up", cwd=work)
    assert done.returncode == 0 and done.stdout == "up\n", done.stderr
    [event] = history(home, "devstack")
    assert [t["name"] for t in event["make_targets"]] == ["impl-dev.up"]


def test_at_most_100_targets_are_named_the_rest_counted(home: Path, tmp_path: Path) -> None:
    opt_in()
    work = tmp_path / "proj"
    names = [f"t{i:03d}" for i in range(105)]
    rules = "".join(f"{n}:\n\t@:\n" for n in names)
    makefile(work, "all: " + " ".join(names) + "\n\t@:\n" + rules)
    assert make("all", cwd=work).returncode == 0
    event = only_event(home)
    assert len(event["make_targets"]) == 100
    assert event["make_targets_omitted"] == 6  # 106 targets ran a recipe, `all` included
    assert len(set(targets(event))) == 100


@pytest.mark.skipif(not shutil.which("bmake"), reason="BSD make (bmake) is not installed")
def test_bsd_make_skips_the_guarded_include(tmp_path: Path) -> None:
    opt_in()
    work = tmp_path / "proj"
    work.mkdir()
    shutil.copy(snippet_path(), work / "send_metrics.mk")
    (work / "Makefile").write_text(
        "a:\n\t@echo a ran\n-include $(if $(MAKE_VERSION),send_metrics.mk)\n"
    )
    done = subprocess.run(["bmake", "a"], cwd=work, capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "a ran\n", "")


def test_include_mode_queues_what_it_cannot_deliver(
    home: Path, tmp_path: Path, dead_url: str
) -> None:
    work = tmp_path / "proj"
    work.mkdir()
    (work / "send_metrics.toml").write_text(f'[report]\nsink = "http"\nendpoint = "{dead_url}"\n')
    assert sm("opt-in", "--yes", cwd=work).returncode == 0  # a yes to that config's sink
    makefile(work, AB)
    done = make("a", cwd=work)
    assert done.returncode == 0 and done.stderr == ""  # the watcher says nothing on make's stderr
    event = only_event(home)
    assert queued(home) == [event["message_id"]]


def test_opt_out_while_make_runs_records_nothing(home: Path, tmp_path: Path) -> None:
    opt_in()
    work = tmp_path / "proj"
    makefile(work, "a:\n\t@send_metrics opt-out >/dev/null\n\t@echo after\n")
    assert make("a", cwd=work).stdout == "after\n"
    for _ in range(400):
        if not traces(home):
            break
        time.sleep(0.05)
    assert history(home) == [] and not data_db(home).exists()


def test_a_target_with_more_prerequisites_than_the_trace_keeps(home: Path, tmp_path: Path) -> None:
    """Only the first 8 prerequisites reach the trace: the critical path of `all` still steps
    back to its 10th, which ran last."""
    opt_in()
    work = tmp_path / "proj"
    deps = " ".join(f"p{i}" for i in range(1, 11))
    makefile(work, f"all: {deps}\n\t@echo done\n{deps}:\n\t@sleep 0.05\n")
    assert make(cwd=work).returncode == 0
    chain = [t["name"] for t in only_event(home)["make_targets"] if t["critical"]]
    assert chain == [f"p{i}" for i in range(1, 11)] + ["all"]
