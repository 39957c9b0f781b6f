"""What ends with a vassal: every process it started, including one that left its process
group (an app that daemonizes, a double fork), which the group SIGKILL misses.

Two ways, the first this machine offers:
- a cgroup v2 per vassal process, made under the Emperor's own cgroup (as root, or where
  it is delegated, as systemd does with Delegate=yes): whatever is left in it when the
  master exits is killed at once (cgroup.kill);
- elsewhere, the process tree as the environment marks it: each vassal is started with
  TOOLKIT_VASSAL_ID, which every process it forks or execs inherits; when the master exits,
  every process of this user that still carries that ID is killed. (A daemon that clears
  its environment escapes this one.)
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from pathlib import Path

TYPE_CHECKING = False  # the Emperor never loads typing (toolkit/emperor/__init__.py)
if TYPE_CHECKING:
    from typing import Protocol

VARIABLE = "TOOLKIT_VASSAL_ID"
NO_MEMORY_LIMIT = (
    "its memory limit cannot be set: the Emperor has no cgroup v2 of its own here (run it "
    "as root, or under systemd with Delegate=yes)"
)
CGROUP_PREFIX = "toolkit-emperor-"


if TYPE_CHECKING:

    class Containment(Protocol):
        kind: str

        def environment(self) -> dict[str, str]:
            """What to add to the environment of the next vassal process."""
            ...

        def adopt(self, pid: int, environment: dict[str, str], memory_max: int = 0) -> str | None:
            """The vassal process just started with that environment; with `memory_max`, its
            processes together may hold that many bytes. Why that limit could not be set, or
            None."""
            ...

        def end(self, pid: int) -> None:
            """Its master has exited: end whatever it left behind."""
            ...

        def close(self) -> None: ...


def _ids() -> itertools.count[int]:
    return itertools.count(1)


class ProcessTree:
    """The environment's mark: no setup, a scan of /proc when a vassal ends."""

    kind = "process tree (TOOLKIT_VASSAL_ID)"

    def __init__(self) -> None:
        self._next = _ids()
        self._marks: dict[int, bytes] = {}

    def environment(self) -> dict[str, str]:
        return {VARIABLE: f"{os.getpid()}-{next(self._next)}"}

    def adopt(self, pid: int, environment: dict[str, str], memory_max: int = 0) -> str | None:
        self._marks[pid] = f"{VARIABLE}={environment[VARIABLE]}".encode()
        return NO_MEMORY_LIMIT if memory_max else None

    def end(self, pid: int) -> None:
        mark = self._marks.pop(pid, None)
        if mark is None:
            return
        uid = os.getuid()
        with contextlib.suppress(OSError):
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                with contextlib.suppress(OSError):
                    if entry.stat().st_uid != uid:
                        continue
                    with open(f"/proc/{entry.name}/environ", "rb") as stream:
                        if mark in stream.read().split(b"\0"):
                            os.kill(int(entry.name), signal.SIGKILL)

    def close(self) -> None:
        self._marks.clear()


class Cgroups:
    """One cgroup v2 per vassal process, under toolkit-emperor-PID in the Emperor's cgroup."""

    kind = "cgroup v2"

    def __init__(self, base: Path) -> None:
        self.base = base
        self._next = _ids()
        self._groups: dict[int, Path] = {}
        # Groups killed whose processes were still dying: removed at a later call.
        self._emptying: set[Path] = set()

    @classmethod
    def here(cls) -> Cgroups | None:
        """Where the Emperor may make cgroups: None when it may not (no cgroup v2 mount, not
        delegated, no cgroup.kill). Nothing is made until a vassal starts. Groups a dead
        Emperor left are ended and removed on the way."""
        found = own_cgroup()
        if found is None:
            return None
        probe = found / f"{CGROUP_PREFIX}{os.getpid()}-probe"
        try:
            probe.mkdir()
            usable = (probe / "cgroup.kill").exists()
        except OSError:
            return None
        finally:
            with contextlib.suppress(OSError):
                probe.rmdir()
        if not usable:
            return None
        _end_stale(found)
        return cls(found / f"{CGROUP_PREFIX}{os.getpid()}")

    def environment(self) -> dict[str, str]:
        return {}

    def adopt(self, pid: int, environment: dict[str, str], memory_max: int = 0) -> str | None:
        """Move the master into a group of its own, right after it started (before it has
        read its config, long before it forks a worker), with its memory limit."""
        self._remove_emptied()
        group = self.base / f"vassal-{next(self._next)}"
        try:
            group.mkdir(parents=True)
            (group / "cgroup.procs").write_text(f"{pid}\n")
        except OSError:
            with contextlib.suppress(OSError):
                group.rmdir()
            return NO_MEMORY_LIMIT if memory_max else None
        self._groups[pid] = group
        return _limit_memory(group, memory_max) if memory_max else None

    def end(self, pid: int) -> None:
        group = self._groups.pop(pid, None)
        if group is not None:
            _kill(group)
            self._emptying.add(group)
        self._remove_emptied()

    def _remove_emptied(self) -> None:
        self._emptying = {group for group in self._emptying if not _removed(group)}

    def close(self) -> None:
        for group in [*self._groups.values(), *self._emptying]:
            _kill(group)
            for _ in range(100):
                if _removed(group):
                    break
                time.sleep(0.01)
        self._groups.clear()
        self._emptying.clear()
        with contextlib.suppress(OSError):
            self.base.rmdir()


def _limit_memory(group: Path, limit: int) -> str | None:
    """memory.max on the vassal's group: the kernel's OOM killer then ends a process of this
    vassal alone when its processes together pass it. Needs the memory controller enabled
    down to the group (cgroup.subtree_control of its parents)."""
    if "memory" not in _controllers(group):
        with contextlib.suppress(OSError):
            (group.parent / "cgroup.subtree_control").write_text("+memory\n")
    if "memory" not in _controllers(group):
        available = _controllers(group.parent.parent) or "none"
        return (
            "its memory limit cannot be set: the memory controller is not available to "
            f"toolkit's cgroups here (cgroup v2 controllers: {available})"
        )
    try:
        (group / "memory.max").write_text(f"{limit}\n")
    except OSError as error:
        return f"its memory limit cannot be set: {error.strerror}"
    return None


def memory_limits_here() -> str | None:
    """Why an Emperor started here could not limit a vassal's memory, or None: it needs a
    cgroup v2 of its own (as root, or delegated) whose parent offers the memory controller."""
    own = own_cgroup()
    if own is None or not os.access(own, os.W_OK):
        return NO_MEMORY_LIMIT
    offered = _controllers(own)
    if "memory" not in offered.split():
        return (
            "the memory controller is not available to toolkit's cgroups here (cgroup v2 "
            f"offers: {offered or 'none'}; on a hybrid machine memory is on cgroup v1)"
        )
    return None


def _controllers(group: Path) -> str:
    try:
        return (group / "cgroup.controllers").read_text().strip()
    except OSError:
        return ""


def own_cgroup() -> Path | None:
    """This process's cgroup v2 folder, from /proc/self/cgroup and the cgroup2 mount."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    relative = next((line[3:] for line in lines if line.startswith("0::")), None)
    mount = next((m.split()[4] for m in mounts if " - cgroup2 " in m), None)
    if relative is None or mount is None:
        return None
    folder = Path(mount) / relative.lstrip("/")
    return folder if folder.is_dir() else None


def _kill(group: Path) -> None:
    """cgroup.kill SIGKILLs every process in the group, at once (Linux 5.14)."""
    with contextlib.suppress(OSError):
        (group / "cgroup.kill").write_text("1\n")


def _removed(group: Path) -> bool:
    """Removed, or already gone; False while processes in it are still dying."""
    try:
        group.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def _end_stale(parent: Path) -> None:
    """Groups of Emperors that died without cleaning up (SIGKILL): end what runs in them."""
    for folder in parent.glob(f"{CGROUP_PREFIX}*"):
        pid = folder.name.removeprefix(CGROUP_PREFIX).removesuffix("-probe")
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        for group in folder.glob("vassal-*"):
            _kill(group)
            for _ in range(100):
                if _removed(group):
                    break
                time.sleep(0.01)
        with contextlib.suppress(OSError):
            folder.rmdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def containment() -> Containment:
    return Cgroups.here() or ProcessTree()
