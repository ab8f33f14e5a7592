"""What git keeps in `.git`, read from its files: cheaper than a git process per question.

Only the plain file layout is read (loose and packed refs, loose objects, pack indexes of
version 2, the repository's own `config`). Anything else (a reftable, a commit stored as a
delta, an alternate object store) gives None, and the caller asks git itself.
"""

from __future__ import annotations

import os

from send_metrics.settings.early import read_bounded

# Deferred imports: zlib loads only where an object is read, on the prefetch thread.

_COMMIT = 1  # a pack entry's type for a commit; 6 and 7 are deltas


class GitDirs:
    """A work tree's git directory and the common one its refs, objects and config live in
    (they differ in a linked worktree)."""

    def __init__(self, git_dir: str, common: str):
        self.git_dir = git_dir
        self.common = common


def find(cwd: str | os.PathLike[str] | None = None) -> GitDirs | None:
    """The git directories of the work tree holding `cwd`: the nearest `.git` upward, a
    directory or (in linked worktrees and submodules) a file saying `gitdir: PATH`."""
    try:
        here = os.path.abspath(os.fspath(cwd) if cwd is not None else os.getcwd())
    except OSError:
        return None
    while True:
        dot = os.path.join(here, ".git")
        if os.path.isdir(dot) and os.path.exists(os.path.join(dot, "HEAD")):
            git_dir = dot  # an empty `.git` folder is not a repository, for git either
            break
        if os.path.isfile(dot):
            text = _path_text(read_bounded(dot) or b"")
            if not text.startswith("gitdir:"):
                return None
            git_dir = os.path.join(here, text[len("gitdir:") :].strip())
            break
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent
    common = git_dir
    pointer = read_bounded(os.path.join(git_dir, "commondir"))
    if pointer:
        common = os.path.join(git_dir, _path_text(pointer))
    return GitDirs(os.path.normpath(git_dir), os.path.normpath(common))


def _path_text(data: bytes) -> str:
    """A path written in one of git's small files: up to a NUL, as C reads it, in the file
    system's own encoding (not necessarily UTF-8)."""
    return os.fsdecode(data.split(b"\0", 1)[0].strip())


def symbolic_ref(common: str, name: str) -> str | None:
    """Where a symbolic ref such as `refs/remotes/origin/HEAD` points, or None."""
    data = read_bounded(os.path.join(common, *name.split("/")))
    text = data.decode("utf-8", "replace").strip() if data else ""
    return text[len("ref:") :].strip() if text.startswith("ref:") else None


def _loose_object(common: str, oid: str) -> bytes | None:
    import zlib

    data = read_bounded(os.path.join(common, "objects", oid[:2], oid[2:]))
    if data is None:
        return None
    try:
        whole = zlib.decompressobj().decompress(data, 1 << 20)
    except zlib.error:
        return None
    kind, _, rest = whole.partition(b" ")
    return rest.partition(b"\0")[2] if kind == b"commit" else None


def _find_in_index(fd: int, binary: bytes) -> int | None:
    """The pack offset of an object in a version 2 pack index, or None; reads only the few
    entries a binary search visits."""

    def at(offset: int, size: int) -> bytes:
        return os.pread(fd, size, offset)

    def number(offset: int, size: int = 4) -> int:
        return int.from_bytes(at(offset, size))

    if at(0, 8) != b"\377tOc\0\0\0\2":
        return None
    width = len(binary)
    first = binary[0]
    lo = number(8 + 4 * (first - 1)) if first else 0
    hi = number(8 + 4 * first)
    count = number(8 + 4 * 255)
    names = 8 + 256 * 4
    while lo < hi:
        mid = (lo + hi) // 2
        found = at(names + mid * width, width)
        if found == binary:
            offsets = names + count * (width + 4)  # after the names and their CRCs
            offset = number(offsets + 4 * mid)
            if offset & 0x80000000:  # an index into the table of 8-byte offsets
                offset = number(offsets + 4 * count + 8 * (offset & 0x7FFFFFFF), 8)
            return offset
        if found < binary:
            lo = mid + 1
        else:
            hi = mid
    return None


def _open_regular(path: str) -> int:
    """A descriptor on a regular file; a FIFO or device is refused at once, never waited on."""
    import stat

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path} is not a regular file")
    return fd


def _packed_object(common: str, oid: str) -> bytes | None:
    import zlib

    pack_dir = os.path.join(common, "objects", "pack")
    try:
        names = [n for n in os.listdir(pack_dir) if n.endswith(".idx")]
    except OSError:
        return None
    binary = bytes.fromhex(oid)
    for name in names:
        try:
            fd = _open_regular(os.path.join(pack_dir, name))
        except OSError:
            continue
        try:
            offset = _find_in_index(fd, binary)
        except (OSError, ValueError):
            offset = None
        finally:
            os.close(fd)
        if offset is None:
            continue
        try:
            fd = _open_regular(os.path.join(pack_dir, name[: -len(".idx")] + ".pack"))
        except OSError:
            return None
        try:
            head = os.pread(fd, 1 << 16, offset)
        except (OSError, ValueError, OverflowError):
            return None
        finally:
            os.close(fd)
        if not head or (head[0] >> 4) & 7 != _COMMIT:
            return None  # a delta (or damage): git knows
        i = 0
        while i < len(head) - 1 and head[i] & 0x80:  # the object's size: not needed
            i += 1
        try:
            return zlib.decompressobj().decompress(head[i + 1 :], 1 << 20)
        except zlib.error:
            return None
    return None


def commit_time(common: str, oid: str) -> int | None:
    """The committer time (Unix seconds) of a commit, read from the object store."""
    if len(oid) not in (40, 64) or any(c not in "0123456789abcdef" for c in oid):
        return None
    body = _loose_object(common, oid) or _packed_object(common, oid)
    if body is None:
        return None
    for line in body.split(b"\n"):
        if not line:
            break  # the end of the headers: the message follows
        if line.startswith(b"committer "):
            words = line.rsplit(b" ", 2)
            return int(words[1]) if len(words) == 3 and words[1].isdigit() else None
    return None


def _config_value(text: str) -> str:
    """A git config value: quotes removed, escapes read, a trailing comment dropped."""
    out: list[str] = []
    quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            i += 1
            out.append({"n": "\n", "t": "\t", "b": "\b"}.get(text[i], text[i]))
        elif ch == '"':
            quoted = not quoted
        elif ch in "#;" and not quoted:
            break
        else:
            out.append(ch)
        i += 1
    return "".join(out).strip()


def remote_urls(common: str) -> dict[str, str]:
    """Each remote's URL from the repository's own config, in the file's order."""
    data = read_bounded(os.path.join(common, "config"))
    urls: dict[str, str] = {}
    remote = None
    for raw in (data or b"").decode("utf-8", "surrogateescape").splitlines():
        line = raw.strip()
        if line.startswith("["):
            section, _, sub = line[1:].partition("]")[0].partition(" ")
            if section.lower() == "remote" and sub.strip().startswith('"'):
                remote = _config_value(sub.strip())
            elif section.lower().startswith("remote."):
                remote = section[len("remote.") :].lower()
            else:
                remote = None
        elif remote is not None:
            key, eq, value = line.partition("=")
            if eq and key.strip().lower() == "url":
                urls[remote] = _config_value(value)
    return urls
