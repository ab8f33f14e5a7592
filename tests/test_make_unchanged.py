"""Real Makefiles run unchanged: every make that reads send_metrics.mk (the include line, and
`wrap`'s inner make) behaves byte for byte as the same Makefile without it: stdout, stderr,
exit status, files created, the environment recipes see, $(SHELL), warnings. Each case runs
real GNU make twice in the same directory, without and with the line, and compares."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from send_metrics.make.snippet import snippet_path
from tests.helpers import BIN, history, opt_in, sm

BASE_PATH = os.pathsep.join(
    p for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) if Path(p) != BIN
)
STATES = ("undecided", "yes", "do-not-track", "not-installed")


class Outcome(NamedTuple):
    status: int
    stdout: bytes
    stderr: bytes
    files: dict[str, bytes]


def snapshot(folder: Path) -> dict[str, bytes]:
    found = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.name == "Makefile":
            continue  # the one file that differs: the line itself
        found[rel] = b"<dir>" if path.is_dir() else path.read_bytes()
    return found


def wait_for_watchers(home: Path) -> None:
    """A traced make's watcher records after make ends, then deletes the trace."""
    folder = home / ".cache" / "send_metrics-make"
    for _ in range(600):
        if not folder.exists() or not any(folder.iterdir()):
            return
        time.sleep(0.05)


def prepare(state: str, home: Path) -> dict[str, str]:
    """The environment of a make in one of the four states."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{BASE_PATH}", "LC_ALL": "C"}
    if state != "undecided" and not (home / ".config/send_metrics/metrics.toml").exists():
        opt_in()
    if state == "do-not-track":
        env["DO_NOT_TRACK"] = "1"
    if state == "not-installed":
        env["PATH"] = BASE_PATH
    return env


def run_make(
    work: Path,
    files: dict[str, str],
    args: list[str],
    env: dict[str, str],
    include: bool,
) -> Outcome:
    """`make ARGS` in a fresh copy of FILES at WORK (always the same path), the snippet saved
    beside the top Makefile either way; with `include`, every Makefile ends with the line
    (`-include ../send_metrics.mk` one directory down)."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for name, text in files.items():
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if include and name.endswith("Makefile"):
            text += "-include " + "../" * name.count("/") + "send_metrics.mk\n"
        path.write_text(text)
    shutil.copy(snippet_path(), work / "send_metrics.mk")
    done = subprocess.run(
        ["make", *args], cwd=work, env=env, capture_output=True, timeout=60, check=False
    )
    return Outcome(done.returncode, done.stdout, done.stderr, snapshot(work))


def compare(
    tmp_path: Path,
    home: Path,
    files: dict[str, str] | str,
    args: list[str],
    state: str = "yes",
    traced: bool | None = None,
    extra_env: dict[str, str] | None = None,
) -> Outcome:
    """Run without and with the line; they must be equal. `traced` checks that the run with
    the line recorded an event (True) or nothing (False)."""
    if isinstance(files, str):
        files = {"Makefile": files}
    env = {**prepare(state, home), **(extra_env or {})}
    work = tmp_path / "work"
    before = len(history(home))
    bare = run_make(work, files, args, env, include=False)
    wait_for_watchers(home)
    assert len(history(home)) == before
    included = run_make(work, files, args, env, include=True)
    wait_for_watchers(home)
    for name in sorted(set(bare.files) | set(included.files)):
        assert included.files.get(name) == bare.files.get(name), name
    assert included == bare
    if traced is None:
        traced = state == "yes"
    assert len(history(home)) == before + int(traced), (state, args)
    return included


# ---- a bare `export`, .EXPORT_ALL_VARIABLES ----

EXPORT_MINIMAL = "export\nall:\n\t@echo hi\n"


@pytest.mark.parametrize("state", STATES)
def test_a_bare_export_is_untouched(tmp_path: Path, home: Path, state: str) -> None:
    """The issue's minimal case: `*** file: missing filename` before any yes."""
    done = compare(tmp_path, home, EXPORT_MINIMAL, [], state)
    assert (done.status, done.stdout, done.stderr) == (0, b"hi\n", b"")


ENV_BODY = """
SHELL := /bin/bash
LOCAL_SETTING := from-the-makefile
.PHONY: all sub
all: sub
\t@env | LC_ALL=C sort | grep -v '^SEND_METRICS_MAKE_RUN=' > env-top.txt
\t@echo "$$SHLVL $(SHELL)"
sub:
\t@$(MAKE) --no-print-directory -C sub
"""
ENV_SUB = "all:\n\t@env | LC_ALL=C sort | grep -v '^SEND_METRICS_MAKE_RUN=' > env-sub.txt\n"


@pytest.mark.parametrize("exporting", ["export\n", ".EXPORT_ALL_VARIABLES:\n"])
@pytest.mark.parametrize("state", STATES)
def test_recipes_see_the_same_environment(
    tmp_path: Path, home: Path, state: str, exporting: str
) -> None:
    files = {"Makefile": exporting + ENV_BODY, "sub/Makefile": exporting + ENV_SUB}
    done = compare(tmp_path, home, files, [], state)
    env = done.files["env-top.txt"] + done.files["sub/env-sub.txt"]
    assert b"LOCAL_SETTING=from-the-makefile" in env  # exported, as the makefile says
    assert b"_sm" not in env and b"send_metrics_mk" not in env


def test_sub_makes_under_export_are_traced_at_every_depth(tmp_path: Path, home: Path) -> None:
    files = {
        "Makefile": "export\nall:\n\t@$(MAKE) --no-print-directory -C one\n",
        "one/Makefile": "export\none:\n\t@$(MAKE) --no-print-directory -C two\n",
        "one/two/Makefile": "export\ntwo:\n\t@echo deep\n",
    }
    done = compare(tmp_path, home, files, [])
    assert done.stdout == b"deep\n"
    [event] = history(home)
    depths = {t["name"]: t["depth"] for t in event["make_targets"]}
    assert depths == {"all": 0, "one": 1, "two": 2}


# ---- a Makefile in the style of a big developer environment (Open edX devstack's) ----

DEVSTACK = r"""
export
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
COMPOSE_PROJECT_NAME := $(shell echo devstack-$$((6 * 7)))
SERVICES := lms cms
OUT := out
.PHONY: dev.provision dev.pull dev.migrate check.shell dev.oneshell fail piped unset env

help: ## the first target: list the targets
	@grep -E '^[a-z.%]+:.*## ' $(firstword $(MAKEFILE_LIST)) | sed 's/:.*## / - /'

dev.provision: dev.pull ## pull, then migrate in a sub-make
	@echo "provisioning $(SERVICES) for $$COMPOSE_PROJECT_NAME"
	@$(MAKE) --no-print-directory dev.migrate

dev.pull: $(addprefix dev.pull.,$(SERVICES))

dev.pull.%:
	@echo "pulling image for $*" | tr a-z A-Z
	@mkdir -p $(OUT) && echo $* > $(OUT)/$*.pulled

dev.migrate: $(OUT)/lms.db $(OUT)/cms.db
	@echo migrated; ls $(OUT)

$(OUT)/%.db:
	@mkdir -p $(OUT); printf '%s\n' "$*" > $@
	@[[ -n $$BASH_VERSION ]] && echo "bash built $@" > $@.log

check.shell:
	@$(SHELL) -c '[[ -n $$BASH_VERSION ]]' && echo "SHELL is $(SHELL)"

dev.oneshell:
	@$(MAKE) --no-print-directory -C scripts

fail:
	@echo before; exit 3
	@echo never

piped:
	@false | true

unset:
	@echo $$NOT_SET_ANYWHERE

env:
	@env | LC_ALL=C sort | grep -v '^SEND_METRICS_MAKE_RUN='
"""
DEVSTACK_SCRIPTS = r"""
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.ONESHELL:
all:
	@x=one
	cd ..
	echo "$$x in $$(basename $$PWD)"
	-false; echo "still one shell"
"""


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["dev.provision"],
        ["check.shell"],
        ["dev.oneshell"],
        ["fail"],
        ["piped"],
        ["unset"],
        ["env"],
        ["-k", "fail", "dev.pull"],
        ["-j3", "dev.migrate"],
        ["--warn-undefined-variables", "dev.provision"],
        [".SHELLFLAGS=-ec", "check.shell", "unset"],
        ["SHELL=/bin/sh", "check.shell"],
    ],
    ids=lambda a: " ".join(a) or "default",
)
@pytest.mark.parametrize("state", STATES)
def test_a_devstack_style_makefile_runs_unchanged(
    tmp_path: Path, home: Path, state: str, args: list[str]
) -> None:
    files = {"Makefile": DEVSTACK, "scripts/Makefile": DEVSTACK_SCRIPTS}
    # make's command line SHELL/.SHELLFLAGS: never traced, as they cannot be kept exactly.
    untraceable = any(a.startswith(("SHELL=", ".SHELLFLAGS=")) for a in args)
    compare(tmp_path, home, files, args, state, traced=state == "yes" and not untraceable)


# ---- $(SHELL), .SHELLFLAGS, target-specific shells ----


def test_shell_in_a_recipe_is_the_makefile_s_own(tmp_path: Path, home: Path) -> None:
    body = "SHELL := /bin/bash\nall:\n\t@$(SHELL) -c '[[ -n $$BASH_VERSION ]]' && echo $(SHELL)\n"
    done = compare(tmp_path, home, body, [])
    assert (done.status, done.stdout) == (0, b"/bin/bash\n")


TARGET_SHELLS = """
SHELL := /bin/bash
plain:
\t@echo "plain $$BASH_VERSINFO" | cut -c1-6
own-flags: .SHELLFLAGS := -ec
own-flags:
\t@[[ -n $$BASH_VERSION ]] && echo "own flags, bash"
own-shell: SHELL := /bin/sh
own-shell:
\t@echo "own shell $${BASH_VERSION:-sh}"
python: SHELL := python3
python: .SHELLFLAGS := -c
python:
\t@print("python", 1 + 1)
"""


@pytest.mark.parametrize("goal", ["plain", "own-flags", "own-shell", "python"])
def test_target_specific_shell_and_flags_behave_as_bare(
    tmp_path: Path, home: Path, goal: str
) -> None:
    done = compare(tmp_path, home, TARGET_SHELLS, [goal], traced=goal == "plain")
    assert done.status == 0, done.stderr


def test_a_non_sh_shell_is_not_traced_and_unchanged(tmp_path: Path, home: Path) -> None:
    body = "SHELL := python3\n.SHELLFLAGS := -c\nall:\n\t@print('from python')\n"
    done = compare(tmp_path, home, body, [], traced=False)
    assert done.stdout == b"from python\n"


# ---- signals ----

SIGNALS = """
segv:
\t@kill -SEGV $$$$
term:
\t@kill -TERM $$$$
exits:
\t@exit 139
child:
\t@sh -c 'kill -TERM $$$$'; echo after
"""


@pytest.mark.parametrize("goal", ["segv", "term", "exits", "child"])
@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_a_line_killed_by_a_signal_looks_the_same_to_make(
    tmp_path: Path, home: Path, goal: str, shell: str
) -> None:
    body = f"SHELL := {shell}\n" + SIGNALS
    done = compare(tmp_path, home, body, [goal])
    assert done.status == (0 if goal == "child" else 2)


# ---- warnings, goals, the decision file ----


@pytest.mark.parametrize("state", STATES)
def test_warn_undefined_variables_says_nothing_new(tmp_path: Path, home: Path, state: str) -> None:
    body = "x := $(shell echo at-parse-time)\nall:\n\t@echo $(x)\n\t@echo two\n"
    done = compare(tmp_path, home, body, ["--warn-undefined-variables"], state)
    assert done.stderr == b""


def test_goals_with_quotes_dollars_and_commas_are_recorded_exactly(
    tmp_path: Path, home: Path
) -> None:
    names = ["a'b.t", "a$b.t", "a,b.t", "a_b.t", "a b"]
    escaped = [n.replace("$", "$$").replace(" ", "\\ ") for n in names]
    rules = "".join(f"{n}:\n\t@echo ran\n" for n in escaped)
    done = compare(tmp_path, home, rules, names[:4])
    assert done.stdout == b"ran\n" * 4
    [event] = history(home)
    assert event["command"] == " ".join(names[:4])
    assert [t["name"] for t in event["make_targets"]] == names[:4]


@pytest.mark.parametrize("kind", ["dev-zero-link", "directory"])
def test_a_decision_that_is_not_a_regular_file_is_never_read(
    tmp_path: Path, home: Path, kind: str
) -> None:
    state = home / ".config" / "send_metrics" / "metrics.toml"
    state.parent.mkdir(parents=True)
    if kind == "dev-zero-link":
        state.symlink_to("/dev/zero")
    else:
        state.mkdir()
    done = compare(tmp_path, home, "all:\n\t@echo hi\n", [], "undecided", traced=False)
    assert done.stdout == b"hi\n"


# ---- wrap's inner make ----


@pytest.mark.parametrize("state", ["undecided", "yes"])
def test_wrap_under_export_with_an_operator_app(tmp_path: Path, home: Path, state: str) -> None:
    work = tmp_path / "proj"
    work.mkdir()
    (work / "send_metrics.toml").write_text('app = "devstack"\n')
    if state == "yes":
        assert sm("opt-in", "--yes", cwd=work).returncode == 0
    makefile = (
        "export\nSHELL := /bin/bash\n"
        "dev.%: ; +@send_metrics wrap --make='$(MAKE)' $@\n"
        "impl-dev.up: impl-dev.deps\n\t@echo up $$SHLVL\n"
        "impl-dev.deps:\n\t@echo deps; env | grep -c '^_sm' || true\n"
    )
    (work / "Makefile").write_text(makefile)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{BASE_PATH}"}
    wrapped = subprocess.run(
        ["make", "dev.up"], cwd=work, env=env, capture_output=True, timeout=60, check=False
    )
    direct = subprocess.run(
        ["make", "--no-print-directory", "impl-dev.up"],
        cwd=work,
        env={**env, "SEND_METRICS_ACTIVE": "1"},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (wrapped.returncode, wrapped.stdout) == (0, direct.stdout), wrapped.stderr
    assert wrapped.stdout.startswith(b"deps\n0\nup ")
    events = history(home, "devstack")
    if state == "yes":
        [event] = events
        assert event["exit_code"] == 0
        assert [t["name"] for t in event["make_targets"]] == ["impl-dev.deps", "impl-dev.up"]
    else:
        assert events == []


# ---- hostile paths and names ----

TEXT = st.text(
    alphabet=st.sampled_from(
        [chr(c) for c in range(0x21, 0x7F) if chr(c) != "/"] + [" ", "é", "ß", "→", "日"]
    ),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", ".."))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(project=TEXT, home_name=TEXT, cache_name=TEXT, goal=TEXT)
def test_hostile_paths_and_goals_change_nothing(
    tmp_path: Path, home: Path, project: str, home_name: str, cache_name: str, goal: str
) -> None:
    """HOME, XDG_CACHE_HOME, the project directory and a goal drawn from printable ASCII and
    some UTF-8: the recipe's outcome is the bare one, and nothing else runs (no stray file)."""
    root = tmp_path / "h"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir()
    odd_home = root / ("home" + home_name)
    (odd_home / ".config").mkdir(parents=True)
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{BASE_PATH}",
        "HOME": str(odd_home),
        "XDG_CONFIG_HOME": str(odd_home / ".config"),
        "XDG_CACHE_HOME": str(root / ("cache" + cache_name)),
        "XDG_DATA_HOME": str(odd_home / "data"),
        "XDG_STATE_HOME": str(odd_home / "state"),
        "LC_ALL": "C.UTF-8",
    }
    assert sm("opt-in", "--yes", env=env).returncode == 0
    work = root / ("p" + project)
    escaped = goal.replace("$", "$$").replace(" ", "\\ ").replace("#", "\\#")
    escaped = escaped.replace(":", "\\:").replace("%", "\\%").replace(";", "\\;")
    body = f"all:\n\t@echo all ran\n{escaped}:\n\t@echo goal ran > goal.txt\n"
    args = ["all"] if any(c in goal for c in "=\\") else ["all", goal]
    bare = run_make(work, {"Makefile": body}, args, env, include=False)
    included = run_make(work, {"Makefile": body}, args, env, include=True)
    assert included == bare
    for _ in range(600):  # the watcher, if one started, ends and removes its trace
        cache = root / ("cache" + cache_name) / "send_metrics-make"
        if not cache.exists() or not any(cache.iterdir()):
            break
        time.sleep(0.05)
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(("home", "p"))) in (
        [],
        ["cache" + cache_name],
    )
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()


def test_a_project_directory_that_injects_commands(tmp_path: Path, home: Path) -> None:
    """The issue's example: a directory named `x;touch${IFS}PWNED;#`."""
    work = tmp_path / "x;touch${IFS}PWNED;#"
    env = prepare("yes", home)
    bare = run_make(work, {"Makefile": "all:\n\t@echo ran\n"}, [], env, include=False)
    included = run_make(work, {"Makefile": "all:\n\t@echo ran\n"}, [], env, include=True)
    wait_for_watchers(home)
    assert included == bare and bare.stdout == b"ran\n"
    assert not list(tmp_path.rglob("PWNED"))
    [event] = history(home)  # traced all the same: only the relative include line reaches sh
    assert event["command"] == "all"


# ---- the event's timing ----


def test_include_mode_duration_is_make_s_own_lifetime(tmp_path: Path, home: Path) -> None:
    """No longer than make lived: from its start time in /proc (the kernel's, taken at fork)
    to when this test saw it exit (an upper bound), plus the 10 ms step of the kernel's
    clocks; no shorter than its one recipe line sleeps. (How close it comes is measured, not
    asserted: docs/performance.md.)"""
    opt_in()
    work = tmp_path / "proj"
    work.mkdir()
    shutil.copy(snippet_path(), work / "send_metrics.mk")
    (work / "Makefile").write_text("all:\n\t@sleep 0.3\n-include send_metrics.mk\n")
    env = prepare("yes", home)
    with subprocess.Popen(["make"], cwd=work, env=env) as proc:
        stat = Path(f"/proc/{proc.pid}/stat").read_text().rpartition(")")[2].split()
        started = int(stat[19]) / os.sysconf("SC_CLK_TCK")
        assert proc.wait(timeout=60) == 0
        ended = time.clock_gettime(time.CLOCK_BOOTTIME)
    lived = (ended - started) * 1000
    wait_for_watchers(home)
    [event] = history(home)
    assert 300 <= event["duration_ms"] <= lived + 10, (event["duration_ms"], lived)
    assert event["cpu_user_s"] is None and event["cpu_system_s"] is None
    assert event["peak_memory_bytes"] is None


def test_a_makefile_that_expands_shellflags_is_not_traced(tmp_path: Path, home: Path) -> None:
    body = "SHELL := /bin/bash\nall:\n\t@echo '$(.SHELLFLAGS)' \"$(value .SHELLFLAGS)\"\n"
    done = compare(tmp_path, home, body, [], traced=False)
    assert done.stdout == b"-c -c\n"


# ---- the attacks of round 1 (/tmp/attack1): big targets, -j, bash options, Ctrl-C ----


def test_a_target_with_thousands_of_prerequisites(tmp_path: Path, home: Path) -> None:
    """4,000 prerequisites of ~42 characters: `$^` alone is 170 KB, over Linux's 128 KiB per
    argument; the line passes only the first few."""
    deps = " ".join(f"src/module_{i:04d}/implementation_file_{i:04d}.o" for i in range(4000))
    body = f"DEPS := {deps}\nall: $(DEPS)\n\t@echo linked\n$(DEPS):\n\t@:\n"
    done = compare(tmp_path, home, body, [])
    assert (done.status, done.stdout) == (0, b"linked\n")
    [event] = history(home)
    assert [t["name"] for t in event["make_targets"]] == ["all"]


PARALLEL_SIGNALS = """
all: a b
a:
\t@sleep 0.6; exit 143
b:
\t@sleep 0.2; kill -TERM $$$$
"""


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_parallel_lines_keep_their_own_signal_messages(
    tmp_path: Path, home: Path, shell: str
) -> None:
    """Under -j, line b's `Terminated` must not make line a's `exit 143` look like a signal."""
    done = compare(tmp_path, home, f"SHELL := {shell}\n" + PARALLEL_SIGNALS, ["-j2", "-k"])
    assert b"Error 143" in done.stderr and b"Terminated" in done.stderr


@pytest.mark.parametrize(
    "setting",
    [
        "export SHELLOPTS := xtrace\n",
        "export BASHOPTS := xpg_echo\n",
        "export BASH_ENV := helpers.sh\n",
        "deploy: export SHELLOPTS := xtrace:errexit\n",
        "deploy: export BASH_ENV := helpers.sh\n",
    ],
)
def test_bash_options_and_startup_files_are_not_traced(
    tmp_path: Path, home: Path, setting: str
) -> None:
    """They would apply to the shim's own code too (xtrace lines, a helper read twice)."""
    body = (
        "SHELL := /bin/bash\n" + setting + "all: plain deploy\nplain:\n\t@echo plain\n"
        "deploy:\n\t@echo deploying; false\n"
    )
    files = {"Makefile": body, "helpers.sh": "echo helper read >&2\n"}
    done = compare(tmp_path, home, files, ["-k"], traced=setting.startswith("deploy"))
    assert done.status == 2 and b"deploying\n" in done.stdout


def run_interrupted(
    work: Path, files: dict[str, str], env: dict[str, str], include: bool
) -> tuple[int, bytes, list[str]]:
    """make in its own process group, SIGINT to the whole group 0.7 s in (a Ctrl-C)."""
    run_make(work, files, ["--version"], env, include)  # writes the files
    with subprocess.Popen(
        ["make"],
        cwd=work,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    ) as proc:
        time.sleep(0.7)
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    time.sleep(2.5)  # anything left running finishes
    return proc.returncode, out, sorted(snapshot(work))


@pytest.mark.parametrize(
    "recipe",
    [
        'trap "echo caught-INT" INT; sleep 2 & wait; echo cleanup-done; touch cleaned',
        "sleep 2; touch cleaned",
    ],
)
@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_ctrl_c_looks_the_same_to_make(tmp_path: Path, home: Path, recipe: str, shell: str) -> None:
    """A recipe that traps INT and exits 0 ends the make quietly (no `Interrupt`); one that
    dies by it gets make's own `Interrupt` line."""
    env = prepare("yes", home)
    files = {"Makefile": f"SHELL := {shell}\nall:\n\t@{recipe}\n"}
    bare = run_interrupted(tmp_path / "work", files, env, include=False)
    included = run_interrupted(tmp_path / "work", files, env, include=True)
    assert included == bare
    assert (b"Interrupt" in bare[1]) == recipe.startswith("sleep")


STALE = "shell:\n\t@echo shell\nbuild:\n\t@echo build\n"


@pytest.mark.parametrize("state", ["yes", "opted-out"])
def test_a_stale_make_run_variable_never_recreates_a_trace(
    tmp_path: Path, home: Path, state: str
) -> None:
    """SEND_METRICS_MAKE_RUN left in a long-lived process a recipe started, after its make
    ended: later makes from there run untraced and leave no file."""
    opt_in()
    if state == "opted-out":
        assert sm("opt-out").returncode == 0
    cache = home / ".cache" / "send_metrics-make"
    cache.mkdir(parents=True, exist_ok=True)
    stale = {"SEND_METRICS_MAKE_RUN": str(cache / "4242.trace")}
    compare(tmp_path, home, STALE, ["build"], state="yes", traced=False, extra_env=stale)
    assert list(cache.iterdir()) == []


def test_files_the_shim_creates_are_private(tmp_path: Path, home: Path) -> None:
    """The trace and the signal-message files are 0600 whatever the recipe's umask; the
    recipe keeps its umask."""
    work = tmp_path / "proj"
    work.mkdir()
    shutil.copy(snippet_path(), work / "send_metrics.mk")
    (work / "Makefile").write_text(
        'all: a b\na b:\n\t@umask > umask.$@; stat -c %a "$$SEND_METRICS_MAKE_RUN"* > modes.$@\n'
        "-include send_metrics.mk\n"
    )
    env = prepare("yes", home)
    for args in ([], ["-j2"]):
        done = subprocess.run(["make", *args], cwd=work, env=env, check=False)
        assert done.returncode == 0
        wait_for_watchers(home)
        for name in ("a", "b"):
            assert (work / f"umask.{name}").read_text() == "0022\n"
            modes = (work / f"modes.{name}").read_text().split()
            assert modes and set(modes) == {"600"}, (args, modes)


VARIABLES = "FOO = 1\nall:\n\t@:$(info $(sort $(.VARIABLES)))\n"


@pytest.mark.parametrize("state", ["undecided", "do-not-track", "not-installed"])
def test_untraced_makes_list_only_their_own_variables(
    tmp_path: Path, home: Path, state: str
) -> None:
    done = compare(tmp_path, home, VARIABLES, [], state)
    assert b"FOO" in done.stdout and b"_sm" not in done.stdout


FORCED = 'all:\n\t@echo all\n%.mk: FORCE\n\t@echo "generating $@"\nFORCE:\n'


@pytest.mark.parametrize("state", ["undecided", "yes"])
def test_a_pattern_rule_never_remakes_the_snippet(tmp_path: Path, home: Path, state: str) -> None:
    """(Naming the snippet itself as a goal remains a difference: README.)"""
    done = compare(tmp_path, home, FORCED, [], state)
    assert done.stdout == b"all\n"
