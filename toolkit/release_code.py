"""A release's files: the code, copied by git's rules or a documented exclude list, and the
state that is not code (a database, uploads, an instance folder), which lives once in the
deployment's `shared/` and is linked into every release where the app expects it.

What a release never copies: what the source's `.gitignore` ignores (`git ls-files
--cached --others --exclude-standard`, where the source is a git work tree), and always
`.git`, virtualenvs (any folder holding `pyvenv.cfg`), `__pycache__` and `*.pyc`, caches of
tools, databases (`*.sqlite3`, `*.sqlite`, `*.db`), FIFOs and devices, the shared paths and
`release_exclude`."""

from __future__ import annotations

import fnmatch
import os
import shutil
import stat
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.errors import ToolkitError
from toolkit.files import inside
from toolkit.release_store import SHARED

NEVER_FOLDERS = (".git", "__pycache__", "node_modules", ".tox", ".nox", ".mypy_cache",
                 ".pytest_cache", ".ruff_cache", ".cache")  # fmt: skip
NEVER_FILES = ("*.pyc", "*.pyo", "*.sqlite3", "*.sqlite", "*.db", "*.sqlite3-journal",
               "*.sqlite3-wal", "*.sqlite3-shm")  # fmt: skip


@dataclass
class Copied:
    """What a copy took and what it left out, for the report."""

    files: int = 0
    size: int = 0
    left_out: dict[str, str] = field(default_factory=dict)
    """Top-level paths left out, and why."""


def _is_virtualenv(folder: Path) -> bool:
    return (folder / "pyvenv.cfg").is_file()


def _git_files(source: Path) -> list[str] | None:
    """The files git would keep (tracked, or new and not ignored), relative to `source`;
    None when `source` is not in a git work tree."""
    try:
        inside_tree = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "--is-inside-work-tree"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if inside_tree.returncode != 0 or inside_tree.stdout.strip() != "true":
            return None
        listed = subprocess.run(
            ["git", "-C", str(source), "ls-files", "-z", "--cached", "--others",
             "--exclude-standard"],
            capture_output=True, check=True, timeout=120,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return [os.fsdecode(name) for name in listed.stdout.split(b"\0") if name]


def _under(relative: str, paths: list[str]) -> bool:
    return any(
        relative == path.rstrip("/") or relative.startswith(path.rstrip("/") + "/")
        for path in paths
    )


def _left_out(relative: str, shared: list[str], excluded: list[str]) -> str | None:
    """Why a path (relative, with `/`) is never copied, or None."""
    if _under(relative, shared):
        return "shared"
    if _under(relative, excluded):
        return "release_exclude"
    parts = relative.split("/")
    for part in parts[:-1]:
        if part in NEVER_FOLDERS:
            return f"{part}/ (never copied)"
    if any(fnmatch.fnmatch(parts[-1], pattern) for pattern in NEVER_FILES):
        return "a database or compiled file"
    return None


def _walk(source: Path) -> Iterable[tuple[str, str | None]]:
    """(relative path, why left out) for every file under `source`, pruning folders that are
    never copied (so a virtualenv is not even walked)."""
    for folder, subfolders, files in os.walk(source):
        base = Path(folder)
        kept = []
        for name in subfolders:
            child = base / name
            relative = child.relative_to(source).as_posix()
            if name in NEVER_FOLDERS:
                yield relative + "/", f"{name}/ (never copied)"
            elif _is_virtualenv(child):
                yield relative + "/", "a virtualenv"
            elif child.is_symlink():
                yield relative, None
            else:
                kept.append(name)
        subfolders[:] = kept
        for name in files:
            yield (base / name).relative_to(source).as_posix(), None


def copy_code(source: Path, target: Path, shared: list[str], excluded: list[str]) -> Copied:
    """Copy the code of `source` into `target` (made here), by git's rules where `source` is
    in a work tree, else by walking it; `shared` and `excluded` are paths relative to
    `source` that are left out."""
    if not source.is_dir():
        raise ToolkitError("no such folder to release", file=source)
    report = Copied()
    listed = _git_files(source)
    candidates = (
        ((name, None) for name in listed) if listed is not None else _walk(source)
    )  # fmt: skip
    target.mkdir(parents=True)
    for relative, why in candidates:
        why = _left_out(relative, shared, excluded) or why
        path = source / relative
        if why is None and not path.is_symlink() and path.is_dir() and _is_virtualenv(path):
            why = "a virtualenv"
        if why is not None:
            report.left_out.setdefault(relative.split("/")[0], why)
            continue
        _copy_one(path, target / relative, report)
    return report


def _copy_one(path: Path, destination: Path, report: Copied) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return  # tracked by git but deleted in the work tree
    destination.parent.mkdir(parents=True, exist_ok=True)
    if stat.S_ISLNK(info.st_mode):
        destination.symlink_to(os.readlink(path))
    elif stat.S_ISREG(info.st_mode):
        shutil.copy2(path, destination)
        report.files += 1
        report.size += info.st_size
    else:
        report.left_out.setdefault(path.name, "not a regular file")


def shared_root(deployment: Path) -> Path:
    return deployment / SHARED


def link_shared(deployment: Path, code: Path, shared: list[str]) -> None:
    """In a release's folder, each shared path becomes a link into shared/ (relative, so the
    deployment can move); its shared copy is made empty if there is none yet."""
    base = shared_root(deployment)
    for path in shared:
        relative = path.rstrip("/")
        where = inside(deployment, base / relative)
        if not where.exists() and not where.is_symlink():
            if path.endswith("/"):
                where.mkdir(parents=True, exist_ok=True)
            else:
                where.parent.mkdir(parents=True, exist_ok=True)
        link = code / relative
        if link.is_symlink():
            link.unlink()
        elif link.exists():
            # A release made before this path was shared holds its own copy: kept aside,
            # never deleted.
            aside = link.with_name(link.name + ".unshared")
            number = 1
            while aside.exists():
                number += 1
                aside = link.with_name(f"{link.name}.unshared{number}")
            link.rename(aside)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(where, link.parent))


@dataclass(frozen=True)
class Moved:
    path: str
    to: Path


def adopt_state(deployment: Path, app: Path, shared: list[str]) -> list[Moved]:
    """Before the first release: each shared path that exists in the app folder (the code
    that serves now) moves to shared/, and a link takes its place, so the code serving now
    goes on writing to the same files (a rename keeps them open) and no row written meanwhile
    is lost. Paths already moved (links into shared/) are left as they are."""
    base = shared_root(deployment)
    moved = []
    for path in shared:
        relative = path.rstrip("/")
        there = app / relative
        where = inside(deployment, base / relative)
        if there.is_symlink() or not there.exists():
            continue
        if where.exists():
            raise ToolkitError(
                f"{relative} is both in the app folder and in shared/",
                file=where,
                hint=f"keep one: the data the site serves is in {there}",
            )
        where.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(there, where)
        except OSError as error:
            raise ToolkitError(
                f"cannot move {there} into shared/: {error.strerror}",
                file=there,
                hint="move it there yourself (the same filesystem as the deployment), "
                f"and link {there} to it",
            ) from None
        there.symlink_to(where.resolve())
        moved.append(Moved(relative, where))
    return moved


def folder_size(folder: Path) -> int:
    """Bytes of the regular files under `folder`, links not followed."""
    total = 0
    for base, _, files in os.walk(folder):
        for name in files:
            info = (Path(base) / name).lstat()
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total
