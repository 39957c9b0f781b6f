"""Precompress static files for `static-gzip-all`: gzip -9 beside each file, only if it helps."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

from toolkit.apply import write_atomically_bytes
from toolkit.errors import ToolkitError

SUFFIXES = (".css", ".js", ".html", ".htm", ".svg", ".json", ".txt", ".xml", ".map")


@dataclass(frozen=True)
class Compressed:
    path: Path
    size: int
    gzipped: int | None  # None: skipped because gzip would not shrink it

    @property
    def written(self) -> bool:
        return self.gzipped is not None


def compress(folder: Path) -> list[Compressed]:
    """Every text-like file under `folder` gets a `.gz` twin (level 9, original kept).

    Unlike the guide's `find` line, whose operator precedence only picked the `.js`
    files, this takes every suffix in SUFFIXES, and skips a file gzip would not shrink.
    """
    if not folder.is_dir():
        raise ToolkitError("no such folder", file=folder, hint="name the static folder")
    report = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.suffix not in SUFFIXES:
            continue
        data = path.read_bytes()
        packed = gzip.compress(data, compresslevel=9, mtime=0)
        target = path.with_name(path.name + ".gz")
        if len(packed) >= len(data):
            target.unlink(missing_ok=True)
            report.append(Compressed(path, len(data), None))
            continue
        if not target.exists() or target.read_bytes() != packed:
            write_atomically_bytes(target, packed)
        report.append(Compressed(path, len(data), len(packed)))
    return report
