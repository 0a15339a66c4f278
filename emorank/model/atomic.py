"""Files and folders replaced whole, and the leftovers of writers that were killed.

A writer here names its temporary files and folders ``.<name>.<kind>-<pid>-<tag>`` beside their target ``<name>``
(kind: ``tmp`` for what is being written, ``old`` for what it replaces; tag: random, shared by the pieces of one
write). Whoever comes next can then tell the leftovers of a dead process (to clean up or recover) from the work in
progress of a live one (left alone): :func:`leftovers`.

:func:`exchange` swaps two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``), so a folder can be replaced
with no instant at which its path is missing; where the call does not exist it returns False and the caller falls
back to two renames, whose gap :func:`leftovers` lets the next reader close.
"""
from __future__ import annotations

import ctypes
import errno
import os
import re
import secrets
import shutil
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_NOT_SUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV}
_renameat2 = None
_PATTERN = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)-(?P<tag>[0-9a-f]+)$")

_lock = threading.Lock()
_writing: set[str] = set()  # temporary paths of writes in progress in this process


@dataclass(frozen=True)
class Leftover:
    """A temporary file or folder of a write whose process is gone."""

    path: Path
    kind: str  # "tmp" or "old"
    tag: str  # shared by the pieces of one write


def temp_path(target: Path, kind: str = "tmp", tag: str | None = None) -> Path:
    """``.<name>.<kind>-<pid>-<tag>`` beside ``target``, registered as in progress until :func:`done`."""
    path = target.with_name(f".{target.name}.{kind}-{os.getpid()}-{tag or secrets.token_hex(6)}")
    with _lock:
        _writing.add(str(path))
    return path


def done(*paths: Path) -> None:
    """The writes of these temporary paths are over (whether they still exist or not)."""
    with _lock:
        _writing.difference_update(str(p) for p in paths)


def tag_of(path: Path) -> str:
    match = _PATTERN.match(path.name)
    if match is None:
        raise ValueError(f"{path.name} is not a temporary name of emorank.model.atomic")
    return match["tag"]


def leftovers(target: Path) -> list[Leftover]:
    """The temporary files and folders beside ``target`` (named for it) whose writer is no longer running."""
    out = []
    try:
        entries = [e.name for e in os.scandir(target.parent) if e.name.startswith(f".{target.name}.")]
    except OSError:
        return out
    for name in entries:
        match = _PATTERN.match(name)
        if match is None or match["name"] != target.name:
            continue
        path = target.parent / name
        with _lock:
            live = str(path) in _writing
        if not live and not (int(match["pid"]) != os.getpid() and pid_alive(int(match["pid"]))):
            out.append(Leftover(path, match["kind"], match["tag"]))
    return out


def targets_with_leftovers(folder: Path) -> list[Path]:
    """The targets in ``folder`` that have temporary pieces beside them (of live writers or not)."""
    try:
        names = {m["name"] for e in os.scandir(folder) if (m := _PATTERN.match(e.name))}
    except OSError:
        return []
    return [folder / name for name in sorted(names)]


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (a zombie counts as gone). On Windows, where a
    signal cannot probe a process, every process counts as running (so nothing of another one is removed)."""
    if pid <= 0:
        return False
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def exchange(a: Path, b: Path) -> bool:
    """Swap the paths ``a`` and ``b`` (both must exist) in one atomic step; False where the system cannot."""
    global _renameat2
    if not sys.platform.startswith("linux"):
        return False
    if _renameat2 is None:
        try:
            fn = ctypes.CDLL(None, use_errno=True).renameat2
        except (AttributeError, OSError):
            fn = False
        else:
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            fn.restype = ctypes.c_int
        _renameat2 = fn
    if _renameat2 is False:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in _NOT_SUPPORTED:
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def remove(path: Path) -> None:
    """Remove a file or folder tree, whatever is left of it; never raises."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except OSError:
            pass


def fsync_tree(folder: Path) -> None:
    """Flush the files of ``folder`` and the folder itself to disk (before it is renamed into place)."""
    for p in [*folder.iterdir(), folder]:
        fsync_path(p)


def fsync_path(path: Path) -> None:
    """Flush one file or folder entry to disk (a folder after a rename in it); best effort, never raises."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
