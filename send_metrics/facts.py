"""Facts about the git work tree and the machine, each gathered on its own and allowed to fail."""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC
from pathlib import Path
from typing import NamedTuple

GIT_TIMEOUT = 1.0  # seconds for all git probes of one run together
# CI vendors by the variable each one sets; `CI` alone means an unnamed one.
CI_VENDORS = (
    ("GITHUB_ACTIONS", "github_actions"),
    ("GITLAB_CI", "gitlab"),
    ("CIRCLECI", "circleci"),
    ("TRAVIS", "travis"),
    ("JENKINS_URL", "jenkins"),
    ("BUILDKITE", "buildkite"),
    ("TF_BUILD", "azure_pipelines"),
    ("TEAMCITY_VERSION", "teamcity"),
    ("BITBUCKET_BUILD_NUMBER", "bitbucket"),
    ("CODEBUILD_BUILD_ID", "aws_codebuild"),
    ("DRONE", "drone"),
    ("APPVEYOR", "appveyor"),
    ("SEMAPHORE", "semaphore"),
    ("BUILD_BUILDID", "azure_pipelines"),
    ("WOODPECKER", "woodpecker"),
)


class GitFacts(NamedTuple):
    """What we may say about the work tree; None where unknown. Never names, paths or URLs."""

    work_tree: bool | None = None
    commit_time: str | None = None
    on_default_branch: bool | None = None
    dirty: bool | None = None
    behind_upstream: int | None = None
    remote_hash: str | None = None


class MachineFacts(NamedTuple):
    """The machine, coarsely: nothing here names the user or the host."""

    os: str
    os_release: str
    arch: str
    python_version: str
    cpu_count: int | None
    memory_total_bytes: int | None
    ci: bool
    ci_vendor: str | None
    container: bool


class ProbeResult(NamedTuple):
    """The outcome of one small captured command."""

    returncode: int
    stdout: str


def probe(argv: list[str], cwd: Path | None, timeout: float) -> ProbeResult | None:
    """Run a small command with captured output; None when it is missing, fails to run or hangs."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "SYSTEMROOT", "TMPDIR")}
    env.update(LC_ALL="C", GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0")
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=max(timeout, 0.01),
            check=False,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return ProbeResult(done.returncode, done.stdout.decode("utf-8", "replace"))


def strip_credentials(url: str) -> str:
    """A remote URL with any user name, password or token removed, normalised for hashing."""
    url = url.strip()
    if "://" in url:
        scheme, rest = url.split("://", 1)
        host, sep, path = rest.partition("/")
        host = host.rpartition("@")[2].lower()
        url = f"{scheme.lower()}://{host}{sep}{path}"
    elif ":" in url and "@" in url.split(":", 1)[0]:
        url = url.split("@", 1)[1]  # scp-like user@host:path
    url = url.rstrip("/")
    return url[:-4] if url.endswith(".git") else url


def remote_hash(url: str, app: str) -> str:
    """A salted hash of the credential-free remote: groups runs by repository, names none."""
    import hashlib

    digest = hashlib.sha256(f"send_metrics/{app}/{strip_credentials(url)}".encode())
    return digest.hexdigest()[:16]


def git_facts(app: str, cwd: Path | None = None, timeout: float = GIT_TIMEOUT) -> GitFacts:
    """Everything git can tell without network in `timeout` seconds, or as much as it could."""
    deadline = time.monotonic() + timeout

    def git(*args: str) -> ProbeResult | None:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        return probe(["git", *args], cwd, left)

    head = git("rev-parse", "--is-inside-work-tree", "--symbolic-full-name", "HEAD")
    if head is None:
        return GitFacts()
    lines = head.stdout.split()
    if head.returncode != 0 or not lines or lines[0] != "true":
        # 128 with no output is "not a repository"; anything else is a broken git.
        return GitFacts(work_tree=False) if head.returncode == 128 else GitFacts()
    branch = lines[1].removeprefix("refs/heads/") if len(lines) > 1 and lines[1] != "HEAD" else ""

    commit_time = None
    log = git("log", "-1", "--format=%ct")
    if log is not None and log.returncode == 0 and log.stdout.strip().isdigit():
        from datetime import datetime

        seconds = int(log.stdout.strip())
        commit_time = datetime.fromtimestamp(seconds, UTC).isoformat()

    status = git("status", "--porcelain", "--untracked-files=no")
    dirty = bool(status.stdout.strip()) if status is not None and status.returncode == 0 else None

    behind = None
    if branch:
        count = git("rev-list", "--count", "HEAD..@{upstream}")
        if count is not None and count.returncode == 0 and count.stdout.strip().isdigit():
            behind = int(count.stdout.strip())

    remotes = git("config", "--get-regexp", r"^remote\..*\.url$")
    urls: dict[str, str] = {}
    if remotes is not None and remotes.returncode == 0:
        for line in remotes.stdout.splitlines():
            key, _, value = line.partition(" ")
            urls[key[len("remote.") : -len(".url")]] = value
    remote_name = "origin" if "origin" in urls else next(iter(urls), "")

    on_default: bool | None = False
    if branch:
        default = ""
        if remote_name:
            ref = git("symbolic-ref", "-q", f"refs/remotes/{remote_name}/HEAD")
            if ref is not None and ref.returncode == 0:
                default = ref.stdout.strip().rpartition(f"refs/remotes/{remote_name}/")[2]
        on_default = branch == default if default else branch in ("main", "master")
    return GitFacts(
        work_tree=True,
        commit_time=commit_time,
        on_default_branch=on_default,
        dirty=dirty,
        behind_upstream=behind,
        remote_hash=remote_hash(urls[remote_name], app) if remote_name else None,
    )


def ci_vendor(environ: dict[str, str] | os._Environ[str] | None = None) -> tuple[bool, str | None]:
    """Whether this is a CI run, and which vendor's, from an allow-list of variables."""
    from send_metrics.config import env_flag

    env = os.environ if environ is None else environ
    for name, vendor in CI_VENDORS:
        if env.get(name):
            return True, vendor
    return (True, None) if env_flag("CI", env) else (False, None)


def in_container() -> bool:
    """Best-effort: the marker files of Docker and Podman, or a container cgroup."""
    if os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv"):
        return True
    if os.environ.get("container"):  # noqa: SIM112 - systemd-nspawn and podman set it lowercase
        return True
    try:
        with open("/proc/1/cgroup", encoding="utf-8", errors="replace") as fh:
            text = fh.read(4096)
    except OSError:
        return False
    return any(word in text for word in ("docker", "kubepods", "containerd", "lxc", "podman"))


def _memory_total() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def machine_facts() -> MachineFacts:
    """The machine's coarse facts; cheap, no subprocess."""
    uname = os.uname() if hasattr(os, "uname") else None
    is_ci, vendor = ci_vendor()
    arch = (uname.machine if uname else "").lower()
    return MachineFacts(
        os={"linux": "linux", "darwin": "darwin", "win32": "windows"}.get(
            sys.platform, sys.platform
        ),
        os_release=(uname.release if uname else "")[:200],
        arch={"x86_64": "amd64", "aarch64": "arm64"}.get(arch, arch),
        python_version="{}.{}.{}".format(*sys.version_info[:3]),
        cpu_count=os.cpu_count(),
        memory_total_bytes=_memory_total(),
        ci=is_ci,
        ci_vendor=vendor,
        container=in_container(),
    )
