"""Listening sockets the Emperor binds for its vassals and keeps across their deaths.

A vassal's `socket = IP:port` is bound here, not by uWSGI, and handed to each process the
vassal runs as `--socket fd://N` (uWSGI adopts such an fd and skips binding the same
address again: core/socket.c, uwsgi_add_socket_from_fd and uwsgi_socket_is_already_bound).
While a crashed vassal restarts, the kernel keeps queueing its new connections in the
backlog instead of refusing them, as circus and systemd socket activation do.
"""

from __future__ import annotations

import socket

# uWSGI's own default listen queue (`listen`, 100).
BACKLOG = 100


class Listeners:
    """The sockets held per vassal name; a vassal that goes away gives its sockets back."""

    def __init__(self) -> None:
        self._held: dict[str, dict[str, socket.socket]] = {}

    def hold(self, name: str, addresses: tuple[str, ...]) -> list[int]:
        """The fds to hand to `name`'s next process: one per address this process could
        bind (an address someone else holds is left for uWSGI to try, and to report)."""
        held = self._held.setdefault(name, {})
        for address in [a for a in held if a not in addresses]:
            held.pop(address).close()
        for address in addresses:
            if address not in held and (bound := _listen(address)) is not None:
                held[address] = bound
        return [held[a].fileno() for a in addresses if a in held]

    def release(self, name: str) -> None:
        """Close `name`'s sockets: new connections are refused again, not left waiting."""
        for held in self._held.pop(name, {}).values():
            held.close()


def _listen(address: str) -> socket.socket | None:
    host, _, port = address.rpartition(":")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, int(port)))
        listener.listen(BACKLOG)
    except (OSError, ValueError, OverflowError):
        listener.close()
        return None
    return listener
