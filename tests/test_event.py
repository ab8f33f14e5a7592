"""The event: every field documented, git and machine facts, nothing secret, preview and debug."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from send_metrics.event import event as event_module
from send_metrics.event.event import Event, schema
from send_metrics.facts import facts
from tests.helpers import (
    SEND_METRICS,
    assert_no_traceback,
    data_db,
    delivered_ids,
    history,
    opt_in,
    sm,
    validate,
)

GIT_ENV = {
    "GIT_AUTHOR_NAME": "A",
    "GIT_AUTHOR_EMAIL": "a@example.org",
    "GIT_COMMITTER_NAME": "A",
    "GIT_COMMITTER_EMAIL": "a@example.org",
}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
    )
    return done.stdout.strip()


def make_repo(path: Path, branch: str = "main") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", branch)
    (path / "file.txt").write_text("one\n")
    git(path, "add", "file.txt")
    git(path, "commit", "-q", "-m", "first")
    return path


def test_schema_documents_exactly_the_fields_the_code_sends() -> None:
    documented = set(schema()["properties"])
    sent = set(Event.__annotations__)
    assert documented == sent
    assert set(schema()["required"]) == sent
    assert schema()["additionalProperties"] is False
    incomplete = [
        name
        for name, spec in schema()["properties"].items()
        if not (spec["description"] and spec["x-group"] and spec["x-identifying"])
    ]
    assert incomplete == []


def test_schema_command_prints_the_shipped_schema() -> None:
    result = sm("schema")
    assert result.returncode == 0
    assert json.loads(result.stdout) == schema()


def test_an_event_from_a_real_run_in_a_repo(home: Path, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    git(repo, "remote", "add", "origin", "https://example.org/org/repo.git")
    opt_in()
    subprocess.run([SEND_METRICS, "run", "--", "sh", "-c", "exit 0"], cwd=repo, check=True)
    [off] = history(home)
    assert off["git_remote_hash"] is None  # off unless the operator turns it on
    config = tmp_path / "on.toml"
    config.write_text("[collect]\ngit_remote_hash = true\n")
    env = {**os.environ, "SEND_METRICS_CONFIG": str(config)}
    run = [SEND_METRICS, "run", "--", "sh", "-c", "exit 0"]
    subprocess.run(run, cwd=repo, check=True, env=env)
    assert len(history(home)) == 1  # a field more: the earlier yes does not cover it
    subprocess.run([SEND_METRICS, "opt-in", "--yes"], check=True, env=env, capture_output=True)
    subprocess.run(run, cwd=repo, check=True, env=env)
    event = history(home)[-1]
    assert event["command"] == "sh" and event["command_args"] is None
    assert event["git_work_tree"] is True and event["git_on_default_branch"] is True
    assert event["git_dirty"] is False and event["git_behind_upstream"] is None
    expected = facts.remote_hash("https://example.org/org/repo", "send_metrics")
    assert event["git_remote_hash"] == expected
    assert event["os"] == "linux" and event["cpu_count"] == os.cpu_count()
    assert event["memory_total_bytes"] > 0 and event["peak_memory_bytes"] > 0


@pytest.mark.parametrize("branch", ["main", "master"])
def test_git_default_branch_main_and_master(tmp_path: Path, branch: str) -> None:
    repo = make_repo(tmp_path / "r", branch)
    found = facts.git_facts("app", repo)
    assert found.work_tree is True and found.on_default_branch is True
    assert found.commit_time and found.commit_time.endswith("+00:00")
    git(repo, "checkout", "-q", "-b", "feature")
    assert facts.git_facts("app", repo).on_default_branch is False


def test_git_default_branch_from_the_remote_head(tmp_path: Path) -> None:
    upstream = make_repo(tmp_path / "upstream", "trunk")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(upstream), str(clone))
    found = facts.git_facts("app", clone)
    assert found.on_default_branch is True  # "trunk" is the default because origin/HEAD says so
    assert found.behind_upstream == 0
    (upstream / "file.txt").write_text("two\n")
    git(upstream, "commit", "-q", "-am", "second")
    git(clone, "fetch", "-q")
    assert facts.git_facts("app", clone).behind_upstream == 1
    git(clone, "checkout", "-q", "-b", "main")
    assert facts.git_facts("app", clone).on_default_branch is False


def test_git_detached_dirty_and_no_upstream(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    (repo / "file.txt").write_text("changed\n")
    found = facts.git_facts("app", repo)
    assert found.dirty is True and found.behind_upstream is None and found.remote_hash is None
    git(repo, "stash", "-q")
    git(repo, "checkout", "-q", "--detach")
    found = facts.git_facts("app", repo)
    assert (found.on_default_branch, found.dirty, found.behind_upstream) == (False, False, None)


@pytest.mark.parametrize("layout", ["loose", "packed", "linked worktree", "delta"])
def test_git_facts_read_from_the_files_agree_with_git(tmp_path: Path, layout: str) -> None:
    """Commit time, remotes and the default branch come from `.git`'s files (loose or packed
    objects, a linked worktree's pointers); a commit stored as a delta is asked of git."""
    from send_metrics.facts import gitfiles

    repo = make_repo(tmp_path / "r")
    git(repo, "remote", "add", "upstream", "https://example.org/up/repo.git")
    git(repo, "config", "remote.upstream.fetch", "+refs/heads/*:refs/remotes/upstream/*")
    where = repo
    if layout == "packed":
        git(repo, "gc", "-q")
        assert not any((repo / ".git/objects").glob("??/*"))
    elif layout == "linked worktree":
        git(repo, "worktree", "add", "-q", "-b", "main2", str(tmp_path / "wt"))
        where = tmp_path / "wt"
    elif layout == "delta":
        for i in range(30):  # similar commits, so that gc stores HEAD's as a delta
            git(repo, "commit", "-q", "--allow-empty", "-m", "message " * 200 + str(i))
        git(repo, "gc", "-q", "--aggressive")
        git(repo, "checkout", "-q", "--detach", "HEAD~5")  # the newest is whole, older deltas
    found = facts.git_facts("app", where)
    seconds = int(git(where, "log", "-1", "--format=%ct"))
    dirs = gitfiles.find(where)
    assert dirs is not None
    from_files = gitfiles.commit_time(dirs.common, git(where, "rev-parse", "HEAD"))
    assert from_files == (None if layout == "delta" else seconds)
    assert found.commit_time == time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(seconds))
    assert found.remote_hash == facts.remote_hash("https://example.org/up/repo", "app")
    assert found.on_default_branch is (layout == "loose" or layout == "packed")
    assert found.work_tree is True and found.dirty is False


def test_not_a_repository(tmp_path: Path) -> None:
    found = facts.git_facts("app", tmp_path)
    assert found == facts.GitFacts(work_tree=False)


def test_git_missing_from_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path / "r")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert facts.git_facts("app", repo) == facts.GitFacts()


def fake_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    """A real `git` program first on PATH that does what `script` says."""
    folder = tmp_path / "fake-bin"
    folder.mkdir()
    git = folder / "git"
    git.write_text(f"#!/bin/sh\n{script}\n")
    git.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


def test_git_that_hangs_costs_only_the_git_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "r")
    fake_git(tmp_path, monkeypatch, "exec sleep 30")
    started = time.monotonic()
    found = facts.git_facts("app", repo, timeout=0.3)
    assert found == facts.GitFacts()
    assert time.monotonic() - started < 5  # bounded by the timeout, not by the hang


def test_broken_git_costs_only_the_git_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "r")
    fake_git(tmp_path, monkeypatch, 'echo "error: broken" >&2; exit 1')
    assert facts.git_facts("app", repo) == facts.GitFacts()


def test_remote_credentials_never_reach_the_hash() -> None:
    plain = facts.remote_hash("https://git.example.org/org/repo.git", "app")
    assert facts.remote_hash("https://user:tok@git.example.org/org/repo.git", "app") == plain
    assert facts.remote_hash("https://TOKEN@Git.Example.org/org/repo/", "app") == plain
    assert facts.remote_hash("git@github.com:org/repo.git", "app") == facts.remote_hash(
        "github.com:org/repo", "app"
    )
    assert facts.remote_hash("https://git.example.org/org/repo", "other") != plain


def test_arguments_only_for_allow_listed_commands(home: Path) -> None:
    Path("send_metrics.toml").write_text('[collect]\nallow_args = ["echo"]\n')
    opt_in()
    sm("run", "--", "echo", "visible")
    sm("run", "--", "sh", "-c", "exit 0")
    sm("run", "--name", "echo", "--", "printf", "SECRET")  # named as listed, another program
    sm("run", "--name", "greet", "--", "echo", "hidden")  # the listed program, another name
    events = history(home)
    assert [e["command_args"] for e in events] == [["visible"], None, None, None]


def test_allow_listed_arguments_are_bounded(home: Path) -> None:
    Path("send_metrics.toml").write_text('[collect]\nallow_args = ["echo"]\n')
    opt_in()
    sm("run", "--", "echo", *(["x" * 300] * 100))
    [event] = history(home)
    assert all(len(a) == 200 for a in event["command_args"])
    assert len(json.dumps(event["command_args"])) <= event_module.MAX_ARGS_BYTES
    assert len(json.dumps(event)) < 32_000


def test_an_event_stays_under_32_kb_in_bytes_with_every_field_at_its_longest(home: Path) -> None:
    """Multi-byte characters count as the bytes they take once serialised: an emoji is 12
    bytes of JSON (a surrogate pair), a control character 6; Segment's limit is 32 KB."""
    long = "\U0001f600" * 300
    app = long[:60]  # it names a directory too: 240 bytes
    Path("send_metrics.toml").write_text(
        f'app = "{app}"\napp_version = "{long}"\n[collect]\nallow_args = ["{long}", "echo"]\n'
    )  # the name and the program run are both listed: arguments are collected
    opt_in()
    sm("run", "--name", long, "--", "echo", *(['\x01\x02"\\' * 100] * 20), *([long] * 100))
    [event] = history(home, app)
    assert event["command_args"] and len(event["command_args"]) < 200
    from send_metrics.delivery import sinks

    for body in (json.dumps(sinks.segment_message(event)), json.dumps(event)):
        assert len(body.encode("utf-8")) < 32_000, len(body)


def test_name_and_basename_never_a_path(home: Path) -> None:
    opt_in()
    sm("run", "--", "/bin/sh", "-c", "true")
    sm("run", "--name", "custom.name", "--", "true")
    assert [e["command"] for e in history(home)] == ["sh", "custom.name"]


def test_preview_prints_the_event_and_stores_nothing(home: Path) -> None:
    result = sm("preview", "--", "sh", "-c", "echo out; exit 3")
    assert result.returncode == 3
    out, _, doc = result.stdout.partition("\n")
    assert out == "out"
    event = validate(json.loads(doc))
    assert event["exit_code"] == 3 and event["command"] == "sh"
    assert not data_db(home).exists()
    assert not (home / ".config").exists()


def test_dry_run_on_run_and_wrap(home: Path, tmp_path: Path) -> None:
    opt_in()
    result = sm("run", "--dry-run", "--", "true")
    event = validate(json.loads(result.stdout))
    assert event["anonymous_id"] != "00000000-0000-4000-8000-000000000000"
    (tmp_path / "Makefile").write_text("impl-x: ; @echo recipe\n")
    wrapped = sm("wrap", "--dry-run", "-f", str(tmp_path / "Makefile"), "x")
    assert wrapped.stdout.startswith("recipe\n")
    assert validate(json.loads(wrapped.stdout.partition("\n")[2]))["command"] == "x"
    assert history(home) == []


def test_debug_prints_instead_of_sending(home: Path, collector) -> None:
    collector.write_config("http")
    opt_in()
    result = sm("run", "--", "true", env={**os.environ, "SEND_METRICS_DEBUG": "1"})
    assert result.returncode == 0
    line = result.stderr.strip()
    assert line.startswith("send_metrics debug: ")
    validate(json.loads(line.removeprefix("send_metrics debug: ")))
    assert collector.requests == []


CANARY = "c4n4ry-s3cr3t"


def test_no_canary_leaves_the_process(tmp_path: Path, collector, monkeypatch) -> None:
    """Secrets in arguments, environment, remote URL, branch, path and user name never leave."""
    home = tmp_path / f"home-{CANARY}-user"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local/share"))
    monkeypatch.setenv("USER", f"user-{CANARY}")
    monkeypatch.setenv("LOGNAME", f"user-{CANARY}")
    monkeypatch.setenv("API_TOKEN", f"env-{CANARY}")
    repo = make_repo(tmp_path / f"work-{CANARY}-dir")
    git(repo, "checkout", "-q", "-b", f"feature/{CANARY}")
    git(repo, "remote", "add", "origin", f"https://bob:{CANARY}@git.example.org/{CANARY}.git")
    (repo / "Makefile").write_text(
        "dev.%: ; +@send_metrics wrap --make='$(MAKE)' $@\nimpl-dev.%: ; @true\n"
    )
    collector.write_config("http", repo)
    subprocess.run([SEND_METRICS, "opt-in", "--yes"], cwd=repo, check=True, capture_output=True)
    outputs = [
        subprocess.run(
            [SEND_METRICS, "run", "--", "sh", "-c", f": {CANARY}", f"arg-{CANARY}"],
            cwd=repo,
            capture_output=True,
            text=True,
        ),
        subprocess.run(
            ["make", "dev.x", f"TOKEN={CANARY}"], cwd=repo, capture_output=True, text=True
        ),
        subprocess.run(
            [SEND_METRICS, "run", "--", str(repo / "no-such") + CANARY],
            cwd=repo,
            capture_output=True,
            text=True,
        ),
    ]
    for done in outputs[:2]:
        assert done.returncode == 0, done.stderr
        assert CANARY not in done.stdout + done.stderr
    assert len(collector.ok()) == 2
    for request in collector.requests:
        assert CANARY not in request.body.decode() + json.dumps(request.headers)
    events = history(home)
    assert len(events) == 2
    assert events[0]["git_work_tree"] is True and events[0]["git_on_default_branch"] is False
    for suffix in ("", "-wal"):
        raw = Path(f"{data_db(home)}{suffix}")
        if raw.exists():
            assert CANARY.encode() not in raw.read_bytes()
    assert delivered_ids(collector.ok()) == [e["message_id"] for e in events]
    assert_no_traceback(outputs[2].stderr)


def test_a_remote_url_that_is_not_utf8_is_still_hashed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    with open(repo / ".git" / "config", "ab") as fh:
        fh.write(b'[remote "origin"]\n\turl = https://example.org/r\xe9.git\n')
    found = facts.git_facts("app", repo)
    assert found.work_tree is True and found.commit_time is not None
    assert found.remote_hash and len(found.remote_hash) == 16


def test_a_git_file_with_a_nul_byte_costs_nothing_but_what_git_cannot_say(
    tmp_path: Path,
) -> None:
    real = tmp_path / "real"
    work = tmp_path / "w"
    work.mkdir()
    git(work, "init", "-q", f"--separate-git-dir={real}")
    git(work, "commit", "-q", "--allow-empty", "-m", "x")
    (work / ".git").write_bytes(f"gitdir: {real}\0junk\n".encode())
    found = facts.git_facts("app", work)
    assert found.work_tree is True  # git itself reads the file up to the NUL


def test_a_committer_date_beyond_the_calendar_is_unknown(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    tree = git(repo, "write-tree")
    body = f"tree {tree}\nauthor a <a@b> 1 +0000\ncommitter a <a@b> 99999999999999999 +0000\n\nm\n"
    done = subprocess.run(
        ["git", "hash-object", "-t", "commit", "-w", "--stdin", "--literally"],
        cwd=repo,
        input=body,
        capture_output=True,
        text=True,
        check=True,
    )
    git(repo, "update-ref", "refs/heads/main", done.stdout.strip())
    found = facts.git_facts("app", repo)
    assert found.work_tree is True and found.commit_time is None


def test_a_fifo_among_the_packs_is_never_waited_on(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    git(repo, "gc", "-q")
    os.mkfifo(repo / ".git" / "objects" / "pack" / "pack-0000.idx")
    started = time.monotonic()
    found = facts.git_facts("app", repo, timeout=30.0)
    assert found.work_tree is True and found.commit_time is not None
    assert time.monotonic() - started < 15.0  # a FIFO would hold it to the 30 s timeout


@pytest.mark.parametrize(
    ("closed", "told"), [(">&-", ">&2"), ("2>&-", "")], ids=["stdout", "stderr"]
)
def test_a_closed_stdout_or_stderr_keeps_the_status(home: Path, closed: str, told: str) -> None:
    opt_in()
    script = f'send_metrics run -- sh -c "exit 4" {closed}; echo "rc=$?" {told}'
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False)
    assert "rc=4" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert [e["exit_code"] for e in history(home)] == [4]


@pytest.mark.parametrize(
    "epoch",
    [
        0.0,
        1.0005,
        1764000000.9995,
        1764000000.123456,
        1764000000.9999996,
        253402300799.999,
        86399.5,
    ],
)
def test_start_times_are_written_as_datetime_writes_them(epoch: float) -> None:
    from datetime import UTC, datetime

    expected = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")
    assert event_module.iso_utc(epoch) == expected
