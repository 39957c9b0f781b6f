"""uWSGI's emperor protocol: one byte per message over a socketpair named by UWSGI_EMPEROR_FD."""

from __future__ import annotations

import socket
from enum import IntEnum

ENVIRONMENT_VARIABLE = "UWSGI_EMPEROR_FD"


class ToVassal(IntEnum):
    RELOAD = 1
    GRACEFUL_STOP = 2  # workers finish the request in hand; 0 would cut it off


class FromVassal(IntEnum):
    SPAWNED = 1
    ACCEPTING = 5
    LOYAL = 17
    VOLUNTARY_SHUTDOWN = 22
    HEARTBEAT = 26
    BROODLORD = 30


def channel() -> tuple[socket.socket, socket.socket]:
    """(emperor end, vassal end); the vassal end is inherited by the child and closed here after."""
    emperor_end, vassal_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    emperor_end.setblocking(False)
    vassal_end.set_inheritable(True)
    return emperor_end, vassal_end
