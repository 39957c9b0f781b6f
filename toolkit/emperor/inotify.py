"""Linux inotify, the few calls the Emperor needs, through the C library already loaded.

Written here rather than taken from inotify_simple: that binding finds libc with
ctypes.util, which alone adds about 1 MB to the Emperor's resident memory (its issue #15
makes that memory the point). The calls are those of inotify(7)."""

from __future__ import annotations

import ctypes
import os
import struct
from dataclasses import dataclass

CREATE = 0x100
DELETE = 0x200
MODIFY = 0x2
CLOSE_WRITE = 0x8
MOVED_FROM = 0x40
MOVED_TO = 0x80
ATTRIB = 0x4
DELETE_SELF = 0x400
MOVE_SELF = 0x800
IGNORED = 0x8000
ISDIR = 0x40000000
Q_OVERFLOW = 0x4000
NONBLOCK = os.O_NONBLOCK
CLOEXEC = os.O_CLOEXEC
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, length of the name that follows
_READ_SIZE = 64 * 1024

_libc = ctypes.CDLL(None, use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
_libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]


@dataclass(frozen=True)
class InotifyEvent:
    wd: int
    mask: int
    name: str


class INotify:
    """One inotify instance: a non-blocking file descriptor to register with a loop."""

    def __init__(self) -> None:
        fd = _libc.inotify_init1(NONBLOCK | CLOEXEC)
        if fd < 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error))
        self.fd: int = fd

    def fileno(self) -> int:
        return self.fd

    def add_watch(self, path: str, mask: int) -> int:
        wd = _libc.inotify_add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error), path)
        return int(wd)

    def rm_watch(self, wd: int) -> None:
        """Stop a watch (an IGNORED event follows); one already gone is fine."""
        _libc.inotify_rm_watch(self.fd, wd)

    def read(self) -> list[InotifyEvent]:
        """Every event waiting now; none when there is nothing to read."""
        try:
            data = os.read(self.fd, _READ_SIZE)
        except BlockingIOError:
            return []
        events, offset = [], 0
        while offset + _HEADER.size <= len(data):
            wd, mask, _, length = _HEADER.unpack_from(data, offset)
            offset += _HEADER.size
            name = data[offset : offset + length].rstrip(b"\0")
            offset += length
            events.append(InotifyEvent(wd, mask, os.fsdecode(name)))
        return events

    def close(self) -> None:
        os.close(self.fd)
