"""The health check's request, made on the Emperor's loop: a non-blocking connect, one
write, reads until the status line; no thread. Imported once a vassal has a check due
(most Emperors never load it)."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable

from toolkit import uwsgi_packet
from toolkit.emperor.health import Health

TYPE_CHECKING = False  # the Emperor never loads typing (toolkit/emperor/__init__.py)
if TYPE_CHECKING:
    from typing import Protocol

    from toolkit.emperor.clock import Cancellable

# Reading this much of an answer without its status line means it is not HTTP.
STATUS_LINE_LIMIT = 8192


if TYPE_CHECKING:

    class Prober(Protocol):
        def probe(self, health: Health, done: Callable[[str | None], None]) -> Cancellable: ...

    class Loop(Protocol):
        def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable: ...
        def add_reader(self, fd: int, callback: Callable[[], None]) -> None: ...
        def add_writer(self, fd: int, callback: Callable[[], None]) -> None: ...
        def remove_reader(self, fd: int) -> None: ...


class LoopProber:
    """Probes on the Emperor's loop."""

    def __init__(self, loop: Loop) -> None:
        self.loop = loop

    def probe(self, health: Health, done: Callable[[str | None], None]) -> Cancellable:
        return Probe(self.loop, health, done)


class Probe:
    """One request to the vassal's socket; `done(None)` when it answered the status wanted,
    else `done(what happened)`, exactly once; cancel() ends it quietly."""

    def __init__(self, loop: Loop, health: Health, done: Callable[[str | None], None]) -> None:
        self.loop, self.health, self.done = loop, health, done
        self.answer = b""
        self.finished = False
        family = socket.AF_INET6 if ":" in health.address[0] else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setblocking(False)
        self.timer = loop.call_later(health.timeout, self._timed_out)
        code = self.socket.connect_ex(health.address)
        if code not in (0, errno.EINPROGRESS):
            self._finish(f"{os.strerror(code).lower()} (connecting to {_shown(health)})")
            return
        loop.add_writer(self.socket.fileno(), self._connected)

    def cancel(self) -> None:
        self._close()

    def _connected(self) -> None:
        self.loop.remove_reader(self.socket.fileno())
        code = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._finish(f"{os.strerror(code).lower()} (connecting to {_shown(self.health)})")
            return
        health = self.health
        try:
            self.socket.send(_request(health))
        except OSError as error:
            self._finish(f"the request could not be sent: {error.strerror}")
            return
        self.loop.add_reader(self.socket.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            chunk = self.socket.recv(256)
        except BlockingIOError:
            return
        except OSError as error:
            self._finish(f"the connection failed: {error.strerror}")
            return
        self.answer += chunk
        line, newline, _ = self.answer.partition(b"\r\n")
        if newline or not chunk or len(self.answer) > STATUS_LINE_LIMIT:
            self._finish(self._judge(line.decode("latin-1")) if newline else self._cut())

    def _judge(self, line: str) -> str | None:
        words = line.split(" ")
        if len(words) < 2 or not words[1].isdigit():
            return f"{self.health.path} answered {line[:60]!r}, not HTTP"
        if self.health.status and int(words[1]) != self.health.status:
            return f"GET {self.health.path} answered {words[1]}, not {self.health.status}"
        return None

    def _cut(self) -> str:
        return f"GET {self.health.path}: the connection closed before any answer"

    def _timed_out(self) -> None:
        self._finish(
            f"GET {self.health.path}: no answer within {self.health.timeout:g} s "
            "(accepted, then silent: a hang)"
            if self.answer == b"" and self._was_connected()
            else f"GET {self.health.path}: no answer within {self.health.timeout:g} s"
        )

    def _was_connected(self) -> bool:
        try:
            self.socket.getpeername()
        except OSError:
            return False
        return True

    def _finish(self, result: str | None) -> None:
        if self.finished:
            return
        self._close()
        self.done(result)

    def _close(self) -> None:
        if self.finished:
            return
        self.finished = True
        self.timer.cancel()
        if self.socket.fileno() >= 0:
            self.loop.remove_reader(self.socket.fileno())
            self.socket.close()


def _request(health: Health) -> bytes:
    if health.over_http:
        return f"GET {health.path} HTTP/1.0\r\nHost: {health.host}\r\n\r\n".encode("latin-1")
    return uwsgi_packet.request_packet(health.path, health.host)


def _shown(health: Health) -> str:
    return f"{health.address[0]}:{health.address[1]}"
