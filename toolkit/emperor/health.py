"""A vassal's continuous health check, and the router's rotation it is taken out of.

What to ask comes from the vassal's config: a `# toolkit-health: path=/ status=200 every=5
timeout=2 out-after=3 restart-after=6` line (toolkit's templates write one for app
vassals; uWSGI reads it as a comment). The probe (probe.py) is the request a release's
health check sends straight to the vassal's own uwsgi socket; nothing runs between probes
but a timer.

Out of rotation means out of its router's subscription pool: the master's FIFO "S" blocks
its announcements (core/fifo.c, subscriptions_blocker, a toggle) and an unsubscribe packet
withdraws it at once; "S" again lets it announce itself again (within subscribe-freq)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

TYPE_CHECKING = False  # the Emperor never loads typing (toolkit/emperor/__init__.py)
if TYPE_CHECKING:
    from toolkit.emperor.clock import Cancellable
    from toolkit.emperor.probe import Loop, Prober

# An unsubscribe is a UDP datagram: sent twice, as loopback may drop one under pressure.
UNSUBSCRIBE_COPIES = 2


@dataclass(frozen=True)
class Health:
    """What the vassal's health check asks, and what its results lead to."""

    address: tuple[str, int]
    path: str = "/"
    status: int = 200
    """The status wanted; 0: any HTTP answer."""
    host: str = "localhost"
    every: float = 5.0
    timeout: float = 2.0
    out_after: int = 3
    """Failures in a row that take it out of its router's rotation (readiness)."""
    restart_after: int = 6
    """Failures in a row that restart it (liveness); 0: never."""
    over_http: bool = False
    """Asked as a browser asks (a router's public address), not on a uwsgi socket."""

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


def site_check(url: str) -> Health:
    """Any answer at a site's public address (`http://HOST:PORT`, as `up` prints it)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return Health((host, parts.port or 80), status=0, host=host, timeout=2.0, over_http=True)


@dataclass(frozen=True)
class Rotation:
    """How to take the vassal out of its routers' rotation and put it back."""

    fifo: Path | None
    subscriptions: tuple[tuple[tuple[str, int], str, str], ...]
    """(subscription server, key, the node it announces) for each `subscribe-to`."""

    def withdraw(self) -> None:
        """Block its announcements, then tell each router to drop it now."""
        from toolkit import uwsgi_packet

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


class LazyProber:
    """Probes on the Emperor's loop, their code loaded at the first one (an Emperor whose
    vassals have no health check never loads it)."""

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        self._prober: Prober | None = None

    def probe(self, health: Health, done: Callable[[str | None], None]) -> Cancellable:
        if self._prober is None:
            from toolkit.emperor.probe import LoopProber

            self._prober = LoopProber(self.loop)
        return self._prober.probe(health, done)
