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

from toolkit import uwsgi_ini
from toolkit.emperor.vassal import Config
from toolkit.errors import ToolkitError

RESCAN_EVERY = 5.0
QUIET_STEP_MS = 10
SETTLE_SECONDS = 0.02


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
    unsettled: set[Path]
    refused: dict[Path, str]


def distrust(info: os.stat_result) -> str | None:
    """Why a config file should not be run as given: anyone could have written it."""
    if info.st_mode & stat.S_IWOTH:
        return "it is world-writable (chmod o-w it)"
    if info.st_uid != os.getuid():
        return f"it is owned by uid {info.st_uid}, not by this user ({os.getuid()})"
    return None


def scan(patterns: Iterable[str], now: float | None = None, trust: bool = False) -> Scan:
    """Read every matching file. One modified in the last SETTLE_SECONDS may be mid-write
    (a writer that truncates then writes, and was descheduled between): look again soon."""
    now = time.time() if now is None else now
    configs: dict[str, Config] = {}
    not_vassals: dict[Path, str] = {}
    unsettled: set[Path] = set()
    refused: dict[Path, str] = {}
    for pattern in patterns:
        for match in sorted(glob.glob(pattern, recursive=True)):
            path = Path(match)
            try:
                info = path.stat()
                if now - info.st_mtime < SETTLE_SECONDS:
                    unsettled.add(path)
                    continue
                content = path.read_bytes()
            except OSError:
                continue
            reason = None if trust else distrust(info)
            if reason is not None:
                refused[path] = reason
                continue
            digest = hashlib.sha256(content).hexdigest()
            ini = uwsgi_ini.parse(content.decode("utf-8", errors="replace"), path)
            if uwsgi_ini.SECTION not in ini.sections:
                not_vassals[path] = digest
                continue
            name = vassal_name(path, pattern)
            if name in configs and configs[name].path != path:
                name = f"{path.parent.name}/{path.stem}"
            configs.setdefault(name, Config(name, path, digest, ini.has_workers))
    return Scan(configs, not_vassals, unsettled, refused)


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
