"""The vassals' log files: one per vassal in the logs folder, each line appended with one
write() and stamped with the time the Emperor read it.

Rotated as supervisord rotates (past `max_bytes`, `backups` older files kept: NAME.log.1 is
the newest), by the Emperor itself: the standard library's RotatingFileHandler would bring
`logging` along, 1.8 MB of the Emperor's memory (measured: 13.6 MB -> 15.3 MB on import).
Followed when moved or truncated under it (logrotate's `create` and `copytruncate`), and
reopened on SIGHUP.

A file that cannot be opened or written (a full disk, a permission, the open-file limit)
costs that vassal's lines, said once and counted, and is tried again a few seconds later;
never another vassal's lines, never the Emperor.

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
# How often a log's path is compared with what is open: a move is noticed within this.
FOLLOW_EVERY = 1.0
FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


def current_umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def stamp(when: float) -> str:
    """`2026-12-05 14:00:01.123 `: what starts every line of a vassal's log."""
    seconds = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
    return f"{seconds}.{int(when % 1 * 1000):03d} "


@dataclass
class Failing:
    """A log that cannot be written now: why, since when it is retried, lines lost."""

    reason: str
    retry_at: float
    lost: int = 0


@dataclass
class Open:
    """A log file as it is open: its fd, its size as written here, when its path was last
    compared with it."""

    fd: int
    size: int
    checked: float


class LogFiles:
    def __init__(
        self,
        folder: Path | None,
        warn: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        max_bytes: int = 50 << 20,
        backups: int = 10,
    ) -> None:
        self.folder = folder
        self.warn = warn
        self.clock = clock
        self.max_bytes = max_bytes
        self.backups = backups
        self.mode = MODE & ~current_umask()
        self._open: dict[str, Open] = {}
        self._failing: dict[str, Failing] = {}

    def path(self, name: str) -> Path | None:
        if self.folder is None:
            return None
        return self.folder / f"{name.replace('/', '_')}.log"

    def problem(self, name: str) -> str | None:
        """Why this vassal's log is not written now, for `status`."""
        failing = self._failing.get(name)
        return None if failing is None else f"{failing.reason} ({failing.lost} lines lost)"

    def write(self, name: str, line: str, when: float) -> None:
        path = self.path(name)
        if path is None:
            return
        data = (stamp(when) + line + "\n").encode("utf-8", errors="replace")
        failing = self._failing.get(name)
        if failing is not None:
            if self.clock() < failing.retry_at:
                failing.lost += 1
                return
            lost = f"[toolkit] {failing.lost} lines lost: {failing.reason}\n"
            data = (stamp(when) + lost).encode() + data
        try:
            current = self._current(name, path)
            if self.max_bytes and current.size and current.size + len(data) > self.max_bytes:
                current = self._rotate(name, path)
            os.write(current.fd, data)
            current.size += len(data)
        except OSError as error:
            self._fail(name, path, error)
            return
        if failing is not None:
            del self._failing[name]
            self.warn(f"{path}: writing again")

    def _current(self, name: str, path: Path) -> Open:
        """The open file, opened anew if its path no longer leads to it (moved away,
        removed) and its size taken again if it shrank (truncated)."""
        current = self._open.get(name)
        now = self.clock()
        if current is not None and now - current.checked >= FOLLOW_EVERY:
            current.checked = now
            try:
                there = os.stat(path)
            except FileNotFoundError:
                there = None
            held = os.fstat(current.fd)
            if there is None or (there.st_dev, there.st_ino) != (held.st_dev, held.st_ino):
                self._close(name)
                current = None
            else:
                current.size = held.st_size
        if current is None:
            current = self._open[name] = self._open_file(path, now)
        return current

    def _open_file(self, path: Path, now: float) -> Open:
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
        return Open(fd, info.st_size, now)

    def _rotate(self, name: str, path: Path) -> Open:
        """NAME.log becomes NAME.log.1, .1 becomes .2, ...; past `backups`, the oldest goes."""
        self._close(name)
        if self.backups:
            for number in range(self.backups - 1, 0, -1):
                older = path.with_name(f"{path.name}.{number}")
                if older.exists():
                    os.replace(older, path.with_name(f"{path.name}.{number + 1}"))
            os.replace(path, path.with_name(f"{path.name}.1"))
        else:
            os.truncate(path, 0)
        current = self._open[name] = self._open_file(path, self.clock())
        return current

    def _fail(self, name: str, path: Path, error: OSError) -> None:
        reason = error.strerror or str(error)
        self._close(name)
        if name not in self._failing:
            self.warn(f"{path}: cannot write ({reason}); its lines are lost until it can")
            self._failing[name] = Failing(reason, self.clock() + RETRY_AFTER, lost=1)
        else:
            failing = self._failing[name]
            failing.lost += 1
            failing.retry_at = self.clock() + RETRY_AFTER

    def _close(self, name: str) -> None:
        current = self._open.pop(name, None)
        if current is not None:
            os.close(current.fd)

    def reopen(self) -> None:
        """SIGHUP: every file is opened again at its path at the next line."""
        for name in list(self._open):
            self._close(name)

    def close(self) -> None:
        self.reopen()
