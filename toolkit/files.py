"""Reading the files a user names (deploy.ini, inventory.ini, env files, configs, an app's
sources): regular files only, of a bounded size. A FIFO, a device, a folder or a huge file is
an error that names it, never a hang or a gigabyte read into memory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from toolkit.errors import ToolkitError

# Far above any real config (the largest public uwsgi.ini read here is a few kB).
LIMIT = 1 << 20
KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}


def regular_problem(info: os.stat_result, limit: int = LIMIT) -> str | None:
    """Why a file of this stat cannot be read as a config, or None."""
    if not stat.S_ISREG(info.st_mode):
        return f"is {KINDS.get(stat.S_IFMT(info.st_mode), 'not a regular file')}, not a file"
    if info.st_size > limit:
        return f"is {info.st_size:,} bytes, more than the {limit:,} a config may be"
    return None


def read_regular(path: Path, what: str, limit: int = LIMIT) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; ToolkitError otherwise (OSError,
    FileNotFoundError included, when it cannot be opened). Opened without blocking, so a FIFO
    is found out instead of waited on."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        problem = regular_problem(os.fstat(fd), limit)
        if problem is not None:
            raise ToolkitError(f"this {what} {problem}", file=path)
        with os.fdopen(fd, "rb", closefd=False) as stream:
            data = stream.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ToolkitError(f"this {what} grew past {limit:,} bytes while read", file=path)
    return data


def inside(root: Path, path: Path) -> Path:
    """`path`, once it is known to stay inside `root` with every link resolved: what toolkit
    writes or makes live never lands elsewhere through a planted link or a name."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise ToolkitError(
            f"resolves to {resolved}, outside {root}",
            file=path,
            hint="toolkit writes only inside its deployment folder: remove the link",
        )
    return path
