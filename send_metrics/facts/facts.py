"""Facts about the git work tree and the machine, each gathered on its own and allowed to fail."""

from __future__ import annotations

import os
import sys
import time

from send_metrics.facts import gitfiles
from send_metrics.lean.records import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from send_metrics.settings.files import AnyPath

# Deferred imports: facts are gathered on the prefetch thread while the child runs;
# subprocess and hashlib load there, only for a run that collects.

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


class Probe:
    """A small command started now, with its output collected later, so that the caller can
    work while it runs. Spawned directly (`posix_spawn`, a pipe, `select`): `subprocess` would
    cost an import of ~3 ms in every collected run."""

    def __init__(self, argv: list[str], cwd: AnyPath | None = None):
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "SYSTEMROOT", "TMPDIR")}
        env.update(LC_ALL="C", GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0")
        self.pid = 0
        self.out = b""
        self.read_end, write_end = os.pipe()  # neither end is inherited (PEP 446)
        if cwd is not None:  # posix_spawn cannot chdir: git's -C does it
            argv = [argv[0], "-C", os.fspath(cwd), *argv[1:]]
        try:
            self.pid = os.posix_spawnp(
                argv[0],
                argv,
                env,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, write_end, 1),
                    (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
                ],
                setsigmask=(),  # not the signals our thread blocks
            )
        except OSError:
            os.close(self.read_end)
        finally:
            os.close(write_end)

    def result(self, timeout: float) -> ProbeResult | None:
        """The outcome within `timeout` seconds; None when it could not run or hangs (killed)."""
        import select

        if not self.pid:
            return None
        deadline = time.monotonic() + max(timeout, 0.01)
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.read_end], [], [], left)[0]:
                    os.kill(self.pid, 9)  # SIGKILL: it hangs, and costs only its own fields
                    os.waitpid(self.pid, 0)
                    return None
                chunk = os.read(self.read_end, 65536)
                if not chunk:
                    break
                self.out += chunk
            _pid, status = os.waitpid(self.pid, 0)
        except OSError:
            return None
        finally:
            os.close(self.read_end)
        return ProbeResult(os.waitstatus_to_exitcode(status), self.out.decode("utf-8", "replace"))


def probe(argv: list[str], cwd: AnyPath | None, timeout: float) -> ProbeResult | None:
    """Run a small command with captured output; None when it is missing, fails to run or hangs."""
    return Probe(argv, cwd).result(timeout)


def start_git(cwd: AnyPath | None = None) -> Probe:
    """Start the one `git status` that `git_facts` reads, to read it later."""
    return Probe(["git", "status", "--porcelain=v2", "--branch", "--untracked-files=no"], cwd)


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

    text = f"send_metrics/{app}/{strip_credentials(url)}"
    digest = hashlib.sha256(text.encode("utf-8", "surrogateescape"))  # git's bytes, as they are
    return digest.hexdigest()[:16]


def git_facts(
    app: str,
    cwd: AnyPath | None = None,
    timeout: float = GIT_TIMEOUT,
    started: Probe | None = None,
    hash_remote: bool = True,
) -> GitFacts:
    """Everything git can tell without network in `timeout` seconds, or as much as it could.

    One `git status` says whether this is a work tree, the branch, its upstream's distance and
    whether tracked files changed; the rest (commit time, remotes, the remote's default branch)
    is read from the files in `.git`, which costs no process. Git is asked again only for a
    commit it stores as a delta. `started` is that `git status` if `start_git` began it.
    `hash_remote` False: the remote is not hashed at all (the operator left it off)."""
    deadline = time.monotonic() + timeout
    status = (started or start_git(cwd)).result(timeout)
    if status is None:
        return GitFacts()
    if status.returncode != 0:
        # 128 with no output is "not a repository"; anything else is a broken git.
        return GitFacts(work_tree=False) if status.returncode == 128 else GitFacts()
    heads: dict[str, str] = {}
    dirty = False
    for line in status.stdout.splitlines():
        if line.startswith("# branch."):
            key, _, value = line[len("# branch.") :].partition(" ")
            heads[key] = value
        elif line.strip():
            dirty = True
    if "oid" not in heads or "head" not in heads:
        return GitFacts()  # not what git status prints: a broken or foreign git
    branch = heads["head"]
    branch = "" if branch == "(detached)" else branch
    behind = None
    ahead_behind = heads.get("ab", "").split()  # "+1 -2" when the upstream exists
    if branch and len(ahead_behind) == 2 and ahead_behind[1][1:].isdigit():
        behind = int(ahead_behind[1][1:])

    dirs = gitfiles.find(cwd)
    seconds = None
    oid = heads["oid"]
    if dirs is not None and oid != "(initial)":
        seconds = gitfiles.commit_time(dirs.common, oid)
    if seconds is None and oid != "(initial)":
        log = probe(["git", "log", "-1", "--format=%ct"], cwd, deadline - time.monotonic())
        if log is not None and log.returncode == 0 and log.stdout.strip().isdigit():
            seconds = int(log.stdout.strip())
    commit_time = None
    if seconds is not None:
        try:
            commit_time = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(seconds))
        except (OverflowError, OSError, ValueError):
            commit_time = None  # a committer date no calendar holds: unknown, as git's damage

    urls = gitfiles.remote_urls(dirs.common) if dirs is not None else {}
    remote_name = "origin" if "origin" in urls else next(iter(urls), "")
    on_default: bool | None = False
    if branch:
        default = ""
        if remote_name and dirs is not None:
            ref = gitfiles.symbolic_ref(dirs.common, f"refs/remotes/{remote_name}/HEAD")
            default = ref.rpartition(f"refs/remotes/{remote_name}/")[2] if ref else ""
        on_default = branch == default if default else branch in ("main", "master")
    return GitFacts(
        work_tree=True,
        commit_time=commit_time,
        on_default_branch=on_default,
        dirty=dirty,
        behind_upstream=behind,
        remote_hash=remote_hash(urls[remote_name], app) if remote_name and hash_remote else None,
    )


def ci_vendor(environ: dict[str, str] | os._Environ[str] | None = None) -> tuple[bool, str | None]:
    """Whether this is a CI run, and which vendor's, from an allow-list of variables."""
    from send_metrics.settings.config import env_flag

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
