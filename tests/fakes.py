"""A fake clock and a fake uwsgi for driving vassals and the Emperor in milliseconds.

The fake uwsgi behaves as the real one does where the Emperor depends on it: it reads its
config when spawned, speaks only when the test says, and dies when its group is SIGKILLed
(a moment later, as a real process does). It refuses to become a second master for one
vassal name: that is the first invariant, checked at every spawn.
"""

from __future__ import annotations

import heapq
import itertools
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from toolkit.emperor.config import Stamp, VassalConfig, stamp_of
from toolkit.emperor.protocol import ToVassal

if TYPE_CHECKING:
    from toolkit.emperor.child import Parent

KILL_LATENCY = 0.001


@dataclass(order=True)
class FakeTimer:
    when: float
    order: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Monotonic time that moves only when told; timers fire in order as it moves."""

    def __init__(self) -> None:
        self.time = 1000.0
        self._due: list[FakeTimer] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self.time

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(self.time + max(0.0, delay), next(self._order), callback)
        heapq.heappush(self._due, timer)
        return timer

    def advance(self, seconds: float) -> None:
        until = self.time + seconds
        while self._due and self._due[0].when <= until:
            timer = heapq.heappop(self._due)
            if not timer.cancelled:
                self.time = max(self.time, timer.when)
                timer.callback()
        self.time = until

    def pause(self, seconds: float) -> None:
        """Time passes while the process does not run (SIGSTOP): timers fire late, after."""
        self.time += seconds
        self.advance(0)

    def pending(self) -> list[FakeTimer]:
        return sorted(t for t in self._due if not t.cancelled)


class TwoMasters(AssertionError):
    pass


class FakeChild:
    def __init__(
        self, spawner: FakeSpawner, pid: int, config: VassalConfig, parent: Parent
    ) -> None:
        self.spawner = spawner
        self.pid = pid
        self.config = config
        self.parent = parent
        # uWSGI reads its config by path right after exec.
        self.read: Stamp | None = stamp_of(config.path)
        try:
            self.content: bytes | None = config.path.read_bytes()
        except OSError:
            self.content = None
        self.sent: list[ToVassal] = []
        self.signals: list[signal.Signals] = []
        self.alive = True
        self.dying = False

    def send(self, message: ToVassal) -> None:
        self.sent.append(message)

    def signal(self, number: signal.Signals) -> None:
        self.signals.append(number)

    def kill_group(self) -> None:
        if self.alive and not self.dying:
            self.dying = True
            self.spawner.clock.call_later(KILL_LATENCY, lambda: self.exit(-signal.SIGKILL))

    def say(self, message: int) -> None:
        if self.alive:
            self.parent.message(message)

    def print(self, line: bytes) -> None:
        if self.alive:
            self.parent.output(line)

    def exit(self, code: int) -> None:
        if self.alive:
            self.alive = False
            self.spawner.live.remove(self)
            self.parent.exited(code)


class FakeSpawner:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.live: list[FakeChild] = []
        self.spawned: list[FakeChild] = []
        self.failures = 0
        self._pids = itertools.count(1000)

    def spawn(self, config: VassalConfig, fds: list[int], parent: Parent) -> FakeChild:
        if self.failures:
            self.failures -= 1
            raise FileNotFoundError(2, "No such file or directory", "uwsgi")
        if any(child.config.name == config.name for child in self.live):
            raise TwoMasters(f"a second master for {config.name}")
        child = FakeChild(self, next(self._pids), config, parent)
        self.live.append(child)
        self.spawned.append(child)
        return child

    def child(self, name: str) -> FakeChild | None:
        return next((c for c in self.live if c.config.name == name), None)


class FakeProbe:
    def __init__(self, done: Callable[[str | None], None]) -> None:
        self.done = done
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeProber:
    """Health probes that answer when the test says: `answer(None)` passes the probe in
    flight, `answer("why")` fails it."""

    def __init__(self) -> None:
        self.probes: list[FakeProbe] = []

    def probe(self, health: object, done: Callable[[str | None], None]) -> FakeProbe:
        self.probes.append(FakeProbe(done))
        return self.probes[-1]

    @property
    def in_flight(self) -> FakeProbe | None:
        live = [p for p in self.probes if not p.cancelled]
        return live[-1] if live else None

    def answer(self, failure: str | None) -> None:
        probe = self.in_flight
        assert probe is not None, "no probe in flight"
        probe.cancelled = True
        probe.done(failure)
