"""systemd's notify protocol (sd_notify(3)), for a unit of Type=notify: READY=1 once every
vassal serves and the site answers, STATUS= with how many vassals serve, WATCHDOG=1 from the
loop when the unit asks for it (WatchdogSec=), STOPPING=1 on the way out. Nothing at all
outside such a unit."""

from __future__ import annotations

import os
import socket


class Notifier:
    """The datagram socket NOTIFY_SOCKET names (an abstract one when it starts with `@`)."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        environ = dict(os.environ if environ is None else environ)
        where = environ.get("NOTIFY_SOCKET", "")
        self.address = "\0" + where[1:] if where.startswith("@") else where
        self.watchdog: float | None = None
        usec = environ.get("WATCHDOG_USEC", "")
        if usec.isdigit() and environ.get("WATCHDOG_PID", str(os.getpid())) == str(os.getpid()):
            self.watchdog = int(usec) / 1e6
        self.ready = False
        self._unsent_ready: str | None = None
        self._said = ""
        self._socket: socket.socket | None = None
        if self.address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.setblocking(False)

    def send(self, *lines: str) -> bool:
        """False when it could not be sent: no such socket, or its queue is full (systemd
        reads it at once; its queue holds net.unix.max_dgram_qlen messages)."""
        if self._socket is None:
            return False
        try:
            self._socket.sendto("\n".join(lines).encode(), self.address)
        except OSError:
            return False
        return True

    def serving(self, count: int, total: int, answering: bool = True) -> None:
        """Say how many vassals serve; READY=1 the first time every one of them does and the
        site answers (at once when there are none)."""
        status = f"STATUS={count} of {total} vassals serving"
        if status == self._said and self.ready:
            return
        self._said = status
        if count == total and (answering or not total) and not self.ready:
            self._unsent_ready = status
            self.send_ready()
        else:
            self.send(status)

    def send_ready(self) -> None:
        """READY=1, due and not sent yet (the socket's queue was full): sent again at each
        event and watchdog tick until it goes."""
        if self._unsent_ready is not None and self.send("READY=1", self._unsent_ready):
            self.ready, self._unsent_ready = True, None

    def close(self) -> None:
        if self._socket is not None:
            self.send("STOPPING=1")
            self._socket.close()
            self._socket = None
