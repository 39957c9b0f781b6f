"""Which config files the globs name, by content, and a stream of "look again" moments."""

from __future__ import annotations

import asyncio
import glob
import hashlib
import os
import stat
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

import watchfiles

from toolkit import seal, uwsgi_ini
from toolkit.emperor.vassal import Config, file_stamp
from toolkit.errors import ToolkitError

RESCAN_EVERY = 5.0
QUIET_STEP_MS = 10
SETTLE_SECONDS = 0.02
PATIENCE_SECONDS = 1.0


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
    configs: dict[str, Config]
    not_vassals: dict[Path, str]
    waiting: dict[Path, float]
    """Files that may be mid-write: seconds until a second look can tell."""
    held: dict[Path, str]
    """Sealed files whose content does not match their seal, long enough to say so: why."""
    refused: dict[Path, str]

    @property
    def look_again_in(self) -> float | None:
        return min(self.waiting.values(), default=None)

    def keeps(self, path: Path) -> bool:
        """A vassal whose file is in flux or broken keeps running what it was given last."""
        return path in self.waiting or path in self.held


def distrust(info: os.stat_result) -> str | None:
    """Why a config file should not be run as given: anyone could have written it."""
    if info.st_mode & stat.S_IWOTH:
        return "it is world-writable (chmod o-w it)"
    if info.st_uid != os.getuid():
        return f"it is owned by uid {info.st_uid}, not by this user ({os.getuid()})"
    return None


def scan(patterns: Iterable[str], now: float | None = None, trust: bool = False) -> Scan:
    """Read every matching file, leaving out the ones that may be mid-write.

    A writer that truncates then writes can be read between the two: a file modified in the
    last SETTLE_SECONDS is looked at again later; one that is empty, stops mid-line, or does
    not match its seal is given PATIENCE_SECONDS to be finished, after which an unsealed file
    is taken as it is and a sealed one is held.
    """
    configs: dict[str, Config] = {}
    not_vassals: dict[Path, str] = {}
    waiting: dict[Path, float] = {}
    held: dict[Path, str] = {}
    refused: dict[Path, str] = {}
    for pattern in patterns:
        for match in sorted(glob.glob(pattern, recursive=True)):
            path = Path(match)
            try:
                # Non-blocking, so a FIFO that matches the glob cannot hang the Emperor.
                with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as stream:
                    info = os.fstat(stream.fileno())
                    if not stat.S_ISREG(info.st_mode):
                        continue
                    content = stream.read()
                    info = os.fstat(stream.fileno())
            except OSError:
                continue
            age = (time.time() if now is None else now) - info.st_mtime
            if 0 <= age < SETTLE_SECONDS:
                waiting[path] = SETTLE_SECONDS - age
                continue
            reason = None if trust else distrust(info)
            if reason is not None:
                refused[path] = reason
                continue
            broken = seal.broken(content)
            if (broken or not content.endswith(b"\n")) and 0 <= age < PATIENCE_SECONDS:
                waiting[path] = PATIENCE_SECONDS - age
                continue
            if broken:
                held[path] = broken
                continue
            digest = hashlib.sha256(content).hexdigest()
            ini = uwsgi_ini.parse(content.decode("utf-8", errors="replace"), path)
            if uwsgi_ini.SECTION not in ini.sections:
                not_vassals[path] = digest
                continue
            name = vassal_name(path, pattern)
            if name in configs and configs[name].path != path:
                name = f"{path.parent.name}/{path.stem}"
            configs.setdefault(name, Config(name, path, digest, ini.has_workers, file_stamp(info)))
    return Scan(configs, not_vassals, waiting, held, refused)


async def changes(
    patterns: list[str], stop: asyncio.Event, rescan_every: float = RESCAN_EVERY
) -> AsyncIterator[None]:
    """Yields after each quiet burst of file events, and every `rescan_every` s regardless."""
    roots = sorted({glob_root(p).resolve() for p in patterns})
    for root in roots:
        if not root.is_dir():
            raise ToolkitError(
                f"cannot watch {root}: no such folder", hint="create it or fix the glob"
            )
    async for _ in watchfiles.awatch(
        *roots,
        stop_event=stop,
        step=QUIET_STEP_MS,
        debounce=1000,
        rust_timeout=int(rescan_every * 1000),
        yield_on_timeout=True,
        recursive=True,
    ):
        yield
