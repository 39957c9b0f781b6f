"""The vassals' log files: one per vassal in the logs folder, each line appended with one
write(). A file that cannot be opened or written (a full disk, a permission, the open-file
limit) costs that vassal's lines, said once and counted, and is tried again a few seconds
later; never another vassal's lines, never the Emperor.

Files are 0640 (the umask may make them stricter), as uWSGI's own loggers make theirs: they
hold request lines and tracebacks, which can hold secrets. A link planted where a log goes
is not followed."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MODE = 0o640
RETRY_AFTER = 5.0
FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


def current_umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


@dataclass
class Failing:
    """A log that cannot be written now: why, since when it is retried, lines lost."""

    reason: str
    retry_at: float
    lost: int = 0


class LogFiles:
    def __init__(
        self,
        folder: Path | None,
        warn: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.folder = folder
        self.warn = warn
        self.clock = clock
        self.mode = MODE & ~current_umask()
        self._fds: dict[str, int] = {}
        self._failing: dict[str, Failing] = {}

    def path(self, name: str) -> Path | None:
        if self.folder is None:
            return None
        return self.folder / f"{name.replace('/', '_')}.log"

    def problem(self, name: str) -> str | None:
        """Why this vassal's log is not written now, for `status`."""
        failing = self._failing.get(name)
        return None if failing is None else f"{failing.reason} ({failing.lost} lines lost)"

    def write(self, name: str, line: str) -> None:
        path = self.path(name)
        if path is None:
            return
        data = (line + "\n").encode("utf-8", errors="replace")
        failing = self._failing.get(name)
        if failing is not None:
            if self.clock() < failing.retry_at:
                failing.lost += 1
                return
            data = f"[toolkit] {failing.lost} lines lost: {failing.reason}\n".encode() + data
        try:
            fd = self._fds.get(name)
            if fd is None:
                fd = self._fds[name] = self._open(path)
            os.write(fd, data)
        except OSError as error:
            self._fail(name, path, error)
            return
        if failing is not None:
            del self._failing[name]
            self.warn(f"{path}: writing again")

    def _open(self, path: Path) -> int:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, FLAGS, self.mode)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise OSError(f"{path} is not a regular file")
            if stat.S_IMODE(info.st_mode) & ~self.mode:
                os.fchmod(fd, stat.S_IMODE(info.st_mode) & self.mode)
        except OSError:
            os.close(fd)
            raise
        return fd

    def _fail(self, name: str, path: Path, error: OSError) -> None:
        reason = error.strerror or str(error)
        fd = self._fds.pop(name, None)
        if fd is not None:
            os.close(fd)
        if name not in self._failing:
            self.warn(f"{path}: cannot write ({reason}); its lines are lost until it can")
            self._failing[name] = Failing(reason, self.clock() + RETRY_AFTER, lost=1)
        else:
            failing = self._failing[name]
            failing.lost += 1
            failing.retry_at = self.clock() + RETRY_AFTER

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
