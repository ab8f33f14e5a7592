"""Consent: asked once in a real terminal, remembered safely, every opt-out honoured."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pexpect
import pytest

from tests.helpers import (
    SEND_METRICS,
    assert_no_traceback,
    data_db,
    finish,
    history,
    opt_in,
    read_only,
    sm,
    spawn,
    state_file,
)

PROMPT = r"\[y/N\] "


def answer_with(child: pexpect.spawn, answer: str) -> None:
    """Answer the question as a person would: a line, end of input (`eof`) or Ctrl-C."""
    if answer == "eof":
        child.sendeof()
    elif answer == "ctrl-c":
        child.sendintr()
    else:
        child.sendline(answer)


@pytest.mark.parametrize(
    ("answer", "granted"),
    [
        ("y", True),
        ("Yes", True),
        ("", False),
        ("n", False),
        ("eof", False),
        ("ctrl-c", False),
    ],
    ids=["y", "Yes", "empty", "n", "eof", "ctrl-c"],
)
def test_prompt_answers(home: Path, answer: str, granted: bool) -> None:
    child = spawn("run", "--", "sh", "-c", "echo ran; exit 3")
    child.expect("ran")
    child.expect(PROMPT)
    text = child.before
    answer_with(child, answer)
    rest = finish(child)
    assert child.exitstatus == 3, rest
    assert "Traceback" not in rest
    # The short question says where the full list is and how to change one's mind; the yes
    # covers the full list all the same.
    from send_metrics.event.event import collected_fields

    flat = " ".join(text.split())
    assert "`send_metrics opt-in --details`" in flat and "`send_metrics opt-out`" in flat
    path = state_file(home)
    saved = tomllib.loads(path.read_text())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert saved["decision"] == ("granted" if granted else "declined")
    assert saved["consent_version"] == 1
    assert ("anonymous_id" in saved) is granted
    if granted:
        assert stat.S_IMODE(data_db(home).stat().st_mode) == 0o600
    events = history(home)
    assert len(events) == (1 if granted else 0)
    if granted:
        assert events[0]["anonymous_id"] == saved["anonymous_id"]
        assert events[0]["exit_code"] == 3
        assert tuple(saved["disclosure"]["fields"]) == collected_fields(False)


def test_a_background_job_is_not_asked(home: Path) -> None:
    """With job control a background job reading the terminal would be stopped (SIGTTIN)."""
    child = pexpect.spawn(
        "sh",
        ["-c", f"set -m; {SEND_METRICS} run -- sh -c 'exit 4' & wait $!; echo status=$?"],
        timeout=20,
        encoding="utf-8",
    )
    out = finish(child)
    assert "status=4" in out and "[y/N]" not in out
    assert not state_file(home).exists()


def test_make_j_in_a_terminal_asks_once_and_the_answer_counts_for_later_jobs(
    home: Path, tmp_path: Path
) -> None:
    """make -j2, no decision: only the job holding the terminal asks; a job that ends after
    the answer uses it (its own stdin is not the terminal: make gives that to one job)."""
    (tmp_path / "Makefile").write_text(
        "dev.%: ; +@send_metrics wrap --make='$(MAKE)' -f '$(firstword $(MAKEFILE_LIST))' $@\n"
        "impl-dev.a: ; @sleep 0.2\nimpl-dev.b: ; @sleep 2\n"
    )
    child = pexpect.spawn(
        "make",
        ["-j2", "-f", str(tmp_path / "Makefile"), "dev.a", "dev.b"],
        timeout=20,
        encoding="utf-8",
    )
    child.expect(PROMPT)
    child.sendline("y")
    out = finish(child)
    assert child.exitstatus == 0
    assert out.count("[y/N]") == 0  # the only question was consumed by expect() above
    assert sorted(e["command"] for e in history(home)) == ["dev.a", "dev.b"]


def test_nobody_is_asked_twice(home: Path) -> None:
    first = spawn("run", "--", "true")
    first.expect(PROMPT)
    first.sendline("n")
    finish(first)
    second = spawn("run", "--", "true")
    out = finish(second)
    assert "[y/N]" not in out
    assert second.exitstatus == 0


def test_raised_consent_version_asks_again(home: Path, tmp_path: Path) -> None:
    opt_in()
    (Path.cwd() / "send_metrics.toml").write_text(
        '[consent]\nversion = 2\nprivacy_url = "https://example.org/p"\n'
    )
    child = spawn("run", "--", "true")
    child.expect(PROMPT)
    assert "https://example.org/p" in child.before
    child.sendline("y")
    finish(child)
    assert tomllib.loads(state_file(home).read_text())["consent_version"] == 2
    assert len(history(home)) == 1


@pytest.mark.parametrize(
    "env",
    [
        {"CI": "true"},
        {"GITHUB_ACTIONS": "true"},
        {"DO_NOT_TRACK": "1"},
        {"SEND_METRICS_DISABLED": "1"},
        {"DO_NOT_TRACK": "yes"},
    ],
    ids=["CI", "github", "DO_NOT_TRACK", "SEND_METRICS_DISABLED", "DO_NOT_TRACK=yes"],
)
def test_no_prompt_and_nothing_written_in_a_terminal_when_told(
    home: Path, env: dict[str, str]
) -> None:
    child = spawn("run", "--", "sh", "-c", "exit 4", env=env)
    out = finish(child)
    assert child.exitstatus == 4
    assert "[y/N]" not in out
    assert [p for p in home.rglob("*") if not p.is_dir()] == []
    assert not data_db(home).exists()


@pytest.mark.parametrize("env", [{"DO_NOT_TRACK": "1"}, {"SEND_METRICS_DISABLED": "true"}])
def test_opt_out_variables_override_a_grant(home: Path, env: dict[str, str]) -> None:
    opt_in()
    before = state_file(home).read_bytes()
    result = sm("run", "--", "true", env={**os.environ, **env})
    assert result.returncode == 0
    assert history(home) == []
    assert state_file(home).read_bytes() == before


@pytest.mark.parametrize("value", ["0", "false", ""])
def test_do_not_track_zero_does_not_disable(home: Path, value: str) -> None:
    opt_in()
    sm("run", "--", "true", env={**os.environ, "DO_NOT_TRACK": value})
    assert len(history(home)) == 1


def test_piped_stdin_never_prompts_nor_writes(home: Path) -> None:
    result = sm("run", "--", "sh", "-c", "cat; exit 5", input="data\n")
    assert result.returncode == 5
    assert result.stdout == "data\n"
    assert result.stderr == ""
    assert not state_file(home).exists()
    assert not data_db(home).exists()


def test_opt_out_deletes_id_queue_and_history_and_opt_in_makes_a_new_id(home: Path) -> None:
    opt_in()
    first_id = tomllib.loads(state_file(home).read_text())["anonymous_id"]
    sm("run", "--", "true")
    assert data_db(home).exists()
    out = sm("opt-out")
    assert out.returncode == 0
    assert "deleted" in out.stdout
    saved = tomllib.loads(state_file(home).read_text())
    assert saved["decision"] == "declined" and "anonymous_id" not in saved
    assert not data_db(home).exists()
    sm("run", "--", "true")
    assert history(home) == []
    opt_in()
    second_id = tomllib.loads(state_file(home).read_text())["anonymous_id"]
    assert second_id != first_id


def test_opt_in_shows_the_question_and_asks(home: Path) -> None:
    child = spawn("opt-in")
    child.expect(r"Keep usage metrics on this machine\? \[y/N\] ")  # the local sink
    assert "send_metrics opt-in --details" in child.before
    child.sendline("y")
    out = finish(child)
    assert child.exitstatus == 0
    assert "usage metrics are on" in out
    assert tomllib.loads(state_file(home).read_text())["decision"] == "granted"


def test_opt_in_after_a_no_asks_again(home: Path) -> None:
    first = spawn("run", "--", "true")
    first.expect(PROMPT)
    first.sendline("")  # no earlier yes: recorded as a no
    finish(first)
    assert tomllib.loads(state_file(home).read_text())["decision"] == "declined"
    child = spawn("opt-in")
    child.expect(PROMPT)
    child.sendline("y")
    assert "usage metrics are on" in finish(child)
    assert tomllib.loads(state_file(home).read_text())["decision"] == "granted"


def test_opt_in_details_lists_every_field_the_yes_covers(home: Path) -> None:
    from send_metrics.event.event import collected_fields

    child = spawn("opt-in", "--details")
    child.expect(PROMPT)
    flat = " ".join(child.before.split())
    assert [f for f in collected_fields(False) if f not in flat] == []
    child.sendline("yes")
    finish(child)
    saved = tomllib.loads(state_file(home).read_text())
    assert tuple(saved["disclosure"]["fields"]) == collected_fields(False)


def test_opt_in_details_writes_the_field_list_on_stdout(home: Path, tmp_path: Path) -> None:
    """`opt-in --details > file` (or `| less`): the list goes to stdout, the question to the
    terminal; command_args is listed with the commands it is kept for (none: always null)."""
    from send_metrics.event.event import collected_fields

    listing = tmp_path / "details.txt"
    child = pexpect.spawn(
        "sh", ["-c", '"$0" opt-in --details > "$1"', SEND_METRICS, str(listing)],
        timeout=20, encoding="utf-8", dimensions=(24, 80),
    )  # fmt: skip
    child.expect(PROMPT)
    assert "Each run records" not in child.before
    child.sendline("y")
    finish(child)
    flat = " ".join(listing.read_text().split())
    assert [f for f in collected_fields(False) if f not in flat] == []
    assert "command_args (only for the commands the operator allow-listed: none" in flat
    assert "Never: arguments," in flat
    Path("send_metrics.toml").write_text('[collect]\nallow_args = ["make"]\n')
    sm("opt-in", "--yes")
    again = sm("opt-in", "--details")  # under a yes: the list, then "already on"
    flat = " ".join(again.stdout.split())
    assert "command_args (only for the commands the operator allow-listed: make)" in flat
    assert "Never: arguments (except those of: make)" in flat and "already on" in flat


def test_the_lines_after_an_answer_wrap_at_word_boundaries(home: Path) -> None:
    child = pexpect.spawn(
        SEND_METRICS, ["run", "--", "true"], timeout=20, encoding="utf-8", dimensions=(24, 80)
    )
    child.expect(PROMPT)
    child.sendline("n")
    lines = finish(child).replace("\r\n", "\n").strip("\n").split("\n")
    assert "Settings:" in " ".join(lines)
    assert all(len(line) < 80 or " " not in line for line in lines), lines
    assert all(line.count("`") % 2 == 0 for line in lines), lines


# ---- the question fits one screen: a real 80x24 terminal ----

SCREENS = {
    "default-local": "",
    "segment": '[consent]\nprivacy_url = "https://example.org/devstack-metrics"\n'
    'retention = "kept for one year"\n[report]\nsink = "segment"\nwrite_key = "k"\n',
    "http-widest": 'app = "devstack"\n[consent]\nprivacy_url = "https://example.org/privacy"\n'
    'retention = "kept for 13 months, then deleted"\n[report]\nsink = "http"\n'
    'endpoint = "https://metrics.example.org/hook"\n'
    '[collect]\ngit_remote_hash = true\nallow_args = ["deploy", "release"]\n',
}


def _screen_of_the_question(child: pexpect.spawn, command_output: str) -> list[str]:
    """The lines the question took on the terminal: from the command's output to the prompt."""
    child.expect(command_output)
    child.expect(PROMPT)
    shown = (child.before + child.after).replace("\r\n", "\n").split("\n")
    return shown[1:]  # the rest of the command's own last line


@pytest.mark.parametrize("config", list(SCREENS), ids=list(SCREENS))
@pytest.mark.parametrize("asking_again", [False, True], ids=["first", "asking-again"])
def test_the_question_fits_one_80x24_screen_and_nothing_wraps(
    home: Path, config: str, asking_again: bool
) -> None:
    toml = Path("send_metrics.toml")
    if asking_again:  # a yes to the narrowest disclosure, then a wider one: asked again
        toml.write_text('app = "devstack"\n' if 'app = "devstack"' in SCREENS[config] else "")
        opt_in()
    if SCREENS[config]:
        toml.write_text(SCREENS[config])
    elif asking_again:
        toml.write_text("[collect]\ngit_remote_hash = true\n")
    child = pexpect.spawn(
        SEND_METRICS,
        ["run", "--", "sh", "-c", "stty size; echo done"],
        timeout=20,
        encoding="utf-8",
        dimensions=(24, 80),
    )
    child.expect("24 80")
    lines = _screen_of_the_question(child, "done")
    child.sendline("n" if not asking_again else "")
    finish(child)
    assert lines[-1].endswith("[y/N] ")
    assert len(lines) <= 12, "\n".join(lines)
    assert max(len(line) for line in lines) < 80, "\n".join(lines)
    text = " ".join(" ".join(lines).split())
    assert ("Asking again:" in text) is asking_again
    for needed in (
        "Each run:",
        "Never:",
        "`send_metrics opt-in --details`",
        "`send_metrics opt-out`",
        "DO_NOT_TRACK=1",
    ):
        assert needed in text, (needed, text)
    if config == "default-local":  # the default app asks about the user's commands, not "its"
        assert text.startswith(("send_metrics would like", "Asking again"))
        assert "its commands" not in text and "nothing is sent anywhere" in text
    else:
        assert "example.org" in text  # where it goes and the privacy URL


LONG_RETENTION = (
    "raw events are kept for 13 months, then aggregated into weekly totals and the raw "
    "events deleted"
)


@pytest.mark.parametrize("url_length", [70, 100], ids=["url-fits", "url-longer-than-a-line"])
@pytest.mark.parametrize("asking_again", [False, True], ids=["first", "asking-again"])
def test_shortening_the_question_never_hides_the_destination_or_the_privacy_url(
    home: Path, url_length: int, asking_again: bool
) -> None:
    """Long retention, a long privacy URL, allow-listed commands and the remote hash at 80x24:
    other text is cut ("..."), never the host or the URL. A URL that cannot fit is shown
    whole, even if the question then takes more than 12 rows."""
    url = "https://privacy.example.org/wiki/" + "p" * (url_length - 33)
    assert len(url) == url_length
    toml = Path("send_metrics.toml")
    segment = '[report]\nsink = "segment"\nendpoint = "http://127.0.0.1:9/"\nwrite_key = "k"\n'
    if asking_again:
        toml.write_text('app = "devstack"\n' + segment)
        opt_in()
    toml.write_text(
        f'app = "devstack"\n[consent]\nprivacy_url = "{url}"\nretention = "{LONG_RETENTION}"\n'
        + segment
        + '[collect]\nallow_args = ["make", "docker-compose", "pytest"]\ngit_remote_hash = true\n'
    )
    child = pexpect.spawn(
        SEND_METRICS,
        ["run", "--", "echo", "done"],
        timeout=20,
        encoding="utf-8",
        dimensions=(24, 80),
    )
    lines = _screen_of_the_question(child, "done")
    child.sendline("n")
    finish(child)
    raw = "\n".join(lines)
    assert url in raw  # whole, on one line (the terminal may fold it, never we)
    text = " ".join(raw.split())
    assert "127.0.0.1 (Segment)" in text
    assert ("Asking again:" in raw) is asking_again
    assert "..." in raw  # something else was shortened to make room
    for needed in ("Each run:", "Never:", "Retention:", "`send_metrics opt-out`", "--details"):
        assert needed in text, (needed, raw)
    rows = sum(1 + max(0, len(line) - 1) // 80 for line in lines)
    if url_length < 79:
        assert rows <= 12 and max(len(line) for line in lines) < 80, raw


# ---- an earlier yes is never lost to an empty answer ----


def _widened(home: Path) -> int:
    """An earlier yes with a run recorded, then a wider disclosure (the remote hash turned on):
    the next question asks again. Returns how many runs are recorded."""
    opt_in()
    assert sm("run", "--", "true").returncode == 0
    Path("send_metrics.toml").write_text("[collect]\ngit_remote_hash = true\n")
    return len(history(home))


def test_opt_in_under_a_current_yes_says_since_when_and_asks_nothing(home: Path) -> None:
    opt_in()
    assert sm("run", "--", "true").returncode == 0
    before = state_file(home).read_text()
    child = spawn("opt-in")
    out = finish(child)
    assert child.exitstatus == 0 and "[y/N]" not in out
    from send_metrics.event.event import collected_fields

    flat = " ".join(out.split())
    assert "already on, since" in flat and "this machine only" in flat
    assert f"{len(collected_fields(False))} fields" in flat
    assert state_file(home).read_text() == before and len(history(home)) == 1


@pytest.mark.parametrize("answer", ["", "eof", "ctrl-c", "maybe"])
@pytest.mark.parametrize("where", ["opt-in", "run"])
def test_an_answer_that_is_not_an_explicit_no_keeps_what_an_earlier_yes_recorded(
    home: Path, answer: str, where: str
) -> None:
    recorded = _widened(home)
    assert recorded == 1
    before = state_file(home).read_text()
    child = spawn(*(["opt-in"] if where == "opt-in" else ["run", "--", "true"]))
    child.expect(PROMPT)
    assert "Asking again" in child.before
    answer_with(child, answer)
    out = finish(child)
    assert "Traceback" not in out
    assert child.exitstatus == (130 if (where, answer) == ("opt-in", "ctrl-c") else 0), out
    assert len(history(home)) == recorded  # the earlier yes's data is all there
    saved = tomllib.loads(state_file(home).read_text())
    stopped = (where, answer) == ("opt-in", "ctrl-c")  # Ctrl-C stops `opt-in`: no answer
    skipped = saved.pop("skipped_disclosure", None)
    assert saved == tomllib.loads(before)  # the earlier yes stands, as it was
    assert (skipped is None) is stopped
    assert "deleted" not in out
    if not stopped:  # this disclosure was answered: the next runs neither ask nor collect
        for _ in range(2):
            quiet = spawn("run", "--", "true")
            assert "[y/N]" not in finish(quiet) and quiet.exitstatus == 0
        assert len(history(home)) == recorded
    again = spawn(*(["opt-in"] if not stopped else ["run", "--", "true"]))  # asks again
    again.expect(PROMPT)
    again.sendline("y")
    finish(again)
    assert sm("run", "--", "true").returncode == 0
    assert len(history(home)) == recorded + 1 + stopped
    assert "skipped_disclosure" not in tomllib.loads(state_file(home).read_text())


def test_a_skipped_disclosure_is_asked_again_when_it_changes_again_or_the_version_rises(
    home: Path,
) -> None:
    _widened(home)
    for change in (
        "[collect]\ngit_remote_hash = true\n",  # the one answered with Enter
        '[collect]\ngit_remote_hash = true\nallow_args = ["make"]\n',  # wider again
        '[consent]\nversion = 2\n[collect]\ngit_remote_hash = true\nallow_args = ["make"]\n',
    ):
        Path("send_metrics.toml").write_text(change)
        child = spawn("run", "--", "true")
        child.expect(PROMPT)
        child.sendline("")
        assert "Traceback" not in finish(child)
        quiet = spawn("run", "--", "true")
        assert "[y/N]" not in finish(quiet)
    assert len(history(home)) == 1


@pytest.mark.parametrize("where", ["opt-in", "run"])
def test_an_explicit_no_to_a_changed_disclosure_deletes(home: Path, where: str) -> None:
    _widened(home)
    child = spawn(*(["opt-in"] if where == "opt-in" else ["run", "--", "true"]))
    child.expect(PROMPT)
    child.sendline("n")
    out = finish(child)
    assert child.exitstatus == 0 and "earlier data deleted" in out
    assert history(home) == [] and not data_db(home).exists()
    assert tomllib.loads(state_file(home).read_text())["decision"] == "declined"


def test_opt_in_without_a_terminal_names_the_flag(home: Path) -> None:
    result = sm("opt-in", input="")
    assert result.returncode == 2
    assert "--yes" in result.stderr
    assert not state_file(home).exists()


def test_reset_forgets_the_decision(home: Path) -> None:
    opt_in()
    assert sm("reset").returncode == 0
    assert not state_file(home).exists()
    child = spawn("run", "--", "true")
    child.expect(PROMPT)
    child.sendline("n")
    finish(child)


def test_twenty_wrappers_at_once_without_a_decision_write_nothing(home: Path) -> None:
    procs = [
        subprocess.Popen(
            [SEND_METRICS, "run", "--", "sh", "-c", f"exit {i % 3}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(20)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [i % 3 for i in range(20)]
    assert all(err == b"" for _out, err in outputs)
    assert not state_file(home).exists()
    assert not data_db(home).exists()


def test_twenty_concurrent_opt_ins_and_outs_leave_a_file_that_parses(home: Path) -> None:
    def one(i: int) -> int:
        verb = ["opt-in", "--yes"] if i % 2 else ["opt-out"]
        return sm(*verb).returncode

    with ThreadPoolExecutor(20) as pool:
        assert list(pool.map(one, range(20))) == [0] * 20
    saved = tomllib.loads(state_file(home).read_text())
    assert saved["decision"] in ("granted", "declined")
    assert ("anonymous_id" in saved) == (saved["decision"] == "granted")
    assert not list(state_file(home).parent.glob(".metrics-*"))  # no temp file left behind
    assert sm("status").returncode == 0


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00\xff\xfe garbage \x89PNG\r\n")


def _wrong_shape(path: Path) -> None:
    path.write_text('decision = 42\nanonymous_id = ["not", "a", "uuid"]\n')


def _directory(path: Path) -> None:
    path.mkdir()
    (path / "inside").write_text("x")


@pytest.mark.parametrize(
    "breaker", [_garbage, _wrong_shape, _directory], ids=["binary", "wrong-shape", "directory"]
)
def test_corrupt_state_is_named_in_one_line_and_reset_repairs_it(home: Path, breaker) -> None:
    path = state_file(home)
    path.parent.mkdir(parents=True)
    breaker(path)
    result = sm("run", "--", "sh", "-c", "exit 6")
    assert result.returncode == 6
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "reset" in lines[0], result.stderr
    status = sm("status")
    assert status.returncode == 0 and "unreadable" in status.stdout
    assert sm("reset").returncode == 0
    assert not path.exists()
    assert sm("run", "--", "true").stderr == ""
    opt_in()
    assert tomllib.loads(path.read_text())["decision"] == "granted"


@pytest.fixture
def read_only_config(home: Path):
    with read_only(state_file(home).parent) as folder:
        yield folder


def test_read_only_config_dir(home: Path, read_only_config: Path) -> None:
    """An answer that cannot be kept is not asked for (it would be asked again every run)."""
    child = spawn("run", "--", "sh", "-c", "exit 9")
    out = finish(child)
    assert child.exitstatus == 9
    assert "Traceback" not in out and "[y/N]" not in out
    [line] = [x for x in out.splitlines() if x.strip()]
    assert "cannot write" in line and str(read_only_config) in line
    result = sm("opt-in", "--yes")
    assert result.returncode == 3
    assert len(result.stderr.strip().splitlines()) == 1
    assert_no_traceback(result.stderr)


def test_operator_config_problems_are_one_line_each_and_the_command_runs(home: Path) -> None:
    Path("send_metrics.toml").write_text(
        'app = "devstack"\n[consent]\nverison = 2\n[report]\ndeadline = "soon"\n'
    )
    opt_in()
    result = sm("run", "--", "sh", "-c", "exit 1")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert "unknown key 'consent.verison'" in lines[0]
    assert "did you mean 'consent.version'" in lines[0]
    assert "'report.deadline' must be a number" in lines[1]
    assert all("send_metrics.toml" in line for line in lines)
    assert len(history(home, "devstack")) == 1


def test_unparseable_operator_config_still_runs_the_command(home: Path) -> None:
    Path("send_metrics.toml").write_bytes(b"[report\n\xff")
    result = sm("run", "--", "sh", "-c", "exit 2")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "send_metrics.toml" in result.stderr
    assert_no_traceback(result.stderr)


def test_config_is_found_upward_and_by_variable(home: Path, tmp_path: Path) -> None:
    Path("send_metrics.toml").write_text('app = "upward"\n')
    deep = Path("a/b")
    deep.mkdir(parents=True)
    opt_in_here = subprocess.run([SEND_METRICS, "opt-in", "--yes"], cwd=deep, capture_output=True)
    assert opt_in_here.returncode == 0
    assert state_file(home, "upward").exists()
    other = tmp_path / "other.toml"
    other.write_text('app = "byvar"\n')
    subprocess.run(
        [SEND_METRICS, "opt-in", "--yes"],
        cwd=deep,
        check=True,
        capture_output=True,
        env={**os.environ, "SEND_METRICS_CONFIG": str(other)},
    )
    assert state_file(home, "byvar").exists()


def test_status_names_the_decision_paths_and_overrides(home: Path) -> None:
    opt_in()
    result = sm("status", env={**os.environ, "DO_NOT_TRACK": "1"})
    assert result.returncode == 0
    assert "granted" in result.stdout and "DO_NOT_TRACK=1" in result.stdout
    assert str(state_file(home)) in result.stdout
    assert "overridden: disabled by DO_NOT_TRACK" in result.stdout
    recorded_id = state_file(home).read_text().split('anonymous_id = "')[1].split('"')[0]
    assert re.search(rf"^anonymous id:\s+{recorded_id}$", result.stdout, re.M)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('app = "a/b"', "'app' must be a plain name"),
        ("[report]\ndeadline = 0", "'report.deadline' must be between 0 and 60 seconds"),
        ("[report]\nqueue_max_events = 0", "'report.queue_max_events' must be 1 or more"),
        ('[report]\nsink = "kafka"', "'report.sink' must be one of segment, otlp, http, local"),
        ("report = 3", "'report' must be a table"),
        ("[collect]\nallow_args = [1]", "'collect.allow_args' must be a list of strings"),
        ("[consent]\nversion = true", "'consent.version' must be an integer, not bool"),
    ],
    ids=["app", "deadline", "queue", "sink", "table", "allow_args", "bool"],
)
def test_operator_config_values_are_checked(tmp_path: Path, text: str, problem: str) -> None:
    from send_metrics.settings import config

    path = tmp_path / "send_metrics.toml"
    path.write_text(text + "\n")
    loaded = config.load_settings(path)
    [line] = loaded.problems
    assert problem in line and str(path) in line
    assert loaded.settings._replace(path=None) == config.Settings()


def test_the_disclosure_names_every_field_the_privacy_url_and_allow_listed_commands() -> None:
    from send_metrics.consent import consent
    from send_metrics.event.event import schema
    from send_metrics.settings import config

    text = consent.disclosure(
        config.Settings(allow_args=("deploy",), privacy_url="https://example.org/privacy")
    )
    flat = " ".join(text.split())
    assert all(field in flat for field in schema()["properties"])
    assert "https://example.org/privacy" in flat and "except those of: deploy" in flat
    assert all(len(line) <= 80 for line in text.splitlines())
