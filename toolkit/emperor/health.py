"""A vassal's continuous health check, and the router's rotation it is taken out of.

What to ask comes from the vassal's config: a `# toolkit-health: path=/ status=200 every=5
timeout=2 out-after=3 restart-after=6` line (toolkit's templates write one for app
vassals; uWSGI reads it as a comment). The probe is the request a release's health check
sends (toolkit/uwsgi_packet.py) straight to the vassal's own uwsgi socket, made on the
Emperor's loop: a non-blocking connect, one write, reads until the status line; no thread,
and nothing runs between probes but a timer.

Out of rotation means out of its router's subscription pool: the master's FIFO "S" blocks
its announcements (core/fifo.c, subscriptions_blocker, a toggle) and an unsubscribe packet
withdraws it at once; "S" again lets it announce itself again (within subscribe-freq)."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from toolkit import uwsgi_packet
from toolkit.emperor.clock import Cancellable

# Reading this much of an answer without its status line means it is not HTTP.
STATUS_LINE_LIMIT = 8192
# An unsubscribe is a UDP datagram: sent twice, as loopback may drop one under pressure.
UNSUBSCRIBE_COPIES = 2


@dataclass(frozen=True)
class Health:
    """What the vassal's health check asks, and what its results lead to."""

    address: tuple[str, int]
    path: str = "/"
    status: int = 200
    host: str = "localhost"
    every: float = 5.0
    timeout: float = 2.0
    out_after: int = 3
    """Failures in a row that take it out of its router's rotation (readiness)."""
    restart_after: int = 6
    """Failures in a row that restart it (liveness); 0: never."""

    def __str__(self) -> str:
        return f"GET {self.path} -> {self.status}"


def parse_health(line: str | None, sockets: tuple[str, ...]) -> Health | None:
    """The `# toolkit-health:` line's `key=value` words; None without one, or without an
    address to ask (its own `address=`, else the vassal's first uwsgi TCP socket)."""
    if line is None:
        return None
    # Rendered as uWSGI reads values, `%` doubled; read back as written.
    words = dict(word.replace("%%", "%").partition("=")[::2] for word in line.split())
    address = words.get("address") or (sockets[0] if sockets else "")
    host, _, port = address.rpartition(":")
    try:
        return Health(
            (host, int(port)),
            path=words.get("path", "/"),
            status=int(words.get("status", "200")),
            host=words.get("host", "localhost"),
            every=float(words.get("every", "5")),
            timeout=float(words.get("timeout", "2")),
            out_after=max(1, int(words.get("out-after", "3"))),
            restart_after=max(0, int(words.get("restart-after", "6"))),
        )
    except ValueError:
        return None


@dataclass(frozen=True)
class Rotation:
    """How to take the vassal out of its routers' rotation and put it back."""

    fifo: Path | None
    subscriptions: tuple[tuple[tuple[str, int], str, str], ...]
    """(subscription server, key, the node it announces) for each `subscribe-to`."""

    def withdraw(self) -> None:
        """Block its announcements, then tell each router to drop it now."""
        self.toggle()
        for server, key, node in self.subscriptions:
            for _ in range(UNSUBSCRIBE_COPIES):
                try:
                    uwsgi_packet.unsubscribe(server, key, node)
                except OSError:
                    break

    def toggle(self) -> None:
        """The master FIFO's "S": block announcements if they flow, let them flow if not."""
        if self.fifo is None:
            return
        try:
            fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return  # no reader: no master listening there (it is restarting)
        try:
            os.write(fd, b"S")
        except OSError:
            pass
        finally:
            os.close(fd)


def parse_rotation(
    path: Path, fifo: str | None, subscriptions: list[str], node: str | None
) -> Rotation | None:
    """From `master-fifo` (its %d and %n, the magic variables toolkit's templates use) and
    `subscribe-to = HOST:PORT:KEY` lines announcing `node` (its uwsgi socket)."""
    found = []
    for value in subscriptions if node else []:
        host, _, rest = value.partition(":")
        port, _, key = rest.partition(":")
        if host and port.isdigit() and key:
            assert node is not None
            found.append(((host, int(port)), key.split(",")[0], node))
    if not found:
        return None
    folder = str(path.parent) + "/"
    resolved = Path(fifo.replace("%d", folder).replace("%n", path.stem)) if fifo else None
    return Rotation(resolved, tuple(found))


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
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
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
            self.socket.send(uwsgi_packet.request_packet(health.path, health.host))
        except OSError as error:
            self._finish(f"the request could not be sent: {error.strerror}")
            return
        self.loop.add_reader(self.socket.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            chunk = self.socket.recv(4096)
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
        if int(words[1]) != self.health.status:
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


def _shown(health: Health) -> str:
    return f"{health.address[0]}:{health.address[1]}"
