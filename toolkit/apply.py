"""Compare rendered text with what is on disk, and write only what changed, atomically."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from toolkit.errors import ToolkitError

FILE_MODE = 0o644


class Status(StrEnum):
    CHANGED = "changed"
    OK = "ok"


@dataclass(frozen=True)
class FileChange:
    """One planned file: what is there now and what should be (None: absent)."""

    path: Path
    old: str | None
    new: str | None

    @property
    def status(self) -> Status:
        return Status.OK if self.old == self.new else Status.CHANGED

    @property
    def created(self) -> bool:
        return self.old is None

    @property
    def removed(self) -> bool:
        return self.new is None

    def diff(self) -> str:
        import difflib

        return "".join(
            difflib.unified_diff(
                (self.old or "").splitlines(keepends=True),
                (self.new or "").splitlines(keepends=True),
                fromfile="/dev/null" if self.old is None else f"{self.path} (before)",
                tofile="/dev/null" if self.new is None else f"{self.path} (after)",
            )
        )


def read(path: Path) -> str | None:
    """A vassal file's text; None when it is not there."""
    from toolkit.files import read_regular

    try:
        return read_regular(path, "vassal file").decode("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise ToolkitError(f"cannot read: {error}", file=path) from error


def plan(target: Path, rendered: Mapping[str, str], stale: list[Path]) -> list[FileChange]:
    """Changes to write `rendered` into `target`, and to remove the `stale` files."""
    changes = [
        FileChange(target / name, read(target / name), text) for name, text in rendered.items()
    ]
    return changes + [FileChange(path, read(path), None) for path in stale]


def write_atomically(path: Path, text: str, mode: int = FILE_MODE) -> None:
    write_atomically_bytes(path, text.encode("utf-8"), mode)


def write_atomically_bytes(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Temporary file in the same folder, fsync, rename: readers see old or new, never half."""
    import tempfile

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise ToolkitError(f"cannot write: {error.strerror}", file=path) from error
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise ToolkitError(f"cannot write: {error.strerror}", file=path) from error


def apply(changes: list[FileChange]) -> None:
    """Write the changed files; an unchanged file keeps its content and mtime.

    Many files (render --all-hosts) are staged as temporary files, made durable by one
    sync rather than one fsync each, then renamed into place."""
    writes = [c for c in changes if c.new is not None and c.status is Status.CHANGED]
    for change in changes:
        if change.new is None:
            change.path.unlink(missing_ok=True)
    if len(writes) <= 2:
        for change in writes:
            write_atomically(change.path, change.new or "")
        return
    staged: list[tuple[str, Path]] = []
    try:
        for folder in {change.path.parent for change in writes}:
            folder.mkdir(parents=True, exist_ok=True)
        for change in writes:
            staged.append((_stage(change.path, (change.new or "").encode("utf-8")), change.path))
        os.sync()
        for temporary, path in staged:
            os.replace(temporary, path)
    except OSError as error:
        for temporary, _ in staged:
            Path(temporary).unlink(missing_ok=True)
        raise ToolkitError(f"cannot write: {error.strerror}", file=error.filename) from error


def _stage(path: Path, data: bytes, mode: int = FILE_MODE) -> str:
    """A temporary file beside `path` holding `data`, not yet synced nor renamed."""
    import tempfile

    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)
    os.chmod(temporary, mode)
    return temporary
