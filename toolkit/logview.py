"""`toolkit logs`: the last lines of one vassal's log or of all of them merged by time, and
following them as they grow, through rotation (a new file at the same path) and truncation
(logrotate's `copytruncate`).

Every line the Emperor writes starts with its time (`2026-12-05 14:00:01.123 `), which is
what merging sorts on; a file is read from its end, never whole."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import ToolkitError

STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ")
BLOCK = 1 << 16
FOLLOW_EVERY = 0.2


def log_files(folder: Path, names: list[str]) -> dict[str, Path]:
    """The log of each vassal named, or of every vassal (and the Emperor's, when it ran in
    the background) when none is."""
    if names:
        found = {name: folder / f"{name.replace('/', '_')}.log" for name in names}
        missing = [name for name, path in found.items() if not path.is_file()]
        if missing:
            raise ToolkitError(
                f"no log for vassal {missing[0]!r}",
                file=found[missing[0]],
                hint="`toolkit status` names the vassals",
            )
        return found
    found = {path.stem: path for path in sorted(folder.glob("*.log")) if path.is_file()}
    if not found:
        raise ToolkitError("no logs yet", file=folder, hint="start the deployment with `up`")
    return found


def last_lines(path: Path, count: int) -> list[str]:
    """The last `count` lines, read backwards a block at a time."""
    if count <= 0:
        return []
    with path.open("rb") as stream:
        end = stream.seek(0, os.SEEK_END)
        data = b""
        while end > 0 and data.count(b"\n") <= count:
            start = max(0, end - BLOCK)
            stream.seek(start)
            data = stream.read(end - start) + data
            end = start
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[-count:]


def merged(files: dict[str, Path], count: int) -> list[tuple[str, str]]:
    """The last `count` lines of all the files, in time order (a line without a stamp keeps
    its place after the one before it)."""
    every: list[tuple[str, int, str, str]] = []
    for name, path in files.items():
        stamp = ""
        for order, line in enumerate(last_lines(path, count)):
            found = STAMP.match(line)
            stamp = found.group(0) if found else stamp
            every.append((stamp, order, name, line))
    every.sort(key=lambda item: (item[0], item[2], item[1]))
    return [(name, line) for _, _, name, line in every[-count:]] if count else []


@dataclass
class Followed:
    path: Path
    identity: tuple[int, int] | None = None
    position: int = 0
    pending: bytes = b""


def follow(
    files: dict[str, Path], sleep: Callable[[float], None] = time.sleep
) -> Iterator[tuple[str, str]]:
    """Lines written from now on, as they come; a rotated file is read from the start of
    the new one, a truncated one from its start again."""
    followed = {name: Followed(path) for name, path in files.items()}
    for state in followed.values():
        try:
            info = state.path.stat()
        except FileNotFoundError:
            continue
        state.identity, state.position = (info.st_dev, info.st_ino), info.st_size
    while True:
        quiet = True
        for name, state in followed.items():
            for line in _new_lines(state):
                quiet = False
                yield name, line
        if quiet:
            sleep(FOLLOW_EVERY)


def _new_lines(state: Followed) -> list[str]:
    try:
        info = state.path.stat()
    except FileNotFoundError:
        return []
    if (info.st_dev, info.st_ino) != state.identity:
        state.identity, state.position, state.pending = (info.st_dev, info.st_ino), 0, b""
    elif info.st_size < state.position:
        state.position, state.pending = 0, b""
    if info.st_size == state.position:
        return []
    with state.path.open("rb") as stream:
        stream.seek(state.position)
        data = stream.read(info.st_size - state.position)
    state.position += len(data)
    *lines, state.pending = (state.pending + data).split(b"\n")
    return [line.decode("utf-8", errors="replace") for line in lines]
