"""One vassal: what happens to its process becomes the machine's inputs; the machine's
actions are carried out here, with a spawner and timers that tests can replace."""

from __future__ import annotations

import errno
import resource
import time
from collections import deque
from collections.abc import Callable

from toolkit.emperor.config import VassalConfig, stamp_of
from toolkit.emperor.events import Event, Kind
from toolkit.emperor.listeners import Listeners
from toolkit.emperor.machine import (
    FIRES,
    RUNNING,
    Action,
    CancelTimer,
    Emit,
    Input,
    KillGroup,
    Machine,
    On,
    Probe,
    Reinstate,
    ReleaseSockets,
    Send,
    Signal,
    Spawn,
    StartTimer,
    State,
    Timer,
    Withdraw,
    input_for,
)
from toolkit.emperor.options import EmperorOptions
from toolkit.emperor.status import VassalStatus

TYPE_CHECKING = False  # the Emperor never loads typing (toolkit/emperor/__init__.py)
if TYPE_CHECKING:
    from toolkit.emperor.child import Child, Spawner
    from toolkit.emperor.clock import Cancellable, Timers
    from toolkit.emperor.deaths import WorkerDeaths
    from toolkit.emperor.probe import Prober

# Printed by uWSGI once it has read its config; the protocol's first message comes later.
CONFIG_READ_LINE = b"*** Starting uWSGI "
# How many of a vassal's last worker deaths its status keeps (the status page shows them).
RECENT_DEATHS = 5
# Words in the lines that begin a worker's end (deaths.py reads them from then on).
DEATH_WORDS = (b"HARAKIRI", b"DAMN !", b"Seeya!", b"got Segmentation", b"got Floating")
# What the master prints once it has taken message 2 (gracefully_kill_them_all(),
# core/uwsgi.c): from then on a SIGINT only wakes it; before, SIGINT is a brutal stop.
GRACEFUL_STOP_LINE = b"graceful shutdown triggered"


def why(error: OSError) -> str:
    """A spawn's failure in words; the open-file limit says which limit to raise."""
    if error.errno in {errno.EMFILE, errno.ENFILE}:
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return (
            f"[Errno {error.errno}] Too many open files: the Emperor is at its open-file limit "
            f"({limit}; raise it with `ulimit -n` or systemd's LimitNOFILE=)"
        )
    return str(error)


class Vassal:
    """Owns one config's uwsgi child: spawn, watch, reload, respawn with backoff, stop."""

    def __init__(
        self,
        config: VassalConfig,
        *,
        spawner: Spawner,
        timers: Timers,
        publish: Callable[[Event], None],
        options: EmperorOptions,
        listeners: Listeners | None = None,
        after: Vassal | None = None,
        prober: Prober | None = None,
    ) -> None:
        self.machine = Machine(
            config, options, clock=timers.now, holds_sockets=listeners is not None
        )
        self.spawner = spawner
        self.timers = timers
        self.publish = publish
        self.listeners = listeners
        self.prober = prober
        self._probe: Cancellable | None = None
        # What its master says of its workers' ends, explained.
        self.deaths: WorkerDeaths | None = None  # made at the first line about one
        self.worker_deaths = 0
        self.last_worker_death: str | None = None
        self.deaths_by_cause: dict[str, int] | None = None  # made at the first death
        self.recent_deaths: list[tuple[float, str]] | None = None  # the last RECENT_DEATHS
        # The vassal this one replaces: it starts, and says it stopped, only after that one.
        self.after = after
        self.child: Child | None = None
        self.done = False
        self._timers: dict[Timer, Cancellable] = {}
        self._inbox: deque[Input] = deque()
        self._busy = False
        self._when_stopped: list[Callable[[], None]] = []

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def config(self) -> VassalConfig:
        return self.machine.config

    @property
    def state(self) -> State:
        return self.machine.state

    @property
    def pid(self) -> int | None:
        return self.child.pid if self.child is not None else None

    def status(self) -> VassalStatus:
        machine = self.machine
        uptime = None
        if machine.spawned_at is not None and machine.state in RUNNING:
            uptime = round(self.timers.now() - machine.spawned_at, 3)
        return VassalStatus(
            name=self.config.service,
            release=self.config.instance,
            state=machine.state,
            pid=self.pid,
            restarts=machine.restarts,
            uptime=uptime,
            last_exit=machine.last_exit,
            config=str(self.config.path),
            digest=self.config.digest,
            health=machine.last_probe,
            worker_deaths=self.worker_deaths,
            last_worker_death=self.last_worker_death,
            worker_deaths_by_cause=self.deaths_by_cause,
            recent_worker_deaths=self.recent_deaths,
        )

    def start(self) -> None:
        if self.after is not None and not self.after.done:
            self.after.when_stopped(self.start)
        else:
            self.feed(Input(On.BEGIN))

    def reload(self, config: VassalConfig | None = None, reason: str = "") -> None:
        """Graceful reload of a running vassal; a waiting (backoff, throttled) one spawns now."""
        self.feed(Input(On.RELOAD, reason, config=config))

    def request_stop(self, reason: str) -> None:
        self.feed(Input(On.STOP, reason))

    def when_stopped(self, callback: Callable[[], None]) -> None:
        if self.done:
            callback()
        else:
            self._when_stopped.append(callback)

    def feed(self, event: Input) -> None:
        """Hand the machine one input; inputs that its actions cause wait their turn."""
        self._inbox.append(event)
        if self._busy:
            return
        self._busy = True
        try:
            while self._inbox:
                for action in self.machine.handle(self._inbox.popleft()):
                    self._carry_out(action)
        finally:
            self._busy = False
        if self.state is State.STOPPED and not self.done:
            self._say_stopped()

    def _say_stopped(self) -> None:
        if self.after is not None and not self.after.done:
            self.after.when_stopped(self._say_stopped)
            return
        if not self.done:
            self.done = True
            callbacks, self._when_stopped = self._when_stopped, []
            for callback in callbacks:
                callback()

    def _carry_out(self, action: Action) -> None:
        match action:
            case Spawn():
                self._spawn()
            case Send(message) if self.child is not None:
                self.child.send(message)
            case Signal(number) if self.child is not None:
                self.child.signal(number)
            case KillGroup() if self.child is not None:
                self.child.kill_group()
            case StartTimer(timer, delay):
                self._cancel(timer)
                due = self.timers.now() + delay
                self._timers[timer] = self.timers.call_later(delay, lambda: self._fire(timer, due))
            case CancelTimer(timer):
                self._cancel(timer)
            case ReleaseSockets() if self.listeners is not None:
                self.listeners.release(self.name)
            case Probe() if self.prober is not None and self.config.health is not None:
                self._start_probe()
            case Withdraw() if self.config.rotation is not None:
                self.config.rotation.withdraw()
            case Reinstate() if self.config.rotation is not None:
                self.config.rotation.toggle()
            case Emit(kind, text):
                self.publish(Event(self.config.service, kind, text))

    def _start_probe(self) -> None:
        """One probe at a time; its result is the machine's next input, unless the vassal
        has moved on (a reload, an exit) by the time it comes."""
        assert self.prober is not None and self.config.health is not None
        if self._probe is not None:
            self._probe.cancel()
        child = self.child

        def done(failure: str | None) -> None:
            self._probe = None
            if self.child is child:
                on = On.PROBE_PASSED if failure is None else On.PROBE_FAILED
                self.feed(Input(on, failure or ""))

        self._probe = self.prober.probe(self.config.health, done)

    def _cancel(self, timer: Timer) -> None:
        handle = self._timers.pop(timer, None)
        if handle is not None:
            handle.cancel()

    def _fire(self, timer: Timer, due: float) -> None:
        """A timer is due; how late it fires tells whether the Emperor was paused."""
        self._timers.pop(timer, None)
        self.feed(Input(FIRES[timer], late=self.timers.now() - due))

    def _spawn(self) -> None:
        config = self.config
        held = self.listeners.hold(self.name, config.sockets) if self.listeners else []
        try:
            self.child = self.spawner.spawn(config, held, self)
        except OSError as error:
            self._inbox.append(Input(On.SPAWN_FAILED, f"cannot start uwsgi: {why(error)}"))
            return
        release = f" (release {config.instance})" if config.instance else ""
        spawned = f"pid {self.child.pid}, {config.path}{release}"
        self.publish(Event(config.service, Kind.SPAWNED, spawned))

    def _stamp_now(self) -> Input:
        return Input(On.CONFIG_READ, stamp=stamp_of(self.config.path))

    # What its child tells it (child.Parent).

    def output(self, line: bytes) -> None:
        if line.startswith(CONFIG_READ_LINE) and self.machine.guard.expected is not None:
            self.feed(self._stamp_now())
        elif GRACEFUL_STOP_LINE in line:
            self.feed(Input(On.STOP_TAKEN))
        text = line.decode(errors="replace").rstrip("\r")
        self.publish(Event(self.config.service, Kind.OUTPUT, text))
        if self.deaths is None:
            if not any(word in line for word in DEATH_WORDS):
                return
            from toolkit.emperor.deaths import WorkerDeaths

            self.deaths = WorkerDeaths(self.config.harakiri)
        death = self.deaths.line(text, time.time())
        if death is not None:
            self.worker_deaths += 1
            self.last_worker_death = str(death)
            self.deaths_by_cause = self.deaths_by_cause or {}
            self.deaths_by_cause[death.cause] = self.deaths_by_cause.get(death.cause, 0) + 1
            self.recent_deaths = [*(self.recent_deaths or []), (time.time(), str(death))][
                -RECENT_DEATHS:
            ]
            self.publish(Event(self.config.service, Kind.DIED, self.last_worker_death))

    def message(self, message: int) -> None:
        # A fresh process speaks only once it has read its config; a reloading one may
        # still be the old process, so only its "Starting uWSGI" line tells.
        if self.state is State.STARTING and self.machine.guard.expected is not None:
            self.feed(self._stamp_now())
        on = input_for(message, self.config.has_workers)
        if on is not None:
            self.feed(Input(on))

    def warn(self, text: str) -> None:
        self.publish(Event(self.config.service, Kind.WARNING, text))

    def exited(self, code: int, why: str = "") -> None:
        self.child = None
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
        unconfirmed = self.machine.guard.expected is not None
        stamp = stamp_of(self.config.path) if unconfirmed else None
        self.feed(Input(On.EXITED, why, code=code, stamp=stamp))
