"""A vassal's config file as the Emperor last read it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from toolkit.emperor.health import Health, Rotation

Stamp = tuple[int, int, int]
# `uwsgi@ID.ini`: the service `uwsgi`, instance (release) `ID`, as systemd names template units.
INSTANCE_MARK = "@"


@dataclass(frozen=True)
class VassalConfig:
    """Its name, path, content digest, and the file's stamp then, which tells whether
    uWSGI, reading it later, can have read anything else."""

    name: str
    path: Path
    digest: str
    stamp: Stamp
    has_workers: bool
    sockets: tuple[str, ...] = ()
    """Its `socket = IPv4:port` lines: what the Emperor binds and hands over (listeners)."""
    health: Health | None = None
    """Its continuous health check (`# toolkit-health:`), if it has one."""
    rotation: Rotation | None = None
    """How it leaves its router's rotation and comes back (subscriptions), if it can."""
    harakiri: int = 0
    """Its `harakiri` seconds, said when a worker is killed by it."""
    memory_max: int = 0
    """Bytes its processes may hold together (`# toolkit-memory-max:`); 0: no limit."""

    @property
    def service(self) -> str:
        """What users call it: `uwsgi` for both `uwsgi.ini` and a release's `uwsgi@ID.ini`,
        which run side by side while a release switches (the name is unique, this is not)."""
        return self.name.partition(INSTANCE_MARK)[0]

    @property
    def instance(self) -> str:
        """The part after `@`: the release a vassal runs; "" for none."""
        return self.name.partition(INSTANCE_MARK)[2]


def file_stamp(info: os.stat_result) -> Stamp:
    """Inode, size and mtime: any write, truncation or replacement changes one of them."""
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def stamp_of(path: Path) -> Stamp | None:
    """The file's stamp now; None when it is gone."""
    try:
        return file_stamp(path.stat())
    except OSError:
        return None
