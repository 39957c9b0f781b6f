"""Which config files the globs name, by content, and a stream of "look again" moments."""

from __future__ import annotations

import contextlib
import glob
import os
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from toolkit import seal, uwsgi_ini
from toolkit.emperor import inotify
from toolkit.emperor.config import Stamp, VassalConfig, file_stamp
from toolkit.emperor.health import Health, Rotation, parse_health, parse_rotation
from toolkit.emperor.loop import Loop
from toolkit.errors import ToolkitError
from toolkit.files import LIMIT, regular_problem

TYPE_CHECKING = False  # the Emperor never loads typing (toolkit/emperor/__init__.py)
if TYPE_CHECKING:
    from toolkit.emperor.clock import Cancellable

# A safety net only: inotify says what changed, and a removed root is looked for each second.
RESCAN_EVERY = 60.0
ROOT_GONE_CHECK = 1.0
SETTLE_SECONDS = 0.02
PATIENCE_SECONDS = 1.0
# A file there but unreadable now (the fd limit, a permission) is read again this soon.
UNREADABLE_AGAIN = 1.0


def vassal_name(path: Path, pattern: str) -> str:
    """The file's stem; but `*/uwsgi.ini`-style globs name vassals by their folder."""
    folder, file = os.path.split(pattern)
    return path.parent.name if glob.has_magic(folder) and not glob.has_magic(file) else path.stem


def glob_root(pattern: str) -> Path:
    """The deepest folder of a glob without wildcards: what to watch."""
    parts: list[str] = []
    for part in Path(pattern).parent.parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


@dataclass(frozen=True)
class Scan:
    configs: dict[str, VassalConfig]
    not_vassals: dict[Path, str]
    waiting: dict[Path, float]
    """Files that may be mid-write: seconds until a second look can tell."""
    held: dict[Path, str]
    """Sealed files whose content does not match their seal, long enough to say so: why."""
    refused: dict[Path, str]
    """Files anyone could have written (--trust-any-config runs them): why."""
    rejected: dict[Path, str] = field(default_factory=dict)
    """Files that can never run as vassals (not a file, too large, a name uWSGI splits)."""
    unreadable: dict[Path, str] = field(default_factory=dict)
    """Files there but not readable now (the fd limit, a permission): looked at again."""
    unlisted: dict[Path, str] = field(default_factory=dict)
    """Folders that could not be listed now: their vassals are not taken for removed."""

    @property
    def look_again_in(self) -> float | None:
        trouble = self.unreadable or self.unlisted
        again = [*self.waiting.values(), *([UNREADABLE_AGAIN] if trouble else [])]
        return min(again, default=None)

    def keeps(self, path: Path) -> bool:
        """A vassal whose file is in flux, broken or unreadable for now keeps running what it
        was given last."""
        return (
            path in self.waiting
            or path in self.held
            or path in self.unreadable
            or any(path.is_relative_to(folder) for folder in self.unlisted)
        )


def distrust(info: os.stat_result) -> str | None:
    """Why a config file should not be run as given: anyone could have written it."""
    if info.st_mode & stat.S_IWOTH:
        return "it is world-writable (chmod o-w it)"
    if info.st_uid != os.getuid():
        return f"it is owned by uid {info.st_uid}, not by this user ({os.getuid()})"
    return None


@dataclass(frozen=True)
class Contents:
    """What a scan needs to know of a file's bytes."""

    digest: str
    broken_seal: str | None
    finished: bool
    is_vassal: bool
    has_workers: bool
    sockets: tuple[str, ...] = ()
    sealed: bool = False
    """It carries a seal that matches: complete by proof, no need to wait for a settle."""
    health: Health | None = None
    rotation: Rotation | None = None
    harakiri: int = 0
    memory_max: int = 0


def contents_of(content: bytes, path: Path) -> Contents:
    ini = uwsgi_ini.parse(content.decode("utf-8", errors="replace"), path)
    sockets = ini.uwsgi_tcp_sockets
    return Contents(
        digest=seal.sha256(content).hexdigest(),
        broken_seal=ini.broken_seal,
        finished=content.endswith(b"\n"),
        is_vassal=uwsgi_ini.SECTION in ini.sections,
        has_workers=ini.has_workers,
        sockets=sockets,
        sealed=content.startswith(seal.PREFIX) and ini.broken_seal is None,
        health=parse_health(ini.directive("health"), sockets),
        rotation=parse_rotation(
            path,
            ini.last("master-fifo"),
            ini.values("subscribe-to"),
            sockets[0] if sockets else None,
        ),
        harakiri=int(harakiri) if (harakiri := ini.last("harakiri") or "").isdigit() else 0,
        memory_max=megabytes(ini.directive("memory-max")),
    )


def megabytes(value: str | None) -> int:
    """`# toolkit-memory-max: 256` (megabytes) in bytes; 0 for none or nonsense."""
    return int(value) * 1024 * 1024 if value is not None and value.isdigit() else 0


def name_problem(path: Path) -> str | None:
    """Why uWSGI would not read this file as named: `--ini site:v2.ini` is the file `site`,
    section `v2.ini` (core/ini.c uwsgi_ini_config(), the last `:`)."""
    if ":" in path.name:
        return f"uWSGI reads {path.name!r} as a file and a section (the part after ':'): rename it"
    return None


def read(path: Path) -> tuple[os.stat_result, bytes]:
    """The file's bytes and its stat after reading them. Non-blocking, and only a regular
    file of at most LIMIT bytes: a FIFO or a huge sparse file that matches the glob cannot
    hang the Emperor or fill its memory (Rejected says why)."""
    with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb") as stream:
        problem = regular_problem(os.fstat(stream.fileno()))
        if problem is not None:
            raise Rejected(f"it {problem}")
        content = stream.read(LIMIT + 1)
        if len(content) > LIMIT:
            raise Rejected(f"it grew past {LIMIT:,} bytes while read")
        return os.fstat(stream.fileno()), content


class Rejected(Exception):
    """A file that matches the glob but can never be a vassal."""


class Scanner:
    """Reads the files the globs match, leaving out the ones that may be mid-write.

    A writer that truncates then writes can be read between the two: an unsealed file
    modified in the last SETTLE_SECONDS is looked at again later (a sealed one that matches
    its seal is complete, and starts at once); one that is empty, stops mid-line, or does
    not match its seal is given PATIENCE_SECONDS to be finished, after which an unsealed file
    is taken as it is and a sealed one is held.

    A settled file whose stamp has not changed since it was read is not read again: any
    later write moves its mtime by more than the clock's tick, so the stamp tells.
    """

    def __init__(self) -> None:
        self._known: dict[Path, tuple[Stamp, Contents]] = {}

    def _contents(
        self, path: Path, now: float, found: Scan
    ) -> tuple[os.stat_result, Contents] | None:
        """What the file holds; None, with the reason filed in `found`, when it cannot tell
        (and nothing at all when the file is gone)."""
        try:
            info = path.stat()
        except FileNotFoundError:
            return None
        except OSError as error:
            found.unreadable[path] = error.strerror or str(error)
            return None
        known = self._known.get(path)
        if known is not None and known[0] == file_stamp(info):
            return info, known[1]
        try:
            info, content = read(path)
        except FileNotFoundError:
            return None
        except Rejected as error:
            found.rejected[path] = str(error)
            return None
        except OSError as error:
            found.unreadable[path] = error.strerror or str(error)
            return None
        contents = contents_of(content, path)
        if now - info.st_mtime >= SETTLE_SECONDS:
            self._known[path] = (file_stamp(info), contents)
        return info, contents

    def scan(self, patterns: Iterable[str], now: float | None = None, trust: bool = False) -> Scan:
        found = Scan({}, {}, {}, {}, {})
        seen: set[Path] = set()
        for pattern in patterns:
            root = glob_root(pattern)
            try:
                os.scandir(root).close()
            except FileNotFoundError:
                pass  # gone: its vassals are removed
            except OSError as error:
                # glob() would say "no file" for what it could not list (the fd limit)
                found.unlisted[root] = error.strerror or str(error)
                continue
            for path in map(Path, sorted(glob.glob(pattern, recursive=True))):
                seen.add(path)
                clock = time.time() if now is None else now
                if (problem := name_problem(path)) is not None:
                    found.rejected[path] = problem
                elif (facts := self._contents(path, clock, found)) is not None:
                    info, contents = facts
                    age = clock - info.st_mtime
                    self._sort(found, pattern, path, info, contents, age=age, trust=trust)
        self._known = {p: known for p, known in self._known.items() if p in seen}
        return found

    @staticmethod
    def _sort(
        found: Scan,
        pattern: str,
        path: Path,
        info: os.stat_result,
        contents: Contents,
        *,
        age: float,
        trust: bool,
    ) -> None:
        """File one file under the scan's heading it belongs to."""
        if 0 <= age < SETTLE_SECONDS and not contents.sealed:
            found.waiting[path] = SETTLE_SECONDS - age
            return
        reason = None if trust else distrust(info)
        if reason is not None:
            found.refused[path] = reason
            return
        unfinished = contents.broken_seal is not None or not contents.finished
        if unfinished and 0 <= age < PATIENCE_SECONDS:
            found.waiting[path] = PATIENCE_SECONDS - age
        elif contents.broken_seal is not None:
            found.held[path] = contents.broken_seal
        elif not contents.is_vassal:
            found.not_vassals[path] = contents.digest
        else:
            name = vassal_name(path, pattern)
            if name in found.configs and found.configs[name].path != path:
                name = f"{path.parent.name}/{path.stem}"
            found.configs.setdefault(
                name,
                VassalConfig(
                    name,
                    path,
                    contents.digest,
                    file_stamp(info),
                    contents.has_workers,
                    contents.sockets,
                    contents.health,
                    contents.rotation,
                    contents.harakiri,
                    contents.memory_max,
                ),
            )


def scan(patterns: Iterable[str], now: float | None = None, trust: bool = False) -> Scan:
    """One scan with nothing known beforehand."""
    return Scanner().scan(patterns, now, trust)


WATCH_MASK = (
    inotify.CREATE
    | inotify.DELETE
    | inotify.MODIFY
    | inotify.CLOSE_WRITE
    | inotify.MOVED_FROM
    | inotify.MOVED_TO
    | inotify.ATTRIB
    | inotify.DELETE_SELF
    | inotify.MOVE_SELF
)
MAX_WATCHED_FOLDERS = 10_000


# What, in a root's parent folder, replaces or removes the root itself.
PARENT_MASK = inotify.CREATE | inotify.DELETE | inotify.MOVED_FROM | inotify.MOVED_TO


class Watch:
    """inotify watches on the roots and their subfolders, read on the event loop: no thread,
    no timer; the Emperor sleeps until the kernel says a file changed.

    A watch follows an inode, not a name: a root replaced (a link swapped with `ln -sfn`, a
    folder moved into place) would leave it on the old folder. So each root's parent folder
    is watched for that name, and every root is watched anew when it changes. Configs that
    are links are followed to the folder of their target, where their edits happen."""

    def __init__(self, roots: list[Path]) -> None:
        self.roots = roots
        self.inotify = inotify.INotify()
        self.folders: dict[int, Path] = {}
        self.parents: dict[int, Path] = {}
        self.targets: dict[int, Path] = {}
        for parent in {root.parent for root in roots}:
            with contextlib.suppress(OSError):
                self.parents[self.inotify.add_watch(str(parent), PARENT_MASK)] = parent

    @property
    def complete(self) -> bool:
        """Every root is watched (a removed root is not, until it is made again)."""
        return all(root in self.watched_roots for root in self.roots)

    @property
    def watched_roots(self) -> set[Path]:
        return set(self.folders.values()) & set(self.roots)

    def add_all(self) -> bool:
        """Watch every root and folder under it (again, after a root was made anew); True
        when a root that was not watched is watched now."""
        before = self.watched_roots
        for root in self.roots:
            for folder, subfolders, _ in os.walk(root):
                self._add(Path(folder))
                subfolders[:] = [d for d in subfolders if not d.startswith(".")]
                if len(self.folders) >= MAX_WATCHED_FOLDERS:
                    break
        return bool(self.watched_roots - before)

    def _add(self, folder: Path) -> None:
        # Gone already, or not ours to read: the rescan still sees what is there.
        with contextlib.suppress(OSError):
            self.folders[self.inotify.add_watch(str(folder), WATCH_MASK)] = folder

    def renew(self) -> None:
        """A root was replaced: drop every folder watch and watch what the roots are now."""
        for wd in list(self.folders):
            self.inotify.rm_watch(wd)
        self.folders.clear()
        self.add_all()

    def follow(self, configs: Iterable[Path]) -> None:
        """Watch the folders where the configs that are links point, and only those."""
        wanted = set()
        for path in configs:
            if path.is_symlink():
                with contextlib.suppress(OSError):
                    wanted.add(path.resolve().parent)
        for wd, folder in list(self.targets.items()):
            if folder not in wanted:
                self.inotify.rm_watch(wd)
                del self.targets[wd]
        for folder in wanted - set(self.targets.values()):
            with contextlib.suppress(OSError):
                self.targets[self.inotify.add_watch(str(folder), WATCH_MASK)] = folder

    def drain(self) -> None:
        """Read what arrived; watch folders made meanwhile (a new `*/uwsgi.ini` service)."""
        renew = False
        for event in self.inotify.read():
            parent = self.parents.get(event.wd)
            if parent is not None and any(
                root.parent == parent and root.name == event.name for root in self.roots
            ):
                renew = True
            if event.mask & inotify.ISDIR and event.mask & (inotify.CREATE | inotify.MOVED_TO):
                parent = self.folders.get(event.wd)
                if parent is not None:
                    self._add(parent / event.name)
            if event.mask & inotify.IGNORED:
                self.folders.pop(event.wd, None)
                self.targets.pop(event.wd, None)
            if event.mask & inotify.Q_OVERFLOW:
                self.add_all()  # events were lost: the scan that follows reads everything
        if renew:
            self.renew()

    def close(self) -> None:
        self.inotify.close()


class Watching:
    """Calls `changed` as soon as file events arrive (what arrives while it runs is read on
    the next turn), and every `rescan_every` s regardless, a safety net for what inotify
    cannot say. A watched root that is removed is looked for every second until it is
    back, then watched again. The caller scans once after this is made: the watch is in
    place first, so no file can arrive between the two unseen."""

    def __init__(
        self,
        patterns: list[str],
        loop: Loop,
        changed: Callable[[], None],
        rescan_every: float = RESCAN_EVERY,
    ) -> None:
        roots = sorted({Path(os.path.abspath(glob_root(p))) for p in patterns})
        for root in roots:
            if not root.is_dir():
                raise ToolkitError(
                    f"cannot watch {root}: no such folder", hint="create it or fix the glob"
                )
        self.loop = loop
        self.changed = changed
        self.rescan_every = rescan_every
        self.watch = Watch(roots)
        self.watch.add_all()
        self.loop.add_reader(self.watch.inotify.fileno(), self._arrived)
        self._next: Cancellable | None = None
        self._schedule()

    def _schedule(self) -> None:
        if self._next is not None:
            self._next.cancel()
        timeout = self.rescan_every if self.watch.complete else ROOT_GONE_CHECK
        self._next = self.loop.call_later(timeout, self._look)

    def _arrived(self) -> None:
        self.watch.drain()
        self.changed()
        self._schedule()

    def _look(self) -> None:
        if self.watch.complete:
            self.watch.add_all()
            self.changed()
        elif self.watch.add_all():
            self.changed()
        self._schedule()

    def close(self) -> None:
        if self._next is not None:
            self._next.cancel()
        self.loop.remove_reader(self.watch.inotify.fileno())
        self.watch.close()
